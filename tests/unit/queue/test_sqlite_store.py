"""The embedded queue store: durability contract, group commit, leases, management."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from mailwright.queue import (
    QueueError,
    QueueMeta,
    RecipientUpdate,
    SqliteQueueStore,
    is_queue_id,
    new_queue_id,
)


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = await SqliteQueueStore.open(tmp_path / "data")
    yield s
    await s.close()


def test_queue_ids_are_short_sortable_and_safe() -> None:
    ids = [new_queue_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(is_queue_id(i) and i.isalnum() and i.upper() == i for i in ids)
    assert new_queue_id(now=1_800_000_000.0) < new_queue_id(now=1_800_000_000.001)


async def test_enqueue_then_read_back(store: SqliteQueueStore) -> None:
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


async def test_enqueue_is_durable_in_the_database_file(store: SqliteQueueStore) -> None:
    """After enqueue() returns, another connection (another process) sees the message."""
    queue_id = await store.enqueue("", ["b@example.net"], b"x" * 5000)
    with sqlite3.connect(store.path) as other:
        (data,) = other.execute("SELECT data FROM messages WHERE id = ?", (queue_id,)).fetchone()
        assert data == b"x" * 5000
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_concurrent_enqueues_share_commits(store: SqliteQueueStore) -> None:
    ids = await asyncio.gather(
        *(store.enqueue("a@x.example", [f"r{i}@y.example"], b"m%d" % i) for i in range(200))
    )
    assert len(set(ids)) == 200
    assert store.batches < 200  # group commit: fewer commits than messages
    for i, queue_id in enumerate(ids):
        assert await store.read_message(queue_id) == b"m%d" % i


async def test_enqueue_needs_a_recipient(store: SqliteQueueStore) -> None:
    with pytest.raises(ValueError):
        await store.enqueue("a@x.example", [], b"x")


async def test_claim_gives_each_entry_to_one_worker(store: SqliteQueueStore) -> None:
    ids = [await store.enqueue("a@x.example", ["b@y.example"], b"x") for _ in range(10)]
    now = time.time() + 1
    first, second = await asyncio.gather(
        store.claim_due("w1", now, limit=6), store.claim_due("w2", now, limit=6)
    )
    got = [e.id for e in first] + [e.id for e in second]
    assert sorted(got) == sorted(ids)  # every entry once, none twice
    assert all(e.claimed_by == "w1" for e in first)
    assert await store.claim_due("w3", now) == []


async def test_expired_lease_is_reclaimed(store: SqliteQueueStore) -> None:
    queue_id = await store.enqueue("a@x.example", ["b@y.example"], b"x")
    now = time.time() + 1
    assert [e.id for e in await store.claim_due("crashed", now, lease_seconds=60)] == [queue_id]
    assert await store.claim_due("w2", now + 59) == []
    again = await store.claim_due("w2", now + 61)
    assert [e.id for e in again] == [queue_id]
    assert again[0].claimed_by == "w2"
    assert not await store.extend_lease(queue_id, "crashed", 60, now + 61)
    assert await store.extend_lease(queue_id, "w2", 60, now + 61)


async def test_record_results_per_recipient(store: SqliteQueueStore) -> None:
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


async def test_partial_results_keep_the_lease(store: SqliteQueueStore) -> None:
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


async def test_deferred_needs_next_attempt(store: SqliteQueueStore) -> None:
    queue_id = await store.enqueue("a@x.example", ["b@y.example"], b"x")
    with pytest.raises(ValueError):
        await store.record_results(queue_id, [RecipientUpdate("b@y.example", "deferred", "4")])


async def test_hold_release_retry_delete(store: SqliteQueueStore) -> None:
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


async def test_update_meta_replaces(store: SqliteQueueStore) -> None:
    queue_id = await store.enqueue(
        "a@x.example", ["b@y.example"], b"x", meta=QueueMeta(client="192.0.2.1")
    )
    await store.update_meta(queue_id, QueueMeta(client="192.0.2.1", delay_warned=True))
    entry = await store.get(queue_id)
    assert entry is not None and entry.meta == QueueMeta(client="192.0.2.1", delay_warned=True)


async def test_wakeup_on_enqueue(store: SqliteQueueStore) -> None:
    assert not await store.wait_for_work(0.01)
    await store.enqueue("a@x.example", ["b@y.example"], b"x")
    assert await store.wait_for_work(0.01)


async def test_next_due(store: SqliteQueueStore) -> None:
    assert await store.next_due() is None
    queue_id = await store.enqueue("a@x.example", ["b@y.example"], b"x")
    due = await store.next_due()
    assert due is not None and due <= time.time()
    await store.record_results(
        queue_id, [RecipientUpdate("b@y.example", "deferred", "4", 5_000_000_000.0)]
    )
    assert await store.next_due() == 5_000_000_000.0


async def test_closed_store_refuses(tmp_path: Path) -> None:
    s = await SqliteQueueStore.open(tmp_path)
    await s.close()
    with pytest.raises(QueueError):
        await s.enqueue("a@x.example", ["b@y.example"], b"x")


async def test_reopen_keeps_entries(tmp_path: Path) -> None:
    s = await SqliteQueueStore.open(tmp_path)
    queue_id = await s.enqueue("a@x.example", ["b@y.example"], b"body")
    await s.close()
    s = await SqliteQueueStore.open(tmp_path)
    try:
        assert await s.read_message(queue_id) == b"body"
    finally:
        await s.close()


def _claim_in_process(data_dir: str, worker: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> list[str]:
        s = await SqliteQueueStore.open(Path(data_dir))
        got: list[str] = []
        while True:
            batch = await s.claim_due(worker, time.time() + 10, limit=3)
            if not batch:
                break
            got += [e.id for e in batch]
        await s.close()
        return got

    out.put(asyncio.run(main()))


async def test_two_processes_never_claim_the_same_entry(store: SqliteQueueStore) -> None:
    ids = await asyncio.gather(
        *(store.enqueue("a@x.example", ["b@y.example"], b"x") for _ in range(60))
    )
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [
        ctx.Process(target=_claim_in_process, args=(str(store.path.parent), f"p{i}", out))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    claimed = out.get(timeout=60) + out.get(timeout=60)
    for p in procs:
        p.join(10)
    assert sorted(claimed) == sorted(ids)


async def test_release_worker_gives_back_a_dead_workers_leases(store: SqliteQueueStore) -> None:
    ids = [await store.enqueue("a@x.example", ["b@y.example"], b"x") for _ in range(3)]
    now = time.time() + 1
    await store.claim_due("host:111", now, limit=2)
    await store.claim_due("host:222", now, limit=5)
    assert await store.lease_holders() == {"host:111": 2, "host:222": 1}
    assert await store.release_worker("host:111") == 2
    assert await store.lease_holders() == {"host:222": 1}
    again = await store.claim_due("host:333", now)
    assert sorted(e.id for e in again) == sorted(ids[:2])


def _open_and_enqueue(data_dir: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> list[str]:
        s = await SqliteQueueStore.open(Path(data_dir))
        ids = [await s.enqueue("a@x.example", ["b@y.example"], b"x") for _ in range(20)]
        await s.close()
        return ids

    out.put(asyncio.run(main()))


def test_processes_creating_the_store_at_once(tmp_path: Path) -> None:
    """Workers start together on a fresh data directory: one creates, all succeed."""
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [
        ctx.Process(target=_open_and_enqueue, args=(str(tmp_path / "fresh"), out)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    ids = [i for _ in procs for i in out.get(timeout=60)]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    assert len(set(ids)) == 60


async def test_only_new_messages_and_management_pay_an_fsync(store: SqliteQueueStore) -> None:
    # Claims and results commit without an fsync of their own (synchronous=NORMAL): a
    # power failure can forget them, which redelivers (a duplicate), never loses.
    queue_id = await store.enqueue("a@example.com", ["b@example.net"], b"Subject: x\r\n\r\nx\r\n")
    assert (store.batches, store.synced_batches) == (1, 1)
    [entry] = await store.claim_due("w1")
    assert entry.id == queue_id
    assert (store.batches, store.synced_batches) == (2, 1)
    await store.record_results(
        queue_id,
        [RecipientUpdate("b@example.net", "deferred", "451 later", time.time())],
        worker="w1",
    )
    assert (store.batches, store.synced_batches) == (3, 1)
    await store.hold(queue_id)
    assert (store.batches, store.synced_batches) == (4, 2)
    # A batch that mixes both is synced: the new message must be on disk before its 250.
    await asyncio.gather(
        store.claim_due("w1"), store.enqueue("a@example.com", ["c@example.net"], b"x\r\n")
    )
    assert store.synced_batches == 3


async def test_unsynced_results_are_in_the_database_for_other_connections(
    store: SqliteQueueStore, tmp_path: Path
) -> None:
    queue_id = await store.enqueue("a@example.com", ["b@example.net"], b"x\r\n")
    await store.claim_due("w1")
    await store.record_results(
        queue_id, [RecipientUpdate("b@example.net", "delivered", "250 ok")], worker="w1"
    )
    other = await SqliteQueueStore.open(tmp_path / "data")
    try:
        assert await other.get(queue_id) is None
    finally:
        await other.close()


def _fail(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO entries (id) VALUES (NULL, NULL)")  # wrong column count


async def test_a_failing_operation_alone_leaves_the_store_usable(store: SqliteQueueStore) -> None:
    with pytest.raises(QueueError):
        await store._write(_fail)
    queue_id = await store.enqueue("a@example.com", ["b@example.net"], b"x\r\n")
    assert (await store.get(queue_id)) is not None


async def test_a_failing_operation_does_not_undo_the_others_of_its_batch(
    store: SqliteQueueStore,
) -> None:
    first, failed, second = await asyncio.gather(
        store.enqueue("a@example.com", ["b@example.net"], b"1\r\n"),
        store._write(_fail),
        store.enqueue("a@example.com", ["c@example.net"], b"2\r\n"),
        return_exceptions=True,
    )
    assert isinstance(failed, QueueError)
    assert isinstance(first, str) and isinstance(second, str)
    assert await store.read_message(first) == b"1\r\n"
    assert await store.read_message(second) == b"2\r\n"
    assert store.batches == 1
