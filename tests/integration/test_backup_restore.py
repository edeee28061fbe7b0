"""Backup under load (issue 12 item 7): ``mailwright backup`` runs while clients submit
to a two-worker server whose relay is down; the server is stopped, the backup restored
into a fresh data directory, a server started on it with the relay (``smtp-sink``) up:
every message acknowledged before the backup began is delivered.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from test_crash import delivered, session  # same directory

from mailwright.testing.ports import free_port, wait_for_port
from mailwright.testing.postfix import SmtpSink
from mailwright.testing.serve import MAILWRIGHT

pytestmark = pytest.mark.integration

SESSIONS = 6
BEFORE_BACKUP = 120
"""Messages acknowledged before the backup starts (the load goes on during it)."""


def start(config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [MAILWRIGHT, "--config", str(config), "serve", *args],
        cwd=config.parent,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_messages_queued_before_a_backup_are_delivered_after_a_restore(tmp_path: Path) -> None:
    # smtp-sink writes as "nobody", who cannot enter pytest's private tmp_path
    dump = Path(tempfile.mkdtemp(prefix="mailwright-backup-sink-"))
    try:
        _backup_test(tmp_path, dump)
    finally:
        shutil.rmtree(dump, ignore_errors=True)


def _backup_test(tmp_path: Path, dump: Path) -> None:
    port, sink_port = free_port(), free_port()
    config = tmp_path / "mailwright.toml"
    log = tmp_path / "serve.out"
    config.write_text(
        f"""
hostname = "mta.example.com"
domains = ["example.com"]
mailboxes = ["admin@example.com"]
data_dir = "data"
allow_root = true
workers = 2

[[listeners]]
name = "submission"
address = "127.0.0.1"
port = {port}

[delivery]
mode = "relay"

[delivery.retry]
first_retry = 1
max_backoff = 2

[delivery.relay]
url = "smtp://127.0.0.1:{sink_port}?tls=none"
"""
    )
    server = start(config, log)
    assert wait_for_port(port, 30), log.read_text()
    acked: dict[int, str] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def load() -> None:
        await asyncio.gather(*(session(port, n, acked, stop) for n in range(SESSIONS)))

    thread = threading.Thread(target=loop.run_until_complete, args=(load(),))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(acked) < BEFORE_BACKUP and time.monotonic() < deadline:
            time.sleep(0.01)
        before = dict(acked)
        assert len(before) >= BEFORE_BACKUP
        backup = subprocess.run(
            [MAILWRIGHT, "--config", str(config), "backup", str(tmp_path / "backup")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        during = len(acked) - len(before)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()
    assert backup.returncode == 0, backup.stderr
    assert during > 0, "the load did not run during the backup"
    server.send_signal(signal.SIGTERM)
    assert server.wait(30) == 0

    restored = subprocess.run(
        [
            MAILWRIGHT,
            "--config",
            str(config),
            "restore",
            str(tmp_path / "backup"),
            "--data-dir",
            str(tmp_path / "fresh"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restored.returncode == 0, restored.stderr
    with SmtpSink(port=sink_port, dump_dir=dump):
        server = start(config, log, "--data-dir", str(tmp_path / "fresh"))
        try:
            assert wait_for_port(port, 30), log.read_text()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                seen = delivered(dump)
                if all(seen[seq] for seq in before):
                    break
                time.sleep(0.25)
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(30) == 0
    losses = [seq for seq in before if not seen[seq]]
    print(
        f"\nbackup test: {len(before)} acknowledged before the backup, {during} during it; "
        f"after restore: {len(seen)} delivered, losses={len(losses)}"
    )
    assert losses == []
