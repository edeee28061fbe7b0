"""Claim at enqueue: a message queued while this process's agent runs is inserted already
leased to it and handed over in memory (no claim, no read-back), exactly once; a crash
between the commit and the hand-off still delivers; retries and other workers behave."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailwright.config import Config, DeliveryConfig
from mailwright.delivery.agent import DeliveryAgent
from mailwright.delivery.replies import Reply
from mailwright.dns import MemoryResolver
from mailwright.log import EventLogger
from mailwright.queue import (
    DsnRecipient,
    Handoff,
    QueueEntry,
    QueueMeta,
    RecipientUpdate,
    SqliteQueueStore,
)
from mailwright.queue.sqlite import LATER_SECONDS
from mailwright.queue.store import HANDOFF_MAX_BYTES, ClientTurn, client_turn
from mailwright.queue.tracking import Tracking
from mailwright.server import recover_leases, worker_name
from mailwright.spool import SpooledMessage

from .fakes import FakeNetwork, ok, per_recipient

MESSAGE = b"From: app@example.com\r\nTo: x@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


class Spy:
    """Counts the store calls the hand-off makes unnecessary."""

    def __init__(self, store: SqliteQueueStore) -> None:
        self.claimed: list[str] = []
        self.read: list[str] = []
        real_claim, real_read = store.claim_due, store.read_message

        async def claim_due(*args: Any, **kwargs: Any) -> list[QueueEntry]:
            entries = await real_claim(*args, **kwargs)
            self.claimed += [e.id for e in entries]
            return entries

        async def read_message(queue_id: str) -> bytes:
            self.read.append(queue_id)
            return await real_read(queue_id)

        store.claim_due = claim_due  # type: ignore[method-assign]
        store.read_message = read_message  # type: ignore[method-assign]


class Node:
    def __init__(self, tmp_path: Path, store: SqliteQueueStore, worker: str) -> None:
        self.store = store
        self.resolver = MemoryResolver()
        self.resolver.add("example.net", "MX", (10, "mx1.example.net"))
        self.resolver.add("mx1.example.net", "A", "192.0.2.10")
        self.network = FakeNetwork()
        self.network.servers["mx1.example.net"] = ok()
        self.events: list[dict[str, str]] = []
        logger = EventLogger(stderr=False)
        logger.subscribe(self.events.append)
        self.logger = logger
        config = Config(
            hostname="mail.example.com",
            domains=("example.com",),
            data_dir=tmp_path,
            delivery=DeliveryConfig(mode="direct", outbound_port=2525),
        )
        self.agent = DeliveryAgent(
            config,
            store,
            self.resolver,
            logger,
            worker=worker,
            connector=self.network.connect,
            announce=lambda line: None,
            rng=random.Random(7),
        )
        self.agent.idle_seconds = 0.01
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.agent.run())
        for _ in range(100):
            if self.store.handoff is not None:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("the agent did not offer a hand-off")

    async def stop(self) -> None:
        self.agent.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)

    def of(self, event: str) -> list[dict[str, str]]:
        return [e for e in self.events if e["event"] == event]

    async def wait_for(self, event: str, count: int = 1) -> None:
        for _ in range(500):
            if len(self.of(event)) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {count} {event} events: {self.events}")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteQueueStore]:
    opened = await SqliteQueueStore.open(tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
async def node(tmp_path: Path, store: SqliteQueueStore) -> AsyncIterator[Node]:
    n = Node(tmp_path, store, "test:1")
    await n.start()
    yield n
    await n.stop()


async def test_a_new_message_is_handed_over_and_delivered_once(node: Node) -> None:
    spy = Spy(node.store)
    qid = await node.store.enqueue("app@example.com", ["a@example.net"], MESSAGE)
    await node.wait_for("delivered")
    await asyncio.sleep(0.05)
    assert [(h, rs, data) for h, _, rs, data in node.network.sends] == [
        ("mx1.example.net", ["a@example.net"], MESSAGE)
    ]
    assert spy.claimed == [] and spy.read == []  # neither claimed nor read back
    assert await node.store.get(qid) is None  # done: removed


async def test_the_entry_is_leased_in_the_enqueue_transaction(
    tmp_path: Path, store: SqliteQueueStore
) -> None:
    """Nobody else can claim a handed-over entry: a second worker on the same database
    (another process) finds nothing, so the message is not delivered twice."""
    taken: list[tuple[QueueEntry, bytes]] = []
    store.handoff = Handoff("host:1", 900.0, lambda size: True, lambda e, d: taken.append((e, d)))
    qid = await store.enqueue("app@example.com", ["a@example.net", "b@example.net"], MESSAGE)
    [(entry, data)] = taken
    assert entry.id == qid and data == MESSAGE
    assert [r.address for r in entry.pending] == ["a@example.net", "b@example.net"]
    assert entry.claimed_by == "host:1"
    stored = await store.get(qid)
    assert stored is not None and stored.claimed_by == "host:1"
    assert stored.lease_until == entry.lease_until
    other = await SqliteQueueStore.open(tmp_path)
    try:
        assert await other.claim_due("host:2", time.time() + 60) == []
    finally:
        await other.close()


async def test_a_crash_between_commit_and_hand_over_still_delivers(
    tmp_path: Path, store: SqliteQueueStore
) -> None:
    """The worker died after the commit, before delivering: its lease is given back by
    the restarted server (``recover_leases``) and the message goes out then."""
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    lost = worker_name(dead.pid)
    store.handoff = Handoff(lost, 900.0, lambda size: True, lambda e, d: None)  # crash: dropped
    qid = await store.enqueue("app@example.com", ["a@example.net"], MESSAGE)
    assert await store.lease_holders() == {lost: 1}
    store.handoff = None
    restarted = Node(tmp_path, store, worker_name(os.getpid()))
    assert await recover_leases(store, restarted.logger) == 1
    assert await restarted.agent.run_once() == 1
    assert [e["id"] for e in restarted.of("delivered")] == [qid]
    assert await store.get(qid) is None


async def test_a_deferred_recipient_is_retried_later_the_others_are_done(node: Node) -> None:
    node.network.servers["mx1.example.net"] = per_recipient(
        {"later@example.net": Reply(451, ("4.3.0 try later",))}
    )
    qid = await node.store.enqueue(
        "app@example.com", ["ok@example.net", "later@example.net"], MESSAGE
    )
    await node.wait_for("deferred")
    entry = None
    for _ in range(100):  # the results are recorded after the events are logged
        entry = await node.store.get(qid)
        if entry is not None and entry.claimed_by is None:
            break
        await asyncio.sleep(0.01)
    assert entry is not None and entry.claimed_by is None  # the lease is given back
    assert [(r.address, r.status) for r in entry.recipients] == [
        ("ok@example.net", "delivered"),
        ("later@example.net", "pending"),
    ]
    assert entry.recipients[1].next_attempt > time.time()  # retried on the schedule
    node.network.servers["mx1.example.net"] = ok()
    await node.store.retry(qid)  # as if the retry fell due: the claim path takes it
    await node.wait_for("delivered", 2)
    sent = [rs for _, _, rs, _ in node.network.sends]
    assert sent == [["ok@example.net", "later@example.net"], ["later@example.net"]]


async def test_several_messages_in_a_row_each_once(node: Node) -> None:
    ids = [
        await node.store.enqueue("app@example.com", [f"u{i}@example.net"], MESSAGE)
        for i in range(20)
    ]
    await node.wait_for("delivered", 20)
    await asyncio.sleep(0.05)
    assert sorted(e["id"] for e in node.of("delivered")) == sorted(ids)
    assert len(node.network.sends) == 20


async def test_a_paused_agent_takes_nothing_the_entry_stays_claimable(
    tmp_path: Path, store: SqliteQueueStore
) -> None:
    n = Node(tmp_path, store, "test:1")
    n.agent.paused = True
    await n.start()
    try:
        qid = await store.enqueue("app@example.com", ["a@example.net"], MESSAGE)
        entry = await store.get(qid)
        assert entry is not None and entry.claimed_by is None
    finally:
        await n.stop()
    assert n.network.sends == []


async def test_big_and_later_messages_are_not_handed_over(
    tmp_path: Path, store: SqliteQueueStore
) -> None:
    taken: list[str] = []
    store.handoff = Handoff("host:1", 900.0, lambda size: True, lambda e, d: taken.append(e.id))
    big = await store.enqueue("a@example.com", ["b@example.net"], b"x" * (HANDOFF_MAX_BYTES + 1))
    later = await store.enqueue(
        "a@example.com", ["b@example.net"], MESSAGE, meta=QueueMeta(not_before=time.time() + 60)
    )
    assert taken == []
    for qid in (big, later):
        entry = await store.get(qid)
        assert entry is not None and entry.claimed_by is None


async def test_a_spooled_message_is_not_handed_over(
    tmp_path: Path, store: SqliteQueueStore
) -> None:
    """Under the hand-off size but spooled (past the spool threshold): its spool file goes
    when the session ends, so the agent must read it back from the queue instead."""
    head = b"Subject: spooled\r\n\r\n"
    body = b"line of a spooled message\r\n" * 25_000  # 0.7 MB: < HANDOFF_MAX_BYTES
    path = tmp_path / "spooled"
    path.write_bytes(head + body)
    spooled = SpooledMessage(path, head, len(head), len(head) + len(body))
    assert len(spooled) < HANDOFF_MAX_BYTES
    taken: list[str] = []
    store.handoff = Handoff("host:1", 900.0, lambda size: True, lambda e, d: taken.append(e.id))
    qid = await store.enqueue("a@example.com", ["b@example.net"], spooled)
    path.unlink()
    entry = await store.get(qid)
    assert taken == [] and entry is not None and entry.claimed_by is None
    assert await store.read_message(qid) == head + body


async def test_a_failing_hand_over_gives_the_lease_back(store: SqliteQueueStore) -> None:
    def refuse(entry: QueueEntry, data: bytes) -> None:
        raise RuntimeError("cannot take it")

    store.handoff = Handoff("host:1", 900.0, lambda size: True, refuse)
    qid = await store.enqueue("app@example.com", ["a@example.net"], MESSAGE)
    entry = await store.get(qid)
    assert entry is not None and entry.claimed_by is None
    assert [e.id for e in await store.claim_due("host:2", time.time() + 1)] == [qid]


async def test_two_workers_each_deliver_their_own_and_nothing_twice(
    tmp_path: Path, store: SqliteQueueStore
) -> None:
    """Two processes' worth of store and agent on one database, each queueing mail:
    every message is delivered exactly once."""
    second_store = await SqliteQueueStore.open(tmp_path)
    first, second = Node(tmp_path, store, "h:1"), Node(tmp_path, second_store, "h:2")
    await first.start()
    await second.start()
    try:
        ids = []
        for i in range(10):
            target = first if i % 2 else second
            ids.append(
                await target.store.enqueue("app@example.com", [f"u{i}@example.net"], MESSAGE)
            )
        await first.wait_for("delivered", 5)
        await second.wait_for("delivered", 5)
        await asyncio.sleep(0.05)
    finally:
        await first.stop()
        await second.stop()
        await second_store.close()
    delivered = [e["id"] for e in first.of("delivered") + second.of("delivered")]
    assert sorted(delivered) == sorted(ids)


async def test_delivery_events_commit_without_their_own_flush(store: SqliteQueueStore) -> None:
    """Outcome events ride on the next durable commit (a power failure forgets them and
    the results written after them alike: redelivered, reported again)."""
    from mailwright.queue.events import Event

    tracking = Tracking(store)
    synced = store.synced_batches
    await tracking.record(
        [Event("delivered", time.time(), recipient="a@example.net")], durable=False
    )
    assert store.synced_batches == synced
    await tracking.record([Event("delivered", time.time(), recipient="b@example.net")])
    assert store.synced_batches == synced + 1


async def test_a_delivery_report_rides_in_the_next_commit(store: SqliteQueueStore) -> None:
    """record_results waits (briefly) for the next enqueue and shares its transaction:
    one commit for both; alone, it goes by itself after LATER_SECONDS."""
    first = await store.enqueue("app@example.com", ["a@example.net"], MESSAGE)
    [claimed] = await store.claim_due("h:1", time.time() + 1)
    assert claimed.id == first
    batches = store.batches
    report = asyncio.create_task(
        store.record_results(
            first, [RecipientUpdate("a@example.net", "delivered", "250 ok")], worker="h:1"
        )
    )
    await asyncio.sleep(0)
    await store.enqueue("app@example.com", ["b@example.net"], MESSAGE)
    assert await report is None  # done: removed
    assert store.batches == batches + 1  # one transaction for the report and the enqueue
    alone = await store.claim_due("h:1", time.time() + 1)
    batches = store.batches
    started = time.monotonic()
    await store.record_results(
        alone[0].id, [RecipientUpdate("b@example.net", "delivered", "250 ok")], worker="h:1"
    )
    assert store.batches == batches + 1
    assert time.monotonic() - started >= LATER_SECONDS * 0.9
    assert await store.list_entries() == []


async def test_after_stop_new_mail_waits_unclaimed(tmp_path: Path, store: SqliteQueueStore) -> None:
    n = Node(tmp_path, store, "test:1")
    await n.start()
    await n.stop()
    assert store.handoff is None
    qid = await store.enqueue("app@example.com", ["a@example.net"], MESSAGE)
    entry = await store.get(qid)
    assert entry is not None and entry.claimed_by is None


async def test_a_hand_over_to_a_stopping_agent_gives_the_lease_back(
    tmp_path: Path, store: SqliteQueueStore
) -> None:
    """The agent stopped while the enqueue committed (it had said it could take the
    message): the store gives the lease back at once, so the message is claimable now
    instead of waiting out a 900 s lease."""
    n = Node(tmp_path, store, "test:1")
    await n.start()
    n.agent.stop()
    store.handoff = Handoff("test:1", 900.0, lambda size: True, n.agent._take)
    qid = await store.enqueue("app@example.com", ["a@example.net"], MESSAGE)
    entry = await store.get(qid)
    assert entry is not None and entry.claimed_by is None and entry.lease_until is None
    assert [e.id for e in await store.claim_due("test:2", time.time() + 1)] == [qid]
    assert n.task is not None
    await asyncio.wait_for(n.task, 5)
    assert n.network.sends == []


class WatchingSigner:
    """A signer (a Signer's shape) that notes whether the enqueue had returned by the
    time it was asked to sign."""

    HEADER = b"DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=s1\r\n"

    def __init__(self) -> None:
        self.enqueue_returned = False
        self.seen: list[bool] = []

    def selectors(self, domain: str) -> list[str]:
        return ["s1"]

    def __call__(
        self, message: bytes, domain: str, body_hashes: object = None
    ) -> tuple[bytes, list[str]]:
        self.seen.append(self.enqueue_returned)
        return self.HEADER, ["s1"]


async def test_a_handed_over_message_is_signed_after_the_enqueue_returns(node: Node) -> None:
    """The hand-off runs inside the client's session, before its 250: the signature
    (a third of a millisecond) is made after the enqueue has returned."""
    signer = WatchingSigner()
    node.agent.signer = lambda: signer  # type: ignore[method-assign,assignment,return-value]
    await node.store.enqueue(
        "app@example.com", ["a@example.net"], MESSAGE, meta=QueueMeta(sign_domain="example.com")
    )
    signer.enqueue_returned = True  # before this task gives the event loop back
    await node.wait_for("delivered")
    assert signer.seen == [True]
    assert [data for _, _, _, data in node.network.sends] == [WatchingSigner.HEADER + MESSAGE]


async def test_a_message_queued_in_a_client_session_waits_for_the_session_to_end(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued inside an SMTP session (its ClientTurn in the context), the message is
    signed and sent once the session has ended: not between its 250 and its QUIT."""
    monkeypatch.setattr("mailwright.queue.store.TURN_WAIT", 30.0)
    turn = ClientTurn()
    token = client_turn.set(turn)  # this task plays the session: the enqueue runs in it
    try:
        await node.store.enqueue("app@example.com", ["a@example.net"], MESSAGE)
        await asyncio.sleep(0.05)
        assert node.network.sends == [] and node.of("delivered") == []
        turn.end()
        await node.wait_for("delivered")
        assert [data for _, _, _, data in node.network.sends] == [MESSAGE]
    finally:
        client_turn.reset(token)


async def test_a_session_that_stays_open_holds_its_messages_only_briefly(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that keeps its session open (an application sending a batch over one
    connection) does not hold its first message back for longer than TURN_WAIT."""
    monkeypatch.setattr("mailwright.queue.store.TURN_WAIT", 0.2)
    token = client_turn.set(ClientTurn())  # never ends
    try:
        started = time.monotonic()
        await node.store.enqueue("app@example.com", ["a@example.net"], MESSAGE)
        await asyncio.sleep(0.1)
        assert node.network.sends == []
        await node.wait_for("delivered")
        assert time.monotonic() - started >= 0.2
    finally:
        client_turn.reset(token)


class TurnSeeingSigner(WatchingSigner):
    """Notes the client turn in the context of the task that signs."""

    def __init__(self) -> None:
        super().__init__()
        self.turns: list[ClientTurn | None] = []

    def __call__(
        self, message: bytes, domain: str, body_hashes: object = None
    ) -> tuple[bytes, list[str]]:
        self.turns.append(client_turn.get())
        return super().__call__(message, domain, body_hashes)


async def test_the_agents_tasks_run_outside_the_clients_session(node: Node) -> None:
    """The work on a message handed over in a session waits for that session's end, but
    runs as the agent's own task: what it queues (a DSN) is not tied to that client."""
    signer = TurnSeeingSigner()
    node.agent.signer = lambda: signer  # type: ignore[method-assign,assignment,return-value]
    turn = ClientTurn()
    token = client_turn.set(turn)
    try:
        await node.store.enqueue(
            "app@example.com", ["a@example.net"], MESSAGE, meta=QueueMeta(sign_domain="example.com")
        )
        turn.end()
        await node.wait_for("delivered")
    finally:
        client_turn.reset(token)
    assert signer.turns == [None]


async def test_a_tracked_outcome_is_one_write_with_its_results(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events, suppressions and the queue's results of a delivery: one operation of the
    store's next batch (record_outcome), not events first and results in a later batch;
    a DSN asked for (NOTIFY=SUCCESS) keeps its events first, on their own."""
    tracking = Tracking(node.store)
    node.agent.tracking = tracking
    calls: list[str] = []
    for name in ("record", "record_outcome"):
        real = getattr(tracking, name)

        async def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return await _real(*args, **kwargs)

        monkeypatch.setattr(tracking, name, spy)
    results: list[str] = []
    real_results = node.store.record_results

    async def spy_results(queue_id: str, *args: Any, **kwargs: Any) -> Any:
        results.append(queue_id)
        return await real_results(queue_id, *args, **kwargs)

    monkeypatch.setattr(node.store, "record_results", spy_results)
    first = await node.store.enqueue(
        "app@example.com", ["a@example.net"], MESSAGE, meta=QueueMeta(tracked=True)
    )
    await node.wait_for("delivered")
    for _ in range(200):
        if await node.store.get(first) is None:
            break
        await asyncio.sleep(0.01)
    assert await node.store.get(first) is None
    assert calls == ["record_outcome"] and results == []
    assert [(e.event_type, e.queue_id) for e in await tracking.read()] == [("delivered", first)]
    second = await node.store.enqueue(
        "app@example.com",
        ["b@example.net"],
        MESSAGE,
        meta=QueueMeta(tracked=True, dsn={"b@example.net": DsnRecipient(notify=("SUCCESS",))}),
    )
    await node.wait_for("delivered", 2)
    for _ in range(200):
        if await node.store.get(second) is None:
            break
        await asyncio.sleep(0.01)
    # the success DSN (to app@example.com, local, untracked) records its own results
    assert calls == ["record_outcome", "record"] and results[0] == second
