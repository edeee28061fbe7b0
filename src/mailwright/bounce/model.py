"""What an inbound report says, as data."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ..causes import classify

MAX_INPUT = 10 * 1024 * 1024
"""Octets of a report that are read; the rest is ignored."""
MAX_RECIPIENTS = 50_000
"""Recipients reported per report (a 10,000-recipient DSN fits)."""
MAX_FIELD = 4096
"""Characters kept of one field value (a diagnostic text, an address)."""

ReportKind = Literal["bounce", "delayed", "delivered", "complaint", "autoreply", "unknown"]
BounceType = Literal["hard", "soft"]

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class RecipientReport:
    """One recipient's outcome in a report."""

    recipient: str
    """The address as the report names it (``Final-Recipient``), lower-cased domain."""
    action: str
    """RFC 3464 §2.3.3: ``failed``, ``delayed``, ``delivered``, ``relayed``, ``expanded``."""
    status: str = ""
    """RFC 3463 enhanced code (``5.1.1``), empty when the report gives none."""
    diagnostic: str = ""
    """The remote server's reply (``Diagnostic-Code`` without its type)."""
    remote_mta: str = ""
    original_recipient: str = ""
    cause: str = "unknown"
    """A cause id of :mod:`mailwright.causes`."""
    bounce_type: BounceType | None = None
    """For ``failed``: hard (the address is dead) or soft; None otherwise."""


@dataclass(frozen=True)
class Report:
    kind: ReportKind
    format: str
    """How it was recognised: ``rfc3464``, ``arf``, ``rfc3834``, ``exchange``, ``gmail``,
    ``qmail``, ``exim``, ``postfix``, ``generic`` or ``none``."""
    recipients: tuple[RecipientReport, ...] = ()
    original_message_id: str | None = None
    """Message-ID of the message the report is about (from the returned headers)."""
    original_envelope_id: str | None = None
    """RFC 3461 ENVID echoed in ``Original-Envelope-Id``."""
    original_sender: str | None = None
    """The original envelope sender when the report carries it (our VERP address)."""
    original_from: str | None = None
    """The address in the returned message's ``From`` (who wrote what bounced)."""
    original_recipients: tuple[str, ...] = ()
    """ARF ``Original-Rcpt-To`` / the returned message's ``To``: who complained."""
    feedback_type: str | None = None
    """ARF (RFC 5965 §3.1): ``abuse``, ``fraud``, ``virus``, ``not-spam``, ``other`` ..."""
    reporting_mta: str | None = None
    subject: str = ""
    reason: str = ""
    """Why a report is ``unknown`` (or what was odd about it)."""
    truncated: bool = False
    details: dict[str, str] = field(default_factory=dict)


# RFC 3463 §3.2: X.1.X is about addresses. 5.1.1 bad mailbox, 5.1.2 bad domain,
# 5.1.3 bad syntax, 5.1.6 mailbox moved, 5.1.10 null MX (RFC 7505 §4.2): the address
# will not start working. A disabled mailbox (5.2.1) is as dead for a sender.
_HARD_STATUSES = {"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"}
_HARD_CAUSES = {"recipient-unknown", "recipient-domain-dns"}


def bounce_type(status: str, cause: str) -> BounceType:
    """Hard: a permanent failure that says the address is dead; everything else soft
    (a policy or content refusal is about the message, not the address)."""
    if status in _HARD_STATUSES:
        return "hard"
    if cause in _HARD_CAUSES and not status.startswith("4"):
        return "hard"
    return "soft"


def clip(text: str, limit: int = MAX_FIELD) -> str:
    return text if len(text) <= limit else text[:limit]


def classify_reply(diagnostic: str, status: str) -> tuple[str, str]:
    """(status, cause): the status found in the text when the report gave none."""
    if not status:
        m = _STATUS.search(diagnostic[:200])
        if m:
            status = m.group(0)
    verdict, _ = classify(diagnostic[:MAX_FIELD], status)
    return status, verdict.cause


def recipient_report(
    recipient: str,
    action: str,
    status: str = "",
    diagnostic: str = "",
    *,
    remote_mta: str = "",
    original_recipient: str = "",
) -> RecipientReport:
    diagnostic = clip(" ".join(diagnostic.split()))
    status, cause = classify_reply(diagnostic, status)
    kind: BounceType | None = None
    if action == "failed":
        kind = bounce_type(status, cause)
    return RecipientReport(
        recipient=normalize_address(recipient),
        action=action,
        status=status,
        diagnostic=diagnostic,
        remote_mta=clip(remote_mta, 255),
        original_recipient=normalize_address(original_recipient),
        cause=cause,
        bounce_type=kind,
    )


def normalize_address(text: str) -> str:
    """``rfc822; <Bob@Example.COM>`` → ``Bob@example.com`` (domains are case-insensitive,
    RFC 5321 §2.4; local parts are kept)."""
    text = text.strip()
    if ";" in text:
        text = text.split(";", 1)[1].strip()
    text = text.strip("<>").strip()
    local, at, domain = text.rpartition("@")
    if not at:
        return clip(text, 320)
    return clip(f"{local}@{domain.lower().rstrip('.')}", 320)
