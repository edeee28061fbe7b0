"""Moving an embedded SQLite queue into PostgreSQL (``mailwright queue migrate --to``).

No message may be lost or doubled, even if the move is interrupted (a kill, the
database going away), so the order is:

1. ``BEGIN IMMEDIATE`` on the SQLite queue: no process can write it while we move (a
   running server's sessions wait or answer 451 — stop ``serve`` first anyway);
2. refuse if a lease is still running: a delivery in flight would report its result to
   the SQLite queue after we moved the message, and it would be delivered twice;
3. copy entries and bodies in chunks, each chunk one PostgreSQL transaction with
   ``ON CONFLICT (id) DO NOTHING``: a run that died after some commits is simply run
   again, what is already there is not inserted twice;
4. the event log (in ``seq`` order, under the events lock, ``ON CONFLICT (event_id) DO
   NOTHING``), the suppression list (an address already listed in PostgreSQL keeps its
   entry there), the soft bounces counted (a row already there is not added again) and
   the webhook cursors (each moved to the PostgreSQL ``seq`` of the last event it had
   passed, so a webhook neither misses nor repeats an event) follow the same way;
5. only after the last PostgreSQL commit, delete the moved rows from SQLite and commit
   there. A crash between 4 and 5 leaves everything in both; running the command again
   finishes the move without duplicates (do not start ``serve`` on SQLite in between).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from .postgres import EVENTS_LOCK, connect_database, describe, migrate
from .sqlite import DB_NAME
from .store import QueueError

CHUNK = 500


@dataclass(frozen=True)
class TransferResult:
    moved: int
    """Entries now in PostgreSQL and gone from SQLite."""
    already_there: int
    """Of those, entries an earlier interrupted run had copied already."""
    destination: str
    events: int = 0
    """Events moved (new in PostgreSQL or already there from an interrupted run)."""
    suppressions: int = 0
    """Suppression entries moved."""

    def to_json(self) -> dict[str, Any]:
        return {
            "moved": self.moved,
            "already_there": self.already_there,
            "destination": self.destination,
            "events": self.events,
            "suppressions": self.suppressions,
        }


async def move_sqlite_queue(data_dir: Path, conninfo: str) -> TransferResult:
    """Move every entry of ``DATA_DIR/queue.sqlite3`` into the database (see the module
    docstring for why nothing is lost or doubled). Raises :class:`QueueError`."""
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        raise QueueError(f"no queue at {path}")
    await migrate(conninfo)
    source = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        source.execute("BEGIN IMMEDIATE")
        now = time.time()
        (leased,) = source.execute(
            "SELECT count(*) FROM entries WHERE lease_until > ?", (now,)
        ).fetchone()
        if leased:
            raise QueueError(
                f"{leased} message(s) in {path} are being delivered right now: stop "
                "'mailwright serve' (and let its leases end) before moving the queue"
            )
        ids = [row[0] for row in source.execute("SELECT id FROM entries ORDER BY id")]
        inserted = events = suppressions = 0
        tracked = False
        async with await connect_database(conninfo) as target:
            await target.execute("SET synchronous_commit = on")  # durable before the delete
            for start in range(0, len(ids), CHUNK):
                inserted += await _copy_chunk(source, target, ids[start : start + CHUNK])
            tracked = _has_tracking(source)
            if tracked:
                events, suppressions = await _copy_tracking(source, target)
        source.executemany("DELETE FROM messages WHERE id = ?", ((i,) for i in ids))
        source.executemany("DELETE FROM entries WHERE id = ?", ((i,) for i in ids))
        if tracked:
            for table in ("events", "suppressions", "soft_bounces", "webhook_cursors"):
                source.execute(f"DELETE FROM {table}")
        source.execute("COMMIT")
    except sqlite3.Error as exc:
        raise QueueError(f"queue database {path}: {exc}") from None
    except psycopg.Error as exc:
        raise QueueError(f"queue database {describe(conninfo)}: {exc}") from None
    finally:
        if source.in_transaction:
            source.execute("ROLLBACK")
        source.close()
    return TransferResult(len(ids), len(ids) - inserted, describe(conninfo), events, suppressions)


async def _copy_chunk(
    source: sqlite3.Connection, target: psycopg.AsyncConnection[Any], ids: list[str]
) -> int:
    marks = ",".join("?" * len(ids))
    rows = source.execute(
        "SELECT e.id, e.sender, e.recipients, e.size, e.created_at, e.held, e.next_attempt,"
        f" e.meta, m.data FROM entries e JOIN messages m USING (id) WHERE e.id IN ({marks})",
        ids,
    ).fetchall()
    if len(rows) != len(ids):
        raise QueueError(f"{len(ids) - len(rows)} queue entries have no message body")
    async with target.transaction():
        cur = await target.execute(
            "INSERT INTO queue_entries (id, sender, recipients, size, created_at, held,"
            " next_attempt, meta)"
            " SELECT id, sender, recipients::jsonb, size, created_at, held, next_attempt,"
            " meta::jsonb FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[],"
            " %s::float8[], %s::bool[], %s::float8[], %s::text[])"
            " AS t(id, sender, recipients, size, created_at, held, next_attempt, meta)"
            " ON CONFLICT (id) DO NOTHING RETURNING id",
            (
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                [r[3] for r in rows],
                [r[4] for r in rows],
                [bool(r[5]) for r in rows],
                [r[6] for r in rows],
                [r[7] for r in rows],
            ),
        )
        new = {row[0] for row in await cur.fetchall()}
        await target.execute(
            "INSERT INTO queue_messages (id, data) SELECT * FROM unnest(%s::text[], %s::bytea[])",
            ([r[0] for r in rows if r[0] in new], [bytes(r[8]) for r in rows if r[0] in new]),
            binary=True,
        )
    return len(new)


def _has_tracking(source: sqlite3.Connection) -> bool:
    """Does the SQLite queue have the event tables (schema 2; a schema-1 queue has none)?"""
    row = source.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'"
    ).fetchone()
    return bool(row[0])


async def _copy_tracking(
    source: sqlite3.Connection, target: psycopg.AsyncConnection[Any]
) -> tuple[int, int]:
    """Events, suppressions, soft bounces and webhook cursors (step 4 of the module
    docstring); returns (events, suppressions) moved."""
    moved_events = 0
    after = 0
    while True:
        rows = source.execute(
            "SELECT seq, event_id, event_type, timestamp, queue_id, recipient, data FROM events"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, CHUNK),
        ).fetchall()
        if not rows:
            break
        after = rows[-1][0]
        moved_events += len(rows)
        async with target.transaction():
            await target.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
            await target.execute(
                "INSERT INTO events (event_id, event_type, timestamp, queue_id, recipient, data)"
                " SELECT event_id, event_type, timestamp, queue_id, recipient, data::jsonb"
                " FROM unnest(%s::text[], %s::text[], %s::float8[], %s::text[], %s::text[],"
                " %s::text[]) WITH ORDINALITY"
                " AS t(event_id, event_type, timestamp, queue_id, recipient, data, n)"
                " ORDER BY n ON CONFLICT (event_id) DO NOTHING",
                tuple([r[i] for r in rows] for i in range(1, 7)),
            )
    entries = source.execute(
        "SELECT address, reason, detail, source_event, created_at, expires_at FROM suppressions"
    ).fetchall()
    soft = source.execute("SELECT address, at, event_id FROM soft_bounces").fetchall()
    cursors = source.execute(
        "SELECT name, seq, batch_end, attempts, first_try, next_try, last_error"
        " FROM webhook_cursors"
    ).fetchall()
    async with target.transaction():
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start : start + CHUNK]
            await target.execute(
                "INSERT INTO suppressions (address, reason, detail, source_event, created_at,"
                " expires_at) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[],"
                " %s::text[], %s::float8[], %s::float8[]) ON CONFLICT (address) DO NOTHING",
                tuple([r[i] for r in chunk] for i in range(6)),
            )
        for start in range(0, len(soft), CHUNK):
            chunk = soft[start : start + CHUNK]
            await target.execute(
                "INSERT INTO soft_bounces (address, at, event_id)"
                " SELECT t.address, t.at, t.event_id"
                " FROM unnest(%s::text[], %s::float8[], %s::text[]) AS t(address, at, event_id)"
                " WHERE NOT EXISTS (SELECT 1 FROM soft_bounces s WHERE s.address = t.address"
                " AND s.at = t.at AND s.event_id IS NOT DISTINCT FROM t.event_id)",
                tuple([r[i] for r in chunk] for i in range(3)),
            )
        for name, seq, batch_end, attempts, first_try, next_try, last_error in cursors:
            await target.execute(
                "INSERT INTO webhook_cursors"
                " (name, seq, batch_end, attempts, first_try, next_try, last_error)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (
                    name,
                    await _target_seq(source, target, seq),
                    None if batch_end is None else await _target_seq(source, target, batch_end),
                    attempts,
                    first_try,
                    next_try,
                    last_error,
                ),
            )
    return moved_events, len(entries)


async def _target_seq(
    source: sqlite3.Connection, target: psycopg.AsyncConnection[Any], seq: int
) -> int:
    """The PostgreSQL ``seq`` of the last moved event at or before SQLite's ``seq``."""
    row = source.execute(
        "SELECT event_id FROM events WHERE seq <= ? ORDER BY seq DESC LIMIT 1", (seq,)
    ).fetchone()
    if row is not None:
        cur = await target.execute("SELECT seq FROM events WHERE event_id = %s", (row[0],))
        found = await cur.fetchone()
        return int(found[0]) if found else 0
    # It had passed none: it stands just before the first moved event (the database may
    # hold older events of its own, which this webhook never asked for).
    first = source.execute("SELECT event_id FROM events ORDER BY seq LIMIT 1").fetchone()
    if first is None:
        return 0
    cur = await target.execute("SELECT seq FROM events WHERE event_id = %s", (first[0],))
    found = await cur.fetchone()
    return int(found[0]) - 1 if found else 0
