"""The private PostgreSQL cluster the queue tests run on (mailwright.testing.postgres)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from mailwright.testing.postgres import PostgresCluster

pytestmark = pytest.mark.integration


def test_each_test_gets_its_own_durable_database(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    assert postgres_url.startswith(f"postgresql://postgres@127.0.0.1:{postgres_cluster.port}/")
    with psycopg.connect(postgres_url) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "listen_addresses")
        }
        conn.execute("CREATE TABLE mine (x int)")
    assert settings == {"fsync": "on", "synchronous_commit": "on", "listen_addresses": "127.0.0.1"}


def test_a_fresh_database_is_empty(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'mine'").fetchone()
    assert row == (0,)


def test_a_cluster_whose_test_run_was_killed_is_stopped_by_the_next() -> None:
    code = (
        "import sys, time\n"
        "from mailwright.testing.postgres import PostgresCluster\n"
        "c = PostgresCluster(); c.start(); print(c.root, flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    root = Path(proc.stdout.readline().strip())
    pid = int((root / "data" / "postmaster.pid").read_text().split()[0])
    os.kill(proc.pid, signal.SIGKILL)  # the run dies; its server keeps running
    proc.wait()
    assert Path(f"/proc/{pid}").exists()
    PostgresCluster().close()  # the next run's cluster cleans up
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()
    assert not root.exists()
