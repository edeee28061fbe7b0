"""Beyond one machine: the SQLite queue vs the PostgreSQL queue, one node vs two.

Part 1, the store alone: durable enqueues/s of 5 KB messages at 1, 10 and 50 concurrent
sessions, :class:`SqliteQueueStore` (WAL, ``synchronous=FULL``) vs
:class:`PostgresQueueStore` (``synchronous_commit = on``, a private cluster with
``fsync = on`` on the same disk), with messages per commit (group commit); for
PostgreSQL also the CPU per message of this process (client) and of the server's
processes, for the enqueue and for what delivery asks of the store afterwards (claim,
read, record the result).

Part 2, end to end, smtp-source → mailwright → smtp-sink on loopback, 5 KB messages:
one node on SQLite, one node on PostgreSQL, two nodes on PostgreSQL (each its own
listener and data directory; the load split between them: one smtp-source per node with
half the sessions and messages). Each node runs one worker process (the machine has 2
cores). Per cell: accepted msg/s, delivered msg/s (until the sink counted the last one),
p50/p99 submission latency (a probe beside the load, one message at a time, on the
first node) and PostgreSQL transactions and WAL flushes per message
(``pg_stat_database.xact_commit``, which counts each autocommit read as one, and
``pg_stat_wal.wal_sync``, the fsyncs that commits wait for; counted around the whole
cell, node start and stop included).

Run: ``uv run python bench/scale/run.py [--messages 1000] [--levels 1,20] [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import pwd
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

from mailwright.queue.postgres import PostgresQueueStore, migrate
from mailwright.queue.sqlite import SqliteQueueStore
from mailwright.queue.store import QueueEntry, QueueStore, RecipientUpdate
from mailwright.testing.postfix import SMTP_SOURCE, SmtpSink, free_port
from mailwright.testing.postgres import PostgresCluster
from mailwright.testing.serve import start_serve, stop_serve

_spec = importlib.util.spec_from_file_location(
    "bench_mta", Path(__file__).resolve().parent.parent / "mta" / "run.py"
)
assert _spec and _spec.loader
bench_mta = importlib.util.module_from_spec(_spec)
sys.modules["bench_mta"] = bench_mta  # dataclasses look their module up there
_spec.loader.exec_module(bench_mta)
Probe = bench_mta.Probe

SENDER = "bench@example.com"
RECIPIENT = "sink@example.net"
SIZE = 5000
BODY = (b"X" * 76 + b"\r\n") * 66  # about 5 KB
console = Console(width=170)


# -- part 1: the store alone ---------------------------------------------------------------


def server_ticks() -> int:
    """CPU clock ticks used so far by every process of the ``postgres`` user (the
    cluster's server processes)."""
    uid = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    ticks = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != uid:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks


def client_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class StoreRun:
    rate: float
    per_commit: float
    client_us: float = 0.0
    server_us: float = 0.0


async def enqueue_rate(store: QueueStore, sessions: int, seconds: float) -> StoreRun:
    done = 0
    deadline = time.perf_counter() + seconds

    async def session() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await store.enqueue("app@example.com", ["user@example.net"], BODY)
            done += 1

    start, cpu, server = time.perf_counter(), client_seconds(), server_ticks()
    before = getattr(store, "batches", 0)
    await asyncio.gather(*(session() for _ in range(sessions)))
    elapsed = time.perf_counter() - start
    batches = getattr(store, "batches", 0) - before
    return StoreRun(
        done / elapsed,
        done / max(batches, 1),
        (client_seconds() - cpu) / done * 1e6,
        (server_ticks() - server) / os.sysconf("SC_CLK_TCK") / done * 1e6,
    )


async def delivery_cost(store: QueueStore) -> StoreRun:
    """What the delivery agent asks of the store per message: claim (100 at a time),
    read the body, record 'delivered' (which removes the entry)."""
    done = 0
    start, cpu, server = time.perf_counter(), client_seconds(), server_ticks()
    while batch := await store.claim_due("bench:1", time.time() + 5, limit=100):

        async def deliver(entry: QueueEntry) -> None:
            await store.read_message(entry.id)
            update = RecipientUpdate("user@example.net", "delivered", "250 ok")
            await store.record_results(entry.id, [update], worker="bench:1")

        await asyncio.gather(*(deliver(e) for e in batch))
        done += len(batch)
    elapsed = time.perf_counter() - start
    return StoreRun(
        done / elapsed,
        0.0,
        (client_seconds() - cpu) / max(done, 1) * 1e6,
        (server_ticks() - server) / os.sysconf("SC_CLK_TCK") / max(done, 1) * 1e6,
    )


async def store_part(cluster: PostgresCluster, levels: list[int], seconds: float) -> Table:
    table = Table(title="Part 1: durable enqueues/s, 5 KB messages, same disk, same run")
    for col in (
        "sessions",
        "SQLite store",
        "msgs/commit",
        "PostgreSQL store",
        "msgs/commit",
        "PG client µs/msg",
        "PG server µs/msg",
    ):
        table.add_column(col, justify="right")
    for sessions in levels:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
            sqlite = await SqliteQueueStore.open(Path(tmp) / "q")
            lite = await enqueue_rate(sqlite, sessions, seconds)
            await sqlite.close()
        url = cluster.create_database(f"store{sessions}")
        pg = await PostgresQueueStore.open(url, migrate_schema=True)
        run = await enqueue_rate(pg, sessions, seconds)
        deliver = await delivery_cost(pg)
        await pg.close()
        cluster.drop_database(f"store{sessions}")
        console.print(
            f"store, {sessions:2} sessions: SQLite {lite.rate:7.0f}/s ({lite.per_commit:.1f}/"
            f"commit), PostgreSQL {run.rate:7.0f}/s ({run.per_commit:.1f}/commit, client "
            f"{run.client_us:.0f} µs, server {run.server_us:.0f} µs per message); delivery "
            f"side {deliver.rate:.0f}/s (client {deliver.client_us:.0f} µs, server "
            f"{deliver.server_us:.0f} µs per message)"
        )
        table.add_row(
            str(sessions),
            f"{lite.rate:,.0f}",
            f"{lite.per_commit:.1f}",
            f"{run.rate:,.0f}",
            f"{run.per_commit:.1f}",
            f"{run.client_us:.0f} (+{deliver.client_us:.0f} delivery)",
            f"{run.server_us:.0f} (+{deliver.server_us:.0f} delivery)",
        )
    return table


# -- part 2: nodes ---------------------------------------------------------------------------


class Node:
    def __init__(self, root: Path, name: str, sink_port: int, url: str | None) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.port = free_port()
        lines = [
            'hostname = "mail.example.com"',
            f'data_dir = "{self.dir / "data"}"',
            "allow_root = true",  # the benchmark may run as root
            "workers = 1",
            "[[listeners]]",
            'name = "submission"',
            'address = "127.0.0.1"',
            f"port = {self.port}",
            "[delivery]",
            'mode = "relay"',
            "max_connections_per_domain = 50",
            "[delivery.relay]",
            f'url = "smtp://127.0.0.1:{sink_port}?tls=none"',
        ]
        if url:
            lines += ["[queue]", f'url = "{url}"']
        self.config = self.dir / "mailwright.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_serve(self.port, config=self.config, output=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None:
            stop_serve(self.proc)

    def errors(self) -> int:
        log = self.dir / "data" / "mailwright.log"
        return log.read_text(errors="replace").count(" event=error ") if log.exists() else 0


@dataclass
class Cell:
    setup: str
    sessions: int
    messages: int
    accepted_rate: float = 0.0
    delivered_rate: float = 0.0
    delivered: int = 0
    latencies: list[float] = field(default_factory=list)
    commits: float | None = None
    wal_syncs: float | None = None
    note: str = ""

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def pg_counters(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
            " (SELECT wal_sync FROM pg_stat_wal)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@contextlib.contextmanager
def nodes_running(
    root: Path, setup: str, sink_port: int, url: str | None, count: int
) -> Iterator[list[Node]]:
    shutil.rmtree(root / setup, ignore_errors=True)
    nodes = [Node(root / setup, f"node{i + 1}", sink_port, url) for i in range(count)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def measure(
    root: Path,
    setup: str,
    sink: SmtpSink,
    cluster: PostgresCluster,
    url: str | None,
    node_count: int,
    sessions: int,
    messages: int,
) -> Cell:
    cell = Cell(setup, sessions, messages)
    base = sink.count
    before = pg_counters(url) if url else None
    with nodes_running(root, setup, sink.port, url, node_count) as nodes:
        time.sleep(0.5)
        start = time.perf_counter()
        with Probe(nodes[0].port) as probe:
            share = max(1, sessions // node_count)
            sources = [
                subprocess.Popen(
                    [SMTP_SOURCE, "-s", str(share), "-l", str(SIZE), "-m",
                     str(messages // node_count), "-f", SENDER, "-t", RECIPIENT,
                     f"127.0.0.1:{node.port}"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for node in nodes
            ]  # fmt: skip
            for source in sources:
                _, err = source.communicate(timeout=600)
                if source.returncode != 0:
                    cell.note = err.strip()[:200]
            accepted = time.perf_counter() - start
        total = messages // node_count * node_count
        cell.accepted_rate = (total + probe.sent) / accepted
        cell.latencies = probe.latencies
        sink.wait_for(base + total + probe.sent, timeout=300)
        elapsed = time.perf_counter() - start
        cell.delivered = sink.count - base - probe.sent
        cell.delivered_rate = (sink.count - base) / elapsed
        errors = sum(node.errors() for node in nodes)
        if errors:
            cell.note = (cell.note + f" {errors} error events").strip()
    if url and before:
        # Counted after the nodes stopped: a backend reports its statistics when it
        # exits (while it runs, only every few seconds). Includes start and stop.
        time.sleep(0.5)
        after = pg_counters(url)
        cell.commits = (after[0] - before[0]) / (total + probe.sent)
        cell.wal_syncs = (after[1] - before[1]) / (total + probe.sent)
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--levels", default="1,20")
    parser.add_argument("--store-levels", default="1,10,50")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--store-only", action="store_true", help="Part 1 only.")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    console.print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    root = Path(tempfile.mkdtemp(prefix="mailwright-bench-scale-"))
    cells: list[Cell] = []
    with PostgresCluster(max_connections=300) as cluster:
        store_table = asyncio.run(
            store_part(cluster, [int(x) for x in args.store_levels.split(",")], args.seconds)
        )
        with SmtpSink(backlog=1024) as sink:
            for sessions in [] if args.store_only else levels:
                for setup, on_pg, count in (
                    ("1 node, SQLite", False, 1),
                    ("1 node, PostgreSQL", True, 1),
                    ("2 nodes, PostgreSQL", True, 2),
                ):
                    url = None
                    name = f"e2e{len(cells)}"
                    if on_pg:
                        url = cluster.create_database(name)
                        asyncio.run(migrate(url))
                    cell = measure(root, setup, sink, cluster, url, count, sessions, args.messages)
                    if on_pg:
                        cluster.drop_database(name)
                    console.print(
                        f"{setup:22} {sessions:3} sessions: accepted {cell.accepted_rate:6.0f}/s "
                        f"delivered {cell.delivered_rate:6.0f}/s ({cell.delivered}) p50 "
                        f"{cell.pct(0.5):6.1f} ms p99 {cell.pct(0.99):6.1f} ms "
                        f"commits/msg {cell.commits if cell.commits is not None else '-'} "
                        f"{cell.note}"
                    )
                    cells.append(cell)
    shutil.rmtree(root, ignore_errors=True)

    console.print(store_table)
    table = Table(
        title=f"Part 2: smtp-source → node(s) → smtp-sink, {SIZE} B, {args.messages} per cell"
    )
    for col in (
        "setup",
        "sessions",
        "accepted msg/s",
        "delivered msg/s",
        "p50 ms",
        "p99 ms",
        "PG transactions/msg",
        "PG WAL flushes/msg",
    ):
        table.add_column(col, justify="left" if col == "setup" else "right")
    for c in cells:
        table.add_row(
            c.setup + (f" ({c.note})" if c.note else ""),
            str(c.sessions),
            f"{c.accepted_rate:.0f}",
            f"{c.delivered_rate:.0f}"
            + ("" if c.delivered >= c.messages // 2 * 2 else f" ({c.delivered} arrived)"),
            f"{c.pct(0.5):.1f}",
            f"{c.pct(0.99):.1f}",
            "-" if c.commits is None else f"{c.commits:.2f}",
            "-" if c.wal_syncs is None else f"{c.wal_syncs:.2f}",
        )
    console.print(table)
    console.print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
