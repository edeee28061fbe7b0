"""The JSON body of ``POST /v1/messages`` → an RFC 5322 message and its envelope.

Pure: no I/O. The MIME structure is built by the standard library's :mod:`email`
package (its MIME classes, CRLF line ends) in 7-bit-safe transfer encodings:
text parts quoted-printable when they are not plain short-lined ASCII, attachments
base64, non-ASCII header text as RFC 2047 encoded words — so the message needs no
8BITMIME at any hop and the DKIM signature made at intake holds.

Every mistake raises :class:`FieldError` naming the JSON field (the API answers ``400``).
The tracking fields go in as ``X-Mailwright-Tags``/``-Metadata``, so that intake reads
them exactly as it does for an SMTP submission.
"""

from __future__ import annotations

import base64
import binascii
import email.charset
import email.utils
import io
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import encoders
from email._policybase import Compat32
from email.generator import BytesGenerator
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from typing import Any

from ..errors import MailwrightError
from ..smtp.address import AddressError, parse_path

MAX_RECIPIENTS = 1000
MAX_ATTACHMENTS = 100
FIELD_NAME = re.compile(r"^[!-9;-~]{1,76}$")
"""RFC 5322 §3.6.8 field-name: printable ASCII except colon."""
RESERVED_HEADERS = frozenset(
    {
        "from", "to", "cc", "bcc", "reply-to", "subject", "mime-version", "content-type",
        "content-transfer-encoding", "received", "dkim-signature", "x-mailwright-tags",
        "x-mailwright-metadata", "return-path",
    }
)  # fmt: skip
"""Set from the JSON fields (or by us): a ``headers`` entry may not override them."""
KNOWN_FIELDS = frozenset(
    {
        "from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "attachments",
        "headers", "tags", "metadata", "send_at", "raw", "envelope",
    }
)  # fmt: skip


class FieldError(MailwrightError, ValueError):
    """A bad field in the request; ``field`` is its JSON path (``to[2]``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Composed:
    sender: str
    recipients: tuple[str, ...]
    message: bytes
    send_at: float | None = None


def _address(value: Any, field: str) -> Address:
    """``"a@b"``, ``"Name <a@b>"`` or ``{"email": "a@b", "name": "Name"}``."""
    name = ""
    if isinstance(value, Mapping):
        email_value, name = value.get("email"), value.get("name") or ""
        if not isinstance(email_value, str) or not isinstance(name, str):
            raise FieldError(field, "needs a string 'email' and optionally a string 'name'")
        spec = email_value
    elif isinstance(value, str):
        spec = value.strip()
        match = re.fullmatch(r"(.*?)\s*<([^<>]*)>", spec)
        if match:
            name, spec = match.group(1).strip().strip('"'), match.group(2)
    else:
        raise FieldError(field, "must be an address string")
    if any(c in name for c in "\r\n\0") or any(c in spec for c in "\r\n\0 <>"):
        raise FieldError(field, "contains a line break or a character addresses cannot hold")
    try:
        mailbox, rest = parse_path(f"<{spec}>", smtputf8=False, null_ok=False)
    except AddressError as exc:
        raise FieldError(field, f"{exc.text} ({spec[:80]!r})") from None
    if mailbox is None or rest:
        raise FieldError(field, f"not an address ({spec[:80]!r})")
    try:
        return Address(display_name=name, addr_spec=mailbox.address)
    except (ValueError, IndexError) as exc:
        raise FieldError(field, f"not an address: {exc}") from None


def _addresses(body: Mapping[str, Any], key: str) -> list[Address]:
    value = body.get(key)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [
        _address(v, f"{key}[{i}]" if isinstance(value, list) else key) for i, v in enumerate(items)
    ]


def _text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise FieldError(key, "must be a string")
    return value


def _send_at(value: Any) -> float | None:
    """Unix time (number) or an RFC 3339 date-time with an offset."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise FieldError("send_at", "must be a Unix time or an RFC 3339 date-time")
    if isinstance(value, int | float):
        if not 0 <= value < 1e11:
            raise FieldError("send_at", "out of range")
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FieldError("send_at", f"not an RFC 3339 date-time: {value[:40]!r}") from None
        if moment.tzinfo is None:
            raise FieldError("send_at", "needs a UTC offset (write e.g. 2026-01-02T03:04:05Z)")
        return moment.timestamp()
    raise FieldError("send_at", "must be a Unix time or an RFC 3339 date-time")


def _tracking(body: Mapping[str, Any]) -> tuple[list[str], dict[str, Any] | None]:
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise FieldError("tags", "must be a list of strings")
    for i, tag in enumerate(tags):
        if not tag or "," in tag or any(not c.isprintable() for c in tag):
            raise FieldError(f"tags[{i}]", "must be non-empty printable text without commas")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise FieldError("metadata", "must be a JSON object")
    return tags, metadata


def _encoded_json(value: Any) -> str:
    """JSON with non-ASCII escaped: a header field value in plain ASCII."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def compose(body: Any) -> Composed:
    """The request body (parsed JSON) → the message, or :class:`FieldError`."""
    if not isinstance(body, dict):
        raise FieldError("(body)", "must be a JSON object")
    for key in body:
        if key not in KNOWN_FIELDS:
            raise FieldError(str(key)[:60], "unknown field")
    send_at = _send_at(body.get("send_at"))
    if body.get("raw") is not None:
        return _raw(body, send_at)
    sender = _addresses(body, "from")
    if len(sender) != 1:
        raise FieldError("from", "one sender address is required")
    to, cc, bcc = _addresses(body, "to"), _addresses(body, "cc"), _addresses(body, "bcc")
    recipients = list(dict.fromkeys(a.addr_spec for a in to + cc + bcc))
    if not recipients:
        raise FieldError("to", "at least one recipient (to, cc or bcc) is required")
    if len(recipients) > MAX_RECIPIENTS:
        raise FieldError("to", f"more than {MAX_RECIPIENTS} recipients")
    reply_to = _addresses(body, "reply_to")
    subject = _text(body, "subject")
    text, html = _text(body, "text"), _text(body, "html")
    if text is None and html is None:
        raise FieldError("text", "a text or html body is required")
    fields: list[tuple[str, str]] = [("From", _address_list(sender))]
    if to:
        fields.append(("To", _address_list(to)))
    if cc:
        fields.append(("Cc", _address_list(cc)))
    if reply_to:
        fields.append(("Reply-To", _address_list(reply_to)))
    if subject is not None:
        if any(c in subject for c in "\r\n\0"):
            raise FieldError("subject", "contains a line break")
        fields.append(("Subject", _unstructured("Subject", subject)))
    fields += _extra_headers(body.get("headers"))
    tags, metadata = _tracking(body)
    if tags:
        fields.append(("X-Mailwright-Tags", ", ".join(tags)))
    if metadata:
        fields.append(("X-Mailwright-Metadata", _encoded_json(metadata)))
    content: Message
    if text is not None and html is not None:
        content = MIMEMultipart(
            "alternative",
            boundary=_boundary(text, html),
            _subparts=[_text_part(text, "plain"), _text_part(html, "html")],
        )
    else:
        content = _text_part(
            text if text is not None else str(html), "plain" if text is not None else "html"
        )
    attachments = _attachments(body.get("attachments"))
    if attachments:
        content = MIMEMultipart(
            "mixed", boundary=_boundary(text or "", html or ""), _subparts=[content, *attachments]
        )
    top = content
    for part in top.walk():
        del part["MIME-Version"]
    for name, value in fields:
        top[name] = value
    top["MIME-Version"] = "1.0"
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_POLICY).flatten(top)
    data = out.getvalue()
    if not data.isascii():  # every part is 7-bit by construction; never queue otherwise
        raise FieldError("(body)", "could not be encoded in 7 bits")
    return Composed(sender[0].addr_spec, tuple(recipients), data, send_at)


class _Prefolded(Compat32):
    """Every field value here is encoded and folded when it is set (RFC 2047 encoded
    words, lines within 78 characters), so the generator writes it as it is instead of
    parsing and folding it again (most of the time a message took)."""

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if isinstance(value, str) and value.isascii():
            text = f"{name}: {value}"
            if all(len(line) <= MAX_LINE for line in text.split(self.linesep)):
                return text + self.linesep
        return str(super()._fold(name, value, sanitize))  # type: ignore[misc]


MAX_LINE = 998
"""RFC 5322 §2.1.1: the hard limit of a line, CRLF excluded."""
_POLICY = _Prefolded(linesep="\r\n", max_line_length=78)
"""The legacy MIME classes and generator: several times faster than
``email.message.EmailMessage`` with its header registry."""
_QP_UTF8 = email.charset.Charset("utf-8")
_QP_UTF8.header_encoding = email.charset.QP
_QP_UTF8.body_encoding = email.charset.QP


def _boundary(*texts: str) -> str:
    """A multipart boundary (RFC 2046 §5.1.1) found in no part: quoted-printable and
    base64 output never holds ``=_``, and the text that is sent as it stands is checked.
    Chosen here, the generator does not compile a new regular expression per message to
    look for it."""
    while True:
        boundary = "=_mw" + secrets.token_hex(12)
        if not any(boundary in text for text in texts):
            return boundary


def _address_list(addresses: list[Address]) -> str:
    """RFC 5322 §3.4 with display names RFC 2047-encoded when not ASCII."""
    lines = [""]
    for i, address in enumerate(addresses):
        item = email.utils.formataddr((address.display_name, address.addr_spec), charset="utf-8")
        item += "," if i < len(addresses) - 1 else ""
        if lines[-1] and len(lines[-1]) + 1 + len(item) > 72:  # RFC 5322 §2.2.3 folding
            lines.append("")
        lines[-1] += (" " if lines[-1] else "") + item
    return "\r\n ".join(lines)


def _unstructured(name: str, value: str) -> str:
    """RFC 5322 §2.2.3 folding, RFC 2047 encoded words for non-ASCII text."""
    charset = "us-ascii" if value.isascii() else _QP_UTF8
    return Header(value, charset, header_name=name).encode(linesep="\r\n")


def _text_part(text: str, subtype: str) -> Message:
    """7-bit as it stands when ASCII with short lines, else quoted-printable UTF-8."""
    lines = text.splitlines()
    part = MIMENonMultipart("text", subtype)
    if text.isascii() and all(len(line) <= 78 for line in lines):
        part.set_payload(text, "us-ascii")
    else:
        part.set_payload(text, _QP_UTF8)
    return part


def _extra_headers(headers: Any) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if not isinstance(headers, dict):
        raise FieldError("headers", "must be a JSON object of field name → value")
    out = []
    for name, value in headers.items():
        where = f"headers.{str(name)[:60]}"
        if not FIELD_NAME.match(name):
            raise FieldError(where, "not a header field name")
        if name.lower() in RESERVED_HEADERS:
            raise FieldError(where, "set by its own JSON field or by the server")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise FieldError(where, "must be a string without line breaks")
        out.append((name, _unstructured(name, value)))
    return out


def _attachments(attachments: Any) -> list[Message]:
    if attachments is None:
        return []
    if not isinstance(attachments, list):
        raise FieldError("attachments", "must be a list")
    if len(attachments) > MAX_ATTACHMENTS:
        raise FieldError("attachments", f"more than {MAX_ATTACHMENTS}")
    parts: list[Message] = []
    for i, item in enumerate(attachments):
        where = f"attachments[{i}]"
        if not isinstance(item, dict):
            raise FieldError(where, "must be an object with filename, content_type, content")
        filename = item.get("filename")
        ctype = item.get("content_type") or "application/octet-stream"
        content = item.get("content")
        if not isinstance(filename, str) or not filename or any(c in filename for c in "\r\n\0"):
            raise FieldError(f"{where}.filename", "a file name is required")
        if len(filename) > 200:
            raise FieldError(f"{where}.filename", "longer than 200 characters")
        if not isinstance(ctype, str) or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", ctype):
            raise FieldError(f"{where}.content_type", "not a MIME type like text/csv")
        if not isinstance(content, str):
            raise FieldError(f"{where}.content", "base64 content is required")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise FieldError(f"{where}.content", "not valid base64") from None
        maintype, subtype = ctype.lower().split("/", 1)
        part = MIMEBase(maintype, subtype)
        part.set_payload(data)
        encoders.encode_base64(part)  # attachments always base64: 7-bit, any content
        # RFC 2231 for a non-ASCII name
        name: str | tuple[str, str, str] = (
            filename if filename.isascii() else ("utf-8", "", filename)
        )
        part.add_header("Content-Disposition", "attachment", filename=name)
        parts.append(part)
    return parts


def _raw(body: Mapping[str, Any], send_at: float | None) -> Composed:
    for key in body:
        if key not in ("raw", "envelope", "send_at"):
            raise FieldError(key, "not allowed with raw (put it in the message)")
    raw = body["raw"]
    if not isinstance(raw, str):
        raise FieldError("raw", "must be a base64 string")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise FieldError("raw", "not valid base64") from None
    if b"\n" not in data or b"\0" in data:
        raise FieldError("raw", "not an RFC 5322 message")
    envelope = body.get("envelope")
    if not isinstance(envelope, dict):
        raise FieldError("envelope", "raw needs an envelope with from and to")
    for key in envelope:
        if key not in ("from", "to"):
            raise FieldError(f"envelope.{str(key)[:40]}", "unknown field")
    if not isinstance(envelope.get("from"), str):
        raise FieldError("envelope.from", "the envelope sender is required")
    sender = _address(envelope["from"], "envelope.from").addr_spec
    to = envelope.get("to")
    if not isinstance(to, list) or not to:
        raise FieldError("envelope.to", "a list of recipients is required")
    if len(to) > MAX_RECIPIENTS:
        raise FieldError("envelope.to", f"more than {MAX_RECIPIENTS} recipients")
    recipients = tuple(
        dict.fromkeys(_address(v, f"envelope.to[{i}]").addr_spec for i, v in enumerate(to))
    )
    # Bare LF line ends (how applications write files) become CRLF, as SMTP would carry them.
    data = re.sub(rb"\r?\n", b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return Composed(sender, recipients, data, send_at)
