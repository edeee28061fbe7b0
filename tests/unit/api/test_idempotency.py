"""Idempotency records: found for 24 h per API key, a second store is a Replay."""

from __future__ import annotations

import sqlite3

import pytest

from mailwright.queue import idempotency


def test_store_find_replay_and_expiry() -> None:
    conn = sqlite3.connect(":memory:")
    assert idempotency.find(conn, "shop", "k", 1000.0) is None  # no table yet
    idempotency.store(conn, "shop", "k", "h1", 202, {"queue_id": "Q"}, now=1000.0)
    found = idempotency.find(conn, "shop", "k", 1000.0 + idempotency.TTL - 1)
    assert found == idempotency.Stored("h1", 202, {"queue_id": "Q"})
    assert idempotency.find(conn, "other-key", "k", 1001.0) is None  # per API key
    with pytest.raises(idempotency.Replay) as caught:
        idempotency.store(conn, "shop", "k", "h2", 202, {"queue_id": "R"}, now=1001.0)
    assert caught.value.stored.response == {"queue_id": "Q"}
    later = 1000.0 + idempotency.TTL + 1
    assert idempotency.find(conn, "shop", "k", later) is None  # expired: a new message
    idempotency.store(conn, "shop", "k", "h2", 202, {"queue_id": "R"}, now=later)
    assert idempotency.find(conn, "shop", "k", later)
