"""DMARC aggregate reports out: RFC 9990 XML from what the inbound checks observed.

Once a day the stored :class:`~.observations.Observation` records of each
policy domain that asked for reports (``rua=``) are grouped into rows (RFC 9990
§2.1: one row per source IP and identical results, with a count) and written as
one report per domain, in the ``urn:ietf:params:xml:ns:dmarc-2.0`` namespace.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterable
from xml.sax.saxutils import escape as _escape_markup

from .observations import Observation

NAMESPACE = "urn:ietf:params:xml:ns:dmarc-2.0"

# XML 1.0 §2.2: characters that may not appear in a document at all, escaped or not.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(text: str) -> str:
    """Text for an element: markup escaped, and characters XML forbids (a control byte in
    a HELO name, say) written as ``\\xNN`` so that one bad value cannot break the report."""
    return _escape_markup(_NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text))


GENERATOR = "mailwright"


def build_report(
    *,
    org_name: str,
    email: str,
    report_id: str,
    begin: int,
    end: int,
    policy_domain: str,
    policy: dict[str, str],
    observations: Iterable[Observation],
    extra_contact_info: str | None = None,
) -> bytes:
    """The XML of one aggregate report (RFC 9990 §2 and Appendix A)."""
    rows: Counter[Observation] = Counter(_row_key(o) for o in observations)
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<feedback xmlns="{NAMESPACE}">',
        "  <version>1.0</version>",
        "  <report_metadata>",
        f"    <org_name>{escape(org_name)}</org_name>",
        f"    <email>{escape(email)}</email>",
    ]
    if extra_contact_info:
        out.append(f"    <extra_contact_info>{escape(extra_contact_info)}</extra_contact_info>")
    out += [
        f"    <report_id>{escape(report_id)}</report_id>",
        "    <date_range>",
        f"      <begin>{int(begin)}</begin>",
        f"      <end>{int(end)}</end>",
        "    </date_range>",
        f"    <generator>{GENERATOR}</generator>",
        "  </report_metadata>",
        "  <policy_published>",
        f"    <domain>{escape(policy_domain)}</domain>",
    ]
    # RFC 9990 Appendix A: the order of PolicyPublishedType's sequence.
    out.append(f"    <p>{escape(policy.get('p', 'none'))}</p>")
    for tag in ("sp", "np", "adkim", "aspf"):
        if tag in policy:
            out.append(f"    <{tag}>{escape(policy[tag])}</{tag}>")
    out.append("    <discovery_method>treewalk</discovery_method>")
    if "fo" in policy:
        out.append(f"    <fo>{escape(policy['fo'])}</fo>")
    out.append(f"    <testing>{'y' if policy.get('t') == 'y' else 'n'}</testing>")
    out.append("  </policy_published>")
    for row, count in sorted(rows.items(), key=lambda item: (-item[1], item[0].source_ip)):
        out += _record(row, count)
    out.append("</feedback>")
    return ("\n".join(out) + "\n").encode("utf-8")


def _row_key(o: Observation) -> Observation:
    return Observation(
        policy_domain=o.policy_domain,
        source_ip=o.source_ip,
        header_from=o.header_from,
        disposition=o.disposition,
        dkim_aligned=o.dkim_aligned,
        spf_aligned=o.spf_aligned,
        envelope_from=o.envelope_from,
        envelope_to=o.envelope_to,
        dkim=o.dkim,
        spf=o.spf,
        reasons=o.reasons,
    )


def _record(o: Observation, count: int) -> list[str]:
    lines = [
        "  <record>",
        "    <row>",
        f"      <source_ip>{escape(o.source_ip)}</source_ip>",
        f"      <count>{count}</count>",
        "      <policy_evaluated>",
        f"        <disposition>{escape(o.disposition)}</disposition>",
        f"        <dkim>{escape(o.dkim_aligned)}</dkim>",
        f"        <spf>{escape(o.spf_aligned)}</spf>",
    ]
    for reason in o.reasons:
        lines.append(f"        <reason><type>{escape(reason)}</type></reason>")
    lines += [
        "      </policy_evaluated>",
        "    </row>",
        "    <identifiers>",
    ]
    if o.envelope_to:
        lines.append(f"      <envelope_to>{escape(o.envelope_to)}</envelope_to>")
    if o.envelope_from:
        lines.append(f"      <envelope_from>{escape(o.envelope_from)}</envelope_from>")
    lines += [
        f"      <header_from>{escape(o.header_from)}</header_from>",
        "    </identifiers>",
        "    <auth_results>",
    ]
    for domain, selector, result in o.dkim:
        lines += [
            "      <dkim>",
            f"        <domain>{escape(domain)}</domain>",
            f"        <selector>{escape(selector)}</selector>",
            f"        <result>{escape(result)}</result>",
            "      </dkim>",
        ]
    if o.spf is not None:
        domain, scope, result = o.spf
        lines += [
            "      <spf>",
            f"        <domain>{escape(domain)}</domain>",
            f"        <scope>{escape(scope)}</scope>",
            f"        <result>{escape(result)}</result>",
            "      </spf>",
        ]
    lines += ["    </auth_results>", "  </record>"]
    return lines


def report_filename(receiver: str, policy_domain: str, begin: int, end: int, report_id: str) -> str:
    """RFC 9990 §5.2.1 file name: receiver!policy-domain!begin!end!id.xml.gz."""
    return f"{receiver}!{policy_domain}!{begin}!{end}!{report_id}.xml.gz"


def compress(xml: bytes) -> bytes:
    return gzip.compress(xml, mtime=0)
