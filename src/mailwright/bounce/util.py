"""Small helpers shared by the report parsers."""

from __future__ import annotations

import contextlib
import email.errors
import email.header
import email.parser
import email.policy
import email.utils
from collections.abc import Iterator
from email.message import Message

MAX_PARTS = 200
"""MIME parts looked at; a report has three."""
MAX_TEXT = 256 * 1024
"""Characters of a human-readable part that are searched."""


def walk(msg: Message) -> Iterator[Message]:
    """``msg.walk()`` without descending into returned messages, bounded."""
    count = 0
    stack = [msg]
    while stack and count < MAX_PARTS:
        part = stack.pop(0)
        count += 1
        yield part
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(p for p in payload if isinstance(p, Message))


def header_text(value: object) -> str:
    """A header value as text, RFC 2047 words decoded, never raising."""
    if value is None:
        return ""
    text = str(value)
    if "=?" in text:
        errors = (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError)
        with contextlib.suppress(*errors):
            text = str(email.header.make_header(email.header.decode_header(text)))
    return " ".join(text.split())


def part_text(part: Message) -> str:
    """A leaf part's text, decoded (transfer encoding and charset), at most MAX_TEXT."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw[:MAX_TEXT] if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload[: MAX_TEXT * 4].decode(charset, "replace")[:MAX_TEXT]
    except LookupError:
        return payload[: MAX_TEXT * 4].decode("utf-8", "replace")[:MAX_TEXT]


def embedded_headers(part: Message) -> Message | None:
    """The returned message's headers from a ``message/rfc822`` or
    ``text/rfc822-headers`` part (RFC 6522 §4)."""
    ctype = part.get_content_type()
    if ctype in ("message/rfc822", "message/global", "message/rfc822-headers"):
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
    if ctype in ("text/rfc822-headers", "message/global-headers", "message/rfc822-headers"):
        text = part_text(part)
        return email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)
    return None


def author(headers: Message | None) -> str | None:
    """The address in the ``From`` of a returned message's headers, or None."""
    if headers is None:
        return None
    address = email.utils.parseaddr(header_text(headers.get("From")))[1]
    return address[:320] or None
