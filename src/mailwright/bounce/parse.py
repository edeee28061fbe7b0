"""Tell what an inbound report is, and read it (see the package docstring)."""

from __future__ import annotations

import email
import email.message
import email.parser
import email.policy
from email.message import Message

from . import plaintext, rfc3464, rfc3834, rfc5965
from .model import MAX_INPUT, Report, clip, normalize_address
from .util import header_text, walk


def parse_report(data: bytes) -> Report:
    """What ``data`` (one whole message) reports; never raises for bad input."""
    truncated = len(data) > MAX_INPUT
    try:
        msg = email.message_from_bytes(data[:MAX_INPUT], policy=email.policy.compat32)
        report = _dispatch(msg)
    except (ValueError, TypeError, LookupError, AttributeError, RecursionError) as exc:
        # The email package on hostile MIME: a defined outcome, not a traceback.
        return Report("unknown", "none", reason=clip(f"unparsable message: {exc}", 200))
    if truncated and not report.truncated:
        report = Report(**{**report.__dict__, "truncated": True})
    return report


def _dispatch(msg: Message) -> Report:
    subject = clip(header_text(msg.get("Subject")), 998)
    parts = list(walk(msg))
    types = {p.get_content_type() for p in parts}
    report_type = msg.get_param("report-type", "", header="content-type")
    report_type = report_type.lower() if isinstance(report_type, str) else ""
    if "message/feedback-report" in types or report_type == "feedback-report":
        report = rfc5965.parse(msg, parts)
    elif (
        "message/delivery-status" in types
        or "message/global-delivery-status" in types
        or report_type == "delivery-status"
    ):
        report = rfc3464.parse(msg, parts)
    elif plaintext.looks_like_bounce(msg, subject):
        report = plaintext.parse(msg, parts, subject)
    elif rfc3834.is_auto_reply(msg, subject):
        report = Report("autoreply", "rfc3834", reason=rfc3834.why(msg, subject))
        sender = normalize_address(header_text(msg.get("From")).rpartition("<")[2].rstrip(">"))
        report = Report(
            "autoreply",
            "rfc3834",
            recipients=(),
            original_message_id=_in_reply_to(msg),
            original_recipients=(sender,) if sender else (),
            reason=report.reason,
        )
    else:
        report = Report("unknown", "none", reason="neither a bounce, a complaint nor an auto-reply")
    if not report.subject:
        report = Report(**{**report.__dict__, "subject": subject})
    return report


def _in_reply_to(msg: Message) -> str | None:
    value = header_text(msg.get("In-Reply-To")) or header_text(msg.get("References"))
    if not value:
        return None
    ids = value.split()
    return clip(ids[0] if msg.get("In-Reply-To") else ids[-1], 998)
