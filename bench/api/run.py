"""Submission: ``POST /v1/messages`` against SMTP submission of the same messages.

One ``mailwright serve`` (1 worker, no DKIM key, deliveries to a relay port nobody
listens on: each message is deferred once, the same agent work for every path) takes
the same message (a 2 KB text, an HTML alternative and a 1 KB attachment) by HTTP, one
keep-alive connection per client, as JSON fields that the server composes or as the
message built once by the API's composer sent ``raw`` in base64, and by SMTP, one
session per client with MAIL/RCPT/DATA per message: 1 and 20 concurrent clients, the
paths alternating, best of 3 rounds. Every message is on stable storage (fsync, group
commit) before its ``202``/``250``. Reported: messages/s, latency p50/p99, and the
server's CPU per message.

Run: ``uv run python bench/api/run.py [--messages 400] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mailwright.http.compose import compose
from mailwright.testing.api import ApiServer, start_api_server
from mailwright.testing.ports import HOST

BODY: dict[str, Any] = {
    "from": "App <app@example.com>",
    "to": ["customer@example.net"],
    "subject": "Your order 1234 has shipped",
    "text": ("Thank you for your order. " * 80)[:2000],
    "html": "<p>" + ("Thank you for your order. " * 40) + "</p>",
    "attachments": [
        {"filename": "invoice.txt", "content_type": "text/plain",
         "content": base64.b64encode(b"x" * 1024).decode()}
    ],
}  # fmt: skip


PATHS = {
    "http": "POST /v1/messages (JSON fields)",
    "raw": "POST /v1/messages (raw)",
    "smtp": "SMTP submission",
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(server: ApiServer) -> float:
    """The master's and its workers' CPU (children are counted once they exit; the
    workers run for the whole benchmark, so they are read directly)."""
    pids = [server.proc.pid]
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    return sum(cpu_seconds(p) for p in pids)


async def http_client(port: int, key: str, count: int, body: dict[str, Any]) -> list[float]:
    """One keep-alive HTTP/1.1 connection, written by hand like the SMTP client below,
    so that neither path pays for a client library the other does not."""
    reader, writer = await asyncio.open_connection(HOST, port)
    data = json.dumps(body).encode()
    request = (
        f"POST /v1/messages HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        writer.write(request)
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if not status.startswith(b"HTTP/1.1 202"):
            raise RuntimeError(f"API answered {status!r}")
        latencies.append(time.perf_counter() - started)
    writer.close()
    return latencies


async def smtp_client(port: int, message: bytes, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection(HOST, port)

    async def reply() -> bytes:
        while True:
            line = await reader.readline()
            if line[3:4] != b"-":
                return line

    await reply()
    writer.write(b"EHLO bench.example\r\n")
    await reply()
    latencies = []
    data = message.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    for _ in range(count):
        started = time.perf_counter()
        writer.write(b"MAIL FROM:<app@example.com>\r\n")
        await reply()
        writer.write(b"RCPT TO:<customer@example.net>\r\n")
        await reply()
        writer.write(b"DATA\r\n")
        await reply()
        writer.write(data)
        answer = await reply()
        if not answer.startswith(b"250"):
            raise RuntimeError(f"SMTP answered {answer!r}")
        latencies.append(time.perf_counter() - started)
    writer.write(b"QUIT\r\n")
    await reply()
    writer.close()
    return latencies


async def measure(server: ApiServer, path: str, clients: int, total: int) -> dict[str, float]:
    each = total // clients
    message = compose(BODY).message
    cpu_before = server_cpu(server)
    started = time.perf_counter()
    if path in ("http", "raw"):
        key = server.keys["send"]
        body = BODY
        if path == "raw":
            body = {
                "raw": base64.b64encode(message).decode(),
                "envelope": {"from": "app@example.com", "to": ["customer@example.net"]},
            }
        results = await asyncio.gather(
            *(http_client(server.http_port, key, each, body) for _ in range(clients))
        )
    else:
        results = await asyncio.gather(
            *(smtp_client(server.smtp_port, message, each) for _ in range(clients))
        )
    elapsed = time.perf_counter() - started
    cpu = server_cpu(server) - cpu_before
    latencies = sorted(x for r in results for x in r)
    return {
        "rate": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "cpu": cpu / len(latencies) * 1e6,
    }


async def main_async(messages: int, rounds: int) -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        server = start_api_server(Path(tmp))
        try:
            results: dict[tuple[str, int], list[dict[str, float]]] = {}
            for path in PATHS:  # warm up: first-use imports, caches, connections
                await measure(server, path, 1, 20)
            for _ in range(rounds):
                for clients in (1, 20):
                    for path in PATHS:
                        count = messages if clients > 1 else messages // 2
                        got = await measure(server, path, clients, count)
                        results.setdefault((path, clients), []).append(got)
        finally:
            server.stop()
    table = Table(title=f"Queued messages/s, same run (load {os.getloadavg()[0]:.1f})")
    for column in (
        "clients",
        "path",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "server CPU µs/msg",
        "API ÷ SMTP",
    ):
        table.add_column(column, justify="right")
    for clients in (1, 20):
        best = {p: max(results[(p, clients)], key=lambda r: r["rate"]) for p in PATHS}
        for path in PATHS:
            r = best[path]
            ratio = f"{r['rate'] / best['smtp']['rate']:.2f}" if path != "smtp" else ""
            table.add_row(
                str(clients),
                PATHS[path],
                f"{r['rate']:.0f}",
                f"{r['p50']:.2f}",
                f"{r['p99']:.2f}",
                f"{r['cpu']:.0f}",
                ratio,
            )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=400, help="per 20-client run")
    parser.add_argument("--rounds", type=int, default=3, help="best of N alternating rounds")
    args = parser.parse_args()
    asyncio.run(main_async(args.messages, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
