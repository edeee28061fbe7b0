"""Delivery status notifications (RFC 3464): the bounce and delay messages we send.

One DSN per message covers every recipient it reports (RFC 3464 §2: one
``message/delivery-status`` with a per-recipient block each). The structure is
``multipart/report; report-type=delivery-status`` (RFC 6522): a human-readable
explanation, the machine-readable status, then the returned message (whole, for
failures up to :data:`RETURN_LIMIT` octets, else its header only).

Loops are impossible by construction: a DSN is sent with the null reverse path
(RFC 5321 §4.5.5), and :func:`wants_dsn` refuses to report on a message whose
reverse path is null — which every DSN's is.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ..message import split_header

RETURN_LIMIT = 50_000
"""Return the whole original up to this size (Postfix's bounce_size_limit), else headers."""
_FOLD = 76
_UNSAFE = re.compile(r"[^\x20-\x7e]")

Action = Literal["failed", "delayed", "delivered", "relayed"]
"""RFC 3464 §2.3.3 (``expanded`` is for lists, which we do not expand)."""
Kind = Literal["failure", "delay", "success"]
"""What a DSN reports: failed recipients, delayed ones (RFC 3464 §2.3.3), or, when
NOTIFY=SUCCESS asked for it (RFC 3461 §4.1), delivered or relayed ones."""


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """The per-recipient fields of RFC 3464 §2.3."""

    recipient: str
    status: str
    """RFC 3463 code, e.g. ``5.1.1``."""
    action: Action = "failed"
    diagnostic: str | None = None
    """The remote server's reply (``550 5.1.1 ...``), or our own explanation."""
    remote: bool = True
    """True: ``diagnostic`` is an SMTP reply (``Diagnostic-Code: smtp; ...``, §2.3.6)."""
    remote_mta: str | None = None
    """The host that answered (``Remote-MTA: dns; mx.example.com``, §2.3.5)."""
    original_recipient: str | None = None
    last_attempt: float | None = None
    will_retry_until: float | None = None


def wants_dsn(sender: str) -> bool:
    """RFC 5321 §6.1 / RFC 3464 §2: never report to the null reverse path (DSNs use it)."""
    return sender != ""


def build_dsn(
    *,
    kind: Kind,
    reporting_mta: str,
    sender: str,
    queue_id: str,
    arrival: float,
    recipients: Sequence[RecipientReport],
    original: bytes,
    now: float | None = None,
    envid: str | None = None,
    ret: Literal["FULL", "HDRS"] | None = None,
) -> bytes:
    """The whole DSN message, CRLF line ends, ready to queue to ``sender`` from ``<>``.

    ``envid`` and ``ret`` are the submitter's RFC 3461 ENVID (§4.4: echoed as
    Original-Envelope-Id, RFC 3464 §2.2.1) and RET (§4.3: HDRS returns only the header
    of a failed message; success and delay reports never return the content).
    """
    if not wants_dsn(sender):
        raise ValueError("no DSN to the null reverse path")
    if not recipients:
        raise ValueError("a DSN reports at least one recipient")
    now = time.time() if now is None else now
    host = _clean(reporting_mta)
    boundary = _boundary(queue_id, now, host, original)
    failed = kind == "failure"
    subject = {
        "failure": "Undelivered Mail Returned to Sender",
        "delay": "Delayed Mail (still being retried)",
        "success": "Successful Mail Delivery Report",
    }[kind]
    headers = [
        f"From: Mail Delivery System <MAILER-DAEMON@{host}>",
        f"To: <{_clean(sender)}>",
        f"Subject: {subject}",
        f"Date: {_date(now)}",
        f"Message-ID: <{int(now)}.{os.urandom(6).hex()}.{_clean(queue_id)}@{host}>",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5: so that vacation replies stay quiet
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
    ]
    human = _explanation(kind, host, recipients)
    status_lines = []
    if envid:
        status_lines.append(f"Original-Envelope-Id: {_clean(envid)}")  # RFC 3464 §2.2.1
    status_lines += [
        f"Reporting-MTA: dns; {host}",  # RFC 3464 §2.2.2
        f"X-Mailwright-Queue-ID: {_clean(queue_id)}",
        f"Arrival-Date: {_date(arrival)}",  # §2.2.5
    ]
    for report in recipients:
        status_lines.append("")
        status_lines.extend(_recipient_fields(report))
    head, _ = split_header(original)
    if failed and ret != "HDRS" and len(original) <= RETURN_LIMIT:
        returned_type, returned = "message/rfc822", original
    else:
        returned_type, returned = "text/rfc822-headers", head
    returned_cte = [] if returned.isascii() else ["Content-Transfer-Encoding: 8bit"]
    parts = [
        "\r\n".join(headers).encode(),
        b"",
        b"This is a MIME-encapsulated message.",
        b"",
        f"--{boundary}".encode(),
        b"Content-Description: Notification",
        b"Content-Type: text/plain; charset=us-ascii",
        b"",
        human.encode(),
        b"",
        f"--{boundary}".encode(),
        b"Content-Description: Delivery report",
        b"Content-Type: message/delivery-status",
        b"",
        "\r\n".join(status_lines).encode(),
        b"",
        f"--{boundary}".encode(),
        b"Content-Description: " + (b"Undelivered Message" if failed else b"Message Headers"),
        f"Content-Type: {returned_type}".encode(),
        *(line.encode() for line in returned_cte),
        b"",
        returned.rstrip(b"\r\n"),
        b"",
        f"--{boundary}--".encode(),
        b"",
    ]
    return b"\r\n".join(parts)


def _boundary(queue_id: str, now: float, host: str, original: bytes) -> str:
    """A MIME boundary that does not occur in the returned message (RFC 2046 §5.1.1).

    The returned message is arbitrary: random bits make a collision unlikely, and the
    check makes it impossible (the other parts are our own text, without "--").
    """
    while True:
        boundary = f"{_clean(queue_id)}.{int(now)}.{os.urandom(6).hex()}/{host}"
        if f"--{boundary}".encode() not in original:
            return boundary


def _recipient_fields(report: RecipientReport) -> list[str]:
    fields = []
    if report.original_recipient:
        # RFC 3464 §2.3.1: address-type ";" generic-address, as the ORCPT gave it
        # (RFC 3461 §4.2); a bare address is an RFC 822 one.
        addr_type, sep, address = report.original_recipient.partition(";")
        if not sep:
            addr_type, address = "rfc822", report.original_recipient
        fields.append(f"Original-Recipient: {_clean(addr_type)}; {_clean(address)}")
    fields += [
        f"Final-Recipient: rfc822; {_clean(report.recipient)}",  # §2.3.2
        f"Action: {report.action}",  # §2.3.3
        f"Status: {report.status}",  # §2.3.4, RFC 3463
    ]
    if report.remote_mta:
        fields.append(f"Remote-MTA: dns; {_clean(report.remote_mta)}")
    if report.diagnostic:
        kind = "smtp" if report.remote else "X-mailwright"
        fields.append(_fold(f"Diagnostic-Code: {kind}; {_clean(report.diagnostic)}"))
    if report.last_attempt is not None:
        fields.append(f"Last-Attempt-Date: {_date(report.last_attempt)}")
    if report.will_retry_until is not None:
        fields.append(f"Will-Retry-Until: {_date(report.will_retry_until)}")
    return fields


def _explanation(kind: Kind, host: str, recipients: Sequence[RecipientReport]) -> str:
    lines = [f"This is the mail system at {host}.", ""]
    if kind == "failure":
        lines += [
            "Your message could not be delivered to the recipients below.",
            "The reason each server gave is quoted; the delivery report that",
            "follows carries the same facts for programs.",
        ]
    elif kind == "success":
        lines += [
            "Your message was delivered to the recipients below, as you asked",
            "to be told (or handed to a server that does not send such reports).",
        ]
    else:
        lines += [
            "Your message has not yet been delivered to the recipients below.",
            "Delivery is still being retried; you need not resend it. You will",
            "hear again only if it finally fails.",
        ]
    lines.append("")
    for report in recipients:
        reason = _clean(report.diagnostic or report.status)
        lines.append(_fold(f"<{_clean(report.recipient)}>: {reason}", indent="    "))
    return "\r\n".join(lines)


def _clean(text: str) -> str:
    """Printable ASCII on one line: DSN fields are header-like (RFC 3464 §2.1.1)."""
    return _UNSAFE.sub("?", " ".join(text.split()))


def _fold(line: str, indent: str = "  ") -> str:
    """Fold at spaces so lines stay short (RFC 5322 §2.2.3 folding, allowed by §2.1.1)."""
    if len(line) <= _FOLD:
        return line
    out: list[str] = []
    current = ""
    for word in line.split(" "):
        if current and len(current) + 1 + len(word) > _FOLD:
            out.append(current)
            current = indent + word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return "\r\n".join(out)


def _date(timestamp: float) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(int(timestamp), UTC))
