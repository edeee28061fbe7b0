"""In-memory fakes for agent tests: a queue store with a settable clock and scripted SMTP."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailwright.delivery.client import ClientSettings, SessionError, TransactionResult
from mailwright.delivery.replies import Reply, local_reply
from mailwright.delivery.routing import Hop, Route
from mailwright.queue import QueueEntry, QueueMeta, QueueStore, RecipientState, RecipientUpdate


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MemoryStore(QueueStore):
    """Just enough of the store contract for the agent, in a dict."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.entries: dict[str, QueueEntry] = {}
        self.data: dict[str, bytes] = {}
        self.done: dict[str, QueueEntry] = {}
        self.results: list[tuple[str, list[RecipientUpdate]]] = []
        self._n = 0

    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        meta: QueueMeta | None = None,
        queue_id: str | None = None,  # the fake names its own IDs
        created_at: float | None = None,
    ) -> str:
        self._n += 1
        queue_id = f"Q{self._n:04d}"
        now = self.clock() if created_at is None else created_at
        self.entries[queue_id] = QueueEntry(
            queue_id,
            sender,
            [RecipientState(r, next_attempt=now) for r in recipients],
            len(data),
            now,
            meta=meta or QueueMeta(),
        )
        self.data[queue_id] = data
        self.wakeup()
        return queue_id

    async def claim_due(
        self, worker: str, now: float | None = None, limit: int = 100, lease_seconds: float = 600
    ) -> list[QueueEntry]:
        now = self.clock() if now is None else now
        out = []
        for entry in self.entries.values():
            if entry.held or (entry.lease_until and entry.lease_until > now):
                continue
            if any(r.next_attempt <= now for r in entry.pending):
                entry.claimed_by, entry.lease_until = worker, now + lease_seconds
                out.append(copy.deepcopy(entry))
            if len(out) >= limit:
                break
        return out

    async def extend_lease(self, *a: Any, **k: Any) -> bool:
        return True

    async def lease_holders(self) -> dict[str, int]:
        held: dict[str, int] = {}
        for entry in self.entries.values():
            if entry.claimed_by and entry.lease_until:
                held[entry.claimed_by] = held.get(entry.claimed_by, 0) + 1
        return held

    async def release_worker(self, worker: str) -> int:
        mine = [e for e in self.entries.values() if e.claimed_by == worker]
        for entry in mine:
            entry.claimed_by, entry.lease_until = None, None
        return len(mine)

    async def release_lease(self, queue_id: str, worker: str) -> None:
        self.entries[queue_id].lease_until = None

    async def read_message(self, queue_id: str) -> bytes:
        return self.data[queue_id]

    async def record_results(
        self,
        queue_id: str,
        updates: Sequence[RecipientUpdate],
        *,
        worker: str | None = None,
        release: bool = True,
        now: float | None = None,
    ) -> QueueEntry | None:
        self.results.append((queue_id, list(updates)))
        entry = self.entries[queue_id]
        for u in updates:
            state = next(r for r in entry.recipients if r.address == u.recipient)
            state.attempts += 1
            state.last_reply = u.reply
            if u.kind == "deferred":
                assert u.next_attempt is not None
                state.next_attempt = u.next_attempt
            else:
                state.status = u.kind
        entry.lease_until = None
        if not entry.pending:
            self.done[queue_id] = self.entries.pop(queue_id)
            return None
        return entry

    async def update_meta(self, queue_id: str, meta: QueueMeta) -> None:
        self.entries[queue_id].meta = meta

    async def get(self, queue_id: str) -> QueueEntry | None:
        return self.entries.get(queue_id)

    async def list_entries(self, limit: int | None = None) -> list[QueueEntry]:
        return list(self.entries.values())

    async def hold(self, queue_id: str) -> bool:
        return False

    async def delete(self, queue_id: str) -> bool:
        return False

    async def _make_due(self, queue_id: str | None, *, unhold: bool) -> int:
        return 0  # release and retry change nothing here

    async def next_due(self) -> float | None:
        times = [e.next_attempt for e in self.entries.values() if e.next_attempt is not None]
        return min(times) if times else None

    async def close(self) -> None:
        pass


Behaviour = Callable[[str, Sequence[str], bytes], dict[str, Reply]]


def ok(code: int = 250, text: str = "2.0.0 Ok: queued") -> Behaviour:
    return lambda sender, rcpts, data: {r: Reply(code, (text,)) for r in rcpts}


def per_recipient(replies: dict[str, Reply]) -> Behaviour:
    return lambda sender, rcpts, data: {r: replies.get(r, Reply(250, ("2.0.0 Ok",))) for r in rcpts}


@dataclass
class FakeSession:
    hop: Hop
    network: FakeNetwork
    tls: bool
    broken: bool = False
    uses: int = 0
    authenticated: str | None = None
    """As :attr:`Session.authenticated`: a relay's verified TLS counts."""

    @property
    def relay(self) -> str:
        return self.hop.relay

    async def send(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        meta: QueueMeta | None = None,
    ) -> TransactionResult:
        self.uses += 1
        if self.network.drop_on_use and self.uses == self.network.drop_on_use:
            self.broken = True  # the server closed the idle connection meanwhile
            lost = local_reply(421, "4.4.2", f"{self.hop.relay} closed the connection")
            return TransactionResult(dict.fromkeys(recipients, lost))
        self.network.sends.append((self.hop.host, sender, list(recipients), data))
        self.network.active += 1
        self.network.peak = max(self.network.peak, self.network.active)
        try:
            if self.network.latency:
                await asyncio.sleep(self.network.latency)
            behaviour = self.network.servers[self.hop.host]
            self.network.metas.append(meta)
            return TransactionResult(
                dict(behaviour(sender, recipients, data)),
                server_spoke=True,
                dsn_passed=self.hop.host in self.network.offers_dsn,
            )
        finally:
            self.network.active -= 1

    async def close(self) -> None:
        self.network.closed += 1
        self.broken = True


@dataclass
class FakeNetwork:
    """Hosts by name: a behaviour, or a connect failure (a SessionError to raise)."""

    servers: dict[str, Behaviour] = field(default_factory=dict)
    refuse: dict[str, SessionError] = field(default_factory=dict)
    tls_broken: set[str] = field(default_factory=set)
    latency: float = 0.0
    drop_on_use: int = 0
    """Every session fails its n-th transaction as if the server had hung up meanwhile."""
    offers_dsn: set[str] = field(default_factory=set)
    """Hosts whose EHLO offers DSN (RFC 3461): our DSN requests go on with the message."""
    metas: list[QueueMeta | None] = field(default_factory=list)
    connects: list[tuple[str, bool]] = field(default_factory=list)
    sends: list[tuple[str, str, list[str], bytes]] = field(default_factory=list)
    active: int = 0
    peak: int = 0
    closed: int = 0

    async def connect(
        self, hop: Hop, route: Route, settings: ClientSettings, use_tls: bool
    ) -> FakeSession:
        self.connects.append((hop.host, use_tls))
        if hop.host in self.refuse:
            raise self.refuse[hop.host]
        if hop.host in self.tls_broken and use_tls:
            raise SessionError(local_reply(421, "4.7.5", "handshake failed"), tls_failed=True)
        verified = route.tls in ("starttls", "implicit")
        return FakeSession(hop, self, use_tls, authenticated="relay" if verified else None)
