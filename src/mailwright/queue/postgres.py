"""The shared queue store: one PostgreSQL database for several ``mailwright serve`` nodes.

Any node accepts, any node delivers, and a dead node's work is taken over by the others
when its leases run out. The contract is :mod:`.store`'s; what differs from the SQLite
store is how it is kept:

Durability: every connection runs with ``synchronous_commit = on`` (set by us, whatever
the server, database or role default), so a commit returns only after the WAL record is
flushed on the server; ``enqueue`` returns (and the server says ``250``) after that.

Group commit: as in the SQLite store, writes are queued as operations and one flusher
task runs everything pending in one transaction on one pooled connection; while it
commits, new operations gather for the next one. Enqueues of a batch become one
multi-row ``INSERT`` of entries and one of bodies (two round trips, however many
messages), the other operations run one after the other in the same transaction. If the
batch fails for a reason other than a lost connection (a deadlock with another node's
management command, a bug in one operation), each operation is run again in a
transaction of its own, so one bad operation never fails the others.

Claims: ``FOR UPDATE SKIP LOCKED`` picks due rows no other transaction is claiming, and
the lease (``claimed_by`` = the worker's ``HOST:PID``, ``lease_until``) keeps them ours
after the commit; an expired lease makes the row claimable by any node again. The
``next_attempt`` column says when a row can next be claimed: the earliest next attempt
of a pending recipient or, while leased, the end of the lease. So a claim moves leased
rows out of the due range of the index (claims on many nodes do not step over everything
in flight), and a dead worker's entries fall due exactly when its lease runs out. Times are
the nodes' clocks (the contract passes ``now``): keep them in sync (NTP); leases last
many minutes, so a second of skew does not matter.

Wake-up: writes that make mail due (enqueue, retry, release, a lease given back) send
``NOTIFY mailwright_queue`` in their transaction; every store LISTENs on a connection of
its own and wakes its delivery agent, so a message queued on one node is picked up at
once by an idle agent on any node. The agent still polls (``next_due`` and a timeout), so
a lost notification (the listener reconnecting) only delays, never loses.

The database going away: an SMTP session's enqueue fails at once (``451 4.3.0``, the
client tries again); the pool reconnects by itself. The delivery agent's reports
(results, leases given back) are tried again for a while instead: a lost result would
keep the message leased until the lease runs out (then it is delivered again).

Schema: :data:`MIGRATIONS` is a list of numbered steps; ``mailwright_schema`` holds the
number reached. :func:`migrate` runs the missing steps under an advisory lock (nodes
starting together migrate once); a store refuses to open a database that is older (run
``mailwright db migrate``) or newer (upgrade mailwright) than this code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from .store import (
    QueueEntry,
    QueueError,
    QueueMeta,
    QueueStore,
    RecipientState,
    RecipientUpdate,
    SchemaMismatch,
    new_queue_id,
)

T = TypeVar("T")

CHANNEL = "mailwright_queue"
"""The NOTIFY channel: 'there may be due mail'."""
CONNECT_TIMEOUT = 5
"""Seconds to reach the server (a dead server must turn into 451 soon, not a hang)."""
POOL_TIMEOUT = 5.0
"""Seconds an operation waits for a pooled connection before it fails (451 4.3.0)."""
POOL_SIZE = 6
"""Connections per process: the writer uses one at a time, the rest serve reads."""
OUTAGE_PATIENCE = 120.0
"""Seconds the delivery agent's reports (results, leases given back) are retried while the
database is unreachable: a result that is not recorded keeps the message leased until
the lease runs out, then it is delivered again."""
MIGRATION_LOCK = 0x6D61_696C_7772  # pg_advisory_xact_lock key: 'mailwr'

_QUEUE_V1 = """
CREATE TABLE queue_entries (
    id           text PRIMARY KEY,
    sender       text NOT NULL,
    recipients   jsonb NOT NULL,              -- list of RecipientState
    size         integer NOT NULL,
    created_at   double precision NOT NULL,
    held         boolean NOT NULL DEFAULT false,
    next_attempt double precision,            -- claimable from: see the module docstring
    claimed_by   text,                        -- the lease: HOST:PID of the worker ...
    lease_until  double precision,            -- ... until this Unix time
    meta         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX queue_entries_due ON queue_entries (next_attempt, id) WHERE NOT held;
CREATE INDEX queue_entries_leases ON queue_entries (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE TABLE queue_messages (
    id   text PRIMARY KEY REFERENCES queue_entries (id) ON DELETE CASCADE,
    data bytea NOT NULL
);
ALTER TABLE queue_messages ALTER COLUMN data SET STORAGE EXTERNAL;
"""

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "the queue: entries with their leases, and message bodies", _QUEUE_V1),
)
"""(version, what it adds, SQL). Append only: a released step is never edited. What the
SQLite store keeps besides the queue (events, suppressions, webhook cursors, DMARC
observations, idempotency keys) comes as further steps, one per feature, each creating
its own tables; ``mailwright db migrate`` and ``serve`` apply whatever is missing."""
SCHEMA_VERSION = MIGRATIONS[-1][0]

_MIN_PENDING = (
    "(SELECT min((r->>'next_attempt')::float8) FROM jsonb_array_elements(recipients) AS r"
    " WHERE r->>'status' = 'pending')"
)
"""The earliest next attempt of a pending recipient (NULL: none pending), in SQL."""

_COLUMNS = "id, sender, recipients, size, created_at, held, meta, claimed_by, lease_until"


class QueueUnavailable(QueueError):
    """The database could not be reached (or the connection broke): worth trying again."""


def describe(conninfo: str) -> str:
    """``user@host:port/dbname`` for messages: never the password."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "(unparsable database URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host') or 'localhost'}{port}/{parts.get('dbname', '')}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


async def connect_database(conninfo: str) -> AsyncConnection[Any]:
    """One autocommit connection; :class:`QueueError` (one line) when it cannot be made."""
    try:
        return await AsyncConnection.connect(
            conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT
        )
    except psycopg.Error as exc:
        raise QueueError(f"cannot reach the queue database {describe(conninfo)}: "
                         f"{_first_line(exc)}") from None  # fmt: skip


async def _version(conn: AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT to_regclass('mailwright_schema') IS NOT NULL")
    exists = await cur.fetchone()
    if not exists or not exists[0]:
        return 0
    cur = await conn.execute("SELECT max(version) FROM mailwright_schema")
    row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def schema_version(conninfo: str) -> int:
    """The schema version of the database (0: never migrated)."""
    async with await connect_database(conninfo) as conn:
        try:
            return await _version(conn)
        except psycopg.Error as exc:
            raise QueueError(f"queue database {describe(conninfo)}: {_first_line(exc)}") from None


async def migrate(conninfo: str) -> tuple[int, int]:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns (before, after). Idempotent,
    and safe when several nodes run it at once (an advisory lock orders them)."""
    async with await connect_database(conninfo) as conn:
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS mailwright_schema ("
                    " version integer PRIMARY KEY, description text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                before = await _version(conn)
                _refuse_newer(before, conninfo)
                for version, description, sql in MIGRATIONS:
                    if version <= before:
                        continue
                    await conn.execute(sql.encode())
                    await conn.execute(
                        "INSERT INTO mailwright_schema (version, description) VALUES (%s, %s)",
                        (version, description),
                    )
        except psycopg.Error as exc:
            raise QueueError(f"queue database {describe(conninfo)}: {_first_line(exc)}") from None
    return before, SCHEMA_VERSION


def _refuse_newer(version: int, conninfo: str) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"the queue database {describe(conninfo)} has schema {version}, newer than "
            f"this mailwright's {SCHEMA_VERSION}",
            "upgrade mailwright on this node",
        )


def _entry(row: Sequence[Any]) -> QueueEntry:
    return QueueEntry(
        id=row[0],
        sender=row[1],
        recipients=[RecipientState.from_json(r) for r in row[2]],
        size=row[3],
        created_at=row[4],
        held=bool(row[5]),
        meta=QueueMeta.from_json(row[6]),
        claimed_by=row[7],
        lease_until=row[8],
    )


def _recipients_json(recipients: Sequence[RecipientState]) -> str:
    return json.dumps([r.to_json() for r in recipients], separators=(",", ":"))


def _min_pending(recipients: Sequence[RecipientState]) -> float | None:
    times = [r.next_attempt for r in recipients if r.status == "pending"]
    return min(times) if times else None


@dataclass
class _Insert:
    queue_id: str
    sender: str
    recipients: str
    data: bytes
    meta: str
    created_at: float


@dataclass
class _Op:
    future: asyncio.Future[Any]
    run: Callable[[AsyncConnection[Any]], Awaitable[Any]] | None = None
    insert: _Insert | None = None
    notify: bool = False


def _connection_lost(exc: BaseException) -> bool:
    """Errors that would fail each operation again: no point in retrying them one by one."""
    if isinstance(exc, psycopg.errors.TransactionRollback):  # deadlock, serialization
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class PostgresQueueStore(QueueStore):
    """The queue in a PostgreSQL database shared by several nodes."""

    def __init__(self, conninfo: str, pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
        super().__init__()
        self.conninfo = conninfo
        self.where = describe(conninfo)
        self._pool = pool
        self._ops: list[_Op] = []
        self._flusher: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while the LISTEN connection is up (tests wait for it)."""
        self._closed = False
        self.batches = 0
        """Write transactions committed (operations / batches = the group-commit factor)."""

    @classmethod
    async def open(
        cls, conninfo: str, *, migrate_schema: bool = False, pool_size: int = POOL_SIZE
    ) -> PostgresQueueStore:
        """Connect, check the schema (or bring it up to date), start listening.

        Raises :class:`QueueError` when the server cannot be reached and
        :class:`SchemaMismatch` when the schema is not this version's."""
        if migrate_schema:
            await migrate(conninfo)
        version = await schema_version(conninfo)
        _refuse_newer(version, conninfo)
        if version < SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the queue database {describe(conninfo)} has schema {version}, older than "
                f"this mailwright's {SCHEMA_VERSION}",
                "run 'mailwright db migrate'",
            )

        async def configure(conn: AsyncConnection[Any]) -> None:
            # RFC 5321 §6.1: 250 only for what survives a crash: never an asynchronous
            # commit, whatever the server's or the role's default says.
            await conn.execute("SET synchronous_commit = on")

        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=max(2, pool_size),
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            configure=configure,
            check=AsyncConnectionPool.check_connection,
            timeout=POOL_TIMEOUT,
            reconnect_timeout=3600.0,
            open=False,
            name="mailwright-queue",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT * 2)
        except psycopg.Error as exc:
            await pool.close()
            raise QueueError(
                f"cannot reach the queue database {describe(conninfo)}: {_first_line(exc)}"
            ) from None
        store = cls(conninfo, pool)
        try:
            conn = await store._listen_connection()
        except psycopg.Error as exc:
            await pool.close()
            raise QueueError(
                f"cannot reach the queue database {describe(conninfo)}: {_first_line(exc)}"
            ) from None
        store._listener = asyncio.create_task(store._listen(conn))
        return store

    # -- notifications ---------------------------------------------------------------------

    async def _listen_connection(self) -> AsyncConnection[Any]:
        conn = await AsyncConnection.connect(
            self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT
        )
        await conn.execute(f"LISTEN {CHANNEL}")
        self.listening.set()
        return conn

    async def _listen(self, conn: AsyncConnection[Any] | None) -> None:
        """Wake the agent on every NOTIFY from other nodes (and processes); reconnect
        when the server goes away, and wake the agent then: a notification may have been
        lost in between."""
        pause = 0.2
        while not self._closed:
            try:
                if conn is None:
                    conn = await self._listen_connection()
                    self.wakeup()
                    pause = 0.2
                async with conn:
                    async for _ in conn.notifies():
                        self.wakeup()
            except psycopg.Error:
                pass
            conn = None
            self.listening.clear()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    # -- group commit ------------------------------------------------------------------------

    async def _submit(self, op: _Op) -> Any:
        if self._closed:
            raise QueueError("the queue is closed")
        self._ops.append(op)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # shield: a session that goes away must not cancel the others' batch
        return await asyncio.shield(op.future)

    async def _write(
        self,
        run: Callable[[AsyncConnection[Any]], Awaitable[T]],
        *,
        notify: bool = False,
        patient: bool = False,
    ) -> T:
        """Run ``run`` in the next batch. ``patient``: the delivery agent's reports,
        tried again for up to :data:`OUTAGE_PATIENCE` while the database is away (they
        are safe to repeat; an SMTP session, in contrast, gets its 451 at once)."""
        deadline = time.monotonic() + OUTAGE_PATIENCE
        pause = 0.2
        while True:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            try:
                result: T = await self._submit(_Op(future, run=run, notify=notify))
                return result
            except QueueUnavailable:
                if not patient or self._closed or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _flush(self) -> None:
        while self._ops:
            batch, self._ops = self._ops, []
            try:
                results = await self._run_batch(batch)
            except BaseException as exc:
                if len(batch) > 1 and isinstance(exc, Exception) and not _connection_lost(exc):
                    results = [await self._run_alone(op) for op in batch]
                else:
                    error = self._error(exc)
                    for op in batch:
                        if not op.future.done():
                            op.future.set_exception(error)
                    if not isinstance(exc, Exception):
                        raise
                    continue
            for op, (ok, value) in zip(batch, results, strict=True):
                if op.future.done():
                    continue
                if ok:
                    op.future.set_result(value)
                else:
                    op.future.set_exception(value)

    async def _run_alone(self, op: _Op) -> tuple[bool, Any]:
        try:
            [result] = await self._run_batch([op])
        except Exception as exc:
            return False, self._error(exc)
        return result

    def _error(self, exc: BaseException) -> BaseException:
        if _connection_lost(exc):
            return QueueUnavailable(f"queue database {self.where}: {_first_line(exc)}")
        if isinstance(exc, psycopg.Error):
            return QueueError(f"queue database {self.where}: {_first_line(exc)}")
        return exc

    async def _run_batch(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        """One transaction for the whole batch; one commit (one WAL flush) for all."""
        results: dict[int, tuple[bool, Any]] = {}
        async with self._pool.connection() as conn, conn.transaction():
            inserts = [(i, op.insert) for i, op in enumerate(batch) if op.insert is not None]
            if inserts:
                stored = await self._insert_many(conn, [insert for _, insert in inserts])
                for (i, _), queue_id in zip(inserts, stored, strict=True):
                    results[i] = (True, queue_id)
            for i, op in enumerate(batch):
                if op.run is not None:
                    results[i] = (True, await op.run(conn))
            if any(op.notify for op in batch):
                await conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        self.batches += 1
        return [results[i] for i in range(len(batch))]

    async def _insert_many(self, conn: AsyncConnection[Any], inserts: list[_Insert]) -> list[str]:
        """Every enqueue of the batch in two statements; an ID already taken (same
        microsecond, same 20 random bits) gets a new random part and is tried again."""
        ids = [insert.queue_id for insert in inserts]
        todo = list(range(len(inserts)))
        while todo:
            cur = await conn.execute(
                "INSERT INTO queue_entries (id, sender, recipients, size, created_at,"
                " next_attempt, meta)"
                " SELECT id, sender, recipients::jsonb, size, created_at, created_at, meta::jsonb"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[],"
                " %s::float8[]) AS t(id, sender, recipients, size, meta, created_at)"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                (
                    [ids[i] for i in todo],
                    [inserts[i].sender for i in todo],
                    [inserts[i].recipients for i in todo],
                    [len(inserts[i].data) for i in todo],
                    [inserts[i].meta for i in todo],
                    [inserts[i].created_at for i in todo],
                ),
            )
            stored = {row[0] for row in await cur.fetchall()}
            done = [i for i in todo if ids[i] in stored]
            await conn.execute(
                "INSERT INTO queue_messages (id, data)"
                " SELECT * FROM unnest(%s::text[], %s::bytea[])",
                ([ids[i] for i in done], [inserts[i].data for i in done]),
                binary=True,
            )
            todo = [i for i in todo if ids[i] not in stored]
            for i in todo:
                ids[i] = ids[i][:10] + new_queue_id(now=0.0)[10:]
        return ids

    # -- enqueue -----------------------------------------------------------------------------

    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        meta: QueueMeta | None = None,
        queue_id: str | None = None,
    ) -> str:
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        now = time.time()
        insert = _Insert(
            queue_id=queue_id or new_queue_id(),
            sender=sender,
            recipients=_recipients_json([RecipientState(a, next_attempt=now) for a in recipients]),
            data=bytes(data),
            meta=json.dumps((meta or QueueMeta()).to_json(), separators=(",", ":")),
            created_at=now,
        )
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        stored: str = await self._submit(_Op(future, insert=insert, notify=True))
        self.wakeup()
        return stored

    # -- delivery ----------------------------------------------------------------------------

    async def claim_due(
        self, worker: str, now: float | None = None, limit: int = 100, lease_seconds: float = 600
    ) -> list[QueueEntry]:
        at = time.time() if now is None else now

        async def claim(conn: AsyncConnection[Any]) -> list[QueueEntry]:
            cur = await conn.execute(
                "UPDATE queue_entries SET claimed_by = %s, lease_until = %s,"
                " next_attempt = %s WHERE id IN ("
                " SELECT id FROM queue_entries WHERE NOT held AND next_attempt <= %s"
                " AND (lease_until IS NULL OR lease_until <= %s)"
                " ORDER BY next_attempt, id LIMIT %s FOR UPDATE SKIP LOCKED)"
                f" RETURNING {_COLUMNS}",
                (worker, at + lease_seconds, at + lease_seconds, at, at, limit),
            )
            return sorted((_entry(r) for r in await cur.fetchall()), key=lambda e: e.id)

        return await self._write(claim)

    async def extend_lease(
        self, queue_id: str, worker: str, lease_seconds: float, now: float | None = None
    ) -> bool:
        at = time.time() if now is None else now

        async def extend(conn: AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "UPDATE queue_entries SET lease_until = %s,"
                f" next_attempt = greatest(%s, {_MIN_PENDING})"
                " WHERE id = %s AND claimed_by = %s",
                (at + lease_seconds, at + lease_seconds, queue_id, worker),
            )
            return cur.rowcount == 1

        return await self._write(extend)

    async def release_lease(self, queue_id: str, worker: str) -> None:
        async def release(conn: AsyncConnection[Any]) -> None:
            await conn.execute(
                "UPDATE queue_entries SET claimed_by = NULL, lease_until = NULL,"
                f" next_attempt = {_MIN_PENDING} WHERE id = %s AND claimed_by = %s",
                (queue_id, worker),
            )

        await self._write(release, notify=True, patient=True)

    async def lease_holders(self) -> dict[str, int]:
        rows = await self._read(
            "SELECT claimed_by, count(*) FROM queue_entries WHERE claimed_by IS NOT NULL"
            " GROUP BY claimed_by",
            (),
        )
        return {str(worker): int(count) for worker, count in rows}

    async def release_worker(self, worker: str) -> int:
        async def release(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute(
                "UPDATE queue_entries SET claimed_by = NULL, lease_until = NULL,"
                f" next_attempt = {_MIN_PENDING} WHERE claimed_by = %s",
                (worker,),
            )
            return cur.rowcount

        changed = await self._write(release, notify=True, patient=True)
        if changed:
            self.wakeup()
        return changed

    async def read_message(self, queue_id: str) -> bytes:
        rows = await self._read("SELECT data FROM queue_messages WHERE id = %s", (queue_id,))
        if not rows:
            raise KeyError(queue_id)
        return bytes(rows[0][0])

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

        final = [u.recipient for u in updates if u.kind != "deferred"]
        all_final = len(final) == len(updates) > 0

        async def record(conn: AsyncConnection[Any]) -> QueueEntry | None:
            if all_final:
                # The usual end of a message: every pending recipient done. One round
                # trip instead of read-modify-write (the row goes, its counters with it).
                cur = await conn.execute(
                    "DELETE FROM queue_entries WHERE id = %s AND NOT EXISTS ("
                    " SELECT 1 FROM jsonb_array_elements(recipients) AS r"
                    " WHERE r->>'status' = 'pending' AND NOT (r->>'address' = ANY(%s)))",
                    (queue_id, final),
                )
                if cur.rowcount == 1:
                    return None
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM queue_entries WHERE id = %s FOR UPDATE", (queue_id,)
            )
            found = await cur.fetchone()
            if found is None:
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
            if next_attempt is None:  # the body goes with it (ON DELETE CASCADE)
                await conn.execute("DELETE FROM queue_entries WHERE id = %s", (queue_id,))
                return None
            if release and (worker is None or entry.claimed_by == worker):
                entry.claimed_by, entry.lease_until = None, None
            if entry.lease_until is not None:  # still leased: claimable when it ends
                next_attempt = max(next_attempt, entry.lease_until)
            await conn.execute(
                "UPDATE queue_entries SET recipients = %s::jsonb, next_attempt = %s,"
                " claimed_by = %s, lease_until = %s WHERE id = %s",
                (
                    _recipients_json(entry.recipients),
                    next_attempt,
                    entry.claimed_by,
                    entry.lease_until,
                    queue_id,
                ),
            )
            return entry

        return await self._write(record, patient=True)

    async def update_meta(self, queue_id: str, meta: QueueMeta) -> None:
        meta_json = json.dumps(meta.to_json(), separators=(",", ":"))

        async def update(conn: AsyncConnection[Any]) -> None:
            await conn.execute(
                "UPDATE queue_entries SET meta = %s::jsonb WHERE id = %s", (meta_json, queue_id)
            )

        await self._write(update, patient=True)

    # -- views and management ------------------------------------------------------------------

    async def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._closed:
            raise QueueError("the queue is closed")
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql.encode(), params)
                return await cur.fetchall()
        except psycopg.Error as exc:
            raise self._error(exc) from None

    async def get(self, queue_id: str) -> QueueEntry | None:
        rows = await self._read(f"SELECT {_COLUMNS} FROM queue_entries WHERE id = %s", (queue_id,))
        return _entry(rows[0]) if rows else None

    async def list_entries(self, limit: int | None = None) -> list[QueueEntry]:
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM queue_entries ORDER BY id LIMIT %s", (limit,)
        )
        return [_entry(r) for r in rows]

    async def hold(self, queue_id: str) -> bool:
        async def hold(conn: AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "UPDATE queue_entries SET held = true WHERE id = %s", (queue_id,)
            )
            return cur.rowcount == 1

        return await self._write(hold)

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
        async def delete(conn: AsyncConnection[Any]) -> bool:
            cur = await conn.execute("DELETE FROM queue_entries WHERE id = %s", (queue_id,))
            return cur.rowcount == 1

        return await self._write(delete)

    async def _make_due(self, queue_id: str | None, *, unhold: bool) -> int:
        """Every pending recipient due now, in one statement (the whole queue included)."""
        now = time.time()
        sql = (
            "UPDATE queue_entries SET recipients = coalesce((SELECT jsonb_agg(CASE"
            "   WHEN r->>'status' = 'pending' AND (r->>'next_attempt')::float8 > %(now)s"
            "   THEN jsonb_set(r, '{next_attempt}', to_jsonb(%(now)s::float8)) ELSE r END"
            "   ORDER BY n) FROM jsonb_array_elements(recipients) WITH ORDINALITY AS x(r, n)),"
            "  '[]'::jsonb),"
            " next_attempt = CASE WHEN next_attempt IS NULL THEN NULL"
            "  WHEN lease_until > %(now)s THEN next_attempt"  # leased: due when it ends
            "  ELSE least(next_attempt, %(now)s) END"
            + (", held = false" if unhold else "")
            + (" WHERE id = %(id)s" if queue_id is not None else "")
        )

        async def due(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute(sql.encode(), {"now": now, "id": queue_id})
            return cur.rowcount

        return await self._write(due, notify=True)

    async def next_due(self) -> float | None:
        rows = await self._read(
            "SELECT min(greatest(next_attempt, coalesce(lease_until, 0))) FROM queue_entries"
            " WHERE NOT held AND next_attempt IS NOT NULL",
            (),
        )
        value = rows[0][0] if rows else None
        return None if value is None else float(value)

    async def close(self) -> None:
        if self._closed:
            return
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._pool.close()
