"""The SMTP server over real loopback sockets with hostile clients: what a client that
never reads its replies, or floods commands, costs the server must stay bounded."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

import pytest

from mailwright.config import parse_config
from mailwright.dns import MemoryResolver
from mailwright.log import EventLogger
from mailwright.queue import SqliteQueueStore
from mailwright.server import build_runtime
from mailwright.smtp.server import ServerSettings, SmtpServer


@contextlib.asynccontextmanager
async def smtp_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = parse_config(
        {
            "hostname": "mx.example.com",
            "domains": ["example.com"],
            "mailboxes": ["admin@example.com"],
            "data_dir": str(tmp_path / "data"),
            "listeners": [{"name": "inbound", "port": 2525, "role": "inbound"}],
        },
        tmp_path / "mailwright.toml",
    )
    config = replace(config, listeners=tuple(replace(li, port=0) for li in config.listeners))
    state, _ = build_runtime(config, dev_mode=False)
    store = await SqliteQueueStore.open(config.data_dir)
    server = SmtpServer(
        state,
        store,
        EventLogger(stderr=False),
        ServerSettings(command_timeout=20, data_timeout=20),
        resolver=MemoryResolver(),
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        await store.close()


async def test_a_client_that_never_reads_cannot_grow_server_memory(tmp_path: Path) -> None:
    """3 MB of pipelined NOOPs from a client that never reads: the server stops reading
    while its replies are not taken, so it holds at most about a megabyte of them."""
    async with smtp_server(tmp_path) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.ports()["inbound"])
        await reader.readline()
        writer.write(b"EHLO flood.example\r\n")
        chunk = b"NOOP\r\n" * 10_000
        sent = 0
        with contextlib.suppress(TimeoutError, ConnectionError):
            while sent < 3_000_000:
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 5)
                sent += len(chunk)
        await asyncio.sleep(0.5)
        [conn] = list(server.connections)
        buffered = conn.transport.get_write_buffer_size() if conn.transport else 0
        writer.transport.abort()
        assert buffered <= 1 << 20, f"{buffered} bytes of replies held for a silent client"


async def _transaction(port: int, message: bytes) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = [await reader.readline()]
    writer.write(
        b"HELO client.example\r\nMAIL FROM:<a@client.example>\r\n"
        b"RCPT TO:<admin@example.com>\r\nDATA\r\n" + message + b".\r\nQUIT\r\n"
    )
    while line := await asyncio.wait_for(reader.readline(), 10):
        replies.append(line)
    writer.close()
    return replies


@pytest.mark.parametrize(("count", "code"), [(120, b"554 5.4.6"), (51, b"554 5.4.6"), (50, b"250")])
async def test_a_message_in_a_mail_loop_is_refused(tmp_path: Path, count: int, code: bytes) -> None:
    """RFC 5321 §6.3: more than 50 Received fields (as Postfix's hopcount_limit) is a mail
    loop: 554 5.4.6 at the end of DATA, nothing queued; 50 hops still pass."""
    hops = b"".join(
        b"Received: from a.example by b.example with ESMTP id %d; "
        b"Tue, 24 Nov 2026 19:00:00 +0000\r\n" % i
        for i in range(count)
    )
    message = hops + b"From: a@client.example\r\nSubject: loop\r\n\r\nbody\r\n"
    async with smtp_server(tmp_path) as server:
        replies = await _transaction(server.ports()["inbound"], message)
        queued = await server.store.list_entries()
    end_of_data = replies[-2]
    assert end_of_data.startswith(code), replies
    assert len(queued) == (1 if code == b"250" else 0)
