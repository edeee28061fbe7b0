"""Queue store throughput: durable enqueues/s at 1, 10 and 50 concurrent sessions.

Compares the SQLite store (bodies as blobs, group commit) with the alternative it
replaced: one fsync'd file per message (+ directory fsync), the way a spool directory
would store it. 5 KB messages. Run: ``uv run python bench/queue/run.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mailwright.queue import SqliteQueueStore, new_queue_id

BODY = (b"X" * 76 + b"\r\n") * 66  # about 5 KB


async def bench_sqlite(directory: Path, sessions: int, seconds: float) -> tuple[float, float]:
    store = await SqliteQueueStore.open(directory)
    done = 0
    deadline = time.perf_counter() + seconds

    async def session() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await store.enqueue("app@example.com", ["user@example.net"], BODY)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(sessions)))
    elapsed = time.perf_counter() - start
    batches = store.batches
    await store.close()
    return done / elapsed, done / max(batches, 1)


async def bench_files(directory: Path, sessions: int, seconds: float) -> tuple[float, float]:
    """Each message: write + fsync the file, rename into place, fsync the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    pool = ThreadPoolExecutor(sessions)
    loop = asyncio.get_running_loop()
    done = 0
    deadline = time.perf_counter() + seconds

    def store_one() -> None:
        name = new_queue_id()
        tmp = directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, BODY)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, directory / name)
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dfd)
        os.close(dfd)

    async def session() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await loop.run_in_executor(pool, store_one)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(sessions)))
    elapsed = time.perf_counter() - start
    pool.shutdown()
    return done / elapsed, 1.0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    table = Table(title="Durable enqueues/s, 5 KB messages (same disk, same run)")
    table.add_column("sessions", justify="right")
    table.add_column("SQLite WAL FULL, group commit", justify="right")
    table.add_column("msgs/commit", justify="right")
    table.add_column("fsync'd file per message", justify="right")
    for sessions in (1, 10, 50):
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
            rate, per_batch = await bench_sqlite(Path(tmp) / "q", sessions, args.seconds)
            file_rate, _ = await bench_files(Path(tmp) / "spool", sessions, args.seconds)
        table.add_row(str(sessions), f"{rate:,.0f}", f"{per_batch:.1f}", f"{file_rate:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
