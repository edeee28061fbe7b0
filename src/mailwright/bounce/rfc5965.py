"""ARF feedback reports (RFC 5965): a complaint from a mailbox provider's feedback loop.

``multipart/report; report-type=feedback-report``: a human-readable part, a
``message/feedback-report`` part (``Feedback-Type``, ``Original-Mail-From``,
``Original-Rcpt-To`` ..., RFC 5965 §3.1-3.2) and the reported message or its headers.
Providers often redact the recipient: then the returned message's envelope sender (our
VERP address, in ``Return-Path``) is what names the recipient.
"""

from __future__ import annotations

from email.message import Message

from .model import MAX_RECIPIENTS, Report, clip, normalize_address
from .util import embedded_headers, header_text

_FEEDBACK_TYPES = {"abuse", "fraud", "virus", "other", "not-spam", "auth-failure"}


def _fields(msg: Message, parts: list[Message]) -> Message | None:
    for part in parts:
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
    return None


def parse(msg: Message, parts: list[Message]) -> Report:
    fields = _fields(msg, parts)
    if fields is None:
        return Report("unknown", "arf", reason="report-type=feedback-report without a report part")
    feedback_type = header_text(fields.get("Feedback-Type")).lower() or "other"
    if feedback_type not in _FEEDBACK_TYPES:
        feedback_type = clip(feedback_type, 40)
    original: Message | None = None
    for part in parts[1:]:
        original = embedded_headers(part)
        if original is not None:
            break
    rcpts = [normalize_address(header_text(v)) for v in (fields.get_all("Original-Rcpt-To") or [])][
        :MAX_RECIPIENTS
    ]
    sender = header_text(fields.get("Original-Mail-From"))
    message_id = None
    if original is not None:
        sender = sender or header_text(original.get("Return-Path"))
        message_id = clip(header_text(original.get("Message-ID")), 998) or None
        if not rcpts:
            to = header_text(original.get("To"))
            if "@" in to and "," not in to:
                rcpts = [normalize_address(to.rpartition("<")[2].rstrip(">"))]
    return Report(
        "complaint" if feedback_type != "not-spam" else "unknown",
        "arf",
        original_message_id=message_id,
        original_sender=normalize_address(sender) or None,
        original_recipients=tuple(r for r in rcpts if r),
        feedback_type=feedback_type,
        reporting_mta=clip(header_text(fields.get("Reporting-MTA")), 255) or None,
        details={
            k: clip(header_text(fields.get(k)), 255)
            for k in ("User-Agent", "Source-IP", "Arrival-Date", "Reported-Domain")
            if fields.get(k)
        },
        reason="" if feedback_type != "not-spam" else "not-spam feedback",
    )
