"""Postfix's own SMTP client tools against the mailwright server (real parts).

``smtp-source`` (from the postfix package) submits messages over several parallel
sessions, with and without connection reuse; every message must be queued intact.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from mailwright.config import parse_config
from mailwright.dns import MemoryResolver
from mailwright.log import EventLogger
from mailwright.queue import SqliteQueueStore
from mailwright.server import build_runtime
from mailwright.smtp.server import SmtpServer

pytestmark = pytest.mark.integration

SMTP_SOURCE = "/usr/sbin/smtp-source"


@pytest.mark.parametrize("reuse", [False, True])
async def test_smtp_source_messages_are_all_queued(tmp_path: Path, reuse: bool) -> None:
    config = parse_config(
        {
            "hostname": "mx.example.com",
            "domains": ["example.com"],
            "mailboxes": ["admin@example.com"],
            "data_dir": str(tmp_path / "data"),
            "listeners": [{"name": "submission", "port": 2525}],
        }
    )
    config = replace(config, listeners=tuple(replace(li, port=0) for li in config.listeners))
    state, _ = build_runtime(config, dev_mode=False)
    store = await SqliteQueueStore.open(config.data_dir)
    server = SmtpServer(state, store, EventLogger(stderr=False), resolver=MemoryResolver())
    await server.start()
    try:
        port = server.ports()["submission"]
        argv = [SMTP_SOURCE, "-s", "5", "-l", "5000", "-m", "60"]
        if reuse:
            argv.append("-d")  # next message over the same connection
        argv += ["-f", "app@example.com", "-t", "someone@example.net", f"127.0.0.1:{port}"]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, output.decode()
        entries = await store.list_entries()
        assert len(entries) == 60
        for entry in entries:
            assert entry.sender == "app@example.com"
            assert [r.address for r in entry.recipients] == ["someone@example.net"]
            data = await store.read_message(entry.id)
            assert data.startswith(b"Received: from ")
            assert f"id {entry.id}".encode() in data
            assert len(data) > 5000
    finally:
        await server.stop()
        await store.close()
