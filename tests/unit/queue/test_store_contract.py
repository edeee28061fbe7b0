"""The QueueStore contract (mailwright.queue.store), run against every store: the embedded
SQLite one and the PostgreSQL one (on the private test cluster, integration-marked)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailwright.queue import (
    QueueEntry,
    QueueError,
    QueueMeta,
    QueueStore,
    RecipientUpdate,
    is_queue_id,
)
from mailwright.queue.postgres import PostgresQueueStore
from mailwright.queue.sqlite import SqliteQueueStore
from mailwright.queue.store import HANDOFF_MAX_BYTES, Handoff

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)]


async def open_kind(kind: str, location: str) -> QueueStore:
    if kind == "sqlite":
        return await SqliteQueueStore.open(Path(location))
    return await PostgresQueueStore.open(location, migrate_schema=True)


@pytest.fixture(params=KINDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(kind, where): a data directory or a database URL."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "data")
    return "postgres", str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(location: tuple[str, str]) -> AsyncIterator[QueueStore]:
    s = await open_kind(*location)
    yield s
    await s.close()


async def test_enqueue_then_read_back(store: QueueStore) -> None:
    queue_id = await store.enqueue(
        "a@example.com",
        ["b@example.net", "c@example.org"],
        b"Subject: x\r\n\r\nhi\r\n",
        meta=QueueMeta(client="127.0.0.1"),
    )
    assert is_queue_id(queue_id)
    entry = await store.get(queue_id)
    assert entry is not None
    assert entry.sender == "a@example.com"
    assert [r.address for r in entry.recipients] == ["b@example.net", "c@example.org"]
    assert all(r.status == "pending" and r.attempts == 0 for r in entry.recipients)
    assert entry.size == len(b"Subject: x\r\n\r\nhi\r\n")
    assert entry.meta == QueueMeta(client="127.0.0.1")
    assert not entry.held
    assert await store.read_message(queue_id) == b"Subject: x\r\n\r\nhi\r\n"
    with pytest.raises(KeyError):
        await store.read_message("0000000000ZZZZ")


async def test_concurrent_enqueues_share_commits(store: QueueStore) -> None:
    ids = await asyncio.gather(
        *(store.enqueue("a@x.example", [f"r{i}@y.example"], b"m%d" % i) for i in range(200))
    )
    assert len(set(ids)) == 200
    assert store.batches < 200  # type: ignore[attr-defined]  # group commit
    for i, queue_id in enumerate(ids):
        assert await store.read_message(queue_id) == b"m%d" % i


async def test_enqueue_needs_a_recipient(store: QueueStore) -> None:
    with pytest.raises(ValueError):
        await store.enqueue("a@x.example", [], b"x")


async def test_claim_gives_each_entry_to_one_worker(store: QueueStore) -> None:
    ids = [await store.enqueue("a@x.example", ["b@y.example"], b"x") for _ in range(10)]
    now = time.time() + 1
    first, second = await asyncio.gather(
        store.claim_due("w1", now, limit=6), store.claim_due("w2", now, limit=6)
    )
    got = [e.id for e in first] + [e.id for e in second]
    assert sorted(got) == sorted(ids)  # every entry once, none twice
    assert all(e.claimed_by == "w1" for e in first)
    assert await store.claim_due("w3", now) == []


async def test_expired_lease_is_reclaimed(store: QueueStore) -> None:
    queue_id = await store.enqueue("a@x.example", ["b@y.example"], b"x")
    now = time.time() + 1
    assert [e.id for e in await store.claim_due("crashed", now, lease_seconds=60)] == [queue_id]
    assert await store.claim_due("w2", now + 59) == []
    again = await store.claim_due("w2", now + 61)
    assert [e.id for e in again] == [queue_id]
    assert again[0].claimed_by == "w2"
    assert not await store.extend_lease(queue_id, "crashed", 60, now + 61)
    assert await store.extend_lease(queue_id, "w2", 60, now + 61)


async def test_record_results_per_recipient(store: QueueStore) -> None:
    queue_id = await store.enqueue("a@x.example", ["b@y.example", "c@z.example"], b"x")
    now = time.time() + 1
    await store.claim_due("w", now)
    entry = await store.record_results(
        queue_id,
        [
            RecipientUpdate("b@y.example", "delivered", "250 2.0.0 ok"),
            RecipientUpdate("c@z.example", "deferred", "451 4.3.0 later", now + 300),
        ],
        worker="w",
        now=now,
    )
    assert entry is not None
    b, c = entry.recipients
    assert (b.status, b.attempts, b.last_reply) == ("delivered", 1, "250 2.0.0 ok")
    assert (c.status, c.attempts, c.next_attempt) == ("pending", 1, now + 300)
    assert entry.claimed_by is None
    assert await store.claim_due("w", now + 299) == []  # not due before next_attempt
    [again] = await store.claim_due("w", now + 301)
    assert [r.status for r in again.recipients] == ["delivered", "pending"]
    gone = await store.record_results(
        queue_id, [RecipientUpdate("c@z.example", "bounced", "550 5.1.1 no")], worker="w"
    )
    assert gone is None  # nothing pending: removed, message included
    assert await store.get(queue_id) is None
    with pytest.raises(KeyError):
        await store.read_message(queue_id)


async def test_partial_results_keep_the_lease(store: QueueStore) -> None:
    queue_id = await store.enqueue("a@x.example", ["b@y.example", "c@z.example"], b"x")
    now = time.time() + 1
    await store.claim_due("w", now)
    await store.record_results(
        queue_id,
        [RecipientUpdate("b@y.example", "delivered", "250 ok")],
        worker="w",
        release=False,
    )
    assert await store.claim_due("other", now) == []  # c is still being delivered by w


async def test_deferred_needs_next_attempt(store: QueueStore) -> None:
    queue_id = await store.enqueue("a@x.example", ["b@y.example"], b"x")
    with pytest.raises(ValueError):
        await store.record_results(queue_id, [RecipientUpdate("b@y.example", "deferred", "4")])


async def test_hold_release_retry_delete(store: QueueStore) -> None:
    a = await store.enqueue("a@x.example", ["b@y.example"], b"x")
    b = await store.enqueue("a@x.example", ["b@y.example"], b"y")
    now = time.time() + 1
    assert await store.hold(a)
    assert [e.id for e in await store.claim_due("w", now)] == [b]  # held: never claimed
    await store.record_results(b, [RecipientUpdate("b@y.example", "deferred", "4", now + 999)])
    assert await store.claim_due("w", now) == []
    assert await store.retry(None) == 2
    assert [e.id for e in await store.claim_due("w", time.time() + 1)] == [b]
    assert await store.release(a)
    got = await store.get(a)
    assert got is not None and not got.held
    assert await store.delete(a)
    assert not await store.delete(a)
    assert not await store.hold("0000000000ZZZZ")
    assert not await store.release("0000000000ZZZZ")
    assert await store.retry("0000000000ZZZZ") == 0
    assert [e.id for e in await store.list_entries()] == [b]


async def test_update_meta_replaces(store: QueueStore) -> None:
    queue_id = await store.enqueue(
        "a@x.example", ["b@y.example"], b"x", meta=QueueMeta(client="192.0.2.1")
    )
    await store.update_meta(queue_id, QueueMeta(client="192.0.2.1", delay_warned=True))
    entry = await store.get(queue_id)
    assert entry is not None and entry.meta == QueueMeta(client="192.0.2.1", delay_warned=True)


async def test_signing_decision_round_trips(store: QueueStore) -> None:
    # intake's decision (sign at delivery with this domain's keys, a big message's body
    # hashes) comes back exactly as written, on every store
    meta = QueueMeta(
        sign_domain="example.com",
        body_hashes={"relaxed": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
    )
    queue_id = await store.enqueue("a@example.com", ["b@y.example"], b"x", meta=meta)
    entry = await store.get(queue_id)
    assert entry is not None and entry.meta == meta
    [claimed] = await store.claim_due("w", time.time() + 1, limit=1)
    assert claimed.meta.sign_domain == "example.com" and claimed.meta == meta
    assert QueueMeta.from_json(meta.to_json()) == meta
    assert "sign_domain" not in QueueMeta().to_json()  # the default is not written


async def test_wakeup_on_enqueue(store: QueueStore) -> None:
    assert not await store.wait_for_work(0.01)
    await store.enqueue("a@x.example", ["b@y.example"], b"x")
    assert await store.wait_for_work(0.01)


async def test_next_due(store: QueueStore) -> None:
    assert await store.next_due() is None
    queue_id = await store.enqueue("a@x.example", ["b@y.example"], b"x")
    due = await store.next_due()
    assert due is not None and due <= time.time()
    await store.record_results(
        queue_id, [RecipientUpdate("b@y.example", "deferred", "4", 5_000_000_000.0)]
    )
    assert await store.next_due() == 5_000_000_000.0


async def test_not_before_delays_the_first_attempt(store: QueueStore) -> None:
    """QueueMeta.not_before (the HTTP API's send_at): not claimable, and every recipient
    first due, before that time; the PostgreSQL store once queued such a message due now."""
    later = time.time() + 3600
    queue_id = await store.enqueue(
        "a@x.example", ["b@y.example", "c@y.example"], b"x", meta=QueueMeta(not_before=later)
    )
    entry = await store.get(queue_id)
    assert entry is not None
    assert [r.next_attempt for r in entry.recipients] == [later, later]
    assert await store.claim_due("w1", time.time() + 1) == []
    assert await store.next_due() == later
    assert [e.id for e in await store.claim_due("w1", later + 1)] == [queue_id]


async def test_closed_store_refuses(location: tuple[str, str]) -> None:
    s = await open_kind(*location)
    await s.close()
    with pytest.raises(QueueError):
        await s.enqueue("a@x.example", ["b@y.example"], b"x")


async def test_reopen_keeps_entries(location: tuple[str, str]) -> None:
    s = await open_kind(*location)
    queue_id = await s.enqueue("a@x.example", ["b@y.example"], b"body")
    await s.close()
    s = await open_kind(*location)
    try:
        assert await s.read_message(queue_id) == b"body"
    finally:
        await s.close()


def _claim_in_process(kind: str, where: str, worker: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> list[str]:
        s = await open_kind(kind, where)
        got: list[str] = []
        while True:
            batch = await s.claim_due(worker, time.time() + 10, limit=3)
            if not batch:
                break
            got += [e.id for e in batch]
        await s.close()
        return got

    out.put(asyncio.run(main()))


async def test_two_processes_never_claim_the_same_entry(
    store: QueueStore, location: tuple[str, str]
) -> None:
    ids = await asyncio.gather(
        *(store.enqueue("a@x.example", ["b@y.example"], b"x") for _ in range(60))
    )
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [
        ctx.Process(target=_claim_in_process, args=(*location, f"p{i}", out)) for i in range(2)
    ]
    for p in procs:
        p.start()
    claimed = out.get(timeout=60) + out.get(timeout=60)
    for p in procs:
        p.join(10)
    assert sorted(claimed) == sorted(ids)


async def test_release_worker_gives_back_a_dead_workers_leases(store: QueueStore) -> None:
    ids = [await store.enqueue("a@x.example", ["b@y.example"], b"x") for _ in range(3)]
    now = time.time() + 1
    await store.claim_due("host:111", now, limit=2)
    await store.claim_due("host:222", now, limit=5)
    assert await store.lease_holders() == {"host:111": 2, "host:222": 1}
    assert await store.release_worker("host:111") == 2
    assert await store.lease_holders() == {"host:222": 1}
    again = await store.claim_due("host:333", now)
    assert sorted(e.id for e in again) == sorted(ids[:2])


async def test_a_leased_entry_falls_due_when_its_lease_ends(store: QueueStore) -> None:
    queue_id = await store.enqueue("a@x.example", ["b@y.example"], b"x")
    now = time.time() + 1
    await store.claim_due("w", now, lease_seconds=60)
    assert await store.next_due() == now + 60  # a crashed worker's mail: due then
    assert await store.extend_lease(queue_id, "w", 120, now)
    assert await store.next_due() == now + 120
    await store.release_lease(queue_id, "w")
    due = await store.next_due()
    assert due is not None and due < now
    assert [e.id for e in await store.claim_due("w2", now)] == [queue_id]


async def test_big_message_round_trip_in_pieces(store: QueueStore, tmp_path: Path) -> None:
    """A spooled message (header section in memory, body in a file) is stored a piece at
    a time and read back whole or in slices, byte for byte."""
    from mailwright.queue.store import StoredMessage
    from mailwright.spool import CHUNK_SIZE, Spool

    body = b"".join(b"line %07d of the body\r\n" % i for i in range(60_000))  # ~1.5 MB
    spool = Spool(tmp_path / "spool")
    spool.write(b"Subject: big\r\nFrom: a@x.example\r\n\r\n" + body[:1000])
    spool.write(body[1000:])
    spooled = spool.finish()
    assert spooled is not None
    spooled = spooled.with_head(b"Received: by us\r\n" + spooled.head)
    whole = spooled.read_all()
    assert len(body) > 4 * CHUNK_SIZE and len(spooled) == len(whole)
    queue_id = await store.enqueue("a@x.example", ["b@y.example"], spooled)
    spool.discard()
    assert await store.read_message(queue_id) == whole
    assert await store.read_message_part(queue_id, 5, 10) == whole[5:15]
    assert await store.read_message_part(queue_id, len(whole) - 3, 100) == whole[-3:]
    entry = await store.get(queue_id)
    assert entry is not None and entry.size == len(whole)
    stored = StoredMessage(store, queue_id, entry.size)
    pieces = [piece async for piece in stored.chunks()]
    assert len(pieces) > 1 and b"".join(pieces) == whole
    assert await stored.head() == b"Received: by us\r\nSubject: big\r\nFrom: a@x.example\r\n\r\n"
    with pytest.raises(KeyError):
        await store.read_message_part("0000000000ZZZZ", 0, 10)


# -- claim at enqueue (Handoff) ------------------------------------------------------------


async def test_a_new_message_is_handed_over_already_leased(store: QueueStore) -> None:
    """With the agent's Handoff set, the entry is inserted leased to its worker in the
    enqueue's transaction and given to it after the commit: nobody else claims it."""
    taken: list[tuple[QueueEntry, bytes]] = []
    store.handoff = Handoff("host-a:1", 900.0, lambda size: True, lambda e, d: taken.append((e, d)))
    before = time.time()
    queue_id = await store.enqueue("a@x.example", ["b@y.example", "c@y.example"], b"m\r\n")
    [(entry, data)] = taken
    assert entry.id == queue_id and data == b"m\r\n"
    assert [r.address for r in entry.pending] == ["b@y.example", "c@y.example"]
    assert entry.claimed_by == "host-a:1"
    stored = await store.get(queue_id)
    assert stored is not None and stored.claimed_by == "host-a:1"
    assert stored.lease_until is not None and stored.lease_until >= before + 900
    assert await store.lease_holders() == {"host-a:1": 1}
    assert await store.claim_due("host-b:1", time.time() + 60) == []


async def test_a_hand_over_the_agent_refuses_gives_the_lease_back(store: QueueStore) -> None:
    def refuse(entry: QueueEntry, data: bytes) -> None:
        raise QueueError("the delivery agent is stopping")

    store.handoff = Handoff("host-a:1", 900.0, lambda size: True, refuse)
    queue_id = await store.enqueue("a@x.example", ["b@y.example"], b"m\r\n")
    stored = await store.get(queue_id)
    assert stored is not None and stored.claimed_by is None and stored.lease_until is None
    assert [e.id for e in await store.claim_due("host-b:1", time.time() + 1)] == [queue_id]


@pytest.mark.parametrize("case", ["not due yet", "agent busy", "too big"])
async def test_no_hand_over_for_what_the_agent_should_not_take_now(
    store: QueueStore, case: str
) -> None:
    taken: list[str] = []
    ready = case != "agent busy"
    store.handoff = Handoff("host-a:1", 900.0, lambda size: ready, lambda e, d: taken.append(e.id))
    meta = QueueMeta(not_before=time.time() + 3600) if case == "not due yet" else QueueMeta()
    data = b"x" * (HANDOFF_MAX_BYTES + 1) if case == "too big" else b"m\r\n"
    queue_id = await store.enqueue("a@x.example", ["b@y.example"], data, meta=meta)
    assert taken == []
    stored = await store.get(queue_id)
    assert stored is not None and stored.claimed_by is None
