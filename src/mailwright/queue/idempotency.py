"""The HTTP API's ``Idempotency-Key`` records, in the queue database.

A record is written in the same transaction as the message it answers for (through
``enqueue_with``'s ``also``), so "queued" and "the key remembers the answer" are one
durable fact: a retry after a crash either finds both or neither. The look-up inside that
transaction runs under SQLite's single writer lock, so two requests with the same key
(in any worker) cannot both queue: the second finds the first's record and its
savepoint, message included, is rolled back (:class:`Replay`).

Records are per API key (one application's keys never collide with another's) and live
:data:`TTL` seconds.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from ..errors import MailwrightError

TTL = 24 * 3600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_idempotency (
    api_key TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (api_key, key)
)
"""


@dataclass(frozen=True)
class Stored:
    body_hash: str
    status: int
    response: dict[str, Any]


class Replay(MailwrightError):
    """The key was used already (raised inside the transaction to undo this request's
    writes); ``stored`` is the first answer."""

    def __init__(self, stored: Stored) -> None:
        super().__init__("idempotency key already used")
        self.stored = stored


def ensure(conn: sqlite3.Connection) -> None:
    conn.execute(SCHEMA)


def find(conn: sqlite3.Connection, api_key: str, key: str, now: float) -> Stored | None:
    try:
        row = conn.execute(
            "SELECT body_hash, status, response FROM api_idempotency"
            " WHERE api_key = ? AND key = ? AND created_at > ?",
            (api_key, key, now - TTL),
        ).fetchone()
    except sqlite3.OperationalError:  # no table yet: nothing stored
        return None
    return None if row is None else Stored(row[0], int(row[1]), json.loads(row[2]))


def store(
    conn: sqlite3.Connection,
    api_key: str,
    key: str,
    body_hash: str,
    status: int,
    response: dict[str, Any],
    now: float,
) -> None:
    """Remember the answer, or :class:`Replay` if a live record exists."""
    ensure(conn)
    found = find(conn, api_key, key, now)
    if found is not None:
        raise Replay(found)
    conn.execute("DELETE FROM api_idempotency WHERE created_at <= ?", (now - TTL,))
    conn.execute(
        "INSERT INTO api_idempotency (api_key, key, body_hash, status, response, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (api_key, key, body_hash, status, json.dumps(response), now),
    )
