"""The DNS records a mailwright domain needs, computed from the config.

``mailwright init`` prints them after writing the config, ``mailwright records``
prints them again, and the doctor (``mailwright check``) verifies the same
facts on the live DNS. One list of :class:`DnsRecord` feeds three renderings:
explained text for a person, a zone-file fragment for a DNS server (BIND's
``named-checkzone`` accepts it; every owner name is absolute) and JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509

from ..certificates.store import tls_files
from ..config import Config
from ..dane import TlsaRecord, record_for
from ..dns.names import reverse_name
from ..errors import ConfigError
from ..mtasts import policy_id, render_policy
from .keys import dns_record_value, load_private_key
from .providers import find_provider, relay_host, unknown_relay_advice

DEFAULT_TTL = 3600
DMARC_REPORT_LOCALPART = "dmarc-reports"
TLS_REPORT_LOCALPART = "tls-reports"
MAX_TXT_STRING = 255
"""RFC 1035 §3.3: one character-string holds at most 255 octets; longer TXT
values are split into several strings, which DKIM and SPF join (RFC 6376
§3.6.2.2, RFC 7208 §3.3)."""

Group = Literal["mx", "host", "spf", "dkim", "dmarc", "mta-sts", "tls-rpt", "tlsa", "ptr"]
Publisher = Literal["dns", "ip-provider"]

GROUP_TITLES: dict[str, str] = {
    "mx": "MX: where mail for the domain is delivered",
    "host": "A/AAAA: the mail host's addresses",
    "spf": "SPF: which servers may send as the domain",
    "dkim": "DKIM: the public keys receivers verify signatures with",
    "dmarc": "DMARC: what receivers do when SPF and DKIM do not align",
    "mta-sts": "MTA-STS: senders must reach the MX over verified TLS (RFC 8461)",
    "tls-rpt": "TLS-RPT: where senders report TLS failures (RFC 8460)",
    "tlsa": "TLSA (DANE): the MX key, for senders that validate DNSSEC (RFC 7672)",
    "ptr": "PTR (reverse DNS): ask the owner of each IP address to set these",
}

GROUP_EXPLANATIONS: dict[str, str] = {
    "mx": "Receivers look up the MX of the domain to deliver mail to it (RFC 5321 §5.1).",
    "host": (
        "The MX target needs its own A/AAAA record: an MX pointing at a CNAME is "
        "forbidden (RFC 2181 §10.3) and some receivers refuse it."
    ),
    "spf": (
        "'-all' tells receivers to reject mail from any other server. If other systems "
        "(a CRM, a newsletter tool) send as this domain, add them first, or start with "
        "'~all' (softfail: accepted but marked) and switch to '-all' once DMARC reports "
        "show nothing legitimate failing."
    ),
    "dkim": (
        "Two keys, both signing every message: RSA-2048 for every receiver and Ed25519 "
        "(RFC 8463) for those that verify it. Long values are split into 255-octet "
        "strings; DNS joins them back."
    ),
    "dmarc": (
        "Start at p=none and read the aggregate reports sent to the rua address. After "
        "2-4 weeks with only your own servers passing, move to p=quarantine, then a few "
        "weeks later to p=reject."
    ),
    "mta-sts": (
        "The TXT record announces the policy that the http listener serves at "
        "https://mta-sts.DOMAIN/.well-known/mta-sts.txt; that name needs the A/AAAA "
        "records below and must be in the certificate (with ACME: add it to acme_names). "
        'Start with mode = "testing", read the TLS reports, then switch to "enforce". '
        "The id changes by itself whenever the policy does."
    ),
    "tls-rpt": (
        "Senders send daily reports of TLS successes and failures to this address; "
        "'mailwright tls reports' summarises them. Make the address a mailbox."
    ),
    "tlsa": (
        "Only useful in a DNSSEC-signed zone. '3 1 1' pins the key of the certificate, "
        "so a renewal with the same key changes nothing. Before a new key is used, "
        "publish its record next to the old one, wait two TTLs, switch the certificate, "
        "then remove the old record (RFC 7671 §8.1)."
    ),
    "ptr": (
        "Only the owner of the IP address (your hosting or cloud provider) can publish "
        "these; receivers check that the PTR names the HELO host and resolves back to "
        "the same address."
    ),
}


@dataclass(frozen=True)
class DnsRecord:
    """One record to publish: absolute owner name (no trailing dot), type, presentation data."""

    group: Group
    name: str
    rdtype: str
    value: str
    """MX/PTR: as in a zone file (``10 mail.example.com.``); TXT: the text itself, unquoted."""
    note: str = ""
    publish: Publisher = "dns"
    ttl: int = DEFAULT_TTL

    def zone_line(self) -> str:
        """The record as one line of a zone file, with an absolute owner name."""
        data = txt_rdata(self.value) if self.rdtype == "TXT" else self.value
        return f"{self.name}. {self.ttl} IN {self.rdtype} {data}"

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "name": self.name,
            "type": self.rdtype,
            "ttl": self.ttl,
            "value": self.value,
            "zone": self.zone_line(),
            "publish": self.publish,
            "note": self.note,
        }


@dataclass(frozen=True)
class RecordPlan:
    records: tuple[DnsRecord, ...]
    notes: tuple[str, ...] = field(default=())
    """Things a person must do that no record expresses (an unknown relay's include...)."""

    def by_group(self) -> list[tuple[str, list[DnsRecord]]]:
        groups: dict[str, list[DnsRecord]] = {}
        for record in self.records:
            groups.setdefault(record.group, []).append(record)
        return [(g, groups[g]) for g in GROUP_TITLES if g in groups]


def txt_rdata(value: str) -> str:
    """Quote a TXT value for a zone file, split into strings of at most 255 octets."""
    raw = value.encode("utf-8")
    chunks = [raw[i : i + MAX_TXT_STRING] for i in range(0, len(raw), MAX_TXT_STRING)] or [b""]
    return " ".join(_quote(chunk) for chunk in chunks)


def _quote(chunk: bytes) -> str:
    out = []
    for byte in chunk:
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def spf_value(config: Config) -> tuple[str, list[str]]:
    """The SPF record for this config and notes for a person (RFC 7208 §5)."""
    notes: list[str] = []
    terms = ["v=spf1"]
    relay = config.delivery.relay if config.delivery.mode == "relay" else None
    provider = find_provider(relay.url) if relay else None
    if relay is not None and provider is not None:
        terms.append(f"include:{provider.spf_include}")
        if provider.note:
            notes.append(f"SPF include for {provider.name}: {provider.note}.")
    else:
        terms.extend(f"ip4:{ip}" for ip in config.ipv4)
        terms.extend(f"ip6:{ip}" for ip in config.ipv6)
        if relay is not None:
            notes.append(
                f"Relay {relay_host(relay.url)} is not a provider mailwright knows: "
                f"{unknown_relay_advice(relay.url)}, and add it before '-all'."
            )
        if not config.ipv4 and not config.ipv6:
            terms.append("mx")
            notes.append("No sending IP is configured: SPF authorizes the MX hosts ('mx').")
    terms.append("-all")
    return " ".join(terms), notes


def dmarc_value(domain: str) -> str:
    """A first DMARC record: monitor only, reports to an address of the domain (RFC 9989 §4.7)."""
    return f"v=DMARC1; p=none; rua=mailto:{DMARC_REPORT_LOCALPART}@{domain}"


def build_records(config: Config) -> RecordPlan:
    """Every record the config needs; reads the DKIM private keys to derive public keys."""
    records: list[DnsRecord] = []
    notes: list[str] = []
    host = config.hostname
    if host == "localhost":
        # The built-in default (no hostname in the file): 'MX 10 localhost.' would send the
        # domain's mail to each sender's own machine, and A/PTR records for it mean nothing.
        example = f"mail.{config.domains[0]}" if config.domains else "mail.example.com"
        raise ConfigError(
            config.source,
            "hostname",
            "not set (or 'localhost'): MX, A/AAAA and PTR records need the server's public name",
            f'add hostname = "{example}"',
        )
    if not config.domains:
        notes.append('No domains in the config: add domains = ["example.com"] for MX, SPF, DMARC.')
    for domain in config.domains:
        records.append(
            DnsRecord("mx", domain, "MX", f"10 {host}.", f"mail for {domain} goes to {host}")
        )
    host_note = "the MX target: an A record of its own, not a CNAME"
    for ip in config.ipv4:
        records.append(DnsRecord("host", host, "A", ip, host_note))
    for ip in config.ipv6:
        records.append(DnsRecord("host", host, "AAAA", ip, host_note))
    if not config.ipv4 and not config.ipv6:
        notes.append(f"No ipv4/ipv6 in the config: add {host}'s address to publish A/AAAA and PTR.")
    if config.domains and not any(host == d or host.endswith("." + d) for d in config.domains):
        notes.append(f"{host} is outside {', '.join(config.domains)}: publish its A/AAAA there.")
    spf, spf_notes = spf_value(config)
    notes.extend(spf_notes)
    for domain in config.domains:
        records.append(DnsRecord("spf", domain, "TXT", spf, "exactly one v=spf1 record per name"))
    for key in config.dkim:
        private = load_private_key(key.private_key)
        records.append(
            DnsRecord(
                "dkim",
                f"{key.selector}._domainkey.{key.domain}",
                "TXT",
                dns_record_value(private),
                f"{key.algorithm} key, selector {key.selector}",
            )
        )
    for domain in config.domains:
        records.append(
            DnsRecord(
                "dmarc",
                f"_dmarc.{domain}",
                "TXT",
                dmarc_value(domain),
                "monitor first; then p=quarantine, then p=reject",
            )
        )
    records.extend(transport_records(config, notes))
    for ip in (*config.ipv4, *config.ipv6):
        records.append(
            DnsRecord(
                "ptr",
                reverse_name(ip),
                "PTR",
                f"{host}.",
                f"{ip} → {host}: set by your IP provider",
                publish="ip-provider",
            )
        )
    return RecordPlan(tuple(records), tuple(notes))


def mta_sts_policy(config: Config) -> str | None:
    """Our policy file (RFC 8461 §3.2) when ``[mta_sts] mode`` is set."""
    settings = config.mta_sts
    if settings.mode is None:
        return None
    mx = settings.mx or (config.hostname,)
    return render_policy(settings.mode, mx, settings.max_age)


def tlsa_record(config: Config) -> TlsaRecord | None:
    """``3 1 1`` for the key of the certificate we serve (None: no certificate yet)."""
    files = tls_files(config)
    if files is None:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(files[0].read_bytes())
    except (OSError, ValueError):
        return None
    return record_for(certificate)


def transport_records(config: Config, notes: list[str]) -> list[DnsRecord]:
    """MTA-STS, TLS-RPT and TLSA records of our domains and MX host."""
    records: list[DnsRecord] = []
    policy = mta_sts_policy(config)
    for domain in config.domains:
        if policy is not None:
            records.append(
                DnsRecord(
                    "mta-sts",
                    f"_mta-sts.{domain}",
                    "TXT",
                    f"v=STSv1; id={policy_id(policy)}",
                    f"mode {config.mta_sts.mode}; the id follows the policy text",
                )
            )
            for ip in config.ipv4:
                records.append(DnsRecord("mta-sts", f"mta-sts.{domain}", "A", ip, "policy host"))
            for ip in config.ipv6:
                records.append(DnsRecord("mta-sts", f"mta-sts.{domain}", "AAAA", ip, "policy host"))
        records.append(
            DnsRecord(
                "tls-rpt",
                f"_smtp._tls.{domain}",
                "TXT",
                f"v=TLSRPTv1; rua=mailto:{TLS_REPORT_LOCALPART}@{domain}",
                "daily reports from senders",
            )
        )
    if policy is None and config.domains:
        notes.append('MTA-STS is not published: set [mta_sts] mode = "testing" to start.')
    tlsa = tlsa_record(config)
    if tlsa is not None:
        records.append(
            DnsRecord(
                "tlsa",
                f"_25._tcp.{config.hostname}",
                "TLSA",
                str(tlsa),
                "DANE-EE, SPKI, SHA-256 of the current key; publish the next key's first",
            )
        )
    elif config.tls.acme or config.tls.certificate:
        notes.append("No certificate yet: run again once it exists to get the TLSA record.")
    return records


def render_zone(plan: RecordPlan) -> str:
    """A zone-file fragment: comments and records only, owner names absolute."""
    lines: list[str] = []
    for group, records in plan.by_group():
        lines.append(f"; {GROUP_TITLES[group]}")
        lines.extend(r.zone_line() for r in records)
    for note in plan.notes:
        lines.append(f"; NOTE: {note}")
    return "\n".join(lines) + "\n"


def render_json(plan: RecordPlan) -> str:
    return json.dumps(
        {"records": [r.to_json() for r in plan.records], "notes": list(plan.notes)},
        indent=2,
        ensure_ascii=False,
    )


def split_zone(lines: Iterable[str]) -> tuple[list[str], list[str]]:
    """Separate forward records from PTR records (reverse zones belong to the IP owner)."""
    forward: list[str] = []
    reverse: list[str] = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith(";"):
            continue
        owner = text.split()[0].lower()
        (reverse if owner.endswith((".in-addr.arpa.", ".ip6.arpa.")) else forward).append(text)
    return forward, reverse


def group_explanation(group: str) -> str:
    return GROUP_EXPLANATIONS.get(group, "")
