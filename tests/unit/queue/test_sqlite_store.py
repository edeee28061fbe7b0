"""What only the embedded SQLite store has (the QueueStore contract, run against every
store: test_store_contract.py)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from mailwright.queue import (
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
