"""The default queue store: one SQLite database in the data directory.

Why SQLite, and why message bodies as blobs in it: with ``journal_mode=WAL`` and
``synchronous=FULL`` a commit is one append plus one ``fsync`` of the WAL, however many
rows it carries. Group commit (below) makes that one fsync per *batch* of messages. Bodies
as separate files would need an fsync per file plus one per directory, which no batching
can share (measured here: ~1,400 fsync'd 5 KB files/s against ~4,000 SQLite commits/s of
any size; see ``bench/queue``).

Group commit: every write (``enqueue``, ``claim_due``, ``record_results``, queue
management) is queued as an operation; at the end of the event loop's turn all pending
operations go to the writer thread as one transaction, each inside a SAVEPOINT so one
failing operation does not undo the others, committed once; the thread posts the
results straight back to the loop. While that commit's fsync runs, new operations pile
up for the next one. Nobody waits for a timer, a lone session pays exactly
one fsync, and under load the sessions, the delivery agent's claims and its results all
share commits.

Which commits fsync: a new message (``enqueue``) and queue management must be on disk
before we answer, so their batch commits with ``synchronous=FULL``. Claims, lease
changes, delivery results and delivery metadata commit with ``synchronous=NORMAL``: no
fsync of their own, they become durable with the next FULL commit (the WAL is one
append-only file, one fsync covers every frame before it) or the next checkpoint. A
process crash loses nothing (the data is in the OS); a power failure may forget a
recent result or claim, and then the message is simply delivered again: a duplicate,
never a loss (RFC 5321 §6.1 asks for the first, forbids the second). With one session
this takes two of the three fsyncs per message off the path.

Delivery reports (``record_results``, the agent's outcome events) do not even start a
transaction of their own when they need not: they wait up to :data:`LATER_SECONDS` for
the next batch to ride in (with one session: the next message's enqueue), so a message
costs one commit, not two, and its enqueue never queues behind the previous message's
report.

Several processes may open the same database (worker processes, the ``mailwright queue``
CLI): a transaction starts with ``BEGIN IMMEDIATE``, retried with sub-millisecond sleeps
while another process holds the write lock (SQLite's own busy handler sleeps up to 100 ms
at a time, which made two workers slower than one); delivery is coordinated by leases
(:meth:`claim_due`), never by in-memory state.

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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..spool import MessageData, SpooledMessage
from . import events, idempotency, suppressions
from .events import Event
from .eventstore import EventStore, NewMessage, WebhookCursor
from .store import (
    QueueEntry,
    QueueError,
    QueueMeta,
    QueueStore,
    RecipientState,
    RecipientUpdate,
    apply_updates,
    check_updates,
    new_queue_id,
    next_pending_attempt,
)

T = TypeVar("T")

DB_NAME = "queue.sqlite3"
SCHEMA_VERSION = 2
"""1: entries and messages; 2: + events, suppressions, soft_bounces, webhook_cursors
(:mod:`.events`, :mod:`.suppressions`, :mod:`mailwright.webhooks`)."""
BUSY_TIMEOUT_MS = 30_000
LATER_SECONDS = 0.05
"""The longest a delivery report waits for another write to share a commit with."""

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

_CURSORS = """
CREATE TABLE IF NOT EXISTS webhook_cursors (
    name        TEXT PRIMARY KEY,    -- the webhook's url (its identity across restarts)
    seq         INTEGER NOT NULL,    -- last event delivered (or given up on)
    batch_end   INTEGER,             -- events (seq, batch_end] are being sent: same batch on retry
    attempts    INTEGER NOT NULL DEFAULT 0,
    first_try   REAL,
    next_try    REAL,
    last_error  TEXT
);
"""

_COLUMNS = "id, sender, recipients, size, created_at, held, meta, claimed_by, lease_until"


@dataclass
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    durable: bool = True
    """False for writes whose loss in a power failure costs a duplicate, never a message
    (see "Which commits fsync" in the module doc)."""


def _enter_wal(conn: sqlite3.Connection) -> None:
    """``journal_mode = WAL``, waiting for other processes: when several workers open a
    new database at once, the switch can answer "locked" at once, without SQLite's
    busy handler (it needs the exclusive lock while the others hold shared ones)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=True, timeout=BUSY_TIMEOUT_MS / 1000
    )
    # Opening (and turning a new database into WAL) may wait for another process; after
    # that the writer waits for the lock itself (see _begin): SQLite's own busy handler
    # sleeps 1, 2, 5, 10 ... 100 ms, which throttles several processes to a crawl.
    _enter_wal(conn)
    # RFC 5321 §6.1: once we said 250 the message must survive a crash: FULL fsyncs the WAL
    # at every commit (NORMAL would not).
    conn.execute("PRAGMA synchronous = FULL")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    else:
        conn.execute("PRAGMA busy_timeout = 0")
    return conn


def _results_writer(
    queue_id: str,
    updates: Sequence[RecipientUpdate],
    worker: str | None,
    release: bool,
    now: float | None,
) -> Callable[[sqlite3.Connection], QueueEntry | None]:
    """The write of :meth:`SqliteQueueStore.record_results` (shared with
    :meth:`~SqliteQueueStore.record_outcome`)."""
    at = time.time() if now is None else now
    check_updates(updates)

    def record(conn: sqlite3.Connection) -> QueueEntry | None:
        found = conn.execute(f"SELECT {_COLUMNS} FROM entries WHERE id = ?", (queue_id,))
        row = found.fetchone()
        if row is None:
            return None
        # The usual end of a message is its last recipient done: then only the
        # recipients are parsed, not the whole entry with its metadata.
        recipients = _recipients(row)
        next_attempt = apply_updates(recipients, updates, at)
        if next_attempt is None:
            conn.execute("DELETE FROM entries WHERE id = ?", (queue_id,))
            conn.execute("DELETE FROM messages WHERE id = ?", (queue_id,))
            return None
        entry = _entry(row, recipients)
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
        return entry

    return record


def _recipients(row: tuple[Any, ...]) -> list[RecipientState]:
    return [RecipientState.from_json(r) for r in json.loads(row[2])]


def _entry(row: tuple[Any, ...], recipients: list[RecipientState] | None = None) -> QueueEntry:
    """The entry of a ``_COLUMNS`` row; ``recipients``: its recipients, already parsed."""
    return QueueEntry(
        id=row[0],
        sender=row[1],
        recipients=_recipients(row) if recipients is None else recipients,
        size=row[3],
        created_at=row[4],
        held=bool(row[5]),
        meta=QueueMeta.from_json(json.loads(row[6])),
        claimed_by=row[7],
        lease_until=row[8],
    )


def _recipients_json(recipients: Sequence[RecipientState]) -> str:
    return json.dumps([r.to_json() for r in recipients], separators=(",", ":"))


def load_webhook_cursor(conn: sqlite3.Connection, name: str) -> WebhookCursor:
    row = conn.execute(
        "SELECT seq, batch_end, attempts, first_try, next_try, last_error"
        " FROM webhook_cursors WHERE name = ?",
        (name,),
    ).fetchone()
    if row is not None:
        return WebhookCursor(*row)
    # A new webhook starts at the end of the log: it gets what happens from now on.
    cursor = WebhookCursor(events.last_seq(conn))
    save_webhook_cursor(conn, name, cursor)
    return cursor


def save_webhook_cursor(conn: sqlite3.Connection, name: str, c: WebhookCursor) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO webhook_cursors"
        " (name, seq, batch_end, attempts, first_try, next_try, last_error)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (name, c.seq, c.batch_end, c.attempts, c.first_try, c.next_try, c.last_error),
    )


def min_webhook_seq(conn: sqlite3.Connection, urls: Sequence[str]) -> int:
    """See :meth:`EventStore.min_webhook_seq`."""
    if not urls:
        return events.last_seq(conn)
    row = conn.execute(
        f"SELECT min(seq) FROM webhook_cursors WHERE name IN ({','.join('?' * len(urls))})",
        tuple(urls),
    ).fetchone()
    return events.last_seq(conn) if row[0] is None else int(row[0])


def _queued_event(conn: sqlite3.Connection, queue_id: str, index: int) -> Event | None:
    row = conn.execute(
        "SELECT data FROM events WHERE queue_id = ? AND event_type = 'queued'"
        " AND json_extract(data, '$.details.rcpt_index') = ? LIMIT 1",
        (queue_id, index),
    ).fetchone()
    return None if row is None else Event.from_row(0, 0.0, row[0])


def _queued_event_for(conn: sqlite3.Connection, message_id: str, recipient: str) -> Event | None:
    row = conn.execute(
        "SELECT data FROM events WHERE event_type = 'queued' AND lower(recipient) = lower(?)"
        " AND json_extract(data, '$.message_id') = ? LIMIT 1",
        (recipient, message_id),
    ).fetchone()
    return None if row is None else Event.from_row(0, 0.0, row[0])


class SqliteQueueStore(QueueStore, EventStore):
    """The embedded queue (``DATA_DIR/queue.sqlite3``)."""

    supports_handoff = True
    checks_suppressions_at_enqueue = True

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.path = Path(data_dir) / DB_NAME
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="queue-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="queue-reader")
        self._local = threading.local()
        self._ops: list[_Op] = []
        self._later: list[_Op] = []
        """Delivery reports waiting to ride in the next batch (see the module doc)."""
        self._later_timer: asyncio.TimerHandle | None = None
        self._batch: asyncio.Future[None] | None = None
        """Done when the batch on the writer thread is back (None: no batch there)."""
        self._batch_soon = False
        self._closed = False
        self.batches = 0
        """Write transactions committed (operations / batches = the group-commit factor)."""
        self.synced_batches = 0
        """Of those, the ones committed with an fsync (``synchronous=FULL``)."""

    @classmethod
    async def open(cls, data_dir: Path) -> SqliteQueueStore:
        """Create the data directory and the schema if needed, and open the store."""
        store = cls(data_dir)
        store.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(store._writer, store._run, store._init_schema, False)
        return store

    # -- threads -----------------------------------------------------------------------

    def _conn(self, readonly: bool) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, readonly=readonly)
            self._local.conn = conn
        return conn

    async def _write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        durable: bool = True,
        later: bool = False,
    ) -> T:
        """Run ``fn`` in the next write transaction (group commit: see the module doc).
        ``later``: no batch of its own for up to :data:`LATER_SECONDS` (a report that
        may share the next message's commit; only with ``durable=False``).

        A caller that goes away (a cancelled session) cancels only its own wait: the
        batch, on the writer thread, goes on for the others."""
        if self._closed:
            raise QueueError("the queue is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if later and not durable:
            self._later.append(_Op(fn, future, durable))
            if self._later_timer is None:
                self._later_timer = loop.call_later(LATER_SECONDS, self._flush_later)
        else:
            self._ops.append(_Op(fn, future, durable))
            if not self._batch_soon:
                # at the end of this turn of the loop: what other sessions write in the
                # same turn joins the batch
                self._batch_soon = True
                loop.call_soon(self._start_batch)
        return await future

    def _flush_later(self) -> None:
        """Nothing came to share a commit with: the waiting reports go now."""
        self._later_timer = None
        if self._later:
            self._ops += self._later
            self._later = []
            self._start_batch()

    def _start_batch(self) -> None:
        """Hand every pending operation to the writer thread as one batch, unless a
        batch is there already (then they make the next one, when it is back).

        No task and no executor future in between: the thread posts its results
        straight back to the event loop (:meth:`_batch_done`), which wakes the waiting
        sessions. With one session this path is part of every message's wait for its
        ``250``, and each hop through the event loop costs a turn of it."""
        self._batch_soon = False
        if self._batch is not None or not self._ops:
            return
        batch, self._ops = self._ops + self._later, []
        if self._later:
            self._later = []
            if self._later_timer is not None:
                self._later_timer.cancel()
                self._later_timer = None
        loop = asyncio.get_running_loop()
        self._batch = loop.create_future()
        self._writer.submit(self._run_batch_and_report, batch, loop)

    def _run_batch_and_report(self, batch: list[_Op], loop: asyncio.AbstractEventLoop) -> None:
        """Writer thread: the batch's transaction, then its results to the event loop."""
        try:
            results: list[tuple[bool, Any]] | BaseException = self._run_batch(batch)
        except BaseException as exc:  # reported on the loop: never lost in the thread
            results = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(self._batch_done, batch, results)

    def _batch_done(
        self, batch: list[_Op], results: list[tuple[bool, Any]] | BaseException
    ) -> None:
        """Event loop: wake each operation's caller, then send what piled up meanwhile."""
        if isinstance(results, BaseException):
            exc = results
            error = exc if isinstance(exc, QueueError) else QueueError(str(exc))
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(error)
        else:
            self.batches += 1
            for op, (ok, value) in zip(batch, results, strict=True):
                if op.future.done():  # its caller went away
                    continue
                if ok:
                    op.future.set_result(value)
                else:
                    op.future.set_exception(value)
        done, self._batch = self._batch, None
        if done is not None and not done.done():
            done.set_result(None)
        self._start_batch()

    def _run_batch(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        """One transaction for every operation of the batch, each in a savepoint so one
        failing operation does not undo the others; one COMMIT (one fsync) for all."""
        conn = self._conn(False)
        results: list[tuple[bool, Any]] = []
        mode = "FULL" if any(op.durable for op in batch) else "NORMAL"
        if getattr(self._local, "synchronous", "FULL") != mode:
            conn.execute(f"PRAGMA synchronous = {mode}")
            self._local.synchronous = mode
        self._begin(conn)
        # A lone operation (one session's enqueue, a claim) needs no savepoint: if it
        # fails, rolling back the whole transaction undoes exactly it.
        alone = len(batch) == 1
        try:
            for op in batch:
                if not alone:
                    conn.execute("SAVEPOINT op")
                try:
                    value = op.fn(conn)
                except Exception as exc:
                    if alone:
                        conn.execute("ROLLBACK")
                    else:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                    if isinstance(exc, sqlite3.Error):
                        exc = QueueError(f"queue database {self.path}: {exc}")
                    results.append((False, exc))
                    continue
                if not alone:
                    conn.execute("RELEASE op")
                results.append((True, value))
            if conn.in_transaction:  # not after a lone operation's rollback
                conn.execute("COMMIT")
                if mode == "FULL":
                    self.synced_batches += 1
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise QueueError(f"queue database {self.path}: {exc}") from exc
            raise
        return results

    def _begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, retrying with sub-millisecond sleeps while another process
        holds the write lock, for up to ``BUSY_TIMEOUT_MS``."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.0002
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise QueueError(f"queue database {self.path} stayed locked") from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

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
        self._begin(conn)
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            conn.execute("ROLLBACK")
            raise QueueError(
                f"{self.path} has queue schema {version}, newer than this mailwright "
                f"({SCHEMA_VERSION}): upgrade mailwright"
            )
        for statement in (_SCHEMA + events.SCHEMA_SQL + suppressions.SCHEMA_SQL + _CURSORS).split(
            ";"
        ):
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
        data: MessageData,
        *,
        meta: QueueMeta | None = None,
        queue_id: str | None = None,
    ) -> str:
        return await self.enqueue_with(
            sender, recipients, data, meta=meta, queue_id=queue_id, also=None
        )

    async def enqueue_with(
        self,
        sender: str,
        recipients: Sequence[str],
        data: MessageData,
        *,
        meta: QueueMeta | None = None,
        queue_id: str | None = None,
        also: Callable[[sqlite3.Connection, str], None] | None,
    ) -> str:
        """:meth:`enqueue`, and ``also(conn, queue_id)`` in the same transaction (the
        ``queued`` events: the log never shows a delivery before its queueing, and never
        misses the queueing of a stored message). With a :attr:`handoff` the entry is
        inserted leased to the agent and handed to it after the commit."""
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        now = time.time()
        # a spooled message is not handed over: its spool file goes when the session ends
        handoff = self._handoff_for(len(data), meta, now) if isinstance(data, bytes) else None
        insert = functools.partial(
            self._insert,
            sender=sender,
            recipients=list(recipients),
            data=data,
            meta=meta or QueueMeta(),
            queue_id=queue_id or new_queue_id(),  # made here: new_queue_id is not thread-safe
            now=now,
            claim=None if handoff is None else (handoff.worker, now + handoff.lease_seconds),
        )

        def both(conn: sqlite3.Connection) -> str:
            stored = insert(conn)
            if also is not None:
                also(conn, stored)
            return stored

        stored = await self._write(both)
        if handoff is None or not isinstance(data, bytes):
            self.wakeup()
        else:
            await self._hand_over(handoff, stored, sender, recipients, data, meta, now)
        return stored

    def _insert(
        self,
        conn: sqlite3.Connection,
        *,
        sender: str,
        recipients: list[str],
        data: MessageData,
        meta: QueueMeta,
        queue_id: str,
        now: float,
        claim: tuple[str, float] | None = None,
    ) -> str:
        """Insert the entry and its message; ``claim``: (worker, lease end) to insert it
        already leased (claim at enqueue)."""
        due = max(now, meta.not_before or now)
        claimed_by, lease_until = claim if claim is not None else (None, None)
        rcpts = _recipients_json([RecipientState(a, next_attempt=due) for a in recipients])
        meta_json = json.dumps(meta.to_json(), separators=(",", ":"))
        while True:
            try:
                conn.execute(
                    "INSERT INTO entries (id, sender, recipients, size, created_at,"
                    " next_attempt, meta, claimed_by, lease_until)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        queue_id,
                        sender,
                        rcpts,
                        len(data),
                        now,
                        due,
                        meta_json,
                        claimed_by,
                        lease_until,
                    ),
                )
                break
            except sqlite3.IntegrityError:  # same microsecond and same 20 random bits
                queue_id = queue_id[:10] + _random_suffix()
        if isinstance(data, SpooledMessage):
            # A big message goes in a piece at a time (incremental blob I/O) from its spool
            # file, in the same transaction: durable with the entry, never whole in memory.
            cur = conn.execute(
                "INSERT INTO messages (id, data) VALUES (?, zeroblob(?))", (queue_id, len(data))
            )
            assert cur.lastrowid is not None
            written = 0
            with conn.blobopen("messages", "data", cur.lastrowid) as blob:
                for piece in data.chunks():
                    blob.write(piece)  # ValueError past the end
                    written += len(piece)
            if written != len(data):  # the spool file changed under us: never store zeros
                raise QueueError(f"spool file {data.path.name}: {written} bytes, not {len(data)}")
        else:
            conn.execute("INSERT INTO messages (id, data) VALUES (?, ?)", (queue_id, data))
        return queue_id

    # -- delivery ------------------------------------------------------------------------

    async def claim_due(
        self, worker: str, now: float | None = None, limit: int = 100, lease_seconds: float = 600
    ) -> list[QueueEntry]:
        at = time.time() if now is None else now

        def claim(conn: sqlite3.Connection) -> list[QueueEntry]:
            rows = conn.execute(
                f"UPDATE entries SET claimed_by = ?, lease_until = ? WHERE id IN ("
                " SELECT id FROM entries WHERE held = 0 AND next_attempt <= ?"
                " AND (lease_until IS NULL OR lease_until <= ?)"
                " ORDER BY next_attempt, id LIMIT ?)"
                f" RETURNING {_COLUMNS}",
                (worker, at + lease_seconds, at, at, limit),
            ).fetchall()
            return sorted((_entry(r) for r in rows), key=lambda e: e.id)

        return await self._write(claim, durable=False)

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

        return await self._write(extend, durable=False)

    async def release_lease(self, queue_id: str, worker: str) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE entries SET claimed_by = NULL, lease_until = NULL"
                " WHERE id = ? AND claimed_by = ?",
                (queue_id, worker),
            ),
            durable=False,
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

    async def read_message_part(self, queue_id: str, offset: int, length: int) -> bytes:
        def read(conn: sqlite3.Connection) -> bytes:
            row = conn.execute("SELECT rowid FROM messages WHERE id = ?", (queue_id,)).fetchone()
            if row is None:
                raise KeyError(queue_id)
            with conn.blobopen("messages", "data", row[0], readonly=True) as blob:
                blob.seek(min(offset, len(blob)))
                return blob.read(length)

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
        record = _results_writer(queue_id, updates, worker, release, now)
        return await self._write(record, durable=False, later=True)

    async def record_outcome(
        self,
        queue_id: str,
        updates: Sequence[RecipientUpdate],
        events_: Sequence[Event],
        policy: suppressions.SuppressionPolicy,
        *,
        worker: str | None = None,
        now: float | None = None,
    ) -> list[suppressions.Suppression]:
        record = _results_writer(queue_id, updates, worker, True, now)
        actions = suppressions.actions_for(events_, policy)

        def write(conn: sqlite3.Connection) -> list[suppressions.Suppression]:
            events.insert(conn, events_)
            added = suppressions.apply(conn, actions)
            record(conn)
            return added

        return await self._write(write, durable=False, later=True)

    async def update_meta(self, queue_id: str, meta: QueueMeta) -> None:
        meta_json = json.dumps(meta.to_json(), separators=(",", ":"))

        def update(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE entries SET meta = ? WHERE id = ?", (meta_json, queue_id))

        await self._write(update, durable=False)

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

    async def delete(self, queue_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            count = conn.execute("DELETE FROM entries WHERE id = ?", (queue_id,)).rowcount
            conn.execute("DELETE FROM messages WHERE id = ?", (queue_id,))
            return count == 1

        return await self._write(delete)

    async def _update_one(self, sql: str, queue_id: str) -> bool:
        return await self._write(lambda conn: conn.execute(sql, (queue_id,)).rowcount == 1)

    async def _make_due(self, queue_id: str | None, *, unhold: bool) -> int:
        now = time.time()

        def due(conn: sqlite3.Connection) -> int:
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
                    (_recipients_json(rcpts), next_pending_attempt(rcpts), entry_id),
                )
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

    async def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside the next group commit (for the event log, the suppression
        list and webhook cursors, which share this database and its commits)."""
        return await self._write(fn)

    async def query(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the read-only connection."""
        return await self._read(fn)

    # -- events, suppressions, webhook cursors (EventStore) ---------------------------------

    async def record_events(
        self,
        events_: Sequence[Event],
        policy: suppressions.SuppressionPolicy,
        *,
        claim: idempotency.Claim | None = None,
        queue_id: str = "",
        durable: bool = True,
    ) -> list[suppressions.Suppression]:
        actions = suppressions.actions_for(events_, policy)

        def write(conn: sqlite3.Connection) -> list[suppressions.Suppression]:
            events.insert(conn, events_)
            if claim is not None:
                idempotency.remember(conn, claim, queue_id, time.time())
            return suppressions.apply(conn, actions)

        return await self._write(write, durable=durable, later=not durable)

    async def enqueue_with_events(
        self,
        sender: str,
        recipients: Sequence[str],
        data: MessageData,
        *,
        meta: QueueMeta,
        queue_id: str,
        events_for: Callable[[str], list[Event]],
        claim: idempotency.Claim | None = None,
        refuse_suppressed: Sequence[str] = (),
    ) -> str:
        now = time.time()

        def also(conn: sqlite3.Connection, stored: str) -> None:
            if refuse_suppressed:
                found = suppressions.check(conn, refuse_suppressed, now=now)
                if found:
                    raise suppressions.RecipientsSuppressed(found)
            events.insert(conn, events_for(stored))
            if claim is not None:
                idempotency.remember(conn, claim, stored, now)

        return await self.enqueue_with(
            sender, recipients, data, meta=meta, queue_id=queue_id, also=also
        )

    async def enqueue_all_with_events(self, messages: Sequence[NewMessage]) -> list[str]:
        now = time.time()
        insert = self._insert

        def write(conn: sqlite3.Connection) -> list[str]:
            stored: list[str] = []
            for m in messages:
                queue_id = m.queue_id
                if m.recipients:
                    queue_id = insert(
                        conn,
                        sender=m.sender,
                        recipients=list(m.recipients),
                        data=m.data,
                        meta=m.meta,
                        queue_id=m.queue_id,
                        now=now,
                    )
                events.insert(conn, m.events_for(queue_id))
                stored.append(queue_id)
            return stored

        ids = await self._write(write)
        self.wakeup()
        return ids

    async def find_idempotency(
        self, api_key: str, key: str, now: float
    ) -> idempotency.Stored | None:
        return await self._read(lambda conn: idempotency.find(conn, api_key, key, now))

    async def read_events(
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
    ) -> list[Event]:
        return await self._read(
            lambda conn: events.read(
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

    async def latest_events(self, limit: int, types: Sequence[str] | None = None) -> list[Event]:
        return await self._read(lambda conn: events.latest(conn, limit, types))

    async def last_event_seq(self) -> int:
        return await self._read(events.last_seq)

    async def prune_events(self, before: float, keep_after_seq: int) -> int:
        return await self._write(
            lambda conn: events.prune(conn, before=before, keep_after_seq=keep_after_seq)
        )

    async def prune_soft_bounces(self, before: float) -> int:
        return await self._write(lambda conn: suppressions.prune_soft_bounces(conn, before))

    async def queued_event(self, queue_id: str, rcpt_index: int) -> Event | None:
        return await self._read(lambda conn: _queued_event(conn, queue_id, rcpt_index))

    async def queued_event_for(self, message_id: str, recipient: str) -> Event | None:
        return await self._read(lambda conn: _queued_event_for(conn, message_id, recipient))

    async def check_suppressions(
        self, addresses: Iterable[str], *, now: float
    ) -> dict[str, suppressions.Suppression]:
        wanted = list(addresses)
        return await self._read(lambda conn: suppressions.check(conn, wanted, now=now))

    async def add_suppression(
        self,
        address: str,
        reason: suppressions.SuppressionReason,
        *,
        now: float,
        detail: str = "",
        expires_at: float | None = None,
    ) -> suppressions.Suppression:
        return await self._write(
            lambda conn: suppressions.add(
                conn, address, reason, now=now, detail=detail, expires_at=expires_at
            )
        )

    async def remove_suppression(self, address: str) -> bool:
        return await self._write(lambda conn: suppressions.remove(conn, address))

    async def list_suppressions(
        self, *, now: float, include_expired: bool = False
    ) -> list[suppressions.Suppression]:
        return await self._read(
            lambda conn: suppressions.list_all(conn, now=now, include_expired=include_expired)
        )

    async def load_webhook_cursor(self, name: str) -> WebhookCursor:
        return await self._write(lambda conn: load_webhook_cursor(conn, name))

    async def save_webhook_cursor(self, name: str, cursor: WebhookCursor) -> None:
        await self._write(lambda conn: save_webhook_cursor(conn, name, cursor))

    async def min_webhook_seq(self, urls: Sequence[str]) -> int:
        return await self._read(lambda conn: min_webhook_seq(conn, urls))

    async def shared_secret(self, name: str, proposed: bytes) -> bytes:
        """One node: its own secret (the file in its data directory)."""
        return proposed

    async def take_webhook_turn(
        self, name: str, holder: str, seconds: float, *, now: float
    ) -> bool:
        """Always: one node, and only worker 0 runs webhooks."""
        return True

    async def close(self) -> None:
        if self._closed:
            return
        if self._later_timer is not None:
            self._later_timer.cancel()
        self._flush_later()
        self._start_batch()
        while self._batch is not None:  # every pending operation committed or failed
            await self._batch
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


def _random_suffix() -> str:
    return new_queue_id(now=0.0)[10:]


def release_all_leases(path: Path) -> int:
    """Forget every lease in the database at ``path`` (blocking; no server may use it).

    For ``mailwright restore``: the workers that held the leases belong to the server the
    backup was taken from; the restored server delivers those messages at once instead of
    when the leases run out. A message whose delivery was in flight at backup time is sent
    again: a possible duplicate, never a loss.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        cursor = conn.execute(
            "UPDATE entries SET claimed_by = NULL, lease_until = NULL WHERE claimed_by IS NOT NULL"
        )
        return cursor.rowcount
    finally:
        conn.close()
