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

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence

from . import events as ev
from . import suppressions as sup
from .eventstore import EventStore
from .sqlite import SqliteQueueStore
from .store import QueueError, QueueMeta
from .suppressions import SuppressionPolicy, trusted

__all__ = ["SuppressionPolicy", "Tracking", "apply_rules", "trusted"]


def apply_rules(
    conn: sqlite3.Connection, events: Sequence[ev.Event], policy: SuppressionPolicy
) -> list[sup.Suppression]:
    """The suppression rules for ``events`` on a SQLite connection (in its transaction)."""
    return sup.apply(conn, sup.actions_for(events, policy))


class Tracking:
    """The event log and suppression list of one queue store (SQLite or PostgreSQL)."""

    def __init__(self, store: EventStore, policy: SuppressionPolicy | None = None) -> None:
        self.store = store
        self.policy = policy or SuppressionPolicy()
        self.listeners: list[object] = []

    async def record(
        self,
        events: Sequence[ev.Event],
        also: Callable[[sqlite3.Connection], None] | None = None,
        *,
        durable: bool = True,
    ) -> list[sup.Suppression]:
        """Append events and apply their suppression rules, atomically (with
        ``also(conn)`` in the same transaction). ``durable=False``: see
        :meth:`EventStore.record_events` (delivery outcomes only)."""
        if not events and also is None:
            return []
        if also is None:
            added = await self.store.record_events(events, self.policy, durable=durable)
        else:
            policy = self.policy

            def write(conn: sqlite3.Connection) -> list[sup.Suppression]:
                ev.insert(conn, events)
                also(conn)
                return apply_rules(conn, events, policy)

            added = await self._sqlite().transact(write)
        self.notify()
        return added

    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        meta: QueueMeta,
        queue_id: str,
        events_for: Callable[[str], list[ev.Event]],
        also: Callable[[sqlite3.Connection, str], None] | None = None,
    ) -> str:
        """Queue a message and record its events (made for its final queue ID) in one
        transaction; ``also(conn, queue_id)`` runs in it too (the HTTP API's idempotency
        record: the SQLite queue only)."""
        if also is None:
            stored = await self.store.enqueue_with_events(
                sender, recipients, data, meta=meta, queue_id=queue_id, events_for=events_for
            )
        else:
            extra = also

            def also_events(conn: sqlite3.Connection, stored: str) -> None:
                ev.insert(conn, events_for(stored))
                extra(conn, stored)

            stored = await self._sqlite().enqueue_with(
                sender, recipients, data, meta=meta, queue_id=queue_id, also=also_events
            )
        self.notify()
        return stored

    def enqueue_guard(
        self, addresses: Iterable[str], now: float | None = None
    ) -> Callable[[sqlite3.Connection, str], None] | None:
        """The suppression check to run inside :meth:`enqueue` (``also``): it raises
        :class:`~.suppressions.RecipientsSuppressed` there, undoing the enqueue. None
        where the store cannot (PostgreSQL): :meth:`check` first."""
        if not isinstance(self.store, SqliteQueueStore):
            return None
        return sup.guard(addresses, now=time.time() if now is None else now)

    def _sqlite(self) -> SqliteQueueStore:
        """The store, for work done inside its SQLite transaction (the HTTP API's
        Idempotency-Key records live in the SQLite queue only)."""
        if not isinstance(self.store, SqliteQueueStore):
            raise QueueError("Idempotency-Key needs the SQLite queue (not yet on PostgreSQL)")
        return self.store

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
