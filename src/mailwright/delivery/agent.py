"""The delivery agent: takes due messages from the queue and delivers them.

Shaped like Postfix's queue manager and smtp client, in one asyncio process:

* claim due entries from the :class:`~mailwright.queue.QueueStore` (leased, so
  several processes or nodes can share a queue);
* split each message's due recipients by destination: our own domains go to
  local Maildirs, the rest to a per-destination *lane* (the recipient's domain in
  direct mode, the single relay in relay mode, the outbox in development mode);
* each lane runs up to ``max_connections_per_domain`` sessions (and all lanes
  together at most ``max_connections``); a session carries all recipients of a
  message for that domain in one transaction and then the next message (RSET
  between), and stays open briefly for more work, like Postfix's connection cache;
* when every part of a message is done, record the results, log one line per
  recipient, and queue at most one DSN per message (RFC 3464) to its sender.

Transient failures retry on Postfix's schedule (:mod:`.retry`): per attempt, the
next MX gets the recipients that the previous one deferred or could not take.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import random
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from ..bounce.model import bounce_type, classify_reply
from ..config import Config
from ..dns import Resolver
from ..log import EventLogger, angle
from ..maildir import Maildir, mailbox_path
from ..queue import (
    DsnRecipient,
    Handoff,
    PendingFailure,
    QueueEntry,
    QueueError,
    QueueMeta,
    QueueStore,
    RecipientUpdate,
    new_queue_id,
)
from ..queue.events import Event
from ..queue.store import ClientTurn, StoredMessage, client_turn
from ..queue.suppressions import Suppression
from ..queue.tracking import Tracking
from ..smtp.intake import Accepted, IntakePolicy, Refused, Signer, forward, originate
from ..spool import CHUNK_SIZE, SPOOL_THRESHOLD
from ..verp import bounce_address
from . import lmtp
from .client import ClientSettings, MessageSource, Session, SessionError, TransactionResult
from .dsn import Action, RecipientReport, build_dsn, wants_dsn
from .policies import PolicyCache, PolicySource
from .replies import Reply, local_reply
from .retry import after_failure, delay_warning_due, retry_until
from .routing import Hop, Route, RouteFailure, relay_target, resolve_mx
from .security import SecurityNote, TransportSecurity, requiretls_route, tls_optional_route
from .signing import NotSigned, sign_in_memory, sign_stored
from .tls_results import ResultKey, TlsResultStore

IDLE_SECONDS = 2.0
"""How long an idle session waits for another message to the same destination
(Postfix: smtp_connection_cache_time_limit = 2 s)."""
ROUTE_CACHE_SECONDS = 60.0
"""How long a destination's MX answer is reused within this process."""
BATCH = 200
"""Entries claimed at once."""
MAX_INFLIGHT = 2000
"""Messages being delivered at once by this agent; claiming pauses above this."""
MAX_INFLIGHT_BYTES = 256 * 1024 * 1024
"""Message bytes held in memory for delivery; claiming pauses above this (a queue of
large messages must not exhaust memory)."""
POLL_SECONDS = 5.0
"""Longest sleep between claims: picks up mail queued by other processes."""
CLAIM_DELAY = 0.02
"""While deliveries are in flight, wait this long after new mail before claiming it."""
ERROR_PAUSE = 1.0
"""Pause after a failed store call before trying again."""
TLS_RESULTS_FLUSH_SECONDS = 60.0
"""How often the TLS report counts (RFC 8460) go to the database."""

ENV_PAUSE = "MAILWRIGHT_DELIVERY"

LOCAL = "\x00local"
OUTBOX = "\x00outbox"

Announce = Callable[[str], None]
Commit = Callable[[Accepted], Awaitable[str]]
"""Put a message we originated (a DSN) on the queue; returns its queue ID."""


class DeliverySession(Protocol):
    """What the agent needs from a connection (a :class:`Session`, or a fake in tests)."""

    hop: Hop
    broken: bool

    @property
    def relay(self) -> str: ...

    async def send(
        self,
        sender: str,
        recipients: Sequence[str],
        data: MessageSource,
        meta: QueueMeta | None = None,
    ) -> TransactionResult: ...

    async def close(self) -> None: ...


Connector = Callable[[Hop, Route, ClientSettings, bool], Awaitable[DeliverySession]]


async def open_session(
    hop: Hop, route: Route, settings: ClientSettings, use_tls: bool
) -> DeliverySession:
    return await Session.open(hop, route, settings, use_tls=use_tls)


LocalTargets = Callable[[str], Sequence[str] | None]
"""Recipient in one of our domains → the mailbox addresses it delivers to (aliases
resolved); None when there is no such user."""


@dataclass(slots=True)
class Outcome:
    """What happened to one recipient in this attempt."""

    reply: Reply
    relay: str = "none"
    remote_mta: str | None = None
    remote: bool = False
    """``reply`` came from a remote server (vs. made up by us)."""
    dsn_passed: bool = False
    """The server that took it offers DSN: RFC 3461 requests went on with the message."""

    @property
    def kind(self) -> Literal["delivered", "deferred", "bounced"]:
        if self.reply.positive:
            return "delivered"
        return "bounced" if self.reply.permanent else "deferred"


@dataclass(slots=True)
class _Tracker:
    """A message in delivery: its parts are done when ``remaining`` reaches zero."""

    entry: QueueEntry
    data: MessageSource
    """In memory, or (past the spool threshold) read from the queue when sent."""
    started: float
    remaining: int = 0
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    lost: bool = False
    """The lease ran out and could not be renewed: another worker may own the message."""


@dataclass(slots=True)
class _Job:
    tracker: _Tracker
    recipients: list[str]


@dataclass(slots=True)
class _Lane:
    """One destination: its waiting jobs and the sessions working on them."""

    key: str
    jobs: deque[_Job] = field(default_factory=deque)
    sessions: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    route: Route | RouteFailure | None = None
    route_time: float = 0.0


class DeliveryAgent:
    """Delivers what the queue holds; ``await agent.run()`` until :meth:`stop`."""

    def __init__(
        self,
        config: Config,
        store: QueueStore,
        resolver: Resolver,
        logger: EventLogger,
        *,
        worker: str | None = None,
        connector: Connector = open_session,
        local_targets: LocalTargets | None = None,
        announce: Announce | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        intake: Callable[[], IntakePolicy] | None = None,
        commit: Commit | None = None,
        tracking: Tracking | None = None,
        verp_key: bytes | None = None,
        security: TransportSecurity | None = None,
        list_addresses: Callable[[str], bool] | None = None,
        unknown_addresses: Callable[[str], bool] | None = None,
        signer: Callable[[], Signer | None] | None = None,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.logger = logger
        self.worker = worker or f"{socket.gethostname()}:{id(self):x}"
        self.connector = connector
        self.local_targets = local_targets or (lambda address: [address])
        self.announce = announce or _print
        self.clock = clock
        self.rng = rng or random.Random()
        self.intake = intake or (lambda: IntakePolicy(hostname=self.config.hostname))
        """The intake policy of the moment (DSNs we write are signed like any mail of ours)."""
        self.signer = signer or (lambda: self.intake().signer)
        """The DKIM keys of the moment (SIGHUP swaps them): what intake decided to sign
        is signed when it leaves (:mod:`.signing`)."""
        self.commit = commit or self._enqueue_accepted
        self.tracking = tracking
        """Where the outcome of each recipient of a tracked message goes (events)."""
        self.verp_key = verp_key
        """The VERP HMAC key; None: every message leaves with its own envelope sender."""
        self._fixed_security = security
        self.security: TransportSecurity | None = security
        self.tls_results: TlsResultStore | None = None
        """RFC 8460 counts per policy domain (direct delivery only)."""
        self._tls_counts: dict[ResultKey, tuple[int, tuple[str, ...]]] = {}
        self.list_addresses = list_addresses
        """Mailman list addresses: delivered over LMTP (mailwright.mailman)."""
        self.unknown_addresses = unknown_addresses
        """Local addresses nobody has that may be a list's while Mailman cannot be asked:
        deferred (451), not bounced."""
        self.reconfigure(config)
        self.idle_seconds = IDLE_SECONDS
        self.claim_delay = CLAIM_DELAY
        self.paused = os.environ.get(ENV_PAUSE) == "paused"
        """When True, nothing is claimed: mail is queued but stays there (``bench/mta``
        measures the submission rate alone this way; ``MAILWRIGHT_DELIVERY=paused``)."""
        self._lanes: dict[str, _Lane] = {}
        self._connections = asyncio.Semaphore(self.delivery.max_connections)
        self._inflight = 0
        self._inflight_bytes = 0
        self._capacity = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def reconfigure(self, config: Config) -> None:
        """Take a new config (SIGHUP): new connections and retries use it at once.

        Raises :class:`~mailwright.errors.ConfigError` (and keeps the old settings) for a
        relay URL or password that does not work. ``max_connections`` keeps its value
        until a restart (sessions hold its semaphore).
        """
        delivery = config.delivery
        relay = (
            relay_target(delivery.relay, file=config.source)
            if delivery.mode == "relay" and delivery.relay
            else None
        )
        self.config = config
        self.delivery = delivery
        self.relay = relay
        self.settings = ClientSettings(
            helo=config.hostname,
            connect_timeout=delivery.connect_timeout,
            command_timeout=delivery.command_timeout,
            source_ipv4=delivery.source_ipv4,
            source_ipv6=delivery.source_ipv6,
        )
        self.domains = {d.lower() for d in config.domains}
        self.lease_seconds = max(900.0, 4 * delivery.command_timeout + delivery.connect_timeout)
        if self._fixed_security is None:
            self.security = self._make_security(config)
        if self.tls_results is None and self.security is not None:
            self.tls_results = TlsResultStore(config.data_dir / "queue.sqlite3")
        for lane in getattr(self, "_lanes", {}).values():
            lane.route = None  # routes are looked up again with the new settings
        handoff = self.store.handoff
        if handoff is not None and handoff.take == self._take:
            self._offer_handoff()  # the new lease length

    def _offer_handoff(self) -> None:
        """Let the store hand us what this process queues (claim at enqueue)."""
        if self.store.supports_handoff:
            self.store.handoff = Handoff(
                self.worker, self.lease_seconds, self._can_take, self._take
            )

    def _make_security(self, config: Config) -> TransportSecurity | None:
        """MTA-STS (cache in the queue database) and DANE for direct delivery."""
        delivery = config.delivery
        if delivery.mode != "direct" or not (delivery.mta_sts or delivery.dane):
            return None
        old = self.security
        policies = None
        if delivery.mta_sts:
            cache = (
                old.policies.cache
                if old is not None and old.policies is not None
                else PolicyCache(config.data_dir / "queue.sqlite3")
            )
            policies = PolicySource(self.resolver, cache, ca_file=delivery.ca_file)
        return TransportSecurity(
            self.resolver, policies, dane=delivery.dane, ca_file=delivery.ca_file
        )

    # -- main loop ----------------------------------------------------------

    def stop(self) -> None:
        """Finish what is in flight, then return from :meth:`run` (idle sessions QUIT now)."""
        self._stopping.set()
        self.store.wakeup()
        for lane in self._lanes.values():
            lane.arrived.set()

    async def run(self) -> None:
        """Claim and deliver until :meth:`stop`; then finish the messages in flight.

        A failing store call (a database busy beyond its timeout, a full disk) is logged
        and retried a second later: it must not end delivery for the life of the process.
        """
        refresher = None
        if self.security is not None and self.security.policies is not None:
            refresher = asyncio.ensure_future(
                self.security.policies.refresh_loop(report=self._policy_refreshed)
            )
        flusher = asyncio.ensure_future(self._flush_tls_periodically())
        self._offer_handoff()
        try:
            while not self._stopping.is_set():
                try:
                    await self._step()
                except Exception as exc:
                    self.logger.event("error", None, what="delivery", reason=repr(exc))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), ERROR_PAUSE)
        finally:
            handoff = self.store.handoff
            if handoff is not None and handoff.take == self._take:
                self.store.handoff = None  # what is queued from now on waits for a claim
            if refresher is not None:
                refresher.cancel()
            flusher.cancel()
            await self.drain()
            await self.flush_tls_results()

    async def _step(self) -> None:
        claimed = 0 if self.paused else await self._claim()
        if claimed:
            await asyncio.sleep(0)
            return
        if self._busy():
            self._capacity.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._capacity.wait(), POLL_SECONDS)
            return
        timeout = POLL_SECONDS
        due = None if self.paused else await self.store.next_due()
        if due is not None:
            timeout = min(timeout, max(0.05, due - self.clock()))
        if await self.store.wait_for_work(timeout) and self._inflight:
            # Busy: let a few more messages arrive so that one claim (one commit on the
            # shared queue) covers them, instead of a commit per message.
            await asyncio.sleep(self.claim_delay)

    async def run_once(self) -> int:
        """Claim what is due now, deliver it completely, return how many entries (tests)."""
        claimed = await self._claim()
        await self.drain()
        await self.flush_tls_results()
        return claimed

    async def drain(self) -> None:
        """Wait until every message in flight is finished."""
        while self._tasks or self._inflight:
            await self._idle.wait()
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _busy(self) -> bool:
        return self._inflight >= MAX_INFLIGHT or self._inflight_bytes >= MAX_INFLIGHT_BYTES

    async def _claim(self) -> int:
        now = self.clock()
        limit = min(BATCH, MAX_INFLIGHT - self._inflight)
        if limit <= 0 or self._busy():
            return 0
        entries = await self.store.claim_due(self.worker, now, limit, self.lease_seconds)
        for index, entry in enumerate(entries):
            try:
                await self._dispatch(entry, now)
            except Exception:
                # The store failed (a database gone away): the rest of this claim goes
                # back now, or it would stay leased to us, undelivered, for the lease.
                for rest in entries[index + 1 :]:
                    with contextlib.suppress(Exception):
                        await self.store.release_lease(rest.id, self.worker)
                raise
        return len(entries)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task of the agent's, outside any client's session: a task
        started from a hand-off would otherwise inherit that session's
        :data:`~mailwright.queue.store.client_turn` (a context variable), and what it
        queues later (a DSN) would wait for a session it has nothing to do with."""
        context = contextvars.copy_context()
        context.run(client_turn.set, None)
        task = asyncio.get_running_loop().create_task(coro, context=context)
        self._tasks.add(task)
        self._idle.clear()

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.logger.event("error", None, what="delivery", reason=repr(t.exception()))
            if not self._tasks:
                self._idle.set()

        task.add_done_callback(done)

    # -- splitting a message --------------------------------------------------

    async def _dispatch(self, entry: QueueEntry, now: float) -> None:
        due = [r.address for r in entry.pending if r.next_attempt <= now]
        if not due:
            await self.store.release_lease(entry.id, self.worker)
            return
        data: MessageSource
        try:
            if entry.size > SPOOL_THRESHOLD:
                # a big message is never held whole: each send reads it a piece at a time
                await self.store.read_message_part(entry.id, 0, 0)  # KeyError: gone
                data = StoredMessage(self.store, entry.id, entry.size)
            else:
                data = await self.store.read_message(entry.id)
        except KeyError:
            return  # deleted meanwhile
        except Exception:
            await self.store.release_lease(entry.id, self.worker)  # someone else may manage
            raise
        self._start(entry, data, now, due)

    def _can_take(self, size: int) -> bool:
        """Room for a message handed over at enqueue (:class:`~mailwright.queue.Handoff`)."""
        return not (
            self.paused
            or self._stopping.is_set()
            or self._busy()
            or self._inflight_bytes + size > MAX_INFLIGHT_BYTES
        )

    def _take(self, entry: QueueEntry, data: bytes) -> None:
        """A message just queued by this process, already leased to us: deliver it
        without a claim or a read-back (claim at enqueue). Every recipient is due: it
        was queued due now. Queued by an SMTP session, it waits for the session's end
        (:class:`~mailwright.queue.store.ClientTurn`).

        Stopping (the stop came while the enqueue committed): refused, so the store gives
        the lease back at once and the message waits for the next claim, not for its lease
        to run out."""
        if self._stopping.is_set():
            raise QueueError("the delivery agent is stopping")
        due = [r.address for r in entry.pending]
        self._start(entry, data, self.clock(), due, client_turn.get())

    def _start(
        self,
        entry: QueueEntry,
        data: MessageSource,
        now: float,
        due: list[str],
        turn: ClientTurn | None = None,
    ) -> None:
        """Put the due recipients to work, split by destination, after ``turn`` (the
        session that queued the message) is over; a message intake said to sign is
        signed first, once for all its destinations. Both in a task of their own: a
        message handed over at enqueue (:meth:`_take`) arrives inside the client's
        session, before its ``250``."""
        tracker = _Tracker(entry, data, now)
        self._inflight += 1
        self._inflight_bytes += _held(data)
        if entry.meta.sign_domain is None and turn is None:
            self._split(tracker, due)
        else:
            self._spawn(self._sign_then_split(tracker, due, turn))

    async def _sign_then_split(
        self, tracker: _Tracker, due: list[str], turn: ClientTurn | None
    ) -> None:
        if turn is not None:
            await turn.wait()
        domain = tracker.entry.meta.sign_domain
        if domain is not None:
            data = tracker.data
            signed: MessageSource | NotSigned
            if isinstance(data, StoredMessage):  # reads its header section first
                signed = await sign_stored(self.signer(), tracker.entry.meta, data)
            else:  # on the loop: in a thread it cost 7-10 % at 20 sessions, gained nothing
                signed = sign_in_memory(self.signer(), domain, data)
            if isinstance(signed, NotSigned):
                if not self._unsigned(tracker, due, signed):
                    return
            else:
                self._inflight_bytes += _held(signed) - _held(data)
                tracker.data = signed
        self._split(tracker, due)

    def _unsigned(self, tracker: _Tracker, due: list[str], failed: NotSigned) -> bool:
        """A message intake decided to sign whose keys are gone (a reload without them) or
        whose signing failed: a warning, then sent unsigned — unless ``require_dkim`` is
        on: then its recipients are deferred (retried with the keys of the next attempt),
        never sent unsigned. Returns whether to send it."""
        entry = tracker.entry
        self.logger.event(
            "warning",
            entry.id,
            what="unsigned",
            domain=entry.meta.sign_domain,
            reason=failed.reason,
        )
        if not self.intake().require_dkim:
            return True
        reply = local_reply(451, "4.3.0", f"not DKIM-signed: {failed.reason} (require_dkim is on)")
        tracker.outcomes.update((r, Outcome(reply)) for r in due)
        self._spawn(self._finish(tracker))
        return False

    def _split(self, tracker: _Tracker, due: list[str]) -> None:
        groups: dict[str, list[str]] = {}
        for address in due:
            groups.setdefault(self._destination(address), []).append(address)
        tracker.remaining = len(groups)
        for key, recipients in groups.items():
            job = _Job(tracker, recipients)
            if key in (LOCAL, OUTBOX):
                self._spawn(self._local_job(key, job))
            else:
                self._enqueue(key, job)

    def _destination(self, address: str) -> str:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        if domain in self.domains:
            return LOCAL
        if self.delivery.mode == "local":
            return OUTBOX
        if self.delivery.mode == "relay":
            return "relay"
        return domain

    # -- lanes and sessions ---------------------------------------------------

    def _enqueue(self, key: str, job: _Job) -> None:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key)
        lane.jobs.append(job)
        lane.arrived.set()
        if lane.sessions < self.delivery.max_connections_per_domain and lane.sessions < len(
            lane.jobs
        ):
            lane.sessions += 1
            self._spawn(self._lane_worker(lane))

    async def _lane_worker(self, lane: _Lane) -> None:
        """One connection's worth of work: jobs from ``lane`` until idle for a while."""
        session: DeliverySession | None = None
        try:
            async with self._connections:
                while True:
                    if not lane.jobs:
                        lane.arrived.clear()
                        if session is None or session.broken or self._stopping.is_set():
                            break
                        try:
                            async with asyncio.timeout(self.idle_seconds):
                                await lane.arrived.wait()
                        except TimeoutError:
                            break
                        if not lane.jobs:
                            continue
                    job = lane.jobs.popleft()
                    try:
                        if await self._still_ours(job.tracker):
                            session = await self._deliver_job(lane, job, session)
                    finally:
                        self._job_done(job)
        finally:
            lane.sessions -= 1
            if session is not None:
                await session.close()
            if not lane.jobs and lane.sessions == 0 and self._lanes.get(lane.key) is lane:
                if lane.route is None or self.clock() - lane.route_time > ROUTE_CACHE_SECONDS:
                    del self._lanes[lane.key]
            elif lane.jobs and lane.sessions == 0:
                lane.sessions += 1
                self._spawn(self._lane_worker(lane))

    async def _still_ours(self, tracker: _Tracker) -> bool:
        """Renew the lease of a message that waited long in a lane (a slow destination).

        Past half the lease we extend it; if that fails another worker may already be
        delivering the message, so we neither deliver nor record anything for it.
        """
        if tracker.lost:
            return False
        if self.clock() - tracker.started > self.lease_seconds / 2:
            entry = tracker.entry
            if await self.store.extend_lease(
                entry.id, self.worker, self.lease_seconds, self.clock()
            ):
                tracker.started = self.clock()
            else:
                tracker.lost = True
                self.logger.event("error", entry.id, what="delivery", reason="lease lost")
                return False
        return True

    async def _route(self, lane: _Lane) -> Route | RouteFailure:
        now = self.clock()
        if lane.route is not None and now - lane.route_time < ROUTE_CACHE_SECONDS:
            return lane.route
        if self.relay is not None:
            ca = self.delivery.relay.ca_file if self.delivery.relay else None
            route: Route | RouteFailure = self.relay.route(ca)
        else:
            route = await resolve_mx(
                self.resolver,
                lane.key,
                self.delivery,
                ipv4=self.config.ipv4,
                ipv6=self.config.ipv6,
                own_names=(self.config.hostname,),
                rng=self.rng,
            )
            if isinstance(route, Route) and self.security is not None:
                secured = await self.security.secure(lane.key, route)
                for note in secured.notes:
                    self._tls_note(note)
                route = secured.route
        # DNS failures are not cached: the next message asks again.
        if isinstance(route, Route):
            lane.route, lane.route_time = route, now
        return route

    async def _deliver_job(
        self, lane: _Lane, job: _Job, session: DeliverySession | None
    ) -> DeliverySession | None:
        """Deliver one message's recipients for this lane, trying hop after hop.

        RFC 5321 §5.1: on connection failure, or when recipients are deferred (4xx),
        the next address gets the recipients that are still undelivered. Returns the
        session to reuse for the next job (None if it is gone).
        """
        entry = job.tracker.entry
        route = await self._route(lane)
        if isinstance(route, RouteFailure):
            reply = local_reply(550 if route.permanent else 451, route.status, route.text)
            for r in job.recipients:
                job.tracker.outcomes[r] = Outcome(reply)
            return session
        meta = entry.meta
        requiretls = meta.requiretls and bool(entry.sender)  # RFC 8689 §5: not for bounces
        if self.security is not None and self.relay is None:
            if requiretls:
                route = requiretls_route(route, lane.key)
            elif meta.tls_optional:
                route = tls_optional_route(route)
        remaining = list(job.recipients)
        last: dict[str, Outcome] = {}
        hops = list(route.hops)
        if session is not None and not session.broken and session.hop in hops:
            hops.remove(session.hop)
            hops.insert(0, session.hop)
        for hop in hops:
            if session is not None and (
                session.broken
                or session.hop != hop
                or (_needs_authentication(route, hop, requiretls) and not _authenticated(session))
            ):
                await session.close()
                session = None
            reused = session is not None
            if session is None:
                try:
                    session = await self._connect(hop, route)
                except SessionError as exc:
                    for r in remaining:
                        last[r] = Outcome(
                            exc.reply,
                            hop.relay,
                            hop.host,
                            remote=not exc.reply.local,
                        )
                    continue
            result = await self._send(session, entry, remaining, job.tracker.data)
            if reused and session.broken and not result.server_spoke:
                # A cached connection the server had already dropped (its idle timeout):
                # nothing was said about this message, so try once on a fresh one, as
                # Postfix does, rather than defer it for minutes.
                await session.close()
                session = None
                try:
                    session = await self._connect(hop, route)
                except SessionError as exc:
                    for r in remaining:
                        last[r] = Outcome(exc.reply, hop.relay, hop.host, not exc.reply.local)
                    continue
                result = await self._send(session, entry, remaining, job.tracker.data)
            still: list[str] = []
            for r in remaining:
                reply = result.replies[r]
                outcome = Outcome(
                    reply, session.relay, hop.host, not reply.local, result.dsn_passed
                )
                last[r] = outcome
                if reply.transient:
                    still.append(r)
            remaining = still
            if not remaining:
                break
        for r in job.recipients:
            job.tracker.outcomes[r] = last.get(r) or Outcome(
                local_reply(451, "4.4.1", "no address to try")
            )
        return session if session is not None and not session.broken else None

    async def _send(
        self,
        session: DeliverySession,
        entry: QueueEntry,
        recipients: list[str],
        data: MessageSource,
    ) -> TransactionResult:
        """One transaction, or with VERP one per recipient (each has its own return path,
        ``bounces+TOKEN@`` the sender's domain: a later bounce names its recipient)."""
        if not (entry.meta.verp and self.verp_key and entry.sender):
            return await session.send(entry.sender, recipients, data, entry.meta)
        domain = entry.sender.rpartition("@")[2]
        addresses = [r.address for r in entry.recipients]
        merged = TransactionResult(dsn_passed=True)
        for i, recipient in enumerate(recipients):
            if i and session.broken:
                result = TransactionResult(
                    {recipient: local_reply(451, "4.4.2", "connection lost before sending")}
                )
            else:
                sender = bounce_address(
                    self.verp_key,
                    entry.id,
                    addresses.index(recipient),
                    domain,
                    local_part=self.config.bounces.local_part,
                    now=self.clock(),
                )
                result = await session.send(sender, [recipient], data, entry.meta)
            merged.replies.update(result.replies)
            merged.server_spoke = merged.server_spoke or result.server_spoke
            merged.dsn_passed = merged.dsn_passed and result.dsn_passed
        return merged

    async def _connect(self, hop: Hop, route: Route) -> DeliverySession:
        requirement = route.requirement(hop.host)
        if requirement is not None and requirement.kind == "refused":
            # MTA-STS/DANE/REQUIRETLS rule this host out: not even a connection.
            code = 550 if requirement.status.startswith("5") else 451
            raise SessionError(local_reply(code, requirement.status, requirement.reason))
        try:
            session = await self.connector(hop, route, self.settings, True)
        except SessionError as exc:
            if requirement is not None and exc.policy_failure is not None:
                self._tls_note(
                    SecurityNote(
                        requirement.policy_domain,
                        "tlsa" if requirement.kind == "dane" else "sts",
                        exc.policy_failure,
                        str(exc.reply),
                        hop.host,
                        requirement.policy_strings,
                    ),
                    hop.address,
                )
                if not requirement.enforce:
                    # RFC 8461 §5 "testing": report the failure, deliver as if no policy.
                    relaxed = replace(
                        route, requirements=tuple(p for p in route.requirements if p[0] != hop.host)
                    )
                    return await self._connect(hop, relaxed)
            if not exc.tls_failed:
                raise
        else:
            if (
                requirement is not None
                and requirement.kind in ("dane", "mta-sts")
                and _authenticated(session)
            ):
                self._count_tls(
                    requirement.policy_domain,
                    "tlsa" if requirement.kind == "dane" else "sts",
                    "success",
                    "",
                    "",
                    requirement.policy_strings,
                )
            return session
        # Opportunistic TLS failed: Postfix practice is to try the same server once
        # more in plain text rather than leave the mail undelivered (RFC 7435 §6).
        return await self.connector(hop, route, self.settings, False)

    def _count_tls(
        self,
        domain: str,
        policy_type: str,
        result: str,
        mx_host: str,
        ip: str,
        strings: tuple[str, ...],
    ) -> None:
        """One session's result for the domain's TLS report (RFC 8460 §4); counted in
        memory and written in batches (:meth:`flush_tls_results`)."""
        if self.tls_results is None:
            return
        key = ResultKey(domain, policy_type, result, mx_host, ip)
        count, _ = self._tls_counts.get(key, (0, ()))
        self._tls_counts[key] = (count + 1, strings)

    async def flush_tls_results(self) -> None:
        """Write the counted TLS results (one transaction, off the event loop)."""
        results, counts = self.tls_results, self._tls_counts
        if results is None or not counts:
            return
        self._tls_counts = {}
        try:
            await asyncio.to_thread(results.add, counts, self.clock())
        except Exception as exc:  # reporting must never stop delivery
            self.logger.event("error", None, what="tls-results", reason=repr(exc))

    async def _flush_tls_periodically(self) -> None:
        while True:
            await asyncio.sleep(TLS_RESULTS_FLUSH_SECONDS)
            await self.flush_tls_results()

    def _policy_refreshed(self, domain: str, problem: str | None) -> None:
        self.logger.event(
            "mta-sts-refresh",
            None,
            domain=domain,
            status="failed" if problem else "ok",
            reason=problem,
        )

    def _tls_note(self, note: SecurityNote, address: str = "") -> None:
        """A DANE or MTA-STS failure: logged (RFC 8461 §3.3 asks to alert the admin)
        and counted for the TLS report (RFC 8460)."""
        if note.policy_type in ("sts", "tlsa"):
            self._count_tls(
                note.policy_domain,
                note.policy_type,
                note.result_type,
                note.host or "",
                address,
                note.policy_strings,
            )
        self.logger.event(
            "tls-policy",
            None,
            domain=note.policy_domain,
            policy=note.policy_type,
            result=note.result_type,
            host=note.host,
            reason=note.detail,
        )

    # -- local deliveries -----------------------------------------------------

    async def _local_job(self, key: str, job: _Job) -> None:
        try:
            if key == OUTBOX:
                await self._outbox(job)
            else:
                await self._mailboxes(job)
        finally:
            self._job_done(job)

    async def _outbox(self, job: _Job) -> None:
        entry = job.tracker.entry
        box = Maildir(self.config.data_dir / "outbox", host=self.config.hostname)
        try:
            path = await asyncio.to_thread(box.deliver, _blocking_pieces(job.tracker.data))
        except OSError as exc:
            reply = local_reply(451, "4.3.0", f"cannot write the outbox: {exc.strerror}")
            for r in job.recipients:
                job.tracker.outcomes[r] = Outcome(reply, "local")
            return
        reply = local_reply(250, "2.0.0", f"saved to {path}")
        for r in job.recipients:
            job.tracker.outcomes[r] = Outcome(reply, "local")
        self.announce(
            f"{entry.id} from {angle(entry.sender)} to "
            + ", ".join(angle(r) for r in job.recipients)
            + f" → {path}"
        )

    async def _mailboxes(self, job: _Job) -> None:
        root = mail_root(self.config)
        # DMARC quarantine (mailwright.inbound) asks for the Junk folder in the metadata.
        folder = job.tracker.entry.meta.folder
        to_lists: dict[str, list[str]] = {}
        for recipient in job.recipients:
            targets = self.local_targets(recipient)
            if not targets:
                if self.unknown_addresses is not None and self.unknown_addresses(recipient):
                    reply = local_reply(451, "4.3.0", f"<{recipient}>: list service unavailable")
                else:
                    reply = local_reply(550, "5.1.1", f"<{recipient}>: no such mailbox here")
                job.tracker.outcomes[recipient] = Outcome(reply, "local")
                continue
            if self.list_addresses is not None and all(self.list_addresses(t) for t in targets):
                to_lists[recipient] = list(targets)
                continue
            outside = [t for t in targets if t.rpartition("@")[2].lower() not in self.domains]
            if outside:
                targets = [t for t in targets if t not in outside]
                forwarded = await self._forward(job, recipient, outside)
                if forwarded.code != 250 or not targets:
                    job.tracker.outcomes[recipient] = Outcome(forwarded, "local")
                    continue
            try:
                paths = [
                    await asyncio.to_thread(
                        _deliver_to_mailbox,
                        Maildir(mailbox_path(root, t), host=self.config.hostname),
                        folder,
                        _blocking_pieces(job.tracker.data),
                    )
                    for t in dict.fromkeys(a.lower() for a in targets)
                ]
            except OSError as exc:
                reply = local_reply(451, "4.3.0", f"cannot write the mailbox: {exc.strerror}")
            else:
                reply = local_reply(250, "2.0.0", "delivered to " + ", ".join(map(str, paths)))
            job.tracker.outcomes[recipient] = Outcome(reply, "local")
        if to_lists:
            job.tracker.outcomes.update(await self._lmtp(job, to_lists))

    async def _lmtp(self, job: _Job, to_lists: dict[str, list[str]]) -> dict[str, Outcome]:
        """Hand list addresses' mail to Mailman in one LMTP transaction (RFC 2033), each
        recipient with its own reply (§4.2): 250 done, 4xx retried, 5xx bounced; Mailman
        down → 451 for all, retried."""
        mailman = self.config.mailman
        if mailman is None:
            missing = Outcome(local_reply(451, "4.3.5", "no [mailman] configured"), "local")
            return dict.fromkeys(to_lists, missing)
        relay = f"lmtp:{mailman.lmtp_host}:{mailman.lmtp_port}"
        replies = await lmtp.deliver(
            mailman.lmtp_host,
            mailman.lmtp_port,
            job.tracker.entry.sender,
            list(dict.fromkeys(t for targets in to_lists.values() for t in targets)),
            job.tracker.data,
            lhlo=self.config.hostname,
            timeout=self.delivery.command_timeout,
        )
        outcomes = {}
        for recipient, targets in to_lists.items():
            # a recipient of ours whose targets are all at Mailman: the worst reply decides
            worst = max(
                (replies[t] for t in targets),
                key=lambda r: (r.code // 100 == 4, r.code // 100 == 5),
            )
            outcomes[recipient] = Outcome(worst, relay, remote_mta=relay, remote=not worst.local)
        return outcomes

    async def _forward(self, job: _Job, alias: str, targets: list[str]) -> Reply:
        """An alias pointing outside: a new queue entry through the intake (SRS sender,
        ARC seal), then ``250`` for the alias. The new entry reports its own failures to
        the SRS sender, which leads back to the original sender."""
        entry = job.tracker.entry
        data = job.tracker.data
        if isinstance(data, StoredMessage):
            data = await data.read_all()  # ARC sealing reads it whole (rare: see README)
        result = forward(
            entry.sender,
            targets,
            data,
            self.intake(),
            queue_id=new_queue_id(),
            alias=alias,
            original=entry.id,
            now=self.clock(),
        )
        if isinstance(result, Refused):
            self.logger.event("error", entry.id, what="forward", reason=result.reason)
            code, _, text = result.reply.lines[0].partition(" ")
            return local_reply(result.reply.code, code, text)
        try:
            forward_id = await self.commit(result)
        except Exception as exc:  # the queue write failed: the alias is retried later
            self.logger.event("error", entry.id, what="forward", reason=str(exc))
            return local_reply(451, "4.3.0", "cannot queue the forwarded copy")
        self.logger.event(
            "forwarded",
            forward_id,
            original=entry.id,
            alias=angle(alias),
            from_=angle(result.sender),
            to=",".join(angle(t) for t in targets),
            sealed=result.signing is None,
        )
        return local_reply(250, "2.0.0", f"forwarded to {', '.join(targets)} as {forward_id}")

    # -- finishing a message ----------------------------------------------------

    def _job_done(self, job: _Job) -> None:
        tracker = job.tracker
        for r in job.recipients:
            tracker.outcomes.setdefault(
                r, Outcome(local_reply(451, "4.3.0", "delivery interrupted"))
            )
        tracker.remaining -= 1
        if tracker.remaining == 0:
            self._spawn(self._finish(tracker))

    async def _finish(self, tracker: _Tracker) -> None:
        try:
            if not tracker.lost:
                await self._record(tracker)
        finally:
            self._inflight -= 1
            self._inflight_bytes -= _held(tracker.data)
            self._capacity.set()

    async def _record(self, tracker: _Tracker) -> None:
        entry = tracker.entry
        meta = entry.meta
        now = self.clock()
        retry = self.delivery.retry
        delay = max(0.0, now - entry.created_at)
        updates: list[RecipientUpdate] = []
        failed: list[PendingFailure] = []
        succeeded: list[RecipientReport] = []
        deferred: list[tuple[str, Outcome]] = []
        for recipient, outcome in tracker.outcomes.items():
            reply = outcome.reply
            wanted = meta.recipient_dsn(recipient)
            common = dict(
                to=angle(recipient),
                relay=outcome.relay,
                delay=delay,
                dsn=reply.status(),
                reply=str(reply),
            )
            if outcome.kind == "delivered":
                updates.append(RecipientUpdate(recipient, "delivered", str(reply)))
                self.logger.event("delivered", entry.id, **common)
                # RFC 3461 §5.2.2: success is reported by whoever delivers it, or by us
                # when the next hop cannot carry the request on ("relayed").
                if wanted.wants("SUCCESS") and not outcome.dsn_passed:
                    action: Action = "relayed" if outcome.remote else "delivered"
                    succeeded.append(_report(recipient, outcome, now, wanted, action))
            elif outcome.kind == "bounced":
                updates.append(RecipientUpdate(recipient, "bounced", str(reply)))
                self.logger.event("bounced", entry.id, **common)
                if wanted.wants("FAILURE"):
                    failed.append(_failure(recipient, outcome, now))
            else:
                decision = after_failure(entry.created_at, now, retry)
                if decision.expired:
                    updates.append(RecipientUpdate(recipient, "bounced", str(reply)))
                    self.logger.event("expired", entry.id, to=angle(recipient), delay=delay)
                    if wanted.wants("FAILURE"):
                        failed.append(_failure(recipient, outcome, now))
                else:
                    updates.append(
                        RecipientUpdate(recipient, "deferred", str(reply), decision.next_attempt)
                    )
                    self.logger.event(
                        "deferred", entry.id, **common, next_retry=_iso(decision.next_attempt)
                    )
                    if wanted.wants("DELAY"):
                        deferred.append((recipient, outcome))
        handled = set(tracker.outcomes)
        still_pending = any(u.kind == "deferred" for u in updates) or any(
            r.address not in handled for r in entry.pending
        )
        # With VERP the application learns outcomes from events; a DSN only when the
        # submitter asked for one (RFC 3461 NOTIFY).
        reports = wants_dsn(entry.sender) and (not meta.verp or bool(meta.dsn))
        failures = (*meta.pending_failures, *failed)
        outcome_events: list[Event] | None = None
        if self.tracking is not None and meta.tracked:
            outcome_events = self._outcome_events(tracker, updates, now)
            # one write with the results when they are in the same database, and when
            # no DSN is queued in between (its own events come after these)
            same_database = self.tracking.store is cast(object, self.store)
            if not same_database or (reports and (succeeded or failures or deferred)):
                await self._record_events(entry, outcome_events)
                outcome_events = None
        if reports and succeeded:
            await self._send_dsn(tracker, "success", succeeded, now)
        if reports and failures and not still_pending:
            # RFC 3464 §2: one DSN per message covers every failed recipient
            await self._send_dsn(
                tracker, "failure", [_failure_report(f, meta) for f in failures], now
            )
        elif reports and failed:
            meta = replace(meta, pending_failures=failures)  # sent with the last recipient
            await self.store.update_meta(entry.id, meta)
        if (
            reports
            and deferred
            and delay_warning_due(entry.created_at, now, retry, meta.delay_warned)
        ):
            until = retry_until(entry.created_at, retry)
            delayed = [
                replace(
                    _report(r, o, now, meta.recipient_dsn(r), "delayed"),
                    will_retry_until=until,
                )
                for r, o in deferred
            ]
            await self._send_dsn(tracker, "delay", delayed, now)
            await self.store.update_meta(entry.id, replace(meta, delay_warned=True))
        if outcome_events is not None:
            await self._record_outcome(entry, updates, outcome_events, now)
        else:
            await self.store.record_results(entry.id, updates, worker=self.worker, now=now)

    async def _record_outcome(
        self, entry: QueueEntry, updates: list[RecipientUpdate], events: list[Event], now: float
    ) -> None:
        """The events and the results in one write (one operation of the store's next
        batch, instead of two in two batches); if that fails, the results alone (as when
        the events are written on their own: the outcome is recorded either way)."""
        assert self.tracking is not None
        try:
            added = await self.tracking.record_outcome(
                entry.id, updates, events, worker=self.worker, now=now
            )
        except Exception as exc:
            self.logger.event("error", entry.id, what="events", reason=str(exc))
            await self.store.record_results(entry.id, updates, worker=self.worker, now=now)
            return
        self._log_suppressions(entry, added)

    def _outcome_events(
        self, tracker: _Tracker, updates: list[RecipientUpdate], now: float
    ) -> list[Event]:
        """One event per recipient outcome."""
        entry = tracker.entry
        meta = entry.meta
        expired_after = after_failure(entry.created_at, now, self.delivery.retry).expired
        events: list[Event] = []
        for update in updates:
            outcome = tracker.outcomes[update.recipient]
            reply = outcome.reply
            common: dict[str, Any] = dict(
                recipient=update.recipient,
                queue_id=entry.id,
                message_id=meta.message_id,
                sender=entry.sender,
                mta_response=str(reply),
                tags=meta.tags,
                metadata=dict(meta.metadata or {}),
            )
            details: dict[str, Any] = {"relay": outcome.relay, "remote": outcome.remote}
            if update.kind == "delivered":
                events.append(Event("delivered", now, details=details, **common))
                continue
            status, cause = classify_reply(str(reply), reply.status() or "")
            if update.kind == "deferred":
                details["next_retry"] = _iso(update.next_attempt or now)
                events.append(Event("deferred", now, cause=cause, details=details, **common))
            elif outcome.kind == "deferred" and expired_after:
                events.append(Event("expired", now, cause=cause, details=details, **common))
            else:
                events.append(
                    Event(
                        "bounced",
                        now,
                        bounce_type=bounce_type(status, cause),
                        bounce_source="sync",
                        cause=cause,
                        details={**details, "status": status},
                        **common,
                    )
                )
        return events

    async def _record_events(self, entry: QueueEntry, events: list[Event]) -> None:
        """The outcome events on their own, before the queue records the results (a
        crash in between repeats an event, never loses one)."""
        assert self.tracking is not None
        try:
            # No flush of their own: the results are written the same way, after them
            # (a power failure forgets both: delivered and reported again).
            added = await self.tracking.record(events, durable=False)
        except Exception as exc:  # the outcome is recorded by the queue either way
            self.logger.event("error", entry.id, what="events", reason=str(exc))
            return
        self._log_suppressions(entry, added)

    def _log_suppressions(self, entry: QueueEntry, added: list[Suppression]) -> None:
        for suppression in added:
            self.logger.event(
                "suppressed", entry.id, to=angle(suppression.address), reason=suppression.reason
            )

    async def _send_dsn(
        self,
        tracker: _Tracker,
        kind: Literal["failure", "delay", "success"],
        reports: list[RecipientReport],
        now: float,
    ) -> None:
        """Write the DSN and queue it through the intake (signed like all our mail)."""
        entry = tracker.entry
        original = tracker.data
        ret = "HDRS" if entry.meta.requiretls else entry.meta.ret
        if isinstance(original, StoredMessage):
            # a big message is returned by its header section only (as RET=HDRS), like
            # Postfix's bounce_size_limit: the DSN stays small and is built in memory
            original, ret = await original.head(), "HDRS"
        message = build_dsn(
            kind=kind,
            reporting_mta=self.config.hostname,
            sender=entry.sender,
            queue_id=entry.id,
            arrival=entry.created_at,
            recipients=reports,
            original=original,
            now=now,
            envid=entry.meta.envid,
            # RFC 8689 §5: a bounce of a REQUIRETLS message returns the header only.
            ret=ret,
        )
        accepted = originate(
            "",
            [entry.sender],
            message,
            self.intake(),
            queue_id=new_queue_id(),
            origin="dsn",
            original=entry.id,
            now=now,
        )
        if entry.meta.requiretls:
            # RFC 8689 §5: the bounce is protected like the message (REQUIRETLS on it).
            accepted = replace(accepted, meta=replace(accepted.meta, requiretls=True))
        dsn_id = await self.commit(accepted)
        self.logger.event("dsn", dsn_id, original=entry.id, to=angle(entry.sender), kind=kind)

    async def _enqueue_accepted(self, accepted: Accepted) -> str:
        """Without a server's commit (tests, tools): straight into the store."""
        return await self.store.enqueue(
            accepted.sender,
            accepted.recipients,
            accepted.message,
            meta=accepted.meta,
            queue_id=accepted.queue_id,
        )


def _needs_authentication(route: Route, hop: Hop, requiretls: bool) -> bool:
    """A cached session without authenticated TLS must not carry this message (it was
    opened for a message without the requirement, e.g. ``TLS-Required: No``)."""
    requirement = route.requirement(hop.host)
    return requiretls or (
        requirement is not None and requirement.enforce and requirement.kind != "refused"
    )


def _authenticated(session: DeliverySession) -> bool:
    return getattr(session, "authenticated", None) is not None


def mail_root(config: Config) -> Path:
    """Where the Maildirs of our own addresses live: ``DATA_DIR/mail/DOMAIN/LOCAL``."""
    return config.data_dir / "mail"


def _report(
    recipient: str,
    outcome: Outcome,
    now: float,
    wanted: DsnRecipient,
    action: Action,
) -> RecipientReport:
    return RecipientReport(
        recipient,
        outcome.reply.status(),
        action=action,
        diagnostic=str(outcome.reply),
        remote=outcome.remote,
        remote_mta=outcome.remote_mta if outcome.remote else None,
        original_recipient=wanted.orcpt,
        last_attempt=now,
    )


def _failure(recipient: str, outcome: Outcome, now: float) -> PendingFailure:
    return PendingFailure(
        recipient=recipient,
        status=outcome.reply.status(),
        diagnostic=str(outcome.reply),
        remote=outcome.remote,
        remote_mta=outcome.remote_mta if outcome.remote else None,
        last_attempt=now,
    )


def _failure_report(failure: PendingFailure, meta: QueueMeta) -> RecipientReport:
    return RecipientReport(
        failure.recipient,
        failure.status,
        diagnostic=failure.diagnostic,
        remote=failure.remote,
        remote_mta=failure.remote_mta,
        original_recipient=meta.recipient_dsn(failure.recipient).orcpt,
        last_attempt=failure.last_attempt,
    )


def _held(data: MessageSource) -> int:
    """Bytes of a message in delivery held in memory (a big one: one piece at a time)."""
    return len(data) if isinstance(data, bytes) else CHUNK_SIZE


def _blocking_pieces(data: MessageSource) -> bytes | Iterator[bytes]:
    """For a worker thread: the message, or a big one's pieces, each read by the event
    loop (the store is asynchronous) while the thread waits."""
    if isinstance(data, bytes):
        return data
    loop = asyncio.get_running_loop()

    def pieces() -> Iterator[bytes]:
        if data.prefix:
            yield data.prefix
        offset = 0
        while offset < data.size:
            piece = asyncio.run_coroutine_threadsafe(
                data.store.read_message_part(data.queue_id, offset, CHUNK_SIZE), loop
            ).result()
            if not piece:
                return
            offset += len(piece)
            yield piece

    return pieces()


def _deliver_to_mailbox(box: Maildir, folder: str | None, data: bytes | Iterator[bytes]) -> Path:
    """Into the mailbox, or its Maildir++ ``folder``; a bad folder name falls back to the
    inbox rather than lose the message."""
    if folder:
        box.create()  # a Maildir++ folder lives inside an existing Maildir
        with contextlib.suppress(ValueError):
            box = box.folder(folder)
    return box.deliver(data)


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _print(line: str) -> None:
    print(line, flush=True)
