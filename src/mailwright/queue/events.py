"""The event log: every outcome of every recipient, durable and ordered.

Events live in the queue database (table ``events``), written in the same group commit
as the queue change they report, so an event is never lost while its outcome is kept
(or the reverse). ``seq`` orders them (SQLite ``AUTOINCREMENT``: never reused, even
after pruning; PostgreSQL: an identity sequence, see :mod:`.postgres`); readers
(``mailwright events``, webhooks) keep a cursor on it. The functions below work on a
SQLite connection; the stores offer them as :class:`.eventstore.EventStore` methods.

Schema (:data:`EVENT_SCHEMA`, documented in README.md "Events"): field names follow
django-anymail's tracking vocabulary where it has one — ``event_type``, ``message_id``
(the Message-ID field), ``recipient``, ``timestamp``, ``reject_reason``,
``mta_response``, ``tags``, ``metadata`` — plus mailwright's ``queue_id``, ``event_id``,
``bounce_type``, ``bounce_source``, ``cause`` and ``details``. New fields may be added
within a schema version; a field never changes its meaning.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

EVENT_SCHEMA = 1

EventType = Literal[
    "queued",
    "delivered",
    "deferred",
    "bounced",
    "expired",
    "rejected",
    "complained",
    "autoreplied",
    "inbound",
    "warning",
    "unsubscribed",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
RejectReason = Literal["suppressed", "policy", "invalid", "unsigned"]
BounceSource = Literal["sync", "async"]

SCHEMA_SQL = """
-- event_id is unique by construction (new_event_id: 74 random bits per millisecond) and
-- nothing here looks an event up by it, so it has no index: a UNIQUE index cost every
-- event an index update, about 28 us of worker CPU per message (bench/README.md, issue 16).
-- PostgreSQL keeps its UNIQUE: ON CONFLICT (event_id) absorbs a batch retried after a
-- lost commit answer. A database made before this keeps its index, which does no harm.
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    timestamp  REAL NOT NULL,
    queue_id   TEXT,
    recipient  TEXT,
    data       TEXT NOT NULL            -- the event's JSON (Event.to_json)
);
CREATE INDEX IF NOT EXISTS events_time ON events (timestamp);
CREATE INDEX IF NOT EXISTS events_queue ON events (queue_id);
-- how a bounce is matched to its message: by VERP token (queue id + recipient index) or
-- by recipient + Message-ID (mailwright.feedback). Without these a bounce for a
-- 10,000-recipient message would scan all of its events
CREATE INDEX IF NOT EXISTS events_queued_index ON events
    (queue_id, json_extract(data, '$.details.rcpt_index')) WHERE event_type = 'queued';
CREATE INDEX IF NOT EXISTS events_queued_recipient ON events (lower(recipient))
    WHERE event_type = 'queued';
"""


def new_event_id(now: float | None = None) -> str:
    """A UUIDv7 (RFC 9562 §5.7) in hex: the Unix time in milliseconds, then 74 random
    bits. Unique like a UUIDv4, but time-ordered: PostgreSQL's unique index on
    ``event_id`` grows at its end, as the log does, instead of taking every new ID on a
    random page."""
    millis = time.time_ns() // 1_000_000 if now is None else round(now * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return f"{value:032x}"


def iso(ts: float) -> str:
    """``2026-12-04T22:00:00.000000Z``: the time of an event in its JSON."""
    second = math.floor(ts)
    micros = round((ts - second) * 1e6)
    if micros == 1_000_000:  # rounds up into the next second, as datetime does
        second, micros = second + 1, 0
    return f"{_iso_second(second)}.{micros:06d}Z"


@functools.lru_cache(maxsize=8)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class Event:
    """One outcome for one recipient (or, for ``inbound``/``complained`` without a
    known recipient, for the message)."""

    event_type: EventType
    timestamp: float
    recipient: str | None = None
    queue_id: str | None = None
    message_id: str | None = None
    sender: str | None = None
    reject_reason: str | None = None
    mta_response: str | None = None
    """The remote server's reply (or ours, for a local decision), one line."""
    bounce_type: Literal["hard", "soft"] | None = None
    bounce_source: BounceSource | None = None
    """``sync``: the receiving server refused during our SMTP transaction; ``async``: a
    DSN or bounce message arrived later."""
    cause: str | None = None
    """A cause id of ``mailwright explain`` (for bounced/deferred/complained)."""
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=new_event_id)
    seq: int | None = None
    """Position in the log (set when read back)."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": EVENT_SCHEMA,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "timestamp": iso(self.timestamp),
            "recipient": self.recipient,
            "message_id": self.message_id,
            "queue_id": self.queue_id,
            "sender": self.sender,
            "reject_reason": self.reject_reason,
            "mta_response": self.mta_response,
            "bounce_type": self.bounce_type,
            "bounce_source": self.bounce_source,
            "cause": self.cause,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "details": self.details,
        }
        if self.seq is not None:
            out["seq"] = self.seq
        return out

    @classmethod
    def from_row(cls, seq: int, ts: float, data: str) -> Event:
        return cls.from_dict(seq, ts, json.loads(data))

    @classmethod
    def from_dict(cls, seq: int, ts: float, raw: dict[str, Any]) -> Event:
        return cls(
            event_type=raw["event_type"],
            timestamp=ts,
            recipient=raw.get("recipient"),
            queue_id=raw.get("queue_id"),
            message_id=raw.get("message_id"),
            sender=raw.get("sender"),
            reject_reason=raw.get("reject_reason"),
            mta_response=raw.get("mta_response"),
            bounce_type=raw.get("bounce_type"),
            bounce_source=raw.get("bounce_source"),
            cause=raw.get("cause"),
            tags=tuple(raw.get("tags") or ()),
            metadata=dict(raw.get("metadata") or {}),
            details=dict(raw.get("details") or {}),
            event_id=raw["event_id"],
            seq=seq,
        )


def stored_json(event: Event) -> str:
    """The ``data`` column: the event's JSON without its position in the log."""
    data = event.to_json()
    data.pop("seq", None)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def insert(conn: sqlite3.Connection, events: Sequence[Event]) -> list[int]:
    """Append ``events`` (inside the caller's transaction); their ``seq`` numbers."""
    seqs = []
    for event in events:
        cursor = conn.execute(
            "INSERT INTO events (event_id, event_type, timestamp, queue_id, recipient, data)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                event.event_id,
                event.event_type,
                event.timestamp,
                event.queue_id,
                event.recipient,
                stored_json(event),
            ),
        )
        seqs.append(int(cursor.lastrowid or 0))
    return seqs


def read(
    conn: sqlite3.Connection,
    *,
    after: int = 0,
    since: float | None = None,
    limit: int = 1000,
    types: Sequence[str] | None = None,
    queue_id: str | None = None,
    recipient: str | None = None,
    tag: str | None = None,
    until: float | None = None,
) -> list[Event]:
    """Events with ``seq > after`` (and ``timestamp >= since``, ``< until``, of a
    recipient, carrying a tag), oldest first."""
    sql = "SELECT seq, timestamp, data FROM events WHERE seq > ?"
    args: list[Any] = [after]
    if since is not None:
        sql += " AND timestamp >= ?"
        args.append(since)
    if until is not None:
        sql += " AND timestamp < ?"
        args.append(until)
    if recipient is not None:
        sql += " AND lower(recipient) = lower(?)"
        args.append(recipient)
    if tag is not None:
        sql += " AND EXISTS (SELECT 1 FROM json_each(data, '$.tags') WHERE value = ?)"
        args.append(tag)
    if types:
        sql += f" AND event_type IN ({','.join('?' * len(types))})"
        args.extend(types)
    if queue_id is not None:
        sql += " AND queue_id = ?"
        args.append(queue_id)
    sql += " ORDER BY seq LIMIT ?"
    args.append(limit)
    return [Event.from_row(seq, ts, data) for seq, ts, data in conn.execute(sql, args)]


def latest(conn: sqlite3.Connection, limit: int, types: Sequence[str] | None = None) -> list[Event]:
    """The newest ``limit`` events (of ``types``), oldest first."""
    sql = "SELECT seq, timestamp, data FROM events"
    args: list[Any] = []
    if types:
        sql += f" WHERE event_type IN ({','.join('?' * len(types))})"
        args.extend(types)
    rows = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
    return [Event.from_row(seq, ts, data) for seq, ts, data in reversed(rows)]


def last_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(seq) FROM events").fetchone()
    return int(row[0] or 0)


def for_message(conn: sqlite3.Connection, queue_id: str) -> list[Event]:
    return read(conn, queue_id=queue_id, limit=100_000)


def prune(conn: sqlite3.Connection, *, before: float, keep_after_seq: int) -> int:
    """Delete events older than ``before`` that every reader has passed."""
    cursor = conn.execute(
        "DELETE FROM events WHERE timestamp < ? AND seq <= ?", (before, keep_after_seq)
    )
    return cursor.rowcount
