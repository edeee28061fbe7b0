"""The queue store interface: what the SMTP server writes and the delivery agent reads.

Everything the MTA promises about durability lives behind :class:`QueueStore`, so the
embedded SQLite store (:mod:`mailwright.queue.sqlite`, the default) can be joined by a
PostgreSQL store shared by several nodes without touching the server or the agent.

API (all methods are coroutines unless noted)
---------------------------------------------

``enqueue(sender, recipients, data, *, meta=None, queue_id=None) -> str``
    Stores the envelope and the message and returns its queue ID **only once both are on
    stable storage**; the SMTP server sends ``250 ... queued as ID`` after that. Concurrent
    calls share one commit (group commit). Raises :class:`QueueError` if the data could not
    be stored (the server answers ``451 4.3.0``). ``sender`` is ``""`` for the null reverse
    path. ``meta`` is the typed :class:`QueueMeta` the intake step made (where the message
    came from, its RFC 3461 DSN parameters ...); the agent replaces it with
    :meth:`update_meta` as delivery goes on. ``queue_id``:
    use this ID (from :func:`new_queue_id`; the server writes it into Received before
    queueing); if it is taken, a new one is made, so always use the returned ID. Each
    recipient's first ``next_attempt`` is now, or ``meta.not_before`` if that is later.

``claim_due(worker, now, limit, lease_seconds) -> list[QueueEntry]``
    Entries that are not held, have a pending recipient whose ``next_attempt <= now``, and
    are not leased (or whose lease expired) — leased to ``worker`` until
    ``now + lease_seconds``, atomically: two workers (threads, processes, nodes) never get
    the same entry while its lease runs. A worker that crashes simply lets the lease
    expire, and its entries come back. Oldest due first.

``extend_lease(id, worker, lease_seconds, now=None) -> bool``
    Keep a long delivery's lease alive; False if the lease is no longer ours.

``read_message(id) -> bytes``
    The stored message (``KeyError`` if the entry is gone).

``read_message_part(id, offset, length) -> bytes``
    Part of it (fewer octets at the end): big messages are read back a piece at a time
    (:class:`StoredMessage`), so that memory stays bounded whatever their size.

``record_results(id, updates, *, worker=None, release=True, now=None) -> QueueEntry | None``
    Apply :class:`RecipientUpdate` s: ``delivered`` and ``bounced`` are final,
    ``deferred`` keeps the recipient pending until ``next_attempt``; each update counts an
    attempt and stores the reply. An entry with no pending recipient left is removed
    (message included) and ``None`` is returned; otherwise the updated entry. With
    ``release=True`` (default) the lease is dropped so the entry is claimable again at its
    next attempt; pass ``release=False`` when reporting part of the recipients while
    others of the same claim are still being delivered.

``release_lease(id, worker) -> None``
    Give an entry back without results (e.g. on shutdown).

``lease_holders() -> dict[str, int]`` and ``release_worker(worker) -> int``
    Who holds leases (worker → entries), and give back every lease of a worker known to
    be dead (the server does this for its own crashed processes at start, so their
    messages need not wait for the lease to expire).

``update_meta(id, meta) -> None``
    Replace the entry's :class:`QueueMeta` (the agent's progress: ``delay_warned``, the
    failures waiting for the one DSN of a message).

``get(id) -> QueueEntry | None``, ``list_entries(limit=None) -> list[QueueEntry]``
    Read-only views for the CLI (oldest first).

``hold(id)``, ``release(id)``, ``delete(id)`` ``-> bool`` (False: no such entry);
``retry(id | None) -> int`` (number of entries made due now; ``None`` = all).
    Queue management. ``release`` and ``retry`` make every pending recipient due now.

``handoff`` (attribute, a :class:`Handoff` or None): claim at enqueue
    Set by this process's delivery agent. A store that supports it (``supports_handoff``)
    inserts a new message that is due now and small enough *already leased* to the
    agent's worker, in the same transaction, and after the commit gives the agent the
    entry and the bytes it already holds: no claim, no read-back, no wake-up. A crash
    between the commit and the hand-off leaves the entry leased to a dead worker, which
    the server gives back at start (and sibling workers every 15 s): delivered late, never
    lost.

``wakeup()`` (plain method) and ``wait_for_work(timeout) -> bool``
    In-process notification: ``enqueue``/``retry``/``release`` call ``wakeup()``; the
    agent awaits ``wait_for_work`` between claims so new mail goes out at once, and polls
    at ``timeout`` for what other processes queued or for retries falling due.

``next_due() -> float | None``
    The earliest ``next_attempt`` of any claimable entry (for the agent's sleep).

``close()``
    Finish pending commits, close the database.

Queue IDs (:func:`new_queue_id`): 14 characters of Crockford base32 (digits and upper-case
letters without I, L, O, U): 10 encode the microseconds since 2024-01-01 and 4 are
random, so IDs sort by arrival time, are unique across processes, and are safe in file
names, log lines and shells.
"""

from __future__ import annotations

import asyncio
import contextvars
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from ..errors import MailwrightError
from ..spool import CHUNK_SIZE, HEAD_LIMIT, MessageData

RecipientStatus = Literal["pending", "delivered", "bounced"]
UpdateKind = Literal["delivered", "deferred", "bounced"]
Origin = Literal["smtp", "dsn", "report", "local", "api", "forward"]
"""How a message entered the queue: received over SMTP (submission or inbound), a
delivery status notification we wrote, a report we wrote (DMARC aggregate), handed
in on this machine (maildrop), submitted through the HTTP API, or forwarded by an
alias to an outside address."""
Ret = Literal["FULL", "HDRS"]
NotifyWord = Literal["SUCCESS", "FAILURE", "DELAY"]


class QueueError(MailwrightError):
    """The store could not do what was asked (disk full, database locked for too long)."""


class SchemaMismatch(QueueError):
    """The queue database's schema is not the one this mailwright speaks (older: migrate
    it; newer: upgrade mailwright). ``message`` and ``hint`` make the CLI's one line."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message} ({hint})")
        self.message = message
        self.hint = hint


@dataclass(frozen=True, slots=True)
class DsnRecipient:
    """A recipient's RFC 3461 parameters: NOTIFY (§4.1) and ORCPT (§4.2)."""

    notify: tuple[NotifyWord, ...] | None = None
    """What to report; ``()`` is ``NOTIFY=NEVER``; None: not given (failures and delays,
    §4.1's default for us, like Postfix)."""
    orcpt: str | None = None
    """``addr-type;address`` with the xtext decoded (``rfc822;bob@example.com``)."""

    def wants(self, word: NotifyWord) -> bool:
        if self.notify is None:
            return word in ("FAILURE", "DELAY")
        return word in self.notify


@dataclass(frozen=True, slots=True)
class PendingFailure:
    """A failed recipient waiting for the message's one DSN (RFC 3464 §2: one DSN per
    message covers every recipient), kept across attempts until the last one is done."""

    recipient: str
    status: str
    diagnostic: str | None
    remote: bool
    remote_mta: str | None
    last_attempt: float | None


@dataclass(frozen=True, slots=True)
class QueueMeta:
    """What the queue keeps about a message besides its envelope: written by the intake
    step, read by the delivery agent and ``mailwright queue show``. Every field here is
    read somewhere; nothing else is stored."""

    origin: Origin = "smtp"
    client: str | None = None
    """The client's address (``queue show``)."""
    listener: str | None = None
    helo: str | None = None
    user: str | None = None
    """The authenticated submitter (``queue show``)."""
    smtputf8: bool = False
    """Received with SMTPUTF8 (RFC 6531): passed on to the next hop."""
    requiretls: bool = False
    """Received with MAIL ... REQUIRETLS (RFC 8689): only delivered over authenticated TLS
    to hosts offering REQUIRETLS, else bounced with 5.7.30/5.7.10."""
    tls_optional: bool = False
    """The message carries ``TLS-Required: No`` (RFC 8689 §3, §4.1): recipient TLS
    policies (MTA-STS, DANE) are ignored for it."""
    ret: Ret | None = None
    """RFC 3461 §4.3: return the full message or only its header in a failure DSN."""
    envid: str | None = None
    """RFC 3461 §4.4: the submitter's envelope identifier, in DSNs and to the next hop."""
    dsn: dict[str, DsnRecipient] = field(default_factory=dict)
    """Per recipient address, its NOTIFY/ORCPT (absent: no parameters were given)."""
    folder: str | None = None
    """Deliver to this Maildir++ folder (inbound DMARC quarantine: ``.Junk``)."""
    original: str | None = None
    """For a DSN we wrote: the queue ID of the message it reports on."""
    delay_warned: bool = False
    """A delay DSN was sent (RFC 3464: one warning per message)."""
    pending_failures: tuple[PendingFailure, ...] = ()
    message_id: str | None = None
    """The message's Message-ID field (the ``message_id`` of its events)."""
    tags: tuple[str, ...] = ()
    """From ``X-Mailwright-Tags`` at submission (copied into every event)."""
    metadata: dict[str, Any] | None = None
    """From ``X-Mailwright-Metadata`` at submission (copied into every event)."""
    tracked: bool = False
    """A submission of the application's: every outcome becomes an event."""
    verp: bool = False
    """Send each recipient with its own VERP return path (:mod:`mailwright.verp`) on the
    envelope sender's domain."""
    not_before: float | None = None
    """No delivery attempt before this Unix time (the API's ``send_at``): a store starts
    every recipient's ``next_attempt`` at ``max(now, not_before)``."""
    sign_domain: str | None = None
    """DKIM-sign with this domain's keys at each delivery attempt (intake decided it;
    the delivery agent signs with the keys current then): the stored message carries no
    DKIM-Signature of ours."""
    body_hashes: dict[str, str] | None = None
    """For a big message with ``sign_domain``: the body's SHA-256 per DKIM body
    canonicalization (RFC 6376 §3.7), base64, from intake's pass over the spool file, so
    the agent signs the header section without reading the body again."""

    def recipient_dsn(self, address: str) -> DsnRecipient:
        return self.dsn.get(address) or _NO_DSN_PARAMS

    def to_json(self) -> dict[str, Any]:
        """Only the fields that differ from the default (small rows, readable output)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default or (f.name == "dsn" and not value):
                continue
            if f.name == "dsn":
                value = {
                    address: {
                        "notify": None if p.notify is None else list(p.notify),
                        "orcpt": p.orcpt,
                    }
                    for address, p in value.items()
                }
            elif f.name == "pending_failures":
                value = [
                    {g.name: getattr(failure, g.name) for g in fields(failure)} for failure in value
                ]
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueueMeta:
        """Tolerant of what older versions wrote: unknown keys are dropped."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.pop("dsn", None)
        values.pop("pending_failures", None)
        dsn = {
            str(address): DsnRecipient(
                notify=None if p.get("notify") is None else tuple(p["notify"]),
                orcpt=p.get("orcpt"),
            )
            for address, p in (data.get("dsn") or {}).items()
            if isinstance(p, dict)
        }
        if "tags" in values:
            values["tags"] = tuple(str(t) for t in values["tags"] or ())
        failures = tuple(
            PendingFailure(
                recipient=str(f["recipient"]),
                status=str(f["status"]),
                diagnostic=f.get("diagnostic"),
                remote=bool(f.get("remote")),
                remote_mta=f.get("remote_mta"),
                last_attempt=f.get("last_attempt"),
            )
            for f in data.get("pending_failures") or ()
            if isinstance(f, dict) and "recipient" in f and "status" in f
        )
        return cls(**values, dsn=dsn, pending_failures=failures)


_NO_DSN_PARAMS = DsnRecipient()


@dataclass
class RecipientState:
    """One recipient of a queued message and how its delivery is going."""

    address: str
    status: RecipientStatus = "pending"
    attempts: int = 0
    last_reply: str | None = None
    next_attempt: float = 0.0
    """Unix time of the next delivery attempt (only meaningful while ``pending``)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "status": self.status,
            "attempts": self.attempts,
            "last_reply": self.last_reply,
            "next_attempt": self.next_attempt,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecipientState:
        return cls(
            address=str(data["address"]),
            status=data.get("status", "pending"),
            attempts=int(data.get("attempts", 0)),
            last_reply=data.get("last_reply"),
            next_attempt=float(data.get("next_attempt", 0.0)),
        )


@dataclass
class QueueEntry:
    """A queued message's envelope and state (the message itself: ``read_message``)."""

    id: str
    sender: str
    recipients: list[RecipientState]
    size: int
    created_at: float
    held: bool = False
    meta: QueueMeta = field(default_factory=QueueMeta)
    claimed_by: str | None = None
    lease_until: float | None = None

    @property
    def pending(self) -> list[RecipientState]:
        return [r for r in self.recipients if r.status == "pending"]

    @property
    def next_attempt(self) -> float | None:
        """The earliest next attempt among pending recipients (None: nothing pending)."""
        return next_pending_attempt(self.recipients)

    def apply(self, updates: Sequence[RecipientUpdate], at: float) -> float | None:
        """:func:`apply_updates` to this entry's recipients."""
        return apply_updates(self.recipients, updates, at)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form (``mailwright queue list --json``)."""
        return {
            "id": self.id,
            "sender": self.sender,
            "size": self.size,
            "created_at": self.created_at,
            "held": self.held,
            "next_attempt": self.next_attempt,
            "claimed_by": self.claimed_by,
            "lease_until": self.lease_until,
            "recipients": [r.to_json() for r in self.recipients],
            "meta": self.meta.to_json(),
        }


def apply_updates(
    recipients: Sequence[RecipientState], updates: Sequence[RecipientUpdate], at: float
) -> float | None:
    """Apply one attempt's results to the pending recipients (the rule every store
    follows: each counts an attempt and keeps its reply; ``delivered``/``bounced`` are
    final; ``deferred`` waits for its ``next_attempt``). The earliest next attempt left;
    None when nothing is pending any more."""
    by_address: dict[str, list[RecipientState]] = {}
    for rcpt in recipients:
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
    return next_pending_attempt(recipients)


def check_updates(updates: Sequence[RecipientUpdate]) -> None:
    """The contract of ``record_results``: a ``deferred`` update says when to try again."""
    for update in updates:
        if update.kind == "deferred" and update.next_attempt is None:
            raise ValueError(f"deferred update for {update.recipient} needs next_attempt")


def next_pending_attempt(recipients: Sequence[RecipientState]) -> float | None:
    """The earliest next attempt among pending recipients (None: nothing pending)."""
    times = [r.next_attempt for r in recipients if r.status == "pending"]
    return min(times) if times else None


@dataclass(frozen=True)
class RecipientUpdate:
    """The outcome of one delivery attempt for one recipient."""

    recipient: str
    kind: UpdateKind
    reply: str | None = None
    next_attempt: float | None = None
    """Required for ``deferred``: when to try again (Unix time)."""


_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, in ASCII order
_EPOCH_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
_last_us = 0


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
"""Every two-digit string, by value (0-1023): one lookup per 10 bits."""


def _b32(value: int, width: int) -> str:
    """``value`` in ``width`` Crockford digits (``width`` even), most significant first."""
    return "".join(_PAIRS[(value >> shift) & 1023] for shift in range(5 * width - 10, -1, -10))


def new_queue_id(now: float | None = None) -> str:
    """A short, unique, time-sortable queue ID (see the module docstring)."""
    global _last_us
    micros = int((time.time() if now is None else now) * 1_000_000) - _EPOCH_US
    micros = max(micros, _last_us + 1) if now is None else micros  # strictly increasing here
    if now is None:
        _last_us = micros
    return _b32(micros % (32**10), 10) + _b32(secrets.randbits(20), 4)


def is_queue_id(text: str) -> bool:
    return len(text) == 14 and all(c in _ALPHABET for c in text)


HANDOFF_MAX_BYTES = 1024 * 1024
"""Larger messages are not handed off in memory: the agent reads them back when it
delivers (memory stays bounded by what is being delivered, not by what arrived)."""


@dataclass(frozen=True, slots=True)
class Handoff:
    """Where a store hands the messages it has just queued (see "claim at enqueue")."""

    worker: str
    """The lease holder written into the new entry (the agent's ``HOST:PID``)."""
    lease_seconds: float
    ready: Callable[[int], bool]
    """Will the agent take a message of this many bytes now (running, not paused, room
    in flight)? Asked before the insert."""
    take: Callable[[QueueEntry, bytes], None]
    """Start delivering the committed entry (called on the event loop, must not block)."""


TURN_WAIT = 0.005
"""Seconds a message handed over inside a client's session waits at most for its end."""


class ClientTurn:
    """The client session that is queueing messages and waiting for our replies.

    The SMTP session puts one in :data:`client_turn` (a context variable: the enqueue,
    and the hand-off inside it, run in the session's task). The delivery agent starts
    the work on a message handed over inside it (its DKIM signature, the connection out)
    once the session has ended (:meth:`end`), or :data:`TURN_WAIT` after the first such
    message: otherwise that third of a millisecond of signing lands between the ``250``
    and the client's ``QUIT``, and the client's next connection finds this worker busy
    only once it no longer matters. Started after the session, it overlaps the client's
    next connection, which another worker, idle, accepts.
    """

    def __init__(self) -> None:
        self._over = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None

    async def wait(self) -> None:
        """Until the session has ended, or for at most :data:`TURN_WAIT` from the first
        wait (one timer per session, however many messages it queues)."""
        if not self._over.is_set() and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TURN_WAIT, self._over.set)
        await self._over.wait()

    def end(self) -> None:
        """The session is over (its connection closed): what waits goes now."""
        self._over.set()
        if self._timer is not None:
            self._timer.cancel()

    @property
    def ended(self) -> bool:
        return self._over.is_set()


client_turn: contextvars.ContextVar[ClientTurn | None] = contextvars.ContextVar(
    "client_turn", default=None
)
"""The :class:`ClientTurn` of the SMTP session whose task is running, if any."""


class QueueStore(ABC):
    """The durable queue (see the module docstring for the contract of each method)."""

    supports_handoff = False
    """True: ``enqueue`` honours :attr:`handoff` (both stores)."""

    def __init__(self) -> None:
        self._work = asyncio.Event()
        self.handoff: Handoff | None = None

    def _handoff_for(self, size: int, meta: QueueMeta | None, now: float) -> Handoff | None:
        """The hand-off for a new message of ``size`` bytes, or None (none set, too big,
        not due yet, agent not ready): then it is queued unclaimed and the agent woken."""
        handoff = self.handoff
        if handoff is None or size > HANDOFF_MAX_BYTES:
            return None
        if meta is not None and meta.not_before is not None and meta.not_before > now:
            return None
        return handoff if handoff.ready(size) else None

    async def _hand_over(
        self,
        handoff: Handoff,
        queue_id: str,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        meta: QueueMeta | None,
        now: float,
    ) -> None:
        """Give the committed, leased entry to the agent; if it cannot take it after all,
        give the lease back and wake the agent (the claim path delivers it)."""
        entry = QueueEntry(
            id=queue_id,
            sender=sender,
            recipients=[RecipientState(a, next_attempt=now) for a in recipients],
            size=len(data),
            created_at=now,
            meta=meta or QueueMeta(),
            claimed_by=handoff.worker,
            lease_until=now + handoff.lease_seconds,
        )
        try:
            handoff.take(entry, data)
        except Exception:
            await self.release_lease(queue_id, handoff.worker)
            self.wakeup()

    @abstractmethod
    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        data: MessageData,
        *,
        meta: QueueMeta | None = None,
        queue_id: str | None = None,
    ) -> str: ...

    @abstractmethod
    async def claim_due(
        self, worker: str, now: float | None = None, limit: int = 100, lease_seconds: float = 600
    ) -> list[QueueEntry]: ...

    @abstractmethod
    async def extend_lease(
        self, queue_id: str, worker: str, lease_seconds: float, now: float | None = None
    ) -> bool: ...

    @abstractmethod
    async def release_lease(self, queue_id: str, worker: str) -> None: ...

    @abstractmethod
    async def lease_holders(self) -> dict[str, int]: ...

    @abstractmethod
    async def release_worker(self, worker: str) -> int: ...

    @abstractmethod
    async def read_message(self, queue_id: str) -> bytes: ...

    async def read_message_part(self, queue_id: str, offset: int, length: int) -> bytes:
        """Stores that can read a slice without the whole message override this."""
        return (await self.read_message(queue_id))[offset : offset + length]

    @abstractmethod
    async def record_results(
        self,
        queue_id: str,
        updates: Sequence[RecipientUpdate],
        *,
        worker: str | None = None,
        release: bool = True,
        now: float | None = None,
    ) -> QueueEntry | None: ...

    @abstractmethod
    async def update_meta(self, queue_id: str, meta: QueueMeta) -> None: ...

    @abstractmethod
    async def get(self, queue_id: str) -> QueueEntry | None: ...

    @abstractmethod
    async def list_entries(self, limit: int | None = None) -> list[QueueEntry]: ...

    @abstractmethod
    async def hold(self, queue_id: str) -> bool: ...

    async def release(self, queue_id: str) -> bool:
        changed = await self._make_due(queue_id, unhold=True)
        if changed:
            self.wakeup()
        return changed > 0

    @abstractmethod
    async def delete(self, queue_id: str) -> bool: ...

    async def retry(self, queue_id: str | None = None) -> int:
        changed = await self._make_due(queue_id, unhold=False)
        if changed:
            self.wakeup()
        return changed

    @abstractmethod
    async def _make_due(self, queue_id: str | None, *, unhold: bool) -> int:
        """Make the pending recipients of ``queue_id`` (None: of every entry) due now,
        and with ``unhold`` lift its hold; the number of entries changed."""

    @abstractmethod
    async def next_due(self) -> float | None: ...

    @abstractmethod
    async def close(self) -> None: ...

    def wakeup(self) -> None:
        """Tell this process's delivery agent that there is new work."""
        self._work.set()

    async def wait_for_work(self, timeout: float) -> bool:
        """Wait until :meth:`wakeup` or ``timeout`` seconds; True if woken."""
        try:
            await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            return False
        self._work.clear()
        return True


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A queued message too big to hold in memory (past :data:`~mailwright.spool.SPOOL_THRESHOLD`):
    the delivery agent reads it from the store a piece at a time, each time it sends it."""

    store: QueueStore
    queue_id: str
    size: int
    """The size of the stored message."""
    prefix: bytes = b""
    """Sent before the stored message: the DKIM-Signature fields the delivery agent adds
    (signed at each attempt, never stored)."""

    def __len__(self) -> int:
        return len(self.prefix) + self.size

    def with_prefix(self, prefix: bytes) -> StoredMessage:
        return replace(self, prefix=prefix)

    async def chunks(self, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        if self.prefix:
            yield self.prefix
        offset = 0
        while offset < self.size:
            piece = await self.store.read_message_part(self.queue_id, offset, size)
            if not piece:
                return
            offset += len(piece)
            yield piece

    async def head(self) -> bytes:
        """The header section with its empty line (at most :data:`HEAD_LIMIT` octets)."""
        start = await self.store.read_message_part(self.queue_id, 0, HEAD_LIMIT)
        end = start.find(b"\r\n\r\n")
        return self.prefix + (start if end < 0 else start[: end + 4])

    async def read_all(self) -> bytes:
        return b"".join([piece async for piece in self.chunks()])
