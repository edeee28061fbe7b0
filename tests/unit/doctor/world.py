"""A complete, correct domain in a :class:`MemoryResolver`, for the doctor's unit tests."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mailwright.dkim import dns_record_value, generate_key, private_key_pem
from mailwright.dns import MemoryResolver
from mailwright.doctor import DoctorOptions, SelectorSpec

DOMAIN = "example.com"
HOST = "mail.example.com"
IP = "192.0.2.10"
REV = "10.2.0.192.in-addr.arpa"
_RSA = generate_key("rsa", 2048)


def healthy(tmp_path: Path) -> tuple[MemoryResolver, DoctorOptions]:
    key_file = tmp_path / "mail.pem"
    key_file.write_bytes(private_key_pem(_RSA))
    r = MemoryResolver()
    r.add(DOMAIN, "MX", (10, HOST))
    r.add(HOST, "A", IP)
    r.add(REV, "PTR", HOST)
    r.add(DOMAIN, "TXT", f"v=spf1 ip4:{IP} -all")
    r.add(f"mail._domainkey.{DOMAIN}", "TXT", dns_record_value(_RSA))
    r.add(f"_dmarc.{DOMAIN}", "TXT", f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}")
    options = DoctorOptions(
        hostname=HOST,
        ips=(IP,),
        expected_ipv4=(IP,),
        selectors=(SelectorSpec("mail", key_file, DOMAIN),),
        dnsbls=("dnsbl.test",),
        dbls=("dbl.test",),
        skip=frozenset({"ports"}),
    )
    return r, options


def options(base: DoctorOptions, **changes: Any) -> DoctorOptions:
    return replace(base, **changes)
