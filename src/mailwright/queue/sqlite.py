"""The default queue store: one SQLite database in the data directory.

Why SQLite, and why message bodies as blobs in it: with ``journal_mode=WAL`` and
``synchronous=FULL`` a commit is one append plus one ``fsync`` of the WAL, however many
rows it carries. Group commit (below) makes that one fsync per *batch* of messages. Bodies
as separate files would need an fsync per file plus one per directory, which no batching
can share (measured here: ~1,400 fsync'd 5 KB files/s against ~4,000 SQLite commits/s of
any size; see ``bench/queue``).

Group commit: :meth:`SqliteQueueStore.enqueue` puts the message on a pending list and
awaits a future. One writer task drains the whole list into one transaction on the writer
thread; while that commit's fsync runs, new enqueues pile up for the next one. Nobody
waits for a timer, and a lone session pays exactly one fsync.

Several processes may open the same database (worker processes, the ``mailwright queue``
CLI): writes take the database lock with ``BEGIN IMMEDIATE`` and wait up to
``busy_timeout`` for it; delivery is coordinated by leases (:meth:`claim_due`), never by
in-memory state.

Threads: the sqlite3 module releases the GIL while SQLite works, so the event loop keeps
serving sessions during a commit. One thread owns the writing connection, another one a
read-only connection for ``read_message``/``get``/``list_entries`` (WAL lets readers run
beside the writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .store import (
    QueueEntry,
    QueueError,
    QueueStore,
    RecipientState,
    RecipientUpdate,
    new_queue_id,
)

T = TypeVar("T")

DB_NAME = "queue.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id           TEXT PRIMARY KEY,
    sender       TEXT NOT NULL,
    recipients   TEXT NOT NULL,          -- JSON list of RecipientState
    size         INTEGER NOT NULL,
    created_at   REAL NOT NULL,
    held         INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL,                   -- earliest pending next_attempt, NULL: none pending
    claimed_by   TEXT,
    lease_until  REAL,
    meta         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS entries_due ON entries (next_attempt) WHERE held = 0;
CREATE TABLE IF NOT EXISTS messages (
    id   TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
"""

_COLUMNS = "id, sender, recipients, size, created_at, held, meta, claimed_by, lease_until"


@dataclass
class _Pending:
    sender: str
    recipients: list[str]
    data: bytes
    meta: dict[str, Any]
    future: asyncio.Future[str]
    queue_id: str | None = None


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True, timeout=30.0)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    # RFC 5321 §6.1: once we said 250 the message must survive a crash: FULL fsyncs the WAL
    # at every commit (NORMAL would not).
    conn.execute("PRAGMA synchronous = FULL")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


def _entry(row: tuple[Any, ...]) -> QueueEntry:
    return QueueEntry(
        id=row[0],
        sender=row[1],
        recipients=[RecipientState.from_json(r) for r in json.loads(row[2])],
        size=row[3],
        created_at=row[4],
        held=bool(row[5]),
        meta=json.loads(row[6]),
        claimed_by=row[7],
        lease_until=row[8],
    )


def _recipients_json(recipients: Sequence[RecipientState]) -> str:
    return json.dumps([r.to_json() for r in recipients], separators=(",", ":"))


def _min_pending(recipients: Sequence[RecipientState]) -> float | None:
    times = [r.next_attempt for r in recipients if r.status == "pending"]
    return min(times) if times else None


class SqliteQueueStore(QueueStore):
    """The embedded queue (``DATA_DIR/queue.sqlite3``)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.path = Path(data_dir) / DB_NAME
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="queue-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="queue-reader")
        self._local = threading.local()
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0
        """Commits made for enqueues (for the benchmark: messages / batches = batch size)."""

    @classmethod
    async def open(cls, data_dir: Path) -> SqliteQueueStore:
        """Create the data directory and the schema if needed, and open the store."""
        store = cls(data_dir)
        store.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        await store._write(store._init_schema)
        return store

    # -- threads -----------------------------------------------------------------------

    def _conn(self, readonly: bool) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, readonly=readonly)
            self._local.conn = conn
        return conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise QueueError("the queue is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._run, fn, False)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise QueueError("the queue is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._run, fn, True)

    def _run(self, fn: Callable[[sqlite3.Connection], T], readonly: bool) -> T:
        conn = self._conn(readonly)
        try:
            return fn(conn)
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise QueueError(f"queue database {self.path}: {exc}") from exc
            raise

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            conn.execute("ROLLBACK")
            raise QueueError(
                f"{self.path} has queue schema {version}, newer than this mailwright "
                f"({SCHEMA_VERSION}): upgrade mailwright"
            )
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
        # The database and its -wal file now exist: make their directory entries durable
        # too, or a crash right after the first 250 could lose the files themselves.
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- enqueue: group commit -----------------------------------------------------------

    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        meta: dict[str, Any] | None = None,
        queue_id: str | None = None,
    ) -> str:
        if self._closed:
            raise QueueError("the queue is closed")
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append(
            _Pending(sender, list(recipients), data, dict(meta or {}), future, queue_id)
        )
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        queue_id = await asyncio.shield(future)  # a dropped session must not cancel the batch
        self.wakeup()
        return queue_id

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            for item in batch:  # IDs are made on the loop: new_queue_id is not thread-safe
                if item.queue_id is None:
                    item.queue_id = new_queue_id()
            try:
                ids = await self._write(functools.partial(self._insert, batch=batch))
            except BaseException as exc:
                error = exc if isinstance(exc, QueueError) else QueueError(str(exc))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(error)
                if not isinstance(exc, Exception):
                    raise
                continue
            self.batches += 1
            for item, queue_id in zip(batch, ids, strict=True):
                if not item.future.done():
                    item.future.set_result(queue_id)

    def _insert(self, conn: sqlite3.Connection, batch: list[_Pending]) -> list[str]:
        now = time.time()
        ids: list[str] = []
        conn.execute("BEGIN IMMEDIATE")
        for item in batch:
            queue_id = item.queue_id or new_queue_id()
            rcpts = [RecipientState(a, next_attempt=now) for a in item.recipients]
            while True:
                try:
                    conn.execute(
                        "INSERT INTO entries (id, sender, recipients, size, created_at,"
                        " next_attempt, meta) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            queue_id,
                            item.sender,
                            _recipients_json(rcpts),
                            len(item.data),
                            now,
                            now,
                            json.dumps(item.meta, separators=(",", ":")),
                        ),
                    )
                    break
                except sqlite3.IntegrityError:  # same microsecond and same 20 random bits
                    queue_id = queue_id[:10] + new_queue_id()[10:]
            conn.execute("INSERT INTO messages (id, data) VALUES (?, ?)", (queue_id, item.data))
            ids.append(queue_id)
        conn.execute("COMMIT")
        return ids

    # -- delivery ------------------------------------------------------------------------

    async def claim_due(
        self, worker: str, now: float | None = None, limit: int = 100, lease_seconds: float = 600
    ) -> list[QueueEntry]:
        at = time.time() if now is None else now

        def claim(conn: sqlite3.Connection) -> list[QueueEntry]:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(
                f"UPDATE entries SET claimed_by = ?, lease_until = ? WHERE id IN ("
                " SELECT id FROM entries WHERE held = 0 AND next_attempt <= ?"
                " AND (lease_until IS NULL OR lease_until <= ?)"
                " ORDER BY next_attempt, id LIMIT ?)"
                f" RETURNING {_COLUMNS}",
                (worker, at + lease_seconds, at, at, limit),
            ).fetchall()
            conn.execute("COMMIT")
            return sorted((_entry(r) for r in rows), key=lambda e: e.id)

        return await self._write(claim)

    async def extend_lease(
        self, queue_id: str, worker: str, lease_seconds: float, now: float | None = None
    ) -> bool:
        at = time.time() if now is None else now

        def extend(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE entries SET lease_until = ? WHERE id = ? AND claimed_by = ?",
                (at + lease_seconds, queue_id, worker),
            )
            return cursor.rowcount == 1

        return await self._write(extend)

    async def release_lease(self, queue_id: str, worker: str) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE entries SET claimed_by = NULL, lease_until = NULL"
                " WHERE id = ? AND claimed_by = ?",
                (queue_id, worker),
            )
        )

    async def lease_holders(self) -> dict[str, int]:
        def holders(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT claimed_by, count(*) FROM entries WHERE claimed_by IS NOT NULL"
                " GROUP BY claimed_by"
            )
            return {str(worker): int(count) for worker, count in rows}

        return await self._read(holders)

    async def release_worker(self, worker: str) -> int:
        def release(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "UPDATE entries SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = ?",
                (worker,),
            )
            return cursor.rowcount

        changed = await self._write(release)
        if changed:
            self.wakeup()
        return changed

    async def read_message(self, queue_id: str) -> bytes:
        def read(conn: sqlite3.Connection) -> bytes:
            row = conn.execute("SELECT data FROM messages WHERE id = ?", (queue_id,)).fetchone()
            if row is None:
                raise KeyError(queue_id)
            return bytes(row[0])

        return await self._read(read)

    async def record_results(
        self,
        queue_id: str,
        updates: Sequence[RecipientUpdate],
        *,
        worker: str | None = None,
        release: bool = True,
        now: float | None = None,
    ) -> QueueEntry | None:
        at = time.time() if now is None else now
        for update in updates:
            if update.kind == "deferred" and update.next_attempt is None:
                raise ValueError(f"deferred update for {update.recipient} needs next_attempt")

        def record(conn: sqlite3.Connection) -> QueueEntry | None:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (queue_id,))
            found = row.fetchone()
            if found is None:
                conn.execute("ROLLBACK")
                return None
            entry = _entry(found)
            by_address: dict[str, list[RecipientState]] = {}
            for rcpt in entry.recipients:
                by_address.setdefault(rcpt.address, []).append(rcpt)
            for update in updates:
                for rcpt in by_address.get(update.recipient, []):
                    if rcpt.status != "pending":
                        continue
                    rcpt.attempts += 1
                    rcpt.last_reply = update.reply
                    if update.kind == "deferred":
                        rcpt.next_attempt = float(update.next_attempt or at)
                    else:
                        rcpt.status = update.kind
            next_attempt = _min_pending(entry.recipients)
            if next_attempt is None:
                conn.execute("DELETE FROM entries WHERE id = ?", (queue_id,))
                conn.execute("DELETE FROM messages WHERE id = ?", (queue_id,))
                conn.execute("COMMIT")
                return None
            if release and (worker is None or entry.claimed_by == worker):
                entry.claimed_by, entry.lease_until = None, None
            conn.execute(
                "UPDATE entries SET recipients = ?, next_attempt = ?, claimed_by = ?,"
                " lease_until = ? WHERE id = ?",
                (
                    _recipients_json(entry.recipients),
                    next_attempt,
                    entry.claimed_by,
                    entry.lease_until,
                    queue_id,
                ),
            )
            conn.execute("COMMIT")
            return entry

        return await self._write(record)

    async def update_meta(self, queue_id: str, meta: dict[str, Any]) -> None:
        def update(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT meta FROM entries WHERE id = ?", (queue_id,)).fetchone()
            if row is not None:
                merged = {**json.loads(row[0]), **meta}
                conn.execute(
                    "UPDATE entries SET meta = ? WHERE id = ?",
                    (json.dumps(merged, separators=(",", ":")), queue_id),
                )
            conn.execute("COMMIT")

        await self._write(update)

    # -- views and management --------------------------------------------------------------

    async def get(self, queue_id: str) -> QueueEntry | None:
        def get(conn: sqlite3.Connection) -> QueueEntry | None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (queue_id,))
            found = row.fetchone()
            return _entry(found) if found else None

        return await self._read(get)

    async def list_entries(self, limit: int | None = None) -> list[QueueEntry]:
        def list_(conn: sqlite3.Connection) -> list[QueueEntry]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM entries ORDER BY id LIMIT ?",
                (-1 if limit is None else limit,),
            )
            return [_entry(r) for r in rows]

        return await self._read(list_)

    async def hold(self, queue_id: str) -> bool:
        return await self._update_one("UPDATE entries SET held = 1 WHERE id = ?", queue_id)

    async def release(self, queue_id: str) -> bool:
        changed = await self._make_due(queue_id, unhold=True)
        if changed:
            self.wakeup()
        return changed > 0

    async def retry(self, queue_id: str | None = None) -> int:
        changed = await self._make_due(queue_id, unhold=False)
        if changed:
            self.wakeup()
        return changed

    async def delete(self, queue_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            count = conn.execute("DELETE FROM entries WHERE id = ?", (queue_id,)).rowcount
            conn.execute("DELETE FROM messages WHERE id = ?", (queue_id,))
            conn.execute("COMMIT")
            return count == 1

        return await self._write(delete)

    async def _update_one(self, sql: str, queue_id: str) -> bool:
        return await self._write(lambda conn: conn.execute(sql, (queue_id,)).rowcount == 1)

    async def _make_due(self, queue_id: str | None, *, unhold: bool) -> int:
        now = time.time()

        def due(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            if queue_id is None:
                rows = conn.execute("SELECT id, recipients FROM entries").fetchall()
            else:
                rows = conn.execute(
                    "SELECT id, recipients FROM entries WHERE id = ?", (queue_id,)
                ).fetchall()
            for entry_id, recipients_json in rows:
                rcpts = [RecipientState.from_json(r) for r in json.loads(recipients_json)]
                for rcpt in rcpts:
                    if rcpt.status == "pending":
                        rcpt.next_attempt = min(rcpt.next_attempt, now)
                conn.execute(
                    "UPDATE entries SET recipients = ?, next_attempt = ?"
                    + (", held = 0" if unhold else "")
                    + " WHERE id = ?",
                    (_recipients_json(rcpts), _min_pending(rcpts), entry_id),
                )
            conn.execute("COMMIT")
            return len(rows)

        return await self._write(due)

    async def next_due(self) -> float | None:
        def next_due(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT min(max(next_attempt, coalesce(lease_until, 0))) FROM entries"
                " WHERE held = 0 AND next_attempt IS NOT NULL"
            ).fetchone()
            return None if row[0] is None else float(row[0])

        return await self._read(next_due)

    async def close(self) -> None:
        if self._closed:
            return
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        self._closed = True
        loop = asyncio.get_running_loop()
        for executor in (self._writer, self._reader):
            await loop.run_in_executor(executor, self._close_conn)
            executor.shutdown(wait=True)

    def _close_conn(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


async def open_store(data_dir: Path) -> SqliteQueueStore:
    """The configured queue store (today always the embedded SQLite one)."""
    return await SqliteQueueStore.open(data_dir)
