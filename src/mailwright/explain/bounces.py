"""Bounce messages given to ``mailwright explain``: sniff them, and read them through
:mod:`mailwright.bounce`.

The reading itself (RFC 3464 DSNs, qmail, Exim, Exchange, Gmail, Postfix texts,
``X-Failed-Recipients``) is :func:`mailwright.bounce.parse_report`, the one bounce
reader inbound processing uses too; this module only sniffs whether an input is a
message rather than a log, and turns a report into the failed and delayed recipients
``explain`` counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# mailwright.bounce (and with it the email package) is imported when a bounce is read,
# not with this module: log readers import looks_like_message and should not pay for it.

MAX_BOUNCE = 16 << 20
"""Bytes of an input read as a bounce message (the parser reads the first
:data:`mailwright.bounce.MAX_INPUT` of them; the rest is the returned original)."""

_KNOWN_HEADERS = frozenset(
    {
        "return-path",
        "received",
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "delivered-to",
        "reply-to",
        "sender",
        "auto-submitted",
        "x-failed-recipients",
        "dkim-signature",
        "arc-seal",
        "authentication-results",
        "x-original-to",
        "envelope-to",
    }
)
_FIELD = re.compile(rb"^([A-Za-z][A-Za-z0-9-]*):")


def looks_like_message(head: bytes) -> bool:
    """True when ``head`` (the first bytes of an input) is a mail message: an mbox
    ``From `` line, or a first line that is a header field a message starts with."""
    head = head.lstrip(b"\r\n")
    if head.startswith(b"From "):
        return True
    m = _FIELD.match(head)
    if m is None:
        return False
    name = m.group(1).decode("ascii").lower()
    return name in _KNOWN_HEADERS or name.startswith(("x-", "arc-", "list-"))


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    """One recipient a bounce reports as failed (or delayed)."""

    recipient: str
    action: str
    """``failed`` or ``delayed`` (RFC 3464 §2.3.3)."""
    status: str
    """The enhanced status code (RFC 3463), ``""`` when the bounce gives none."""
    remote_mta: str | None
    diagnostic: str
    """The remote server's reply (``Diagnostic-Code`` without its ``smtp;`` type), or the
    bounce's own words when there is no reply."""
    form: str
    """How it was read: :attr:`mailwright.bounce.Report.format` (``rfc3464``, ``qmail``,
    ``exim``, ``exchange`` ...)."""
    original_message_id: str | None = None
    original_sender: str | None = None
    """The ``From`` address of the returned message."""


def parse_bounce(data: bytes) -> list[FailedRecipient]:
    """The failed and delayed recipients of a bounce message (empty: none found)."""
    from ..bounce import parse_report

    report = parse_report(data)
    return [
        FailedRecipient(
            r.recipient,
            r.action,
            r.status,
            r.remote_mta or None,
            r.diagnostic,
            report.format,
            report.original_message_id,
            report.original_from,
        )
        for r in report.recipients
        if r.action in ("failed", "delayed")  # delivered, relayed, expanded: no failure
    ]
