"""Webhooks: the event log POSTed to the application, signed, at least once, in order.

Signing follows Standard Webhooks: headers ``webhook-id`` (the same on every retry of a
delivery, so the receiver can drop duplicates), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``. A secret written
``whsec_<base64>`` is that base64 key (the Standard Webhooks form); any other secret is
used as its UTF-8 bytes. :func:`verify` is the receiver's check (the README's Django
view does the same in a few lines).

Body (schema :data:`~mailwright.queue.events.EVENT_SCHEMA`)::

    {"type": "events", "timestamp": "2026-12-04T22:00:00.000000Z",
     "data": {"schema": 1, "webhook": "<url>", "events": [ {event}, ... ]}}

Delivery: one task per webhook, apart from mail flow — it only reads the event log and
writes its cursor (``webhook_cursors``, in the queue database, so it survives restarts).
Events go out in log order in batches of at most :data:`BATCH`; the batch being sent is
recorded first (``batch_end``), so a retry after a crash resends exactly the same
events under the same ``webhook-id``. A 2xx answer moves the cursor; anything else
(connection refused, timeout, 3xx — redirects are not followed —, 4xx, 5xx) is retried
with backoff (:data:`BACKOFF`) for up to :data:`MAX_RETRY_AGE` (3 days), then the batch
is logged as given up and the cursor moves on. The response body is never read beyond
:data:`MAX_RESPONSE` octets (and the connection is dropped), and every request has a total timeout.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from .log import log_event
from .queue.events import EVENT_SCHEMA, Event, iso
from .queue.eventstore import EventStore, WebhookCursor
from .queue.sqlite import (  # min_webhook_seq: kept importable from here
    load_webhook_cursor,
    min_webhook_seq,  # noqa: F401
    save_webhook_cursor,
)

BATCH = 100
BACKOFF = (5, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
"""Seconds before retry n (the last repeats)."""
GATHER = 0.5
"""After a batch that was not full, seconds to wait before the next: under load each
request carries up to BATCH events instead of one or two (cheaper for the MTA and the
receiver); an idle log costs nothing."""
MAX_RETRY_AGE = 3 * 86400
MAX_RESPONSE = 512
POLL = 2.0
"""Seconds between looks at the log when nothing woke the sender (events written by
other processes)."""
TOLERANCE = 300
"""Seconds a receiver accepts between webhook-timestamp and its clock."""
TURN = 60.0
"""Seconds a node's turn to send a webhook lasts (renewed while it runs); a dead node's
webhooks are taken over by another one after this long."""


def signing_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except binascii.Error:
            pass
    return secret.encode("utf-8")


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE,
) -> bool:
    """Whether a request carries a valid signature made with ``secret`` and a fresh
    timestamp (what a receiving application checks)."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id", "")
    stamp = lower.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit():
        return False
    at = time.time() if now is None else now
    if abs(at - int(stamp)) > tolerance:
        return False
    expected = sign(signing_key(secret), msg_id, int(stamp), body)
    offered = lower.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, s) for s in offered)


@dataclass(frozen=True)
class Webhook:
    url: str
    secret: str
    events: frozenset[str] = frozenset()
    timeout: float = 10.0

    def wants(self, event: Event) -> bool:
        return not self.events or event.event_type in self.events

    @classmethod
    def from_config(cls, config: Any) -> Webhook:
        return cls(config.url, config.secret, frozenset(config.events), config.timeout)


Cursor = WebhookCursor


def _load_cursor(conn: sqlite3.Connection, name: str) -> Cursor:
    return load_webhook_cursor(conn, name)


def _save_cursor(conn: sqlite3.Connection, name: str, c: Cursor) -> None:
    save_webhook_cursor(conn, name, c)


def _reset(cursor: Cursor, seq: int) -> None:
    cursor.seq, cursor.batch_end, cursor.attempts = seq, None, 0
    cursor.first_try = cursor.next_try = cursor.last_error = None


def body_for(webhook: Webhook, events: Sequence[Event], now: float) -> bytes:
    payload = {
        "type": "events",
        "timestamp": iso(now),
        "data": {
            "schema": EVENT_SCHEMA,
            "webhook": webhook.url,
            "events": [e.to_json() for e in events],
        },
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class WebhookSender:
    """Delivers the event log to every configured webhook (see the module docstring)."""

    def __init__(
        self,
        store: EventStore,
        webhooks: Sequence[Webhook],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        """Who sends, for :meth:`EventStore.take_webhook_turn`."""
        self.webhooks = list(webhooks)
        self.clock = clock
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        """Batches delivered (tests, bench)."""

    def wakeup(self) -> None:
        """New events are in the log (called by :class:`~mailwright.queue.tracking.Tracking`)."""
        self._wake.set()

    async def start(self) -> None:
        if not self.webhooks:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=len(self.webhooks) * 2),
            auto_decompress=False,
        )
        self._tasks = [
            asyncio.create_task(self._run(webhook), name=f"webhook {webhook.url}")
            for webhook in self.webhooks
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self, webhook: Webhook) -> None:
        cursor: Cursor | None = None
        turn_until = 0.0
        while True:
            try:
                # Several nodes sharing a PostgreSQL store: one sends, the others stand by
                # (and take over, from the durable cursor, when its turn runs out). The
                # turn is renewed when half of it is gone.
                now = self.clock()
                if now >= turn_until - TURN / 2:
                    mine = await self.store.take_webhook_turn(
                        webhook.url, self.holder, TURN, now=now
                    )
                    turn_until = now + TURN if mine else 0.0
                if not turn_until:
                    cursor = None
                    idle = POLL
                else:
                    if cursor is None:
                        cursor = await self.store.load_webhook_cursor(webhook.url)
                    idle = await self._step(webhook, cursor)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or a bug: never kill the task
                log_event("webhook-error", None, url=webhook.url, reason=str(exc)[:300])
                idle = POLL
            if idle == GATHER:
                await asyncio.sleep(GATHER)  # let a batch build up: fewer, fuller requests
            elif idle > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(idle, TURN / 3))

    async def _step(self, webhook: Webhook, cursor: Cursor) -> float:
        """One batch (or one look at the log); the seconds to wait before the next.
        ``cursor`` is this task's copy of the durable cursor, updated in place."""
        name = webhook.url
        now = self.clock()
        if cursor.batch_end is None:
            found = await self.store.read_events(after=cursor.seq, limit=BATCH)
            if not found:
                return POLL
            cursor.batch_end = found[-1].seq
            cursor.attempts, cursor.first_try, cursor.next_try = 0, now, now
            cursor.last_error = None
            await self._save(name, cursor)
        if cursor.next_try is not None and cursor.next_try > now:
            return min(cursor.next_try - now, POLL * 30)
        start, end = cursor.seq, cursor.batch_end
        assert end is not None
        batch = await self.store.read_events(after=start, limit=max(end - start, 1))
        batch = [e for e in batch if (e.seq or 0) <= end and webhook.wants(e)]
        error = await self._post(webhook, batch, now) if batch else None
        if error is None:
            self.delivered += 1 if batch else 0
            _reset(cursor, end)
            await self._save(name, cursor)
            return 0 if end - start >= BATCH else GATHER
        cursor.attempts += 1
        cursor.last_error = error[:300]
        age = now - (cursor.first_try or now)
        if age >= MAX_RETRY_AGE:
            log_event(
                "webhook-gave-up",
                None,
                url=webhook.url,
                events=len(batch),
                attempts=cursor.attempts,
                reason=cursor.last_error,
            )
            _reset(cursor, end)
            await self._save(name, cursor)
            return 0
        delay = BACKOFF[min(cursor.attempts - 1, len(BACKOFF) - 1)]
        cursor.next_try = now + delay
        log_event(
            "webhook-failed",
            None,
            url=webhook.url,
            events=len(batch),
            attempts=cursor.attempts,
            retry_in=delay,
            reason=cursor.last_error,
        )
        await self._save(name, cursor)
        return float(delay)

    async def _save(self, name: str, cursor: Cursor) -> None:
        await self.store.save_webhook_cursor(name, cursor)

    async def _post(self, webhook: Webhook, batch: Sequence[Event], now: float) -> str | None:
        """None on success, else what went wrong (one line)."""
        assert self._session is not None
        body = body_for(webhook, batch, now)
        msg_id = f"msg_{batch[0].event_id}_{len(batch)}"
        stamp = int(now)
        headers = {
            "content-type": "application/json",
            "user-agent": "mailwright-webhooks",
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(signing_key(webhook.secret), msg_id, stamp, body),
        }
        timeout = aiohttp.ClientTimeout(total=webhook.timeout)
        try:
            async with self._session.post(
                webhook.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                # Read a little of the answer (for the log), never all of it.
                head = await asyncio.wait_for(response.content.read(MAX_RESPONSE), webhook.timeout)
                status = response.status
                response.close()  # drop the connection: an unread 1 GB body stays unread
        except TimeoutError:
            return f"no answer within {webhook.timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return None
        text = head.decode("utf-8", "replace").strip().splitlines()[:1]
        return f"HTTP {status}" + (f": {text[0][:200]}" if text else "")
