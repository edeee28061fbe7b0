"""The shared queue store: one PostgreSQL database for several ``mailwright serve`` nodes.

Any node accepts, any node delivers, and a dead node's work is taken over by the others
when its leases run out. The contract is :mod:`.store`'s; what differs from the SQLite
store is how it is kept:

Durability: every connection runs with ``synchronous_commit = on`` (set by us, whatever
the server, database or role default), so a commit returns only after the WAL record is
flushed on the server; ``enqueue`` returns (and the server says ``250``) after that.
A batch of nothing but claims, leases, delivery results and their events commits with
``synchronous_commit = off`` (``SET LOCAL``): it becomes durable with the next flushed
commit or within ``wal_writer_delay``. A crash of the database may forget such a write;
then a message is delivered again (a duplicate, never a loss), as with the SQLite
store's ``synchronous=NORMAL`` commits. One flush per message instead of three at one
session.

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

Events, suppressions, webhook cursors, DMARC observations and the VERP key live here
too (:class:`~mailwright.queue.eventstore.EventStore`), so every node sees one event log
and one suppression list. Events of a batch are appended last, in one statement, after
taking :data:`EVENTS_LOCK`: their sequence numbers then follow commit order across nodes
(the lock is held only for the commit's flush; batches without events never take it).
Each webhook is sent by one node at a time (``take_webhook_turn``).

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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from ..spool import MessageData, SpooledMessage
from . import idempotency
from . import suppressions as sup
from .events import Event, stored_json
from .eventstore import EventStore, NewMessage, WebhookCursor
from .store import (
    QueueEntry,
    QueueError,
    QueueMeta,
    QueueStore,
    RecipientState,
    RecipientUpdate,
    SchemaMismatch,
    check_updates,
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
EVENTS_LOCK = 0x6D61_696C_6576  # pg_advisory_xact_lock key: 'mailev'
SOFT_BOUNCE_LOCK = 0x6D77_7362  # pg_advisory_xact_lock(int, int) space: 'mwsb'
"""Held from taking event sequence numbers to the commit, so events become visible in
``seq`` order on every node: a reader that has seen ``seq`` N never later finds a new
event below N (a plain sequence would let a transaction that took N-1 commit after one
that took N, and a webhook cursor would skip it)."""

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

_TRACKING_V2 = """
CREATE TABLE events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- a sequence: see EVENTS_LOCK
    event_id   text NOT NULL UNIQUE,
    event_type text NOT NULL,
    timestamp  double precision NOT NULL,
    queue_id   text,
    recipient  text,
    data       jsonb NOT NULL                -- the event's JSON (Event.to_json, no seq)
);
CREATE INDEX events_time ON events (timestamp);
CREATE INDEX events_queue ON events (queue_id);
CREATE INDEX events_queued_index ON events (queue_id, ((data->'details'->>'rcpt_index')))
    WHERE event_type = 'queued';
CREATE INDEX events_queued_recipient ON events (lower(recipient)) WHERE event_type = 'queued';
CREATE TABLE suppressions (
    address      text PRIMARY KEY,           -- lower-cased
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    source_event text,
    created_at   double precision NOT NULL,
    expires_at   double precision
);
CREATE TABLE soft_bounces (
    address  text NOT NULL,
    at       double precision NOT NULL,
    event_id text
);
CREATE INDEX soft_bounces_address ON soft_bounces (address, at);
CREATE TABLE webhook_cursors (
    name       text PRIMARY KEY,             -- the webhook's url
    seq        bigint NOT NULL,
    batch_end  bigint,
    attempts   integer NOT NULL DEFAULT 0,
    first_try  double precision,
    next_try   double precision,
    last_error text,
    holder     text,                         -- the node sending it (HOST:PID) ...
    held_until double precision              -- ... until then (take_webhook_turn)
);
"""

_DMARC_V3 = """
CREATE TABLE dmarc_observations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    policy_domain text NOT NULL,
    rua           jsonb NOT NULL,               -- the report destinations asked for
    ts            double precision NOT NULL,
    data          jsonb NOT NULL                -- the Observation
);
CREATE INDEX dmarc_observations_ts ON dmarc_observations (ts);
"""

_SECRETS_V4 = """
CREATE TABLE shared_secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);
"""

_IDEMPOTENCY_V5 = """
CREATE TABLE api_idempotency (
    api_key    text NOT NULL,
    key        text NOT NULL,
    body_hash  text NOT NULL,
    status     integer NOT NULL,
    response   jsonb NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (api_key, key)
);
"""

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "the queue: entries with their leases, and message bodies", _QUEUE_V1),
    (2, "events, suppressions, soft bounces and webhook cursors", _TRACKING_V2),
    (3, "DMARC observations waiting for the daily aggregate report", _DMARC_V3),
    (4, "secrets shared by the nodes (the VERP key)", _SECRETS_V4),
    (5, "the HTTP API's Idempotency-Key answers", _IDEMPOTENCY_V5),
)
"""(version, what it adds, SQL). Append only: a released step is never edited. What the
SQLite store keeps comes as further steps, one per feature, each creating its own
tables; ``mailwright db migrate`` and
``serve`` apply whatever is missing."""
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


def _results_writer(
    queue_id: str,
    updates: Sequence[RecipientUpdate],
    worker: str | None,
    release: bool,
    now: float | None,
) -> Callable[[AsyncConnection[Any]], Awaitable[QueueEntry | None]]:
    """The write of :meth:`PostgresQueueStore.record_results` (shared with
    :meth:`~PostgresQueueStore.record_outcome`)."""
    at = time.time() if now is None else now
    check_updates(updates)

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
        next_attempt = entry.apply(updates, at)
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

    return record


async def _apply_suppressions(
    conn: AsyncConnection[Any], actions: Sequence[sup.Action]
) -> list[sup.Suppression]:
    """The suppression rules events trigger (:func:`~mailwright.queue.suppressions.actions_for`);
    the suppressions added."""
    added: list[sup.Suppression] = []
    for action in actions:
        if isinstance(action, sup.Suppress):
            added.append(await _suppress(conn, action))
        elif (found := await _count_soft_bounce(conn, action)) is not None:
            added.append(found)
    return added


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


PG_APPEND_CHUNK = 4 * 1024 * 1024
"""A big message's body is appended in pieces this big (each append rewrites the value:
bigger pieces, fewer rewrites; memory stays at one piece)."""


async def _append_body(conn: AsyncConnection[Any], queue_id: str, body: SpooledMessage) -> None:
    pieces = body.body_chunks(PG_APPEND_CHUNK)
    while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
        await conn.execute(
            "UPDATE queue_messages SET data = data || %s WHERE id = %s",
            (piece, queue_id),
            binary=True,
        )


@dataclass
class _Insert:
    queue_id: str
    sender: str
    recipients: str
    data: bytes
    meta: str
    created_at: float
    next_attempt: float
    """``max(created_at, meta.not_before)``: the first attempt (QueueMeta.not_before)."""
    body: SpooledMessage | None = None
    """A big message: ``data`` is its header section, the body is appended in pieces."""
    claimed_by: str | None = None
    lease_until: float | None = None
    """Inserted already leased to this process's agent (claim at enqueue)."""

    @property
    def size(self) -> int:
        return len(self.data) if self.body is None else len(self.body)


@dataclass
class _Op:
    future: asyncio.Future[Any]
    run: Callable[[AsyncConnection[Any]], Awaitable[Any]] | None = None
    insert: _Insert | None = None
    notify: bool = False
    events: Sequence[Event] = ()
    """Appended to the log at the end of the batch's transaction (see EVENTS_LOCK)."""
    events_for: Callable[[str], list[Event]] | None = None
    """For an insert: the events for the queue ID it was stored under."""
    claim: idempotency.Claim | None = None
    """For an insert: the Idempotency-Key answer to remember for it."""
    durable: bool = True
    """False: a write whose loss in a crash of the database costs a duplicate delivery,
    never a message (claims, leases, delivery results and their events). A batch of
    only such writes commits without waiting for its WAL flush."""


async def _find_idempotency(
    conn: AsyncConnection[Any], api_key: str, key: str, now: float
) -> idempotency.Stored | None:
    cur = await conn.execute(
        "SELECT body_hash, status, response FROM api_idempotency"
        " WHERE api_key = %s AND key = %s AND created_at > %s",
        (api_key, key, now - idempotency.TTL),
    )
    row = await cur.fetchone()
    return None if row is None else idempotency.Stored(row[0], int(row[1]), row[2])


async def _remember(
    conn: AsyncConnection[Any], claim: idempotency.Claim, queue_id: str, now: float
) -> None:
    """Remember a claim's answer, or :class:`~.idempotency.Replay`. A concurrent
    transaction inserting the same key makes this insert wait for its commit (primary
    key), then do nothing: the first one's answer is replayed."""
    answer = json.dumps(claim.answer(queue_id))
    await conn.execute(
        "DELETE FROM api_idempotency WHERE created_at <= %s", (now - idempotency.TTL,)
    )
    for _ in range(2):  # the row in the way may expire (be deleted) between the statements
        cur = await conn.execute(
            "INSERT INTO api_idempotency (api_key, key, body_hash, status, response, created_at)"
            " VALUES (%s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT (api_key, key) DO NOTHING"
            " RETURNING 1",
            (claim.api_key, claim.key, claim.body_hash, claim.status, answer, now),
        )
        if await cur.fetchone() is not None:
            return
        found = await _find_idempotency(conn, claim.api_key, claim.key, now)
        if found is not None:
            raise idempotency.Replay(found)
    raise QueueError("Idempotency-Key record: inserted and not found, try again")


def _connection_lost(exc: BaseException) -> bool:
    """Errors that would fail each operation again: no point in retrying them one by one."""
    if isinstance(exc, psycopg.errors.TransactionRollback):  # deadlock, serialization
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


async def _insert_events(conn: AsyncConnection[Any], events: Sequence[Event]) -> None:
    """Append ``events`` in one statement, under :data:`EVENTS_LOCK` (held to the commit).
    An event already there (a batch retried after a lost answer to its commit) is not
    added twice."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
    await conn.execute(
        "INSERT INTO events (event_id, event_type, timestamp, queue_id, recipient, data)"
        " SELECT event_id, event_type, timestamp, queue_id, recipient, data::jsonb"
        " FROM unnest(%s::text[], %s::text[], %s::float8[], %s::text[], %s::text[], %s::text[])"
        " WITH ORDINALITY AS t(event_id, event_type, timestamp, queue_id, recipient, data, n)"
        " ORDER BY n ON CONFLICT (event_id) DO NOTHING",
        (
            [e.event_id for e in events],
            [e.event_type for e in events],
            [e.timestamp for e in events],
            [e.queue_id for e in events],
            [e.recipient for e in events],
            [stored_json(e) for e in events],
        ),
    )


_SUPPRESSION_COLUMNS = "address, reason, detail, source_event, created_at, expires_at"


async def _suppress(conn: AsyncConnection[Any], action: sup.Suppress) -> sup.Suppression:
    entry = sup.Suppression(
        sup.key(action.address),
        action.reason,
        action.detail[:500],
        action.source_event,
        action.now,
        action.expires_at,
    )
    await conn.execute(
        f"INSERT INTO suppressions ({_SUPPRESSION_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (address) DO UPDATE SET reason = EXCLUDED.reason,"
        " detail = EXCLUDED.detail, source_event = EXCLUDED.source_event,"
        " created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
        (
            entry.address,
            entry.reason,
            entry.detail,
            entry.source_event,
            entry.created_at,
            entry.expires_at,
        ),
    )
    return entry


async def _check(
    conn: AsyncConnection[Any], addresses: Sequence[str], now: float
) -> dict[str, sup.Suppression]:
    wanted: dict[str, list[str]] = {}
    for address in addresses:
        wanted.setdefault(sup.key(address), []).append(address)
    if not wanted:
        return {}
    cur = await conn.execute(
        f"SELECT {_SUPPRESSION_COLUMNS} FROM suppressions WHERE address = ANY(%s)"
        " AND (expires_at IS NULL OR expires_at > %s)",
        (list(wanted), now),
    )
    found: dict[str, sup.Suppression] = {}
    for row in await cur.fetchall():
        for address in wanted[row[0]]:
            found[address] = sup.Suppression(*row)
    return found


async def _count_soft_bounce(
    conn: AsyncConnection[Any], action: sup.CountSoftBounce
) -> sup.Suppression | None:
    """:func:`mailwright.queue.suppressions.record_soft_bounce`, in PostgreSQL."""
    k = sup.key(action.address)
    # Two nodes counting bounces for one address at once would each see the other's
    # count without its own, and the limit could pass unnoticed: one at a time (to the
    # commit; a deadlock between two batches is retried op by op, see _flush).
    await conn.execute("SELECT pg_advisory_xact_lock(%s::int, hashtext(%s))", (SOFT_BOUNCE_LOCK, k))
    await conn.execute(
        "DELETE FROM soft_bounces WHERE address = %s AND at < %s", (k, action.now - action.window)
    )
    await conn.execute(
        "INSERT INTO soft_bounces (address, at, event_id) VALUES (%s, %s, %s)",
        (k, action.now, action.event_id),
    )
    cur = await conn.execute("SELECT count(*) FROM soft_bounces WHERE address = %s", (k,))
    row = await cur.fetchone()
    count = int(row[0]) if row else 0
    if count < action.limit or await _check(conn, [k], action.now):
        return None
    return await _suppress(
        conn,
        sup.Suppress(
            k,
            "soft-bounces",
            action.now,
            sup.soft_bounce_detail(count, action.window, action.detail),
            action.event_id,
            None,
        ),
    )


async def _last_seq(conn: AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT coalesce(max(seq), 0) FROM events")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def _event(row: Sequence[Any]) -> Event:
    return Event.from_dict(int(row[0]), float(row[1]), row[2])


class PostgresQueueStore(QueueStore, EventStore):
    """The queue in a PostgreSQL database shared by several nodes."""

    supports_handoff = True

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
        events: Sequence[Event] = (),
        durable: bool = True,
    ) -> T:
        """Run ``run`` in the next batch. ``patient``: the delivery agent's reports,
        tried again for up to :data:`OUTAGE_PATIENCE` while the database is away (they
        are safe to repeat; an SMTP session, in contrast, gets its 451 at once).
        ``durable``: see :attr:`_Op.durable`."""
        deadline = time.monotonic() + OUTAGE_PATIENCE
        pause = 0.2
        while True:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            try:
                result: T = await self._submit(
                    _Op(future, run=run, notify=notify, events=events, durable=durable)
                )
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
            if not any(op.durable for op in batch):
                # only reports: durable with the next flushed commit (the WAL is written
                # in order) or within wal_writer_delay; see "Durability" above
                await conn.execute("SET LOCAL synchronous_commit = off")
            inserts = [(i, op.insert) for i, op in enumerate(batch) if op.insert is not None]
            if inserts:
                stored = await self._insert_many(conn, [insert for _, insert in inserts])
                for (i, _), queue_id in zip(inserts, stored, strict=True):
                    results[i] = (True, queue_id)
            for i, op in enumerate(batch):
                if op.claim is not None:
                    await _remember(conn, op.claim, results[i][1], time.time())
                if op.run is not None:
                    results[i] = (True, await op.run(conn))
            new_events: list[Event] = []
            for i, op in enumerate(batch):
                new_events.extend(op.events)
                if op.events_for is not None:
                    new_events.extend(op.events_for(results[i][1]))
            if new_events:  # last: the lock is held only for the commit
                await _insert_events(conn, new_events)
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
                " next_attempt, meta, claimed_by, lease_until)"
                " SELECT id, sender, recipients::jsonb, size, created_at, next_attempt,"
                " meta::jsonb, claimed_by, lease_until"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[],"
                " %s::float8[], %s::float8[], %s::text[], %s::float8[])"
                " AS t(id, sender, recipients, size, meta, created_at, next_attempt,"
                " claimed_by, lease_until)"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                (
                    [ids[i] for i in todo],
                    [inserts[i].sender for i in todo],
                    [inserts[i].recipients for i in todo],
                    [inserts[i].size for i in todo],
                    [inserts[i].meta for i in todo],
                    [inserts[i].created_at for i in todo],
                    [inserts[i].next_attempt for i in todo],
                    [inserts[i].claimed_by for i in todo],
                    [inserts[i].lease_until for i in todo],
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
            for i in done:
                body = inserts[i].body
                if body is not None:
                    await _append_body(conn, ids[i], body)
            todo = [i for i in todo if ids[i] not in stored]
            for i in todo:
                ids[i] = ids[i][:10] + new_queue_id(now=0.0)[10:]
        return ids

    # -- enqueue -----------------------------------------------------------------------------

    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        data: MessageData,
        *,
        meta: QueueMeta | None = None,
        queue_id: str | None = None,
    ) -> str:
        return await self._enqueue(sender, recipients, data, meta or QueueMeta(), queue_id)

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

        return await self._write(claim, durable=False)

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

        return await self._write(extend, durable=False)

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

    async def read_message_part(self, queue_id: str, offset: int, length: int) -> bytes:
        # data is stored uncompressed (STORAGE EXTERNAL): substring reads only its slice
        rows = await self._read(
            "SELECT substring(data from %s for %s) FROM queue_messages WHERE id = %s",
            (offset + 1, length, queue_id),
        )
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
        record = _results_writer(queue_id, updates, worker, release, now)
        return await self._write(record, patient=True, durable=False)

    async def record_outcome(
        self,
        queue_id: str,
        updates: Sequence[RecipientUpdate],
        events: Sequence[Event],
        policy: sup.SuppressionPolicy,
        *,
        worker: str | None = None,
        now: float | None = None,
    ) -> list[sup.Suppression]:
        record = _results_writer(queue_id, updates, worker, True, now)
        actions = sup.actions_for(events, policy)

        async def write(conn: AsyncConnection[Any]) -> list[sup.Suppression]:
            await record(conn)
            return await _apply_suppressions(conn, actions)

        # the events go in last, with the batch's others (see _run_batch)
        return await self._write(write, events=list(events), patient=True, durable=False)

    async def update_meta(self, queue_id: str, meta: QueueMeta) -> None:
        meta_json = json.dumps(meta.to_json(), separators=(",", ":"))

        async def update(conn: AsyncConnection[Any]) -> None:
            await conn.execute(
                "UPDATE queue_entries SET meta = %s::jsonb WHERE id = %s", (meta_json, queue_id)
            )

        await self._write(update, patient=True, durable=False)

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

    # -- events, suppressions, webhook cursors (EventStore) -----------------------------------

    async def record_events(
        self,
        events: Sequence[Event],
        policy: sup.SuppressionPolicy,
        *,
        claim: idempotency.Claim | None = None,
        queue_id: str = "",
        durable: bool = True,
    ) -> list[sup.Suppression]:
        actions = sup.actions_for(events, policy)

        async def apply(conn: AsyncConnection[Any]) -> list[sup.Suppression]:
            if claim is not None:
                await _remember(conn, claim, queue_id, time.time())
            return await _apply_suppressions(conn, actions)

        # a claim is an HTTP request waiting: it gets its error at once, not after retries
        return await self._write(apply, events=list(events), patient=claim is None, durable=durable)

    async def find_idempotency(
        self, api_key: str, key: str, now: float
    ) -> idempotency.Stored | None:
        async with self._pool.connection() as conn:
            return await _find_idempotency(conn, api_key, key, now)

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
        if refuse_suppressed:  # checks_suppressions_at_enqueue is False: check first
            raise NotImplementedError("refuse_suppressed: not on PostgreSQL")
        return await self._enqueue(sender, recipients, data, meta, queue_id, events_for, claim)

    async def _enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        data: MessageData,
        meta: QueueMeta,
        queue_id: str | None,
        events_for: Callable[[str], list[Event]] | None = None,
        claim: idempotency.Claim | None = None,
    ) -> str:
        """Insert one message (and its events); with a :attr:`handoff` it is inserted
        leased to this process's agent and handed to it after the commit (claim at
        enqueue: no claim transaction and no read-back per message)."""
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        now = time.time()
        due = max(now, meta.not_before or now)  # the store contract: not before not_before
        # a spooled message is not handed over: its spool file goes when the session ends
        handoff = self._handoff_for(len(data), meta, now) if isinstance(data, bytes) else None
        insert = _Insert(
            queue_id=queue_id or new_queue_id(),
            sender=sender,
            recipients=_recipients_json([RecipientState(a, next_attempt=due) for a in recipients]),
            data=data.head if isinstance(data, SpooledMessage) else bytes(data),
            body=data if isinstance(data, SpooledMessage) else None,
            meta=json.dumps(meta.to_json(), separators=(",", ":")),
            created_at=now,
            next_attempt=due,
            claimed_by=None if handoff is None else handoff.worker,
            lease_until=None if handoff is None else now + handoff.lease_seconds,
        )
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        stored: str = await self._submit(
            # leased to us: no other node could claim it, so no NOTIFY either
            _Op(future, insert=insert, notify=handoff is None, events_for=events_for, claim=claim)
        )
        if handoff is None or not isinstance(data, bytes):
            self.wakeup()
        else:
            await self._hand_over(handoff, stored, sender, recipients, data, meta, now)
        return stored

    async def enqueue_all_with_events(self, messages: Sequence[NewMessage]) -> list[str]:
        now = time.time()
        inserts = [
            _Insert(
                queue_id=m.queue_id or new_queue_id(),
                sender=m.sender,
                recipients=_recipients_json(
                    [RecipientState(a, next_attempt=now) for a in m.recipients]
                ),
                data=bytes(m.data),
                body=None,
                meta=json.dumps(m.meta.to_json(), separators=(",", ":")),
                created_at=now,
                next_attempt=now,
            )
            for m in messages
            if m.recipients
        ]

        async def write(conn: AsyncConnection[Any]) -> list[str]:
            stored = iter(await self._insert_many(conn, inserts) if inserts else [])
            ids = [next(stored) if m.recipients else m.queue_id for m in messages]
            new_events = [
                e for m, qid in zip(messages, ids, strict=True) for e in m.events_for(qid)
            ]
            if new_events:
                await _insert_events(conn, new_events)
            return ids

        ids = await self._write(write, notify=True)
        self.wakeup()
        return ids

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
        sql = "SELECT seq, timestamp, data FROM events WHERE seq > %s"
        args: list[Any] = [after]
        if since is not None:
            sql += " AND timestamp >= %s"
            args.append(since)
        if until is not None:
            sql += " AND timestamp < %s"
            args.append(until)
        if recipient is not None:
            sql += " AND lower(recipient) = lower(%s)"
            args.append(recipient)
        if tag is not None:
            sql += " AND data->'tags' ? %s"
            args.append(tag)
        if types:
            sql += " AND event_type = ANY(%s)"
            args.append(list(types))
        if queue_id is not None:
            sql += " AND queue_id = %s"
            args.append(queue_id)
        sql += " ORDER BY seq LIMIT %s"
        args.append(limit)
        return [_event(row) for row in await self._read(sql, args)]

    async def latest_events(self, limit: int, types: Sequence[str] | None = None) -> list[Event]:
        sql = "SELECT seq, timestamp, data FROM events"
        args: list[Any] = []
        if types:
            sql += " WHERE event_type = ANY(%s)"
            args.append(list(types))
        rows = await self._read(sql + " ORDER BY seq DESC LIMIT %s", (*args, limit))
        return [_event(row) for row in reversed(rows)]

    async def last_event_seq(self) -> int:
        rows = await self._read("SELECT coalesce(max(seq), 0) FROM events", ())
        return int(rows[0][0])

    async def prune_events(self, before: float, keep_after_seq: int) -> int:
        async def prune(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute(
                "DELETE FROM events WHERE timestamp < %s AND seq <= %s", (before, keep_after_seq)
            )
            return cur.rowcount

        return await self._write(prune)

    async def prune_soft_bounces(self, before: float) -> int:
        async def prune(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute("DELETE FROM soft_bounces WHERE at < %s", (before,))
            return cur.rowcount

        return await self._write(prune)

    async def queued_event(self, queue_id: str, rcpt_index: int) -> Event | None:
        rows = await self._read(
            "SELECT seq, timestamp, data FROM events WHERE queue_id = %s"
            " AND event_type = 'queued' AND (data->'details'->>'rcpt_index') = %s LIMIT 1",
            (queue_id, str(rcpt_index)),
        )
        return _event(rows[0]) if rows else None

    async def queued_event_for(self, message_id: str, recipient: str) -> Event | None:
        rows = await self._read(
            "SELECT seq, timestamp, data FROM events WHERE event_type = 'queued'"
            " AND lower(recipient) = lower(%s) AND data->>'message_id' = %s LIMIT 1",
            (recipient, message_id),
        )
        return _event(rows[0]) if rows else None

    async def check_suppressions(
        self, addresses: Iterable[str], *, now: float
    ) -> dict[str, sup.Suppression]:
        wanted = list(addresses)
        if self._closed:
            raise QueueError("the queue is closed")
        try:
            async with self._pool.connection() as conn:
                return await _check(conn, wanted, now)
        except psycopg.Error as exc:
            raise self._error(exc) from None

    async def add_suppression(
        self,
        address: str,
        reason: sup.SuppressionReason,
        *,
        now: float,
        detail: str = "",
        expires_at: float | None = None,
    ) -> sup.Suppression:
        action = sup.Suppress(address, reason, now, detail, None, expires_at)
        return await self._write(lambda conn: _suppress(conn, action))

    async def remove_suppression(self, address: str) -> bool:
        k = sup.key(address)

        async def remove(conn: AsyncConnection[Any]) -> bool:
            await conn.execute("DELETE FROM soft_bounces WHERE address = %s", (k,))
            cur = await conn.execute("DELETE FROM suppressions WHERE address = %s", (k,))
            return cur.rowcount > 0

        return await self._write(remove)

    async def list_suppressions(
        self, *, now: float, include_expired: bool = False
    ) -> list[sup.Suppression]:
        sql = f"SELECT {_SUPPRESSION_COLUMNS} FROM suppressions"
        args: tuple[Any, ...] = ()
        if not include_expired:
            sql += " WHERE expires_at IS NULL OR expires_at > %s"
            args = (now,)
        rows = await self._read(sql + " ORDER BY created_at, address", args)
        return [sup.Suppression(*row) for row in rows]

    async def load_webhook_cursor(self, name: str) -> WebhookCursor:
        async def load(conn: AsyncConnection[Any]) -> WebhookCursor:
            # A new webhook starts at the end of the log: it gets what happens from now on.
            await conn.execute(
                "INSERT INTO webhook_cursors (name, seq) VALUES (%s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (name, await _last_seq(conn)),
            )
            cur = await conn.execute(
                "SELECT seq, batch_end, attempts, first_try, next_try, last_error"
                " FROM webhook_cursors WHERE name = %s",
                (name,),
            )
            row = await cur.fetchone()
            assert row is not None
            return WebhookCursor(*row)

        return await self._write(load)

    async def save_webhook_cursor(self, name: str, cursor: WebhookCursor) -> None:
        c = cursor

        async def save(conn: AsyncConnection[Any]) -> None:
            await conn.execute(
                "INSERT INTO webhook_cursors"
                " (name, seq, batch_end, attempts, first_try, next_try, last_error)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
                " seq = EXCLUDED.seq, batch_end = EXCLUDED.batch_end,"
                " attempts = EXCLUDED.attempts, first_try = EXCLUDED.first_try,"
                " next_try = EXCLUDED.next_try, last_error = EXCLUDED.last_error",
                (name, c.seq, c.batch_end, c.attempts, c.first_try, c.next_try, c.last_error),
            )

        await self._write(save)

    async def min_webhook_seq(self, urls: Sequence[str]) -> int:
        rows = await self._read(
            "SELECT coalesce((SELECT min(seq) FROM webhook_cursors WHERE name = ANY(%s)),"
            " (SELECT coalesce(max(seq), 0) FROM events))",
            (list(urls),),
        )
        return int(rows[0][0])

    async def shared_secret(self, name: str, proposed: bytes) -> bytes:
        async def share(conn: AsyncConnection[Any]) -> bytes:
            await conn.execute(
                "INSERT INTO shared_secrets (name, value) VALUES (%s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (name, proposed),
            )
            cur = await conn.execute("SELECT value FROM shared_secrets WHERE name = %s", (name,))
            row = await cur.fetchone()
            assert row is not None
            return bytes(row[0])

        return await self._write(share)

    async def take_webhook_turn(
        self, name: str, holder: str, seconds: float, *, now: float
    ) -> bool:
        async def take(conn: AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "INSERT INTO webhook_cursors AS c (name, seq, holder, held_until)"
                " VALUES (%s, (SELECT coalesce(max(seq), 0) FROM events), %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,"
                " held_until = EXCLUDED.held_until"
                " WHERE c.holder IS NULL OR c.holder = EXCLUDED.holder OR c.held_until < %s"
                " RETURNING name",
                (name, holder, now + seconds, now),
            )
            return await cur.fetchone() is not None

        return await self._write(take)

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
