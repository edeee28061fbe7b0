"""Inbound reports turned into events (and so into suppressions): the bounce loop.

Mail that arrives at a bounce address (``bounces+TOKEN@domain``, :mod:`mailwright.verp`),
``postmaster@`` or ``abuse@`` is read by :func:`mailwright.bounce.parse_report` and
matched to the message and recipient it is about:

* at a bounce address, by the VERP token alone — the report's own words about the
  recipient are not trusted, and a malformed bounce is still matched (as a soft bounce
  with cause ``unknown``). A bad or missing HMAC, an expired token or a queue id we have
  no record of make the report *unverified*: it is logged as an event, and suppresses
  nobody;
* elsewhere (an ARF complaint at ``abuse@``, a DSN at ``postmaster@``), by the VERP
  return path the report quotes, else by the Message-ID and recipient of a message we
  queued (the ``queued`` events).

Only verified events carry ``details["verified"] = True``; see
:mod:`mailwright.queue.tracking` for what they suppress.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from .bounce import RecipientReport, Report, parse_report
from .queue.events import Event
from .queue.tracking import Tracking
from .verp import VerpError, is_bounce_address, parse_bounce_address

INLINE_PARSE = 64 * 1024
"""Reports up to this size are parsed inline (~1 ms); bigger ones in a thread."""


def queued_events(
    queue_id: str,
    recipients: list[str] | tuple[str, ...],
    *,
    sender: str,
    message_id: str | None,
    tags: tuple[str, ...] = (),
    metadata: dict[str, Any] | None = None,
    now: float | None = None,
    warnings: tuple[str, ...] = (),
) -> list[Event]:
    """One ``queued`` event per recipient; ``details.rcpt_index`` is the index the VERP
    token of that recipient names."""
    at = time.time() if now is None else now
    out = []
    for index, rcpt in enumerate(recipients):
        details: dict[str, Any] = {"rcpt_index": index}
        if warnings:
            details["warnings"] = list(warnings)
        out.append(
            Event(
                "queued",
                at,
                recipient=rcpt,
                queue_id=queue_id,
                message_id=message_id,
                sender=sender,
                tags=tags,
                metadata=dict(metadata or {}),
                details=details,
            )
        )
    return out


@dataclass(frozen=True)
class Sent:
    """What we know about one recipient of a message we queued (its ``queued`` event)."""

    queue_id: str
    recipient: str
    message_id: str | None
    tags: tuple[str, ...]
    metadata: dict[str, Any]


def _sent(event: Event | None) -> Sent | None:
    if event is None or event.recipient is None or event.queue_id is None:
        return None
    return Sent(event.queue_id, event.recipient, event.message_id, event.tags, event.metadata)


class FeedbackProcessor:
    """Reads inbound reports and records their events (see the module docstring)."""

    def __init__(
        self,
        tracking: Tracking,
        verp_key: bytes,
        *,
        local_part: str = "bounces",
        max_age_days: int = 30,
    ) -> None:
        self.tracking = tracking
        self.key = verp_key
        self.local_part = local_part
        self.max_age_days = max_age_days

    def is_bounce_address(self, address: str) -> bool:
        return is_bounce_address(address, self.local_part)

    async def _verp(self, address: str, now: float) -> tuple[Sent | None, str]:
        """The recipient a VERP address names, or None and why not."""
        try:
            token = parse_bounce_address(
                self.key,
                address,
                local_part=self.local_part,
                now=now,
                max_age_days=self.max_age_days,
            )
        except VerpError as exc:
            return None, str(exc)
        sent = _sent(await self.tracking.store.queued_event(token.queue_id, token.recipient_index))
        if sent is None:
            return None, f"no record of message {token.queue_id} recipient {token.recipient_index}"
        return sent, ""

    async def process(
        self, rcpt: str, data: bytes, *, mail_from: str = "", now: float | None = None
    ) -> list[Event]:
        """The events one inbound report (sent to ``rcpt``) makes; they are recorded."""
        at = time.time() if now is None else now
        if len(data) > INLINE_PARSE:
            # a big report (10 MB, 10,000 recipients) is parsed off the event loop
            report = await asyncio.to_thread(parse_report, data)
        else:
            report = parse_report(data)
        if self.is_bounce_address(rcpt):
            sent, why = await self._verp(rcpt, at)
            events = self._events_for_verp(report, sent, why, mail_from, at)
        else:
            events = await self._events_for_role(report, at)
        await self.tracking.record(events)
        return events

    def _events_for_verp(
        self, report: Report, sent: Sent | None, why: str, mail_from: str, at: float
    ) -> list[Event]:
        base: dict[str, Any] = {"format": report.format}
        if sent is None:
            base.update(verified=False, unverified_reason=why)
        else:
            base["verified"] = True
        named = [r.recipient for r in report.recipients]
        if named:
            base["reported_recipients"] = named[:10]
        if report.kind == "complaint":
            return [self._complaint(report, sent, base, at, report.original_recipients)]
        if report.kind == "autoreply":
            return [self._simple("autoreplied", report, sent, base, at)]
        if report.kind in ("bounce", "delayed", "delivered") or mail_from == "":
            # RFC 5321 §4.5.5: bounces come from the null reverse path. The token says who
            # it is about; the report's recipient list only supplies the reason.
            outcome = _pick(report.recipients, sent.recipient if sent else None)
            if report.kind == "delivered":
                return [self._simple("delivered", report, sent, base, at, outcome)]
            if report.kind == "delayed":
                return [self._simple("deferred", report, sent, base, at, outcome)]
            return [self._bounce(report, sent, base, at, outcome)]
        return [self._simple("inbound", report, sent, base, at)]

    async def _events_for_role(self, report: Report, at: float) -> list[Event]:
        """A report at postmaster@ or abuse@: verified by a VERP sender it quotes, or by a
        Message-ID + recipient we queued."""
        base: dict[str, Any] = {"format": report.format}
        if report.kind == "complaint":
            sent: Sent | None = None
            if report.original_sender and self.is_bounce_address(report.original_sender):
                sent, _ = await self._verp(report.original_sender, at)
            if sent is None and report.original_message_id:
                for rcpt in report.original_recipients:
                    sent = await self._by_message_id(report.original_message_id, rcpt)
                    if sent is not None:
                        break
            base["verified"] = sent is not None
            return [self._complaint(report, sent, base, at, report.original_recipients)]
        if report.kind not in ("bounce", "delayed"):
            return []
        events = []
        for outcome in report.recipients[:1000]:
            sent = None
            if report.original_message_id:
                sent = await self._by_message_id(report.original_message_id, outcome.recipient)
            details = {**base, "verified": sent is not None}
            if report.kind == "delayed" or outcome.action == "delayed":
                events.append(self._simple("deferred", report, sent, details, at, outcome))
            elif outcome.action == "failed":
                events.append(self._bounce(report, sent, details, at, outcome))
        return events

    async def _by_message_id(self, message_id: str, recipient: str) -> Sent | None:
        return _sent(await self.tracking.store.queued_event_for(message_id, recipient))

    def _common(self, report: Report, sent: Sent | None) -> dict[str, Any]:
        return {
            "queue_id": sent.queue_id if sent else None,
            "message_id": (sent.message_id if sent else None) or report.original_message_id,
            "tags": sent.tags if sent else (),
            "metadata": sent.metadata if sent else {},
        }

    def _bounce(
        self,
        report: Report,
        sent: Sent | None,
        details: dict[str, Any],
        at: float,
        outcome: RecipientReport | None,
    ) -> Event:
        recipient = sent.recipient if sent else (outcome.recipient if outcome else None)
        status = outcome.status if outcome else ""
        return Event(
            "bounced",
            at,
            recipient=recipient,
            mta_response=(outcome.diagnostic if outcome else "") or report.subject or None,
            bounce_type=(outcome.bounce_type if outcome else None) or "soft",
            bounce_source="async",
            cause=outcome.cause if outcome else "unknown",
            details={**details, **({"status": status} if status else {})},
            **self._common(report, sent),
        )

    def _simple(
        self,
        kind: Any,
        report: Report,
        sent: Sent | None,
        details: dict[str, Any],
        at: float,
        outcome: RecipientReport | None = None,
    ) -> Event:
        recipient = sent.recipient if sent else (outcome.recipient if outcome else None)
        if kind == "autoreplied" and recipient is None and report.original_recipients:
            recipient = report.original_recipients[0]
        extra = {"reason": report.reason} if kind in ("autoreplied", "inbound") else {}
        return Event(
            kind,
            at,
            recipient=recipient,
            mta_response=(outcome.diagnostic if outcome else None) or None,
            cause=outcome.cause if outcome else None,
            details={**details, **extra},
            **self._common(report, sent),
        )

    def _complaint(
        self,
        report: Report,
        sent: Sent | None,
        details: dict[str, Any],
        at: float,
        named: tuple[str, ...],
    ) -> Event:
        recipient = sent.recipient if sent else (named[0] if named else None)
        info = {**details, "feedback_type": report.feedback_type, **report.details}
        return Event(
            "complained", at, recipient=recipient, details=info, **self._common(report, sent)
        )


def _pick(outcomes: tuple[RecipientReport, ...], recipient: str | None) -> RecipientReport | None:
    """The report's line about ``recipient`` (or its first failure: a forwarded address
    may be reported under its final name)."""
    if not outcomes:
        return None
    if recipient is not None:
        for outcome in outcomes:
            if outcome.recipient.lower() == recipient.lower():
                return outcome
    failed = [o for o in outcomes if o.action in ("failed", "delayed")]
    return failed[0] if failed else outcomes[0]
