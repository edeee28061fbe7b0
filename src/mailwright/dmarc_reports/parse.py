"""DMARC aggregate reports in: unpack, parse leniently, refuse what is unsafe.

Reports arrive as mail to the ``rua`` address: an XML document, usually gzip'd
or zip'd, attached to a message (RFC 9990 §5). Real reports rarely validate
against either schema (RFC 9990 Appendix A or RFC 7489 Appendix C): elements
are missing, empty or in the wrong case, some start with stray markup. So the
parser reads the elements it knows by local name, whatever the namespace, and
ignores the rest.

Untrusted input is bounded everywhere: compressed and decompressed sizes,
zip member counts and compression ratio, record counts. XML is parsed with
``defusedxml``, so DTDs and external entities (XXE, billion laughs) are refused.
Every refusal is a :class:`ReportRefused` with a reason that the server logs.
"""

from __future__ import annotations

import email
import email.policy
import io
import ipaddress
import re
import zipfile
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from ..errors import MailwrightError

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
"""Largest compressed attachment we look at."""
MAX_XML_BYTES = 50 * 1024 * 1024
"""Largest decompressed report; the biggest real reports are a few MB."""
MAX_ZIP_MEMBERS = 4
MAX_COMPRESSION_RATIO = 200
"""XML compresses well (20-50×); far more than this is a bomb, not a report."""
MAX_RECORDS = 100_000
MAX_REPORTS_PER_MESSAGE = 10

_XML_SUFFIXES = (".xml",)
_GZIP_SUFFIXES = (".gz", ".gzip")
_ZIP_SUFFIXES = (".zip",)
_REPORT_TYPES = {
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/x-zip-compressed",
    "application/xml",
    "text/xml",
    "application/octet-stream",
}


class ReportRefused(MailwrightError):
    """A report that cannot be used, with the reason to log."""


@dataclass(frozen=True)
class AuthResult:
    """One ``<auth_results>`` entry: the raw (unaligned) DKIM or SPF result."""

    domain: str
    result: str
    selector: str | None = None
    scope: str | None = None


@dataclass(frozen=True)
class ReportRecord:
    """One ``<record>``: a source IP and what the reporter saw of its mail."""

    source_ip: str
    count: int
    disposition: str
    dkim: str
    """DMARC-aligned DKIM result from ``policy_evaluated`` (pass/fail)."""
    spf: str
    """DMARC-aligned SPF result from ``policy_evaluated`` (pass/fail)."""
    header_from: str
    envelope_from: str = ""
    envelope_to: str = ""
    reasons: tuple[str, ...] = ()
    dkim_results: tuple[AuthResult, ...] = ()
    spf_results: tuple[AuthResult, ...] = ()

    @property
    def dmarc_pass(self) -> bool:
        """RFC 9989 §4.4: DMARC passes when either aligned identifier passes."""
        return self.dkim == "pass" or self.spf == "pass"


@dataclass(frozen=True)
class AggregateReport:
    org_name: str
    email: str
    report_id: str
    begin: int
    end: int
    domain: str
    """The ``policy_published`` domain: whose mail this report is about."""
    policy: dict[str, str]
    records: tuple[ReportRecord, ...]
    schema: str
    """``rfc9990`` (namespaced or with RFC 9990-only elements) or ``rfc7489``."""
    warnings: tuple[str, ...] = field(default=())

    @property
    def message_count(self) -> int:
        return sum(r.count for r in self.records)


# --- unpacking -------------------------------------------------------------------------


def decompress(data: bytes, filename: str = "") -> bytes:
    """Return the XML inside ``data`` (gzip, zip or plain), bounded in size.

    The format is detected by magic bytes first and the file name second, since
    reporters label attachments inconsistently.
    """
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise ReportRefused(f"attachment of {len(data)} bytes exceeds {MAX_ATTACHMENT_BYTES}")
    name = filename.lower()
    if data[:2] == b"\x1f\x8b" or (name.endswith(_GZIP_SUFFIXES) and not data.startswith(b"<")):
        return _gunzip(data)
    if data[:4] == b"PK\x03\x04" or name.endswith(_ZIP_SUFFIXES):
        return _unzip(data)
    return data


def _bounded_limit(compressed: int) -> int:
    return min(MAX_XML_BYTES, max(1024 * 1024, compressed * MAX_COMPRESSION_RATIO))


def _gunzip(data: bytes) -> bytes:
    """Inflate gzip member by member, bounded; trailing bytes that start no member are ignored.

    Some reporters append a CRLF after the gzip stream; ``gzip.decompress`` refuses
    that, a lenient reader should not.
    """
    limit = _bounded_limit(len(data))
    out = bytearray()
    rest = data
    try:
        while rest[:2] == b"\x1f\x8b":
            inflater = zlib.decompressobj(wbits=31)
            pending = rest
            while pending:
                out += inflater.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise ReportRefused(
                        f"gzip expands beyond {limit} bytes (from {len(data)}): refused as a bomb"
                    )
                pending = inflater.unconsumed_tail
                if inflater.eof:
                    break
            if not inflater.eof:
                raise ReportRefused("corrupt gzip data: truncated stream")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise ReportRefused(f"corrupt gzip data: {exc}") from None
    if not out:
        raise ReportRefused("corrupt gzip data: no gzip stream")
    return bytes(out)


def _unzip(data: bytes) -> bytes:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ReportRefused(f"corrupt zip archive: {exc}") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if not members:
            raise ReportRefused("zip archive is empty")
        if len(members) > MAX_ZIP_MEMBERS:
            raise ReportRefused(f"zip archive has {len(members)} files; a report has one")
        member = next((m for m in members if m.filename.lower().endswith(".xml")), members[0])
        limit = _bounded_limit(max(member.compress_size, 1))
        if member.file_size > limit:
            raise ReportRefused(f"zip member declares {member.file_size} bytes: refused as a bomb")
        out = io.BytesIO()
        try:
            with archive.open(member) as stream:
                while chunk := stream.read(65536):
                    out.write(chunk)
                    if out.tell() > limit:
                        raise ReportRefused(f"zip member expands beyond {limit} bytes: refused")
        except (
            zipfile.BadZipFile,
            OSError,
            EOFError,
            ValueError,  # a damaged local header: zipfile seeks to a negative offset
            zlib.error,
            NotImplementedError,
        ) as exc:
            raise ReportRefused(f"corrupt zip member: {exc}") from None
        except RuntimeError as exc:  # encrypted members
            raise ReportRefused(f"unreadable zip member: {exc}") from None
    return out.getvalue()


def report_attachments(message: bytes) -> Iterator[tuple[str, bytes]]:
    """The parts of a report mail that may hold a report: (filename, decoded bytes).

    A message whose whole body is the report (``Content-Type: application/gzip``)
    counts as one attachment.
    """
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    found = 0
    for part in parsed.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename() or ""
        ctype = part.get_content_type()
        lower = filename.lower()
        looks_like_report = ctype in _REPORT_TYPES or lower.endswith(
            _XML_SUFFIXES + _GZIP_SUFFIXES + _ZIP_SUFFIXES
        )
        if not looks_like_report:
            continue
        if ctype == "application/octet-stream" and not lower.endswith(
            _XML_SUFFIXES + _GZIP_SUFFIXES + _ZIP_SUFFIXES
        ):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        found += 1
        if found > MAX_REPORTS_PER_MESSAGE:
            raise ReportRefused(f"more than {MAX_REPORTS_PER_MESSAGE} report attachments")
        yield filename, payload


def reports_from_message(message: bytes) -> list[AggregateReport | ReportRefused]:
    """Every report in a report mail, parsed, or the reason it was refused."""
    results: list[AggregateReport | ReportRefused] = []
    try:
        for filename, payload in report_attachments(message):
            try:
                results.append(parse_report(decompress(payload, filename)))
            except ReportRefused as exc:
                results.append(exc)
    except ReportRefused as exc:
        results.append(exc)
    except Exception as exc:  # a MIME structure the email package chokes on
        results.append(ReportRefused(f"unparsable message: {type(exc).__name__}: {exc}"))
    if not results:
        results.append(ReportRefused("no report attachment (xml, gzip or zip) found"))
    return results


# --- parsing ---------------------------------------------------------------------------

_FEEDBACK_OPEN = re.compile(rb"<(?:[A-Za-z0-9_]+:)?feedback[\s>]")
_FEEDBACK_CLOSE = re.compile(rb"</(?:[A-Za-z0-9_]+:)?feedback\s*>")


def _feedback_slice(xml: bytes) -> bytes | None:
    """From the first ``<feedback`` to the last ``</feedback>``, found in linear time."""
    opening = _FEEDBACK_OPEN.search(xml)
    if opening is None:
        return None
    closings = deque(_FEEDBACK_CLOSE.finditer(xml, opening.start()), maxlen=1)
    return xml[opening.start() : closings[0].end()] if closings else None


def parse_report(xml: bytes) -> AggregateReport:
    """Parse one aggregate report leniently; raise :class:`ReportRefused` when unusable."""
    if not xml.strip():
        raise ReportRefused("empty report")
    if len(xml) > MAX_XML_BYTES:
        raise ReportRefused(f"report of {len(xml)} bytes exceeds {MAX_XML_BYTES}")
    root = _parse_xml(xml)
    if _local(root.tag) != "feedback":
        raise ReportRefused(f"root element is <{_local(root.tag)}>, not <feedback>")
    warnings: list[str] = []
    namespaced = root.tag.startswith("{urn:ietf:params:xml:ns:dmarc-2.0}")

    meta = _child(root, "report_metadata")
    published = _child(root, "policy_published")
    if meta is None or published is None:
        raise ReportRefused("missing <report_metadata> or <policy_published>")
    date_range = _child(meta, "date_range")
    begin = _int(_text(date_range, "begin"), warnings, "date_range/begin")
    end = _int(_text(date_range, "end"), warnings, "date_range/end")
    domain = _text(published, "domain").strip().lower().rstrip(".")
    if not domain:
        raise ReportRefused("policy_published has no <domain>")
    report_id = _text(meta, "report_id").strip()
    if not report_id:
        raise ReportRefused("report_metadata has no <report_id>")
    policy = {
        _local(child.tag): (child.text or "").strip()
        for child in published
        if _local(child.tag) != "domain"
    }
    rfc9990_only = {"np", "testing", "discovery_method"}
    schema = "rfc9990" if namespaced or rfc9990_only & policy.keys() else "rfc7489"

    records: list[ReportRecord] = []
    for element in root:
        if _local(element.tag) != "record":
            continue
        if len(records) >= MAX_RECORDS:
            raise ReportRefused(f"more than {MAX_RECORDS} records")
        record = _record(element, warnings)
        if record is not None:
            records.append(record)
    return AggregateReport(
        org_name=_text(meta, "org_name").strip(),
        email=_text(meta, "email").strip(),
        report_id=report_id,
        begin=begin,
        end=end,
        domain=domain,
        policy=policy,
        records=tuple(records),
        schema=schema,
        warnings=tuple(warnings),
    )


def _parse_xml(xml: bytes) -> Any:
    try:
        return SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ReportRefused(f"unsafe XML refused ({type(exc).__name__})") from None
    except (LookupError, ValueError) as exc:  # an unknown encoding in the declaration
        raise ReportRefused(f"unreadable XML: {exc}") from None
    except SafeET.ParseError as first_error:
        # Lenient recovery: a document wrapped in stray markup (seen in the wild: an
        # unclosed <xs:schema> before <feedback>) or with invalid UTF-8 bytes.
        candidate = _feedback_slice(xml) or xml
        candidate = candidate.decode("utf-8", errors="replace").encode("utf-8")
        try:
            return SafeET.fromstring(
                candidate, forbid_dtd=True, forbid_entities=True, forbid_external=True
            )
        except DefusedXmlException as exc:
            raise ReportRefused(f"unsafe XML refused ({type(exc).__name__})") from None
        except (SafeET.ParseError, LookupError, ValueError):
            raise ReportRefused(f"malformed XML: {first_error}") from None


def _record(element: Any, warnings: list[str]) -> ReportRecord | None:
    row = _child(element, "row")
    if row is None:
        warnings.append("record without <row> skipped")
        return None
    source_ip = _text(row, "source_ip").strip()
    try:
        source_ip = str(ipaddress.ip_address(source_ip))
    except ValueError:
        warnings.append(f"record with invalid source_ip {source_ip!r} skipped")
        return None
    count = _int(_text(row, "count"), warnings, "row/count")
    if count < 0:
        warnings.append(f"negative count for {source_ip} treated as 0")
        count = 0
    evaluated = _child(row, "policy_evaluated")
    reasons = tuple(
        (_text(reason, "type") or "").strip().lower()
        for reason in _children(evaluated, "reason")
        if (_text(reason, "type") or "").strip()
    )
    identifiers = _child(element, "identifiers")
    auth = _child(element, "auth_results")
    dkim_results = tuple(
        AuthResult(
            domain=_text(d, "domain").strip().lower(),
            result=_text(d, "result").strip().lower() or "none",
            selector=_text(d, "selector").strip() or None,
        )
        for d in _children(auth, "dkim")
    )
    spf_results = tuple(
        AuthResult(
            domain=_text(s, "domain").strip().lower(),
            result=_text(s, "result").strip().lower() or "none",
            scope=_text(s, "scope").strip().lower() or None,
        )
        for s in _children(auth, "spf")
    )
    return ReportRecord(
        source_ip=source_ip,
        count=count,
        disposition=_text(evaluated, "disposition").strip().lower() or "none",
        dkim=_text(evaluated, "dkim").strip().lower() or "fail",
        spf=_text(evaluated, "spf").strip().lower() or "fail",
        header_from=_text(identifiers, "header_from").strip().lower(),
        envelope_from=_text(identifiers, "envelope_from").strip().lower(),
        envelope_to=_text(identifiers, "envelope_to").strip().lower(),
        reasons=reasons,
        dkim_results=dkim_results,
        spf_results=spf_results,
    )


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _child(element: Any, name: str) -> Any:
    if element is None:
        return None
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element: Any, name: str) -> list[Any]:
    if element is None:
        return []
    return [child for child in element if _local(child.tag) == name]


def _text(element: Any, name: str) -> str:
    child = _child(element, name)
    return (child.text or "") if child is not None else ""


_MAX_INT = 2**63 - 1
"""Counts and timestamps must fit SQLite's INTEGER; real ones are far smaller."""


def _int(text: str, warnings: list[str], where: str) -> int:
    digits = text.strip()
    if len(digits) > 20:
        warnings.append(f"{where}: {digits[:24]!r}... is not a plausible number; read as 0")
        return 0
    try:
        value = int(digits)
    except ValueError:
        warnings.append(f"{where}: {digits!r} is not a number; read as 0")
        return 0
    if not 0 <= value <= _MAX_INT:
        warnings.append(f"{where}: {value} is out of range; read as 0")
        return 0
    return value
