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
4. only after the last PostgreSQL commit, delete the moved rows from SQLite and commit
   there. A crash between 3 and 4 leaves the messages in both; running the command again
   finishes the move without duplicates (do not start ``serve`` on SQLite in between).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from .postgres import connect_database, describe, migrate
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

    def to_json(self) -> dict[str, Any]:
        return {
            "moved": self.moved,
            "already_there": self.already_there,
            "destination": self.destination,
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
        inserted = 0
        async with await connect_database(conninfo) as target:
            await target.execute("SET synchronous_commit = on")  # durable before the delete
            for start in range(0, len(ids), CHUNK):
                inserted += await _copy_chunk(source, target, ids[start : start + CHUNK])
        source.executemany("DELETE FROM messages WHERE id = ?", ((i,) for i in ids))
        source.executemany("DELETE FROM entries WHERE id = ?", ((i,) for i in ids))
        source.execute("COMMIT")
    except sqlite3.Error as exc:
        raise QueueError(f"queue database {path}: {exc}") from None
    except psycopg.Error as exc:
        raise QueueError(f"queue database {describe(conninfo)}: {exc}") from None
    finally:
        if source.in_transaction:
            source.execute("ROLLBACK")
        source.close()
    return TransferResult(len(ids), len(ids) - inserted, describe(conninfo))


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
