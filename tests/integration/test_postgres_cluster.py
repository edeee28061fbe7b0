"""The private PostgreSQL cluster the queue tests run on (mailwright.testing.postgres)."""

from __future__ import annotations

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
