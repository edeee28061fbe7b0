"""What only the embedded SQLite store has (the QueueStore contract, run against every
store: test_store_contract.py)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from mailwright.queue import (
    QueueError,
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


async def test_enqueue_is_durable_in_the_database_file(store: SqliteQueueStore) -> None:
    """After enqueue() returns, another connection (another process) sees the message."""
    queue_id = await store.enqueue("", ["b@example.net"], b"x" * 5000)
    with sqlite3.connect(store.path) as other:
        (data,) = other.execute("SELECT data FROM messages WHERE id = ?", (queue_id,)).fetchone()
        assert data == b"x" * 5000
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_the_event_log_indexes_what_is_looked_up_and_not_event_id(
    store: SqliteQueueStore,
) -> None:
    """Each event pays for every index of the log: time ranges, a message's events, and a
    bounce's match to its ``queued`` event. ``event_id`` is unique by construction and
    never looked up here, so it has none (PostgreSQL keeps its UNIQUE for ON CONFLICT)."""
    with sqlite3.connect(store.path) as db:
        indexes = {row[1] for row in db.execute("PRAGMA index_list(events)")}
    assert indexes == {
        "events_time",
        "events_queue",
        "events_queued_index",
        "events_queued_recipient",
    }


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


async def test_a_caller_that_goes_away_does_not_stop_the_others_batch(
    store: SqliteQueueStore,
) -> None:
    """A session cancelled while its batch is on the writer thread (the client hung up)
    stops waiting; the batch, and everyone else's answer from it, goes on."""
    gate = threading.Event()

    def slow(conn: sqlite3.Connection) -> str:
        gate.wait(5)
        return "slow"

    leaving = asyncio.ensure_future(store._write(slow))
    staying = asyncio.ensure_future(store.enqueue("a@example.com", ["b@example.net"], b"1\r\n"))
    await asyncio.sleep(0.05)  # one batch, on the writer thread, waiting for the gate
    leaving.cancel()
    gate.set()
    queue_id = await asyncio.wait_for(staying, 5)
    assert await store.read_message(queue_id) == b"1\r\n"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert store.batches == 1
    assert await store.enqueue("a@example.com", ["c@example.net"], b"2\r\n")


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


async def test_a_spool_file_that_changed_is_refused_not_stored_padded(
    store: SqliteQueueStore, tmp_path: Path
) -> None:
    from mailwright.queue import QueueError
    from mailwright.spool import SpooledMessage

    head, body = b"Subject: big\r\n\r\n", b"x" * 700_000
    path = tmp_path / "spooled"
    path.write_bytes(head + body)
    spooled = SpooledMessage(path, head, len(head), len(head) + len(body))
    path.write_bytes(head + body[:1000])  # cut after the session measured it
    with pytest.raises(QueueError, match="not 700016"):
        await store.enqueue("a@example.com", ["b@example.net"], spooled)
    assert await store.list_entries() == []


def test_queue_id_digits_are_crockford_base32_of_the_time_and_random_bits() -> None:
    from mailwright.queue.store import _ALPHABET, _b32

    def reference(value: int, width: int) -> str:
        digits = []
        for _ in range(width):
            value, digit = divmod(value, 32)
            digits.append(_ALPHABET[digit])
        return "".join(reversed(digits))

    for value, width in [(0, 4), (1, 4), (2**20 - 1, 4), (0, 10), (2**50 - 1, 10), (123456789, 10)]:
        assert _b32(value, width) == reference(value, width)
    queue_id = new_queue_id(now=1_800_000_000.0)
    micros = 1_800_000_000 * 1_000_000 - 1_704_067_200_000_000
    assert queue_id[:10] == reference(micros, 10)


async def test_a_finished_entry_is_removed_without_reading_its_metadata(
    store: SqliteQueueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last recipient done (the usual end of a message): only the recipients are
    parsed, then the entry and its message go; a result that leaves a recipient pending
    parses the whole entry, as before."""
    import mailwright.queue.sqlite as sqlite_store

    parsed: list[str] = []
    real_entry = sqlite_store._entry

    def counted(row: tuple[object, ...], recipients: object = None) -> object:
        parsed.append(str(row[0]))
        return real_entry(row, recipients)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_store, "_entry", counted)
    done = await store.enqueue("app@example.com", ["a@example.net"], b"x")
    later = await store.enqueue("app@example.com", ["b@example.net", "c@example.net"], b"y")
    assert (
        await store.record_results(done, [RecipientUpdate("a@example.net", "delivered", "250")])
        is None
    )
    assert parsed == [] and await store.get(done) is None
    parsed.clear()
    entry = await store.record_results(
        later, [RecipientUpdate("b@example.net", "bounced", "550 5.1.1")]
    )
    assert entry is not None and [r.status for r in entry.recipients] == ["bounced", "pending"]
    assert later in parsed
