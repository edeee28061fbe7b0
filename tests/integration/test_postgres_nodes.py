"""Several nodes, one PostgreSQL queue (issue 13): two ``mailwright serve`` processes with
their own data directories and listeners share the session's private PostgreSQL cluster
and relay to Postfix's ``smtp-sink``, which writes every message it receives to a file.

* normal operation: each message is delivered exactly once, whichever node took it;
* one node SIGKILLed (its process group) several times under load and restarted: no
  acknowledged message is lost (duplicates are possible by design, at-least-once, and
  bounded by what was in flight);
* PostgreSQL stopped (fast shutdown) mid-load: submissions get ``451 4.3.0`` while it is
  down, nothing acknowledged is lost, and the nodes carry on by themselves when it is back.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailwright.testing.postfix import SmtpSink
from mailwright.testing.postgres import PostgresCluster, free_port
from mailwright.testing.serve import greets

pytestmark = pytest.mark.integration

MAILWRIGHT = str(Path(sys.executable).parent / "mailwright")
BODY = b"".join(
    b"line %03d of the multi-node test message body, padding to about 5 KB.\r\n" % i
    for i in range(70)
)


class Node:
    """One ``mailwright serve`` process group with its own data directory and listener."""

    def __init__(self, root: Path, name: str, url: str, sink_port: int) -> None:
        self.dir = root / name
        self.dir.mkdir()
        self.port = free_port()
        self.log = self.dir / "serve.out"
        self.config = self.dir / "mailwright.toml"
        self.config.write_text(
            f"""
hostname = "{name}.example.com"
domains = ["example.com"]
mailboxes = ["admin@example.com"]
data_dir = "data"
allow_root = true
workers = 1

[[listeners]]
name = "submission"
address = "127.0.0.1"
port = {self.port}

[delivery]
mode = "relay"

[delivery.relay]
url = "smtp://127.0.0.1:{sink_port}?tls=none"

[queue]
url = "{url}"
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MAILWRIGHT, "--config", str(self.config), "serve"],
            cwd=self.dir,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches every worker
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            if greets(self.port):  # its store is open (the port alone accepts earlier)
                return
            time.sleep(0.1)
        raise AssertionError(f"node {self.dir.name} did not start")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the whole group gone, workers too
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Load:
    """SMTP sessions spread over the nodes' listeners, in a thread with its own loop.
    Every message carries a sequence number; ``acked`` maps it to its queue ID once the
    server said 250. A session whose server went away connects again."""

    def __init__(self, ports: list[int], total: int, sessions: int) -> None:
        self.ports = ports
        self.total = total
        self.sessions = sessions
        self.acked: dict[int, str] = {}
        self.temporary: collections.Counter[str] = collections.Counter()
        self.other: list[str] = []
        self._numbers = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the load did not finish"

    def wait_acked(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} acknowledged"
            time.sleep(0.01)

    async def _run(self) -> None:
        await asyncio.gather(*(self._session(i) for i in range(self.sessions)))

    async def _session(self, number: int) -> None:
        port = self.ports[number % len(self.ports)]
        seq = next(self._numbers)
        while seq < self.total and not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            try:
                seq = await self._send(reader, writer, seq)
            except (OSError, ConnectionError, TimeoutError):
                await asyncio.sleep(0.05)  # killed mid-transaction: not acknowledged
            finally:
                writer.close()

    async def _send(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seq: int
    ) -> int:
        async def reply() -> str:
            lines = []
            while True:
                line = await asyncio.wait_for(reader.readline(), 60)
                if not line:
                    raise ConnectionError("closed")
                lines.append(line.decode().rstrip())
                if line[3:4] != b"-":
                    return " ".join(lines)

        await reply()
        writer.write(b"EHLO loadgen.example\r\n")
        await reply()
        while seq < self.total and not self._stop.is_set():
            writer.write(b"MAIL FROM:<app@example.com>\r\nRCPT TO:<sink@example.net>\r\nDATA\r\n")
            for _ in range(3):
                await reply()
            writer.write(
                b"From: app@example.com\r\nTo: sink@example.net\r\nSubject: nodes %d\r\n"
                b"X-Node-Seq: %d\r\n\r\n" % (seq, seq) + BODY + b".\r\n"
            )
            final = await reply()
            if final.startswith("250 "):
                self.acked[seq] = final.rsplit(" ", 1)[1]
                seq = next(self._numbers)
            elif final.startswith("4"):
                self.temporary[final[:9]] += 1  # tried again with the same number
                await asyncio.sleep(0.05)
            else:
                self.other.append(final)
                seq = next(self._numbers)
        return seq


def delivered(dump_dir: Path) -> collections.Counter[int]:
    """How often each X-Node-Seq reached the sink."""
    seen: collections.Counter[int] = collections.Counter()
    for path in dump_dir.iterdir():
        for match in re.finditer(rb"X-Node-Seq: (\d+)", path.read_bytes()):
            seen[int(match.group(1))] += 1
    return seen


def wait_delivered(
    dump: Path, acked: dict[int, str], timeout: float = 120
) -> collections.Counter[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = delivered(dump)
        if all(seen[seq] for seq in acked):
            break
        time.sleep(0.25)
    time.sleep(1.5)  # stragglers (duplicates) arrive before counting
    return delivered(dump)


@pytest.fixture
def sink_dump() -> Iterator[Path]:
    # smtp-sink writes as "nobody", who cannot enter pytest's private tmp_path
    dump = Path(tempfile.mkdtemp(prefix="mailwright-nodes-sink-"))
    yield dump
    shutil.rmtree(dump, ignore_errors=True)


@pytest.fixture
def nodes(tmp_path: Path, postgres_url: str, sink_dump: Path) -> Iterator[list[Node]]:
    with SmtpSink(dump_dir=sink_dump) as sink:
        both = [Node(tmp_path, name, postgres_url, sink.port) for name in ("node1", "node2")]
        try:
            both[0].start()  # the first start migrates the schema, the second finds it done
            both[1].start()
            yield both
        finally:
            for node in both:
                if node.alive:
                    node.stop()


def test_two_nodes_deliver_each_message_once(nodes: list[Node], sink_dump: Path) -> None:
    with Load([n.port for n in nodes], total=300, sessions=6) as load:
        load.join(120)
    assert len(load.acked) == 300 and not load.temporary and not load.other
    seen = wait_delivered(sink_dump, load.acked)
    assert sorted(seen) == sorted(load.acked)
    assert set(seen.values()) == {1}, "a message was delivered twice"
    for node in nodes:
        assert node.stop() == 0
    for node in nodes:  # each node took mail on its listener and delivered mail
        log = (node.dir / "data" / "mailwright.log").read_text()
        assert log.count("event=accepted ") > 0, node.dir.name
        assert log.count("event=delivered ") > 0, node.dir.name


def test_a_node_killed_again_and_again_loses_nothing(nodes: list[Node], sink_dump: Path) -> None:
    kills = 3
    with Load([n.port for n in nodes], total=900, sessions=8) as load:
        for round_ in range(kills):
            load.wait_acked(150 * (round_ + 1))
            nodes[1].kill()  # mid-load: sessions on it break, its deliveries stop
            time.sleep(0.3)
            nodes[1].start()  # gives its dead worker's leases back at once
        load.join(180)
    acked = dict(load.acked)
    assert len(acked) >= 150 * kills
    seen = wait_delivered(sink_dump, acked)
    losses = [seq for seq in acked if not seen[seq]]
    duplicates = {seq: n for seq, n in seen.items() if n > 1}
    print(
        f"\ntwo nodes, node2 SIGKILLed {kills} times: {len(acked)} acknowledged, "
        f"losses={len(losses)}, duplicates={len(duplicates)}, "
        f"delivered-but-unacknowledged={len([s for s in seen if s not in acked])}"
    )
    assert losses == []
    # at-least-once: only what the killed node had in flight can go out twice
    assert len(duplicates) <= kills * 100


def _explain(losses: list[int], acked: dict[int, str], nodes: list[Node], url: str) -> str:
    """Where the lost messages are: still queued (and why), and what the logs say."""
    import psycopg

    lines = []
    with psycopg.connect(url) as conn:
        for seq in losses:
            row = conn.execute(
                "SELECT id, recipients, claimed_by, lease_until, held FROM queue_entries"
                " WHERE id = %s",
                (acked[seq],),
            ).fetchone()
            lines.append(f"{seq} {acked[seq]}: {row}")
            for node in nodes:
                for log in node.dir.rglob("*.log"):
                    lines += [line for line in log.read_text().splitlines() if acked[seq] in line]
    return "\n".join(lines)


def test_postgresql_restart_mid_load(
    nodes: list[Node], sink_dump: Path, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    with Load([n.port for n in nodes], total=700, sessions=6) as load:
        load.wait_acked(150)
        postgres_cluster.stop("fast")
        try:
            acked_when_down = len(load.acked)
            deadline = time.monotonic() + 30
            while sum(load.temporary.values()) < 10:
                assert time.monotonic() < deadline, "no 451 while the database was down"
                time.sleep(0.05)
        finally:
            postgres_cluster.start()
        load.join(180)
    assert all(node.alive for node in nodes), "a node died with the database"
    assert set(load.temporary) == {"451 4.3.0"}, load.temporary
    assert load.other == []
    assert len(load.acked) == 700  # the nodes took mail again by themselves
    assert acked_when_down < 700
    seen = wait_delivered(sink_dump, load.acked)
    losses = [seq for seq in load.acked if not seen[seq]]
    print(
        f"\nPostgreSQL fast shutdown mid-load: {sum(load.temporary.values())} submissions got "
        f"451 4.3.0 while it was down; {len(load.acked)} acknowledged, losses={len(losses)}, "
        f"duplicates={len([s for s, n in seen.items() if n > 1])}"
    )
    assert losses == [], _explain(losses, load.acked, nodes, postgres_url)


def _events(url: str) -> list[dict[str, object]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT data FROM events ORDER BY seq")]


def _wait_event(url: str, predicate: Callable[[dict[str, object]], bool]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [e for e in _events(url) if predicate(e)]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no such event in {_events(url)}")


def test_a_hard_bounce_seen_by_one_node_suppresses_on_the_other(
    tmp_path: Path, postgres_url: str, sink_dump: Path
) -> None:
    """Events and suppressions live in the shared database: node 1's relay refuses
    dead@ with 550 5.1.1 (a hard bounce, suppressed); a message for dead@ and ok@ later
    submitted to node 2 goes to ok@ only, and dead@ gets ``rejected: suppressed``."""
    import smtplib

    refusing = SmtpSink(hard=["rcpt"], hard_reply="550 5.1.1 no such user")
    with refusing, SmtpSink(dump_dir=sink_dump) as sink:
        one = Node(tmp_path, "node1", postgres_url, refusing.port)
        two = Node(tmp_path, "node2", postgres_url, sink.port)
        try:
            one.start()
            with smtplib.SMTP("127.0.0.1", one.port, timeout=30) as client:
                client.sendmail(
                    "app@example.com",
                    ["dead@example.net"],
                    b"From: app@example.com\r\nTo: dead@example.net\r\nSubject: one\r\n\r\nhi\r\n",
                )
            bounced = _wait_event(postgres_url, lambda e: e["event_type"] == "bounced")
            assert (bounced["recipient"], bounced["bounce_type"]) == ("dead@example.net", "hard")
            # node 1 stops (it would relay node 2's mail to the refusing sink)
            assert one.stop() == 0
            two.start()
            with smtplib.SMTP("127.0.0.1", two.port, timeout=30) as client:
                client.sendmail(
                    "app@example.com",
                    ["dead@example.net", "ok@example.net"],
                    b"From: app@example.com\r\nTo: ok@example.net\r\nSubject: two\r\n"
                    b"X-Node-Seq: 2\r\n\r\nhi\r\n",
                )
            rejected = _wait_event(postgres_url, lambda e: e["event_type"] == "rejected")
            assert (rejected["recipient"], rejected["reject_reason"]) == (
                "dead@example.net",
                "suppressed",
            )
            _wait_event(
                postgres_url,
                lambda e: e["event_type"] == "delivered" and e["recipient"] == "ok@example.net",
            )
            assert delivered(sink_dump) == {2: 1}
            assert sink_text(sink_dump).count("dead@example.net") == 0
        finally:
            for node in (one, two):
                if node.alive:
                    node.stop()


def sink_text(dump_dir: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in dump_dir.iterdir())
