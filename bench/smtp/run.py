"""Receiving side: mailwright's SMTP server vs aiosmtpd, fed by Postfix's smtp-source.

Both servers run in their own process on 127.0.0.1 and take 5 KB messages from
``smtp-source`` at 1, 10 and 50 parallel sessions. mailwright does its real work (parse,
Received header, durable group-committed enqueue in SQLite with fsync, log lines);
aiosmtpd 1.4 gets a handler that does nothing (``250 OK``), so it is an upper bound for
anything built on it. Reported: messages/s and server CPU per message.

Run: ``uv run python bench/smtp/run.py [--messages 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mailwright.testing.ports import free_port, wait_for_port

SMTP_SOURCE = "/usr/sbin/smtp-source"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def serve_mailwright(port: int, data_dir: str) -> None:
    from mailwright.config import parse_config
    from mailwright.log import EventLogger
    from mailwright.queue import open_store
    from mailwright.server import build_runtime
    from mailwright.smtp.server import SmtpServer

    config = parse_config(
        {
            "domains": ["example.com"],
            "mailboxes": ["admin@example.com"],
            "data_dir": data_dir,
            "listeners": [{"name": "submission", "address": "127.0.0.1", "port": port}],
        }
    )
    state, _ = build_runtime(config, dev_mode=False)
    store = await open_store(config.data_dir)
    server = SmtpServer(state, store, EventLogger(stderr=False, path=Path(data_dir) / "log"))
    await server.start()
    await asyncio.Event().wait()


def serve_aiosmtpd(port: int) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    while True:
        time.sleep(3600)


def run_one(kind: str, sessions: int, messages: int) -> tuple[float, float]:
    port = free_port()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--port", str(port), "--data", tmp]
        )
        try:
            wait_for_port(port, 20)
            time.sleep(0.3)
            cpu0 = cpu_seconds(proc.pid)
            start = time.perf_counter()
            subprocess.run(
                [
                    SMTP_SOURCE,
                    "-s",
                    str(sessions),
                    "-l",
                    "5000",
                    "-m",
                    str(messages),
                    "-f",
                    "app@example.com",
                    "-t",
                    "admin@example.com",
                    f"127.0.0.1:{port}",
                ],
                check=True,
            )
            elapsed = time.perf_counter() - start
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.kill()
            proc.wait()
    return messages / elapsed, cpu / messages * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--serve", choices=["mailwright", "aiosmtpd"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.serve == "mailwright":
        asyncio.run(serve_mailwright(args.port, args.data))
        return
    if args.serve == "aiosmtpd":
        serve_aiosmtpd(args.port)
        return
    table = Table(title=f"smtp-source → server, {args.messages} messages of 5 KB, one process")
    table.add_column("sessions", justify="right")
    for name in ("mailwright (durable queue)", "aiosmtpd (no-op handler)"):
        table.add_column(f"{name} msg/s", justify="right")
        table.add_column("CPU ms/msg", justify="right")
    for sessions in (1, 10, 50):
        row = [str(sessions)]
        for kind in ("mailwright", "aiosmtpd"):
            rate, cpu = run_one(kind, sessions, args.messages)
            row += [f"{rate:,.0f}", f"{cpu:.2f}"]
        table.add_row(*row)
    Console().print(table)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
