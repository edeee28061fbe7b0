"""SMTP TLS Reporting (RFC 8460): the record, the report, the report mail; no I/O.

A domain asks for reports with ``_smtp._tls`` TXT ``v=TLSRPTv1; rua=...`` (§3). A
sender reports per day and policy domain how many sessions passed or failed its
MTA-STS (``sts``) or DANE (``tlsa``) policy (§4); by mail (§5.3, DKIM-signed,
``multipart/report; report-type="tlsrpt"`` with an ``application/tlsrpt+gzip``
part) or by HTTPS POST (§5.4). Reports we receive are read here too, bounded: a
report is untrusted input.
"""

from __future__ import annotations

import datetime
import gzip
import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import MailwrightError

RECORD_PREFIX = "v=TLSRPTv1"
MEDIA_GZIP = "application/tlsrpt+gzip"
MEDIA_JSON = "application/tlsrpt+json"
MAX_REPORT_BYTES = 10 * 1024 * 1024
"""Largest report we read (compressed as received)."""
MAX_JSON_BYTES = 50 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
MAX_POLICIES = 10_000
MAX_FAILURE_DETAILS = 10_000

RESULT_TYPES = frozenset(
    {
        # §4.3.1 negotiation failures
        "starttls-not-supported",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
        # §4.3.2 policy failures
        "tlsa-invalid",
        "dnssec-invalid",
        "dane-required",
        "sts-policy-fetch-error",
        "sts-policy-invalid",
        "sts-webpki-invalid",
    }
)


class TlsRptError(MailwrightError):
    """A record or report that cannot be used; the text says why."""


@dataclass(frozen=True, slots=True)
class TlsRptRecord:
    rua: tuple[str, ...]
    """``mailto:`` and ``https:`` URIs (others are dropped, §3)."""

    @property
    def mailto(self) -> list[str]:
        return [
            unquote(u[7:]).split("?", 1)[0] for u in self.rua if u.lower().startswith("mailto:")
        ]

    @property
    def https(self) -> list[str]:
        return [u for u in self.rua if u.lower().startswith("https://")]


def record_name(domain: str) -> str:
    return "_smtp._tls." + domain.lower().rstrip(".")


def parse_record(text: str) -> TlsRptRecord:
    """§3: ``v=TLSRPTv1`` first, then ``rua=`` with comma-separated URIs."""
    fields = [f.strip(" \t") for f in text.split(";")]
    if fields and fields[-1] == "":
        fields.pop()
    if not fields or fields[0] != RECORD_PREFIX:
        raise TlsRptError(f"the record does not begin with {RECORD_PREFIX}")
    rua: list[str] | None = None
    for item in fields[1:]:
        name, eq, value = item.partition("=")
        if not eq:
            raise TlsRptError(f"malformed field {item!r}")
        if name == "rua" and rua is None:
            rua = [u.strip(" \t") for u in value.split(",") if u.strip(" \t")]
    if not rua:
        raise TlsRptError("the record has no rua")
    usable = tuple(u for u in rua if _usable_uri(u))
    if not usable:
        raise TlsRptError("no rua URI is mailto: or https:")
    return TlsRptRecord(usable)


def select_record(txts: Iterable[str]) -> TlsRptRecord:
    """Exactly one TXT record may begin with ``v=TLSRPTv1`` (as for MTA-STS, §3)."""
    found = [t for t in txts if t.startswith(RECORD_PREFIX)]
    if len(found) != 1:
        raise TlsRptError(f"{len(found)} TXT records begin with {RECORD_PREFIX}; one is needed")
    return parse_record(found[0])


def _usable_uri(uri: str) -> bool:
    parts = urlsplit(uri)
    if parts.scheme.lower() == "mailto":
        return "@" in parts.path
    return parts.scheme.lower() == "https" and bool(parts.hostname)


# -- what we report --------------------------------------------------------------


@dataclass(slots=True)
class PolicyResults:
    """One policy's counts for a day (§4.4)."""

    policy_type: str
    """``sts``, ``tlsa`` or ``no-policy-found``."""
    policy_domain: str
    policy_strings: tuple[str, ...] = ()
    mx_hosts: tuple[str, ...] = ()
    successes: int = 0
    failures: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(result type, receiving MX host, receiving IP) → failed sessions."""

    def to_json(self) -> dict[str, Any]:
        policy: dict[str, Any] = {
            "policy-type": self.policy_type,
            "policy-domain": self.policy_domain,
        }
        if self.policy_strings:
            policy["policy-string"] = list(self.policy_strings)
        if self.mx_hosts:
            policy["mx-host"] = list(self.mx_hosts)
        details = []
        for (result_type, mx, ip), count in sorted(self.failures.items()):
            detail: dict[str, Any] = {"result-type": result_type, "failed-session-count": count}
            if mx:
                detail["receiving-mx-hostname"] = mx
            if ip:
                detail["receiving-ip"] = ip
            details.append(detail)
        out: dict[str, Any] = {
            "policy": policy,
            "summary": {
                "total-successful-session-count": self.successes,
                "total-failure-session-count": sum(self.failures.values()),
            },
        }
        if details:
            out["failure-details"] = details
        return out


def build_report(
    *,
    organization: str,
    contact: str,
    report_id: str,
    start: datetime.datetime,
    end: datetime.datetime,
    policies: Sequence[PolicyResults],
) -> dict[str, Any]:
    """The report object of §4.4."""
    return {
        "organization-name": organization,
        "date-range": {"start-datetime": _iso(start), "end-datetime": _iso(end)},
        "contact-info": contact,
        "report-id": report_id,
        "policies": [p.to_json() for p in policies],
    }


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def report_filename(submitter: str, policy_domain: str, start: int, end: int) -> str:
    """§5.1: ``sender!policy-domain!begin!end.json.gz``."""
    return f"{submitter}!{policy_domain}!{start}!{end}.json.gz"


def gzip_report(report: Mapping[str, Any]) -> bytes:
    return gzip.compress(json.dumps(report, separators=(",", ":")).encode(), mtime=0)


def report_mail(
    *,
    report: Mapping[str, Any],
    submitter: str,
    policy_domain: str,
    from_address: str,
    to: Sequence[str],
    start: int,
    end: int,
    now: datetime.datetime | None = None,
) -> bytes:
    """The report mail of §5.3 (to be DKIM-signed by the intake's ``originate``)."""
    message = EmailMessage()
    report_id = f"<{report['report-id']}>"
    message["From"] = from_address
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(now or datetime.datetime.now(datetime.UTC))
    message["Subject"] = (
        f"Report Domain: {policy_domain} Submitter: {submitter} Report-ID: {report_id}"
    )
    message["Message-ID"] = make_msgid(domain=submitter)
    message["TLS-Report-Domain"] = policy_domain
    message["TLS-Report-Submitter"] = submitter
    message.set_content(f"This is an aggregate TLS report from {submitter}.\n")
    message.add_attachment(
        gzip_report(report),
        maintype="application",
        subtype="tlsrpt+gzip",
        filename=report_filename(submitter, policy_domain, start, end),
    )
    message.replace_header(
        "Content-Type", message.get("Content-Type", "") + '; report-type="tlsrpt"'
    )
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


# -- what we receive ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceivedPolicy:
    policy_type: str
    policy_domain: str
    successes: int
    failures: int
    failure_types: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class ReceivedReport:
    organization: str
    report_id: str
    start: str
    end: str
    contact: str
    policies: tuple[ReceivedPolicy, ...]


def unpack(data: bytes) -> bytes:
    """The JSON of a report as received: gzip (bounded by size and ratio) or plain."""
    if len(data) > MAX_REPORT_BYTES:
        raise TlsRptError(f"report of {len(data)} bytes exceeds {MAX_REPORT_BYTES}")
    if data[:2] != b"\x1f\x8b":
        return data
    limit = min(MAX_JSON_BYTES, max(1024 * 1024, len(data) * MAX_COMPRESSION_RATIO))
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise TlsRptError(f"corrupt gzip data: {exc}") from None
    if len(out) > limit:
        raise TlsRptError(f"gzip expands beyond {limit} bytes: refused as a bomb")
    if not inflater.eof:
        raise TlsRptError("corrupt gzip data: truncated stream")
    return out


def parse_report(data: bytes) -> ReceivedReport:
    """A report (JSON or gzip); raises :class:`TlsRptError` naming the fault."""
    text = unpack(data)
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise TlsRptError(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(obj, dict):
        raise TlsRptError("the report is not a JSON object")
    dates = obj.get("date-range")
    policies = obj.get("policies")
    if not isinstance(dates, dict) or not isinstance(policies, list):
        raise TlsRptError("date-range or policies missing")
    if len(policies) > MAX_POLICIES:
        raise TlsRptError(f"more than {MAX_POLICIES} policies")
    parsed = []
    for entry in policies:
        if not isinstance(entry, dict):
            raise TlsRptError("a policy entry is not an object")
        policy = entry.get("policy") or {}
        summary = entry.get("summary") or {}
        details = entry.get("failure-details") or []
        if not isinstance(policy, dict) or not isinstance(summary, dict):
            raise TlsRptError("policy or summary is not an object")
        if not isinstance(details, list) or len(details) > MAX_FAILURE_DETAILS:
            raise TlsRptError("failure-details is not a list of bounded size")
        types: dict[str, int] = {}
        for detail in details:
            if isinstance(detail, dict):
                kind = str(detail.get("result-type", "?"))[:64]
                types[kind] = types.get(kind, 0) + _count(detail.get("failed-session-count"))
        parsed.append(
            ReceivedPolicy(
                policy_type=str(policy.get("policy-type", "?"))[:32],
                policy_domain=str(policy.get("policy-domain", "?"))[:253],
                successes=_count(summary.get("total-successful-session-count")),
                failures=_count(summary.get("total-failure-session-count")),
                failure_types=tuple(sorted(types.items())),
            )
        )
    return ReceivedReport(
        organization=str(obj.get("organization-name", "?"))[:200],
        report_id=str(obj.get("report-id", "?"))[:200],
        start=str(dates.get("start-datetime", "?"))[:40],
        end=str(dates.get("end-datetime", "?"))[:40],
        contact=str(obj.get("contact-info", ""))[:200],
        policies=tuple(parsed),
    )


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        return 0
    return value


_REPORT_PART = re.compile(r"application/(tlsrpt\+gzip|tlsrpt\+json|gzip|json)")


def reports_in_mail(message: bytes, limit: int = 10) -> list[bytes]:
    """The report parts of a report mail (§5.3), at most ``limit``."""
    import email
    import email.policy

    parsed = email.message_from_bytes(message, policy=email.policy.default)
    found: list[bytes] = []
    for part in parsed.walk():
        if part.is_multipart() or not _REPORT_PART.fullmatch(part.get_content_type()):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and payload:
            found.append(payload)
            if len(found) >= limit:
                break
    return found
