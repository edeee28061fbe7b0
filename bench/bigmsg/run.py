"""Big-message memory benchmark: 50 sessions each send one 10 MB message, on loopback.

``smtp-source -s 50 -m 50 -l 10000000`` → X → ``smtp-sink``. X is ``mailwright serve``
(2 workers, relaying to the sink, DKIM signing RSA-2048 + Ed25519 on, so the body hash
is computed on every message) and, in the same run, a private Postfix 3.7 relaying to
the same kind of sink. Every 50 ms the benchmark samples the resident set (VmRSS) of
each process of X's tree and the summed PSS of the tree; it prints the peak RSS of a
single worker process (Postfix: of its largest process), the peak tree PSS, the time
until the sink has counted every message, and whether all arrived.

The goal (issue 16 item 4): a mailwright worker stays under 150 MB.

Run: ``uv run python bench/bigmsg/run.py [--sessions 50] [--size 10000000]
[--workers 2] [--only mailwright,postfix] [--mailwright /work/main/.venv/bin/mailwright]``
(``--mailwright``: another build's command, e.g. main's, for a before-figure; its
row is then labelled with the path).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.table import Table

from mailwright.testing.postfix import SMTP_SOURCE, SmtpSink

_spec = importlib.util.spec_from_file_location(
    "bench_mta", Path(__file__).resolve().parent.parent / "mta" / "run.py"
)
assert _spec is not None and _spec.loader is not None
mta = importlib.util.module_from_spec(_spec)
sys.modules["bench_mta"] = mta
_spec.loader.exec_module(mta)  # the systems under test and the /proc helpers (PSS)

SENDER = "bench@example.com"
RECIPIENT = "sink@example.net"
SIZE_LIMIT = 52_428_800
console = Console(width=150)


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler:
    """Peak VmRSS per process below ``root`` (not ``root`` itself when it only
    supervises) and peak summed PSS of the tree, every 50 ms."""

    def __init__(self, root: int, *, skip_root: bool) -> None:
        self.root = root
        self.skip_root = skip_root
        self.peak_rss_kb: dict[int, int] = {}
        self.peak_pss_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = mta._tree(self.root)
            total = 0
            for pid in pids:
                total += mta._pss_kb(pid)
                if self.skip_root and pid == self.root:
                    continue
                rss = _rss_kb(pid)
                if rss > self.peak_rss_kb.get(pid, 0):
                    self.peak_rss_kb[pid] = rss
            self.peak_pss_kb = max(self.peak_pss_kb, total)
            self._stop.wait(0.05)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Result:
    system: str
    messages: int
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_pss_mb: float = 0.0
    delivered: int = 0
    note: str = ""


class System(Protocol):
    """``bench/mta``'s Mailwright and Postfix, as this benchmark uses them."""

    name: str
    port: int

    def running(self, *, paused: bool = False) -> contextlib.AbstractContextManager[int]: ...


def _note(system: System) -> str:
    return str(system.signed_fraction()) if isinstance(system, mta.Mailwright) else ""


def measure(system: System, sink: SmtpSink, sessions: int, size: int) -> Result:
    result = Result(system.name, sessions)
    base = sink.count
    accepted = 0.0
    with system.running() as root:
        time.sleep(0.5)
        # mailwright's master only supervises: the workers are what the goal is about;
        # Postfix: its largest process (an smtpd, cleanup or smtp)
        with Sampler(root, skip_root=isinstance(system, mta.Mailwright)) as sampler:
            start = time.perf_counter()
            source = subprocess.run(
                [
                    SMTP_SOURCE,
                    "-s",
                    str(sessions),
                    "-m",
                    str(sessions),
                    "-l",
                    str(size),
                    "-f",
                    SENDER,
                    "-t",
                    RECIPIENT,
                    f"127.0.0.1:{system.port}",
                ],
                capture_output=True,
                text=True,
                timeout=900,
            )
            accepted = time.perf_counter() - start
            if source.returncode != 0:
                result.note = source.stderr.strip()[:200]
            sink.wait_for(base + sessions, timeout=600)
            result.seconds = time.perf_counter() - start
            result.delivered = sink.count - base
        result.peak_rss_mb = max(sampler.peak_rss_kb.values(), default=0) / 1024
        result.peak_pss_mb = sampler.peak_pss_kb / 1024
    result.note = (f"{result.note} accepted in {accepted:.1f} s; {_note(system)}").strip()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--size", type=int, default=10_000_000, help="body octets per message")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated: mailwright,postfix")
    parser.add_argument("--mailwright", default=None, help="another build's mailwright command")
    args = parser.parse_args()
    only = set(args.only.split(",")) - {""}
    workdir = Path(tempfile.mkdtemp(prefix="mailwright-bench-bigmsg-"))
    load = os.getloadavg()
    console.print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results: list[Result] = []
    try:
        with SmtpSink(backlog=1024) as sink:
            systems: list[System] = []
            if not only or "mailwright" in only:
                systems.append(
                    mta.Mailwright(
                        workdir,
                        sink.port,
                        dkim=True,
                        workers=args.workers,
                        settings=[f"message_size_limit = {SIZE_LIMIT}"],
                        command=args.mailwright,
                    )
                )
            if not only or "postfix" in only:
                systems.append(mta.Postfix(sink.port, {"message_size_limit": str(SIZE_LIMIT)}))
            for system in systems:
                result = measure(system, sink, args.sessions, args.size)
                console.print(
                    f"{result.system}: {result.delivered}/{result.messages} in "
                    f"{result.seconds:.1f} s, peak RSS {result.peak_rss_mb:.0f} MB",
                    markup=False,
                )
                results.append(result)
    finally:
        if not os.environ.get("BIGMSG_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    table = Table(title=f"{args.sessions} sessions × one {args.size / 1e6:.0f} MB message")
    for column in (
        "X",
        "messages",
        "seconds",
        "peak RSS per worker MB",
        "peak tree PSS MB",
        "all delivered",
        "note",
    ):
        table.add_column(column, justify="left" if column in ("X", "note") else "right")
    for r in results:
        table.add_row(
            r.system,
            str(r.messages),
            f"{r.seconds:.1f}",
            f"{r.peak_rss_mb:.0f}",
            f"{r.peak_pss_mb:.0f}",
            "yes" if r.delivered == r.messages else f"no ({r.delivered})",
            r.note,
        )
    console.print(table)
    load = os.getloadavg()
    console.print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if any(r.delivered != r.messages for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
