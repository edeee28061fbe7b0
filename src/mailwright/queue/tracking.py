"""Events and suppressions over the queue store: what the server, the agent, the bounce
processor and the CLI call.

:meth:`Tracking.record` appends events and applies the suppression rules they trigger
in one transaction (one group commit with whatever else is being written):

* ``bounced`` + ``hard`` → suppress (``hard-bounce``);
* ``bounced`` + ``soft``, and ``expired`` → count; ``soft_limit`` in ``soft_window`` →
  ``soft-bounces``;
* ``complained`` → suppress (``complaint``).

Only *verified* events suppress: a synchronous reply we got ourselves, or an
asynchronous report whose VERP token verified (``details["verified"] = True``). A
forged bounce — bad or missing HMAC, unknown message — is logged, never acted on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from ..spool import MessageData
from . import events as ev
from . import suppressions as sup
from .eventstore import EventStore, NewMessage
from .idempotency import Claim, Stored
from .store import QueueMeta, RecipientUpdate
from .suppressions import SuppressionPolicy, trusted

__all__ = ["SuppressionPolicy", "Tracking", "trusted"]


class Tracking:
    """The event log and suppression list of one queue store (SQLite or PostgreSQL)."""

    def __init__(self, store: EventStore, policy: SuppressionPolicy | None = None) -> None:
        self.store = store
        self.policy = policy or SuppressionPolicy()
        self.listeners: list[object] = []

    async def record(
        self,
        events: Sequence[ev.Event],
        *,
        claim: Claim | None = None,
        queue_id: str = "",
        durable: bool = True,
    ) -> list[sup.Suppression]:
        """Append events and apply their suppression rules, atomically (with ``claim``,
        an Idempotency-Key answer for ``queue_id``, in the same transaction).
        ``durable=False``: see :meth:`EventStore.record_events` (delivery outcomes only)."""
        if not events and claim is None:
            return []
        added = await self.store.record_events(
            events, self.policy, claim=claim, queue_id=queue_id, durable=durable
        )
        self.notify()
        return added

    async def record_outcome(
        self,
        queue_id: str,
        updates: Sequence[RecipientUpdate],
        events: Sequence[ev.Event],
        *,
        worker: str | None = None,
        now: float | None = None,
    ) -> list[sup.Suppression]:
        """The delivery agent's end of an attempt: its outcome events, their suppressions
        and the queue's results in one write (:meth:`EventStore.record_outcome`)."""
        added = await self.store.record_outcome(
            queue_id, updates, events, self.policy, worker=worker, now=now
        )
        self.notify()
        return added

    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        data: MessageData,
        *,
        meta: QueueMeta,
        queue_id: str,
        events_for: Callable[[str], list[ev.Event]],
        claim: Claim | None = None,
        refuse_suppressed: Sequence[str] = (),
    ) -> str:
        """Queue a message and record its events (made for its final queue ID) in one
        transaction, with ``claim`` (the HTTP API's Idempotency-Key answer) in it too;
        ``refuse_suppressed``: see :meth:`EventStore.enqueue_with_events`."""
        stored = await self.store.enqueue_with_events(
            sender,
            recipients,
            data,
            meta=meta,
            queue_id=queue_id,
            events_for=events_for,
            claim=claim,
            refuse_suppressed=refuse_suppressed,
        )
        self.notify()
        return stored

    async def enqueue_all(self, messages: Sequence[NewMessage]) -> list[str]:
        """Several messages and their events in one transaction, all or none."""
        stored = await self.store.enqueue_all_with_events(messages)
        self.notify()
        return stored

    async def find_idempotency(self, api_key: str, key: str, now: float) -> Stored | None:
        return await self.store.find_idempotency(api_key, key, now)

    @property
    def checks_suppressions_at_enqueue(self) -> bool:
        """Whether :meth:`enqueue` can check ``refuse_suppressed`` in its transaction
        (SQLite); otherwise :meth:`check` first (PostgreSQL)."""
        return self.store.checks_suppressions_at_enqueue

    def notify(self) -> None:
        """Wake in-process readers (the webhook sender) after new events."""
        for listener in self.listeners:
            wake = getattr(listener, "wakeup", None)
            if callable(wake):
                wake()

    async def read(
        self,
        *,
        after: int = 0,
        since: float | None = None,
        limit: int = 1000,
        types: Sequence[str] | None = None,
        queue_id: str | None = None,
        recipient: str | None = None,
        tag: str | None = None,
        until: float | None = None,
    ) -> list[ev.Event]:
        return await self.store.read_events(
            after=after,
            since=since,
            limit=limit,
            types=types,
            queue_id=queue_id,
            recipient=recipient,
            tag=tag,
            until=until,
        )

    async def latest(self, limit: int, types: Sequence[str] | None = None) -> list[ev.Event]:
        return await self.store.latest_events(limit, types)

    async def last_seq(self) -> int:
        return await self.store.last_event_seq()

    async def check(
        self, addresses: Iterable[str], now: float | None = None
    ) -> dict[str, sup.Suppression]:
        at = time.time() if now is None else now
        return await self.store.check_suppressions(addresses, now=at)

    async def suppress(
        self,
        address: str,
        reason: sup.SuppressionReason = "manual",
        *,
        detail: str = "",
        expires_at: float | None = None,
        now: float | None = None,
    ) -> sup.Suppression:
        at = time.time() if now is None else now
        return await self.store.add_suppression(
            address, reason, now=at, detail=detail, expires_at=expires_at
        )

    async def unsuppress(self, address: str) -> bool:
        return await self.store.remove_suppression(address)

    async def suppressions(
        self, *, include_expired: bool = False, now: float | None = None
    ) -> list[sup.Suppression]:
        at = time.time() if now is None else now
        return await self.store.list_suppressions(now=at, include_expired=include_expired)

    async def message_known(self, message_id: str, recipient: str) -> str | None:
        """The queue id of a message we queued with this Message-ID for this recipient
        (how a report without a VERP token is verified), or None."""
        event = await self.store.queued_event_for(message_id, recipient)
        return None if event is None else event.queue_id

    async def prune(self, before: float, keep_after_seq: int) -> int:
        return await self.store.prune_events(before, keep_after_seq)
