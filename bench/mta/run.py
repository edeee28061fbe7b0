"""End-to-end MTA benchmark: smtp-source → X → smtp-sink, on loopback.

X is mailwright (``mailwright serve`` as a subprocess, relaying to the sink, with DKIM
signing off and with dual signing RSA-2048 + Ed25519) and, in the same run, a private
Postfix instance relaying to the same kind of sink: alone (no DKIM), and with OpenDKIM
as its milter signing RSA-2048 (the setup mailwright replaces), once over a TCP socket
(``inet:PORT@127.0.0.1``, as the usual guides configure it) and once over a unix
socket (Debian's packaged default). After each OpenDKIM cell one sample message goes
to a second sink that keeps it, and its signature is verified there. Per concurrency
level (1, 10, 50 parallel smtp-source sessions, 5 KB messages):

* accepted msg/s: messages (the probe's included) / time until smtp-source has had its last 250;
* delivered msg/s: messages / time until the sink has counted the last one;
* p50/p99 submission latency: a probe beside the load sends one message at a time over
  its own connection and times MAIL FROM … final 250 (smtp-source has no per-message
  timing); its messages are counted at the sink too;
* peak memory: the summed PSS of X's whole process tree, sampled every 0.5 s
  (:data:`SAMPLE_SECONDS`).

``--only nodkim,webhooks,deadhook --levels 20`` compares mailwright without a webhook,
with one (a loopback HTTP endpoint that answers 204 and counts the events it gets) and
with one whose endpoint is down (connection refused), same run:
the webhook sender must not cost mail flow more than 10 %.

Then the submission rate alone, with delivery paused (mailwright:
``MAILWRIGHT_DELIVERY=paused``; Postfix: its queue manager disabled).

``--compare PATH[,PATH]``: other builds' ``mailwright`` (a checkout's
``.venv/bin/mailwright``) as more dual-DKIM rows, for a before/after in the same run.

``--rounds N``: every cell N times, the systems in alternating order within each level;
the table shows each cell's median round (and every round's delivered rate), and a last
table compares dual-DKIM mailwright with the peers issue 16 sets goals against: the
median of the per-round ratios, each from two cells run back to back. On a small
machine one cell's rate varies by ±10 % from minute to minute; the rounds make that
visible instead of letting one lucky or unlucky cell decide.

Run: ``uv run python bench/mta/run.py [--messages 2000] [--levels 1,10,50] [--workers 2]
[--rounds 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import smtplib
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mailwright.dkim import dns_record_value, generate_key, private_key_pem, verify_message
from mailwright.dns import MemoryResolver
from mailwright.testing import serve as serve_module
from mailwright.testing.opendkim import OpenDkimMilter
from mailwright.testing.ports import free_port
from mailwright.testing.postfix import SMTP_SOURCE, PostfixServer, SmtpSink
from mailwright.testing.serve import start_serve, stop_serve

SENDER = "bench@example.com"
RECIPIENT = "sink@example.net"
SIZE = 5000
console = Console(width=170)


@dataclass
class Result:
    system: str
    sessions: int
    messages: int
    accepted_rate: float = 0.0
    delivered_rate: float = 0.0
    delivered: int = 0
    latencies: list[float] = field(default_factory=list)
    peak_mb: float = 0.0
    note: str = ""

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- process tree memory ----------------------------------------------------------------


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (libraries, forked workers) counted once overall,
    so a tree of many small Postfix daemons is not charged each library many times."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


SAMPLE_SECONDS = 0.5
"""How often the memory sampler reads X's tree. A sample costs about 4 ms of CPU (the
walk of ``/proc`` for the tree, then ``smaps_rollup``, where the kernel walks each
process's page tables under its memory-map lock). Every 50 ms, as before, it took 7-13 %
off the one-session rate of mailwright and of Postfix alike (two runs of 5 alternating
rounds, issue 16's eighth session); every 0.5 s nothing measurable. Memory at a steady
load is flat, and the big-message benchmark, where peaks are the point, samples on its
own."""


class MemorySampler:
    def __init__(self, root: int, *others: int) -> None:
        self.roots = (root, *others)
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = {p for root in self.roots for p in _tree(root)}
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in pids))
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- latency probe ----------------------------------------------------------------------


class Probe:
    """One connection, one message at a time, timed from MAIL FROM to the final reply."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        body = (b"X" * 76 + b"\r\n") * (SIZE // 78)
        self.data = (
            f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: probe\r\n\r\n".encode() + body
        )

    def _reply(self, f: io.BufferedRWPair[Any, Any]) -> bytes:
        while True:
            line = f.readline()
            if not line or line[3:4] != b"-":
                return bytes(line)

    def _run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), 10) as s:
            f = s.makefile("rwb")
            self._reply(f)
            f.write(b"EHLO probe.example\r\n")
            f.flush()
            self._reply(f)
            while not self._stop.is_set():
                start = time.perf_counter()
                for command in (f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{RECIPIENT}>", "DATA"):
                    f.write(command.encode() + b"\r\n")
                    f.flush()
                    self._reply(f)
                f.write(self.data + b".\r\n")
                f.flush()
                reply = self._reply(f)
                if reply.startswith(b"250"):
                    self.latencies.append(time.perf_counter() - start)
                    self.sent += 1
                self._stop.wait(0.02)
            f.write(b"QUIT\r\n")
            f.flush()

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


# -- the systems under test -----------------------------------------------------------------


class WebhookEndpoint:
    """A loopback HTTP endpoint for the webhooks: 204 for every POST, events counted."""

    def __init__(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                endpoint.events += len(json.loads(body)["data"]["events"])
                endpoint.requests += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.events = 0
        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


DUAL_DKIM = "mailwright, DKIM RSA+Ed25519"
"""The dual-DKIM row's name: the system issue 16's goals measure."""


class Mailwright:
    def __init__(
        self,
        workdir: Path,
        sink_port: int,
        *,
        dkim: bool,
        workers: int,
        webhook: WebhookEndpoint | None = None,
        dead_webhook: bool = False,
        settings: Sequence[str] = (),
        command: str | None = None,
    ) -> None:
        """``settings``: more top-level config lines (``message_size_limit = N``);
        ``command``: another build's ``mailwright`` to run instead of this one."""
        label = "mw-dead" if dead_webhook else "mw-hooks" if webhook else "mw"
        self.dir = workdir / ("mw-dkim" if dkim else label)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.webhook = webhook
        self.name = DUAL_DKIM if dkim else "mailwright, no DKIM"
        if webhook:
            self.name += ", webhooks"
        if dead_webhook:
            self.name += ", webhook down"
        if command:
            self.name += f" ({command})"
        self.command = command
        lines = [
            'hostname = "mail.example.com"',
            f'data_dir = "{self.dir / "data"}"',
            "allow_root = true",
            f"workers = {workers}",
            *settings,
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
        if webhook or dead_webhook:
            url = webhook.url if webhook else f"http://127.0.0.1:{free_port()}/nobody-listens"
            lines += [
                "[[webhooks]]",
                f'url = "{url}"',
                'secret = "bench-secret-0123456789"',
            ]
        if dkim:
            for selector, algorithm in (("rsa", "rsa"), ("ed", "ed25519")):
                key = self.dir / f"{selector}.private"
                key.write_bytes(private_key_pem(generate_key(algorithm, 2048)))
                lines += [
                    "[[dkim]]",
                    'domain = "example.com"',
                    f'selector = "{selector}"',
                    f'private_key = "{key}"',
                    f'algorithm = "{algorithm}"',
                ]
        self.config = self.dir / "mailwright.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @contextlib.contextmanager
    def running(self, *, paused: bool = False) -> Iterator[int]:
        env = dict(os.environ)
        if paused:
            env["MAILWRIGHT_DELIVERY"] = "paused"
        shutil.rmtree(self.dir / "data", ignore_errors=True)
        saved = serve_module.MAILWRIGHT
        if self.command:
            serve_module.MAILWRIGHT = Path(self.command)
        try:
            self.proc = start_serve(
                self.port, config=self.config, output=subprocess.DEVNULL, env=env
            )
        finally:
            serve_module.MAILWRIGHT = saved
        try:
            yield self.proc.pid
        finally:
            stop_serve(self.proc)

    def signed_fraction(self) -> str:
        log = self.dir / "data" / "mailwright.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        errors = [line for line in text.splitlines() if " event=error " in line]
        note = f"{text.count('event=signed')} signed, {text.count('event=unsigned')} unsigned"
        if errors:
            note += f"; {len(errors)} errors, first: {errors[0][:300]}"
        if self.webhook:
            note += f"; webhook got {self.webhook.events} events so far"
        return note


class Postfix:
    name = "Postfix 3.7, no DKIM"

    def __init__(self, sink_port: int, settings: dict[str, str] | None = None) -> None:
        """``settings``: more main.cf parameters (``message_size_limit``)."""
        self.sink_port = sink_port
        self.settings = dict(settings or {})
        self.server: PostfixServer | None = None

    @contextlib.contextmanager
    def running(self, *, paused: bool = False) -> Iterator[int]:
        settings = dict(self.settings)
        if paused:
            settings["master_service_disable"] = "qmgr.unix"
        server = PostfixServer(
            domains=(),
            hostname="relay.example.com",
            relayhost=f"[127.0.0.1]:{self.sink_port}",
            settings=settings,
        )
        server.start()
        self.server = server
        self.port = server.port
        try:
            pid = int((server.queue_dir / "pid" / "master.pid").read_text().split()[0])
            yield pid
        finally:
            server.stop()


class PostfixOpenDkim(Postfix):
    """Postfix with OpenDKIM as its milter, signing RSA-2048 for the sender's domain."""

    SELECTOR = "od"

    @staticmethod
    def named(kind: str) -> str:
        return f"Postfix 3.7 + OpenDKIM ({kind} socket)"

    def __init__(self, sink_port: int, sample_sink: SmtpSink, sample_dir: Path, kind: str) -> None:
        super().__init__(sink_port)
        self.kind = kind
        self.name = self.named(kind)
        self.key = generate_key("rsa", 2048)
        self.sample_sink = sample_sink
        self.sample_dir = sample_dir
        self.milter_pid = 0

    @contextlib.contextmanager
    def running(self, *, paused: bool = False) -> Iterator[int]:
        settings = {"master_service_disable": "qmgr.unix"} if paused else {}
        domain = SENDER.partition("@")[2]
        keeper = f"smtp:[127.0.0.1]:{self.sample_sink.port}"
        with OpenDkimMilter(
            self.key, domain=domain, selector=self.SELECTOR, socket_kind=self.kind
        ) as milter:
            assert milter.proc is not None
            self.milter_pid = milter.proc.pid  # its memory counts with Postfix's
            settings.update(
                smtpd_milters=milter.postfix_milter,
                milter_default_action="tempfail",
                milter_protocol="6",
                # the sample goes to a sink that keeps it
                transport_maps=f"inline:{{ {{verify.example={keeper}}} }}",
            )
            server = PostfixServer(
                domains=(),
                hostname="relay.example.com",
                relayhost=f"[127.0.0.1]:{self.sink_port}",
                settings=settings,
            )
            server.start()
            self.server = server
            self.port = server.port
            try:
                pid = int((server.queue_dir / "pid" / "master.pid").read_text().split()[0])
                yield pid
            finally:
                server.stop()

    def check_sample(self) -> str:
        """Send one message to the keeping sink and verify its DKIM signature there."""
        for old in self.sample_dir.iterdir():
            old.unlink()
        message = (
            f"From: <{SENDER}>\r\nTo: <check@verify.example>\r\nSubject: sample\r\n"
            "Date: Fri, 04 Dec 2026 22:00:00 +0000\r\nMessage-ID: <sample@example.com>\r\n\r\n"
        ).encode() + (b"X" * 76 + b"\r\n") * 20
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.sendmail(SENDER, ["check@verify.example"], message)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(self.sample_dir.iterdir()):
            time.sleep(0.05)
        time.sleep(0.2)  # smtp-sink finishes writing the file
        files = list(self.sample_dir.iterdir())
        if not files:
            return "sample: NOT DELIVERED"
        resolver = MemoryResolver().add(
            f"{self.SELECTOR}._domainkey.{SENDER.partition('@')[2]}",
            "TXT",
            dns_record_value(self.key),
        )
        results = asyncio.run(verify_message(files[0].read_bytes(), resolver))
        verdict = ", ".join(f"{r.algorithm} {r.status}" for r in results) or "unsigned"
        return f"sample: {verdict}"


# -- one measurement ---------------------------------------------------------------------------


def measure(
    system: Mailwright | Postfix | PostfixOpenDkim,
    sink: SmtpSink,
    sessions: int,
    messages: int,
    *,
    paused: bool = False,
) -> Result:
    result = Result(system.name, sessions, messages)
    base = sink.count
    with system.running(paused=paused) as root:
        port = system.port
        time.sleep(0.5)
        others = (system.milter_pid,) if isinstance(system, PostfixOpenDkim) else ()
        with MemorySampler(root, *others) as sampler:
            start = time.perf_counter()
            with Probe(port) as probe:
                source = subprocess.run(
                    [
                        SMTP_SOURCE,
                        "-s",
                        str(sessions),
                        "-l",
                        str(SIZE),
                        "-m",
                        str(messages),
                        "-f",
                        SENDER,
                        "-t",
                        RECIPIENT,
                        f"127.0.0.1:{port}",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                accepted = time.perf_counter() - start
            if source.returncode != 0:
                result.note = source.stderr.strip()[:200]
            # probe messages count as submitted and delivered, for both rates alike
            result.accepted_rate = (messages + probe.sent) / accepted
            result.latencies = probe.latencies
            if not paused:
                expected = base + messages + probe.sent
                sink.wait_for(expected, timeout=300)
                elapsed = time.perf_counter() - start
                result.delivered = sink.count - base - probe.sent
                result.delivered_rate = (sink.count - base) / elapsed
                if isinstance(system, PostfixOpenDkim):
                    result.note = (result.note + " " + system.check_sample()).strip()
        result.peak_mb = sampler.peak_kb / 1024
        if isinstance(system, Mailwright):
            result.note = (result.note + " " + system.signed_fraction()).strip()
    return result


def typical(results: Sequence[Result]) -> Result:
    """The round with the median delivered rate (the lower middle of an even count): a
    round that happened, so its latency and memory columns belong with its rate."""
    ordered = sorted(results, key=lambda r: r.delivered_rate)
    return ordered[(len(ordered) - 1) // 2]


GOALS: dict[str, dict[int | None, float]] = {
    # issue 16 item 2: against Postfix without DKIM, at one session and at 20
    Postfix.name: {1: 1.0, 20: 1.5},
    # item 3: against Postfix + OpenDKIM on the unix socket, at every level
    PostfixOpenDkim.named("unix"): {None: 1.5},
}


@dataclass
class Goal:
    peer: str
    sessions: int
    ratio: float
    """The median of the per-round ratios (each from one round, minutes apart at most)."""
    per_round: list[float]
    goal: float | None


def goal_rows(rounds: dict[tuple[str, int], list[Result]], levels: Sequence[int]) -> list[Goal]:
    """Dual-DKIM mailwright against each peer with a goal, per level: the ratio of the
    two delivered rates in each round (the two ran back to back), and their median."""
    out = []
    for peer, goals in GOALS.items():
        for level in levels:
            ours, theirs = rounds.get((DUAL_DKIM, level)), rounds.get((peer, level))
            if not ours or not theirs:
                continue
            per_round = [
                a.delivered_rate / b.delivered_rate
                for a, b in zip(ours, theirs, strict=True)
                if b.delivered_rate
            ]
            if not per_round:
                continue
            goal = goals.get(level, goals.get(None))
            out.append(Goal(peer, level, statistics.median(per_round), per_round, goal))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--levels", default="1,10,50")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every cell this many times, systems in alternating order; "
        "the tables show the median round and the goals the median of per-round ratios",
    )
    parser.add_argument(
        "--compare",
        default="",
        help="other builds' mailwright executables (comma-separated): their dual-DKIM rows too",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated: postfix,opendkim-inet,opendkim-unix,nodkim,dkim,webhooks,deadhook",
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    only = set(args.only.split(",")) - {""}
    workdir = Path(tempfile.mkdtemp(prefix="mailwright-bench-mta-"))
    rounds: dict[tuple[str, int], list[Result]] = {}
    """Every round's result of each (system, level), in round order."""
    submission: list[Result] = []
    console.print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    sample_dir = Path(tempfile.mkdtemp(prefix="mailwright-bench-sample-"))
    with (
        SmtpSink(backlog=1024) as sink,
        SmtpSink(dump_dir=sample_dir) as sample_sink,
        WebhookEndpoint() as endpoint,
    ):
        systems: list[Mailwright | Postfix | PostfixOpenDkim] = []
        if not only or "postfix" in only:
            systems.append(Postfix(sink.port))
        for kind in ("inet", "unix"):
            if not only or f"opendkim-{kind}" in only:
                systems.append(PostfixOpenDkim(sink.port, sample_sink, sample_dir, kind))
        if not only or "nodkim" in only:
            systems.append(Mailwright(workdir, sink.port, dkim=False, workers=args.workers))
        if not only or "dkim" in only:
            systems.append(Mailwright(workdir, sink.port, dkim=True, workers=args.workers))
        for i, other in enumerate(filter(None, args.compare.split(","))):
            systems.append(
                Mailwright(
                    workdir / f"other{i}", sink.port, dkim=True, workers=args.workers, command=other
                )
            )
        if "deadhook" in only:
            systems.append(
                Mailwright(workdir, sink.port, dkim=False, workers=args.workers, dead_webhook=True)
            )
        if "webhooks" in only:
            systems.append(
                Mailwright(workdir, sink.port, dkim=False, workers=args.workers, webhook=endpoint)
            )
        for level in levels:
            for round_ in range(args.rounds):
                # alternate the order: no system always runs first (or last) in a round
                for system in systems if round_ % 2 == 0 else systems[::-1]:
                    r = measure(system, sink, level, args.messages)
                    console.print(
                        f"{r.system:32} {level:3} sessions: accepted {r.accepted_rate:7.0f}/s "
                        f"delivered {r.delivered_rate:7.0f}/s ({r.delivered}/{r.messages}) "
                        f"p50 {r.pct(0.5):6.1f} ms p99 {r.pct(0.99):6.1f} ms "
                        f"peak {r.peak_mb:5.0f} MB {r.note}"
                        + (f" [round {round_ + 1}/{args.rounds}]" if args.rounds > 1 else ""),
                        markup=False,  # "[round 2/5]" would be read as a style, and dropped
                    )
                    rounds.setdefault((r.system, level), []).append(r)
        for level in levels:
            for system in systems:
                r = measure(system, sink, level, args.messages, paused=True)
                console.print(
                    f"{r.system:32} {level:3} sessions, delivery paused: "
                    f"accepted {r.accepted_rate:7.0f}/s p50 {r.pct(0.5):6.1f} ms"
                )
                submission.append(r)
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(sample_dir, ignore_errors=True)

    results = [typical(rs) for rs in rounds.values()]
    table = Table(
        title=f"smtp-source → X → smtp-sink, {SIZE} B messages, {args.messages} per cell, "
        f"loopback{f', median of {args.rounds} rounds' if args.rounds > 1 else ''}"
    )
    columns = ["X", "sessions", "accepted msg/s", "delivered msg/s"]
    if args.rounds > 1:
        columns.append("delivered, all rounds")
    columns += ["p50 ms", "p99 ms", "peak PSS MB", "submission only msg/s"]
    for col in columns:
        table.add_column(col, justify="left" if col == "X" else "right")
    only_rates = {(r.system, r.sessions): r.accepted_rate for r in submission}
    for r in results:
        row = [
            r.system,
            str(r.sessions),
            f"{r.accepted_rate:.0f}",
            f"{r.delivered_rate:.0f}"
            + ("" if r.delivered == r.messages else f" ({r.delivered} arrived)"),
        ]
        if args.rounds > 1:
            row.append(" ".join(f"{x.delivered_rate:.0f}" for x in rounds[r.system, r.sessions]))
        row += [
            f"{r.pct(0.5):.1f}",
            f"{r.pct(0.99):.1f}",
            f"{r.peak_mb:.0f}",
            f"{only_rates.get((r.system, r.sessions), 0):.0f}",
        ]
        table.add_row(*row)
    console.print(table)
    goals = goal_rows(rounds, levels)
    if goals:
        goal_table = Table(
            title="Issue 16's goals: dual-DKIM mailwright's delivered rate ÷ the peer's"
        )
        for col in ("peer", "sessions", "ratio", "per round", "goal", ""):
            goal_table.add_column(col, justify="left" if col in ("peer", "") else "right")
        for goal in goals:
            goal_table.add_row(
                goal.peer,
                str(goal.sessions),
                f"{goal.ratio:.2f}×",
                " ".join(f"{x:.2f}" for x in goal.per_round),
                "–" if goal.goal is None else f"≥ {goal.goal:.1f}×",
                ""
                if goal.goal is None
                else "[green]met[/]"
                if goal.ratio >= goal.goal
                else "[red]not met[/]",
            )
        console.print(goal_table)
    console.print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
