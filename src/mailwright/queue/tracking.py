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
from dataclasses import dataclass

from . import events as ev
from . import suppressions as sup
from .sqlite import SqliteQueueStore
from .store import QueueMeta


@dataclass(frozen=True)
class SuppressionPolicy:
    soft_limit: int = sup.DEFAULT_SOFT_LIMIT
    soft_window: float = sup.DEFAULT_SOFT_WINDOW
    hard_for: float | None = None
    """Seconds a hard bounce suppresses (None: for ever)."""
    complaint_for: float | None = None

    @classmethod
    def from_config(cls, config: object) -> SuppressionPolicy:
        s = getattr(config, "suppression", None)
        if s is None:
            return cls()
        return cls(
            soft_limit=s.soft_bounce_limit,
            soft_window=s.soft_bounce_days * 86400,
            hard_for=s.hard_bounce_days * 86400 or None,
            complaint_for=s.complaint_days * 86400 or None,
        )


def trusted(event: ev.Event) -> bool:
    """May this event change the suppression list?"""
    if event.recipient is None:
        return False
    if event.event_type == "bounced" and event.bounce_source == "sync":
        return True
    if event.event_type == "expired":
        return True  # our own verdict: days of refusals ended it
    return event.details.get("verified") is True


def apply_rules(
    conn: sqlite3.Connection, events: Sequence[ev.Event], policy: SuppressionPolicy
) -> list[sup.Suppression]:
    added: list[sup.Suppression] = []
    for event in events:
        if not trusted(event):
            continue
        assert event.recipient is not None
        reason = (event.mta_response or event.cause or "")[:300]
        if event.event_type == "bounced" and event.bounce_type == "hard":
            expires = event.timestamp + policy.hard_for if policy.hard_for else None
            added.append(
                sup.add(
                    conn,
                    event.recipient,
                    "hard-bounce",
                    now=event.timestamp,
                    detail=reason,
                    source_event=event.event_id,
                    expires_at=expires,
                )
            )
        elif (event.event_type == "bounced" and event.bounce_type == "soft") or (
            event.event_type == "expired"
        ):
            found = sup.record_soft_bounce(
                conn,
                event.recipient,
                now=event.timestamp,
                event_id=event.event_id,
                limit=policy.soft_limit,
                window=policy.soft_window,
                detail=reason,
            )
            if found is not None:
                added.append(found)
        elif event.event_type == "complained":
            expires = event.timestamp + policy.complaint_for if policy.complaint_for else None
            feedback = str(event.details.get("feedback_type") or "abuse")
            added.append(
                sup.add(
                    conn,
                    event.recipient,
                    "complaint",
                    now=event.timestamp,
                    detail=f"feedback-type {feedback}",
                    source_event=event.event_id,
                    expires_at=expires,
                )
            )
    return added


class Tracking:
    """The event log and suppression list of one queue store."""

    def __init__(self, store: SqliteQueueStore, policy: SuppressionPolicy | None = None) -> None:
        self.store = store
        self.policy = policy or SuppressionPolicy()
        self.listeners: list[object] = []

    async def record(
        self,
        events: Sequence[ev.Event],
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> list[sup.Suppression]:
        """Append events and apply their suppression rules, atomically (with
        ``also(conn)`` in the same transaction)."""
        if not events and also is None:
            return []
        policy = self.policy

        def write(conn: sqlite3.Connection) -> list[sup.Suppression]:
            ev.insert(conn, events)
            if also is not None:
                also(conn)
            return apply_rules(conn, events, policy)

        added = await self.store.transact(write)
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
        record)."""
        extra = also

        def also_events(conn: sqlite3.Connection, stored: str) -> None:
            ev.insert(conn, events_for(stored))
            if extra is not None:
                extra(conn, stored)

        stored = await self.store.enqueue_with(
            sender, recipients, data, meta=meta, queue_id=queue_id, also=also_events
        )
        self.notify()
        return stored

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
        return await self.store.query(
            lambda conn: ev.read(
                conn,
                after=after,
                since=since,
                limit=limit,
                types=types,
                queue_id=queue_id,
                recipient=recipient,
                tag=tag,
                until=until,
            )
        )

    async def latest(self, limit: int, types: Sequence[str] | None = None) -> list[ev.Event]:
        return await self.store.query(lambda conn: ev.latest(conn, limit, types))

    async def last_seq(self) -> int:
        return await self.store.query(ev.last_seq)

    async def check(
        self, addresses: Iterable[str], now: float | None = None
    ) -> dict[str, sup.Suppression]:
        at = time.time() if now is None else now
        wanted = list(addresses)
        return await self.store.query(lambda conn: sup.check(conn, wanted, now=at))

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
        return await self.store.transact(
            lambda conn: sup.add(
                conn, address, reason, now=at, detail=detail, expires_at=expires_at
            )
        )

    async def unsuppress(self, address: str) -> bool:
        return await self.store.transact(lambda conn: sup.remove(conn, address))

    async def suppressions(
        self, *, include_expired: bool = False, now: float | None = None
    ) -> list[sup.Suppression]:
        at = time.time() if now is None else now
        return await self.store.query(
            lambda conn: sup.list_all(conn, now=at, include_expired=include_expired)
        )

    async def message_known(self, message_id: str, recipient: str) -> str | None:
        """The queue id of a message we queued with this Message-ID for this recipient
        (how a report without a VERP token is verified), or None."""

        def find(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT queue_id FROM events WHERE event_type = 'queued'"
                " AND lower(recipient) = lower(?)"
                " AND json_extract(data, '$.message_id') = ? LIMIT 1",
                (recipient, message_id),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self.store.query(find)

    async def prune(self, before: float, keep_after_seq: int) -> int:
        """Drop events (and soft-bounce counts) older than ``before`` that every webhook
        has been given; the number of events dropped."""
        window = self.policy.soft_window

        def prune(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM soft_bounces WHERE at < ?", (min(before, before - window),))
            return ev.prune(conn, before=before, keep_after_seq=keep_after_seq)

        return await self.store.transact(prune)
