"""Benchmark ``mailwright explain --json`` on a generated 1 GB Postfix mail.log.

    uv run python bench/explain/run.py [--size-mb 1024] [--failure-rate 0.03] [--repeat 2] [--gzip]

The log is what a busy mail host writes: for each message smtpd connect/client/disconnect,
cleanup's message-id, qmgr's from= and removed, one smtp status line (sent for most,
deferred or bounced for ``--failure-rate`` of them, with the replies of the test corpus:
Gmail, Microsoft, Yahoo, GMX, Spamhaus lists, greylisting, connection failures...), and
other daemons' lines in between (dovecot, cron, systemd, inbound rejects).  It is written
once to a temporary file, read once to warm the page cache, and deleted at the end.

Peers in the same run, on the same file: ``wc -l`` (the floor: read and count lines) and
``grep -c status=`` (find the candidate lines).  Peak memory is the child's maximum RSS
(``resource.getrusage(RUSAGE_CHILDREN)`` measured by a fresh helper process per command).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "explain" / "postfix-classic.log"
STATUS = re.compile(r"^\S+ +\d+ \S+ \S+ (postfix/\w+)\[\d+\]: \w+: (to=<[^>]*>, relay=.*)$")

MEASURE = """
import resource, subprocess, sys, time
t = time.perf_counter()
with open(sys.argv[1], "wb") as out:
    code = subprocess.run(sys.argv[2:], stdout=out).returncode
elapsed = time.perf_counter() - t
print(elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def failure_templates() -> list[tuple[str, str]]:
    """(program, 'to=<...>, relay=..., status=... (...)') of every failure in the corpus."""
    found = []
    for line in CORPUS.read_text().splitlines():
        m = STATUS.match(line)
        if m is not None:
            found.append((m.group(1), m.group(2)))
    return found


def generate(path: Path, size: int, failure_rate: float, seed: int = 1) -> int:
    rnd = random.Random(seed)
    failures = failure_templates()
    hex_digits = "0123456789ABCDEF"
    domains = [
        "gmail.com",
        "outlook.com",
        "yahoo.com",
        "gmx.net",
        "web.de",
        "example.net",
        "example.org",
        "example.com",
    ] + [f"customer{i}.example" for i in range(200)]
    start = datetime(2026, 11, 17, 0, 0, 0)
    written = 0
    messages = 0
    with path.open("w", buffering=1 << 20) as out:
        while written < size:
            lines: list[str] = []
            for _ in range(2000):
                t = start + timedelta(seconds=messages // 20)
                ts = f"{t:%b} {t.day:>2} {t:%H:%M:%S}"  # RFC 3164: day space-padded
                qid = "".join(rnd.choice(hex_digits) for _ in range(11))
                pid = rnd.randrange(1000, 60000)
                ip = f"198.51.100.{rnd.randrange(1, 255)}"
                rcpt = f"user{rnd.randrange(100000)}@{rnd.choice(domains)}"
                app = f"app{pid % 7}.internal[{ip}]"
                lines.append(f"{ts} mail postfix/smtpd[{pid}]: connect from {app}")
                lines.append(
                    f"{ts} mail postfix/smtpd[{pid}]: {qid}: client={app}, "
                    "sasl_method=PLAIN, sasl_username=app"
                )
                lines.append(
                    f"{ts} mail postfix/cleanup[{pid + 1}]: {qid}: "
                    f"message-id=<{messages}.{pid}@example.com>"
                )
                lines.append(
                    f"{ts} mail postfix/qmgr[812]: {qid}: from=<app@example.com>, "
                    f"size={rnd.randrange(2000, 90000)}, nrcpt=1 (queue active)"
                )
                lines.append(
                    f"{ts} mail postfix/smtpd[{pid}]: disconnect from {app} ehlo=1 auth=1 "
                    "mail=1 rcpt=1 data=1 quit=1 commands=6"
                )
                if rnd.random() < failure_rate:
                    prog, rest = rnd.choice(failures)
                    rest = re.sub(r"to=<[^>]*>", f"to=<{rcpt}>", rest, count=1)
                    lines.append(f"{ts} mail {prog}[{pid + 2}]: {qid}: {rest}")
                else:
                    lines.append(
                        f"{ts} mail postfix/smtp[{pid + 2}]: {qid}: to=<{rcpt}>, "
                        f"relay=mx{pid % 5}.{rcpt.split('@')[1]}[203.0.113.{pid % 250}]:25, "
                        f"delay=0.{pid % 97}, delays=0.01/0/0.1{pid % 9}/0.2, dsn=2.0.0, "
                        f"status=sent (250 2.0.0 Ok: queued as {qid[::-1]})"
                    )
                lines.append(f"{ts} mail postfix/qmgr[812]: {qid}: removed")
                r = rnd.random()
                if r < 0.3:
                    lines.append(
                        f"{ts} mail dovecot: imap-login: Login: user=<bob@example.com>, "
                        f"method=PLAIN, rip={ip}, lip=192.0.2.10, mpid={pid}, TLS, "
                        f"session=<{qid.lower()}>"
                    )
                elif r < 0.4:
                    lines.append(
                        f"{ts} mail CRON[{pid}]: (root) CMD (test -x /usr/sbin/anacron || "
                        "run-parts --report /etc/cron.daily)"
                    )
                elif r < 0.45:
                    lines.append(
                        f"{ts} mail postfix/smtpd[{pid}]: NOQUEUE: reject: RCPT from "
                        f"unknown[{ip}]: 554 5.7.1 <x@example.com>: Relay access denied; "
                        "from=<spam@example.biz> to=<x@example.com> proto=ESMTP "
                        f"helo=<[{ip}]>"
                    )
                elif r < 0.5:
                    lines.append(
                        f"{ts} mail systemd[1]: Started session-{pid}.scope - "
                        f"Session {pid} of User bob."
                    )
                messages += 1
            block = "\n".join(lines) + "\n"
            out.write(block)
            written += len(block.encode())
    return written


def measure(cmd: list[str], out: str) -> tuple[float, int, int]:
    """Seconds, peak RSS (KiB) and exit code of ``cmd``, its stdout written to ``out``."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, out, *cmd],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed, rss_kb, code = proc.stdout.split()
    return float(elapsed), int(rss_kb), int(code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--failure-rate", type=float, default=0.03)
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs per command")
    parser.add_argument(
        "--gzip", action="store_true", help="also read it as mail.log.1.gz (vs zcat | wc -l)"
    )
    args = parser.parse_args()
    mailwright = str(Path(sys.executable).parent / "mailwright")
    with tempfile.TemporaryDirectory(prefix="mw-explain-bench-") as tmp:
        log = Path(tmp) / "mail.log"
        t = time.perf_counter()
        size = generate(log, args.size_mb << 20, args.failure_rate)
        print(f"generated {size / 1e6:,.0f} MB in {time.perf_counter() - t:.0f} s: {log}")
        with log.open("rb") as f:  # warm the page cache: every command reads from memory
            while f.read(1 << 24):
                pass
        lines = int(
            subprocess.run(
                ["wc", "-l", str(log)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        commands = {
            "mailwright explain --json": [mailwright, "explain", "--json", str(log)],
            "wc -l": ["wc", "-l", str(log)],
            "grep -c status=": ["grep", "-c", "status=", str(log)],
        }
        rows = []
        if args.gzip:
            gz = Path(tmp) / "mail.log.1.gz"
            with gz.open("wb") as f:
                subprocess.run(["gzip", "-6", "-c", str(log)], stdout=f, check=True)
            commands["mailwright explain --json (.gz)"] = [mailwright, "explain", "--json", str(gz)]
            commands["zcat | wc -l"] = ["sh", "-c", f"zcat {gz} | wc -l"]
        output = Path(tmp) / "explain.json"
        for name, cmd in commands.items():
            # never /dev/null: GNU grep stops at the first match when its output is discarded
            out = str(output) if name.startswith("mailwright") else str(Path(tmp) / "peer.out")
            best = min((measure(cmd, out) for _ in range(args.repeat)), key=lambda r: r[0])
            rows.append((name, *best))
        report = json.loads(output.read_text())
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{lines:,} lines, {size / 1e6:,.0f} MB, failure rate {args.failure_rate:.1%} "
        f"of messages; best of {args.repeat}; load average {load} on {os.cpu_count()} CPUs\n"
    )
    print(f"{'command':<32} {'seconds':>8} {'MB/s':>8} {'peak RSS MB':>12}")
    for name, elapsed, rss_kb, _code in rows:
        print(f"{name:<32} {elapsed:8.2f} {size / 1e6 / elapsed:8.0f} {rss_kb / 1024:12.1f}")
    totals = report["totals"]
    print(
        f"\nexplain found {totals['bounced']:,} bounced, {totals['deferred']:,} deferred, "
        f"{totals['delivered']:,} delivered; causes: "
        + ", ".join(f"{c['cause']} {c['count']:,}" for c in report["causes"])
    )


if __name__ == "__main__":
    main()
