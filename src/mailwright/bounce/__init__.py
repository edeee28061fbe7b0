"""Inbound reports about mail we sent: bounces, complaints, auto-replies (pure, no I/O).

:func:`parse_report` reads a message that arrived at a bounce address, ``postmaster@``
or ``abuse@`` and says what it is:

* an RFC 3464 delivery status notification (:mod:`.rfc3464`);
* a non-standard plain-text bounce (Exchange, Gmail, qmail, Exim, Postfix without
  ``multipart/report``: :mod:`.plaintext`);
* an ARF feedback-loop complaint (RFC 5965, :mod:`.rfc5965`);
* an auto-reply (RFC 3834 ``Auto-Submitted``, out-of-office: :mod:`.rfc3834`), which
  is *not* a bounce;
* or none of these.

Every remote reply is classified with the cause vocabulary of
:mod:`mailwright.causes`, and each failed recipient is a ``hard`` bounce (the
address does not exist: suppress it) or a ``soft`` one (full mailbox, policy, size ...:
only repeated soft bounces suppress).

Bounded work: at most :data:`MAX_INPUT` octets are read, at most
:data:`MAX_RECIPIENTS` recipients reported (``truncated`` says when more were there);
malformed input gives ``kind = "unknown"`` with a reason, never an exception.
"""

from __future__ import annotations

from .model import (
    MAX_INPUT,
    MAX_RECIPIENTS,
    BounceType,
    RecipientReport,
    Report,
    ReportKind,
    bounce_type,
)
from .parse import parse_report

__all__ = [
    "MAX_INPUT",
    "MAX_RECIPIENTS",
    "BounceType",
    "RecipientReport",
    "Report",
    "ReportKind",
    "bounce_type",
    "parse_report",
]
