"""A complete, correct domain as a list of records, for the doctor's unit tests.

Tests drop or add records and build a :class:`MemoryResolver` from the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mailwright.dkim import dns_record_value, generate_key, private_key_pem
from mailwright.dns import MemoryResolver
from mailwright.doctor import DoctorOptions, SelectorSpec

DOMAIN = "example.com"
HOST = "mail.example.com"
IP = "192.0.2.10"
REV = "10.2.0.192.in-addr.arpa"
KEY = generate_key("rsa", 2048)
OTHER_KEY = generate_key("rsa", 2048)
DKIM_NAME = f"mail._domainkey.{DOMAIN}"

Rec = tuple[str, str, object]


def records() -> list[Rec]:
    return [
        (DOMAIN, "MX", (10, HOST)),
        (HOST, "A", IP),
        (REV, "PTR", HOST),
        (DOMAIN, "TXT", f"v=spf1 ip4:{IP} -all"),
        (DKIM_NAME, "TXT", dns_record_value(KEY)),
        (f"_dmarc.{DOMAIN}", "TXT", f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}"),
    ]


def without(recs: list[Rec], name: str, rdtype: str) -> list[Rec]:
    return [r for r in recs if not (r[0] == name and r[1] == rdtype)]


def resolver(recs: Iterable[Rec]) -> MemoryResolver:
    r = MemoryResolver()
    for name, rdtype, value in recs:
        r.add(name, rdtype, value)
    return r


def options(tmp_path: Path) -> DoctorOptions:
    key_file = tmp_path / "mail.pem"
    key_file.write_bytes(private_key_pem(KEY))
    return DoctorOptions(
        hostname=HOST,
        ips=(IP,),
        expected_ipv4=(IP,),
        selectors=(SelectorSpec("mail", key_file, DOMAIN),),
        dnsbls=("dnsbl.test",),
        dbls=("dbl.test",),
        skip=frozenset({"ports"}),
    )
