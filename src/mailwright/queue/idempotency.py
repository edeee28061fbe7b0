"""The HTTP API's ``Idempotency-Key`` records, in the queue database.

A record is written in the same transaction as the message it answers for (a
:class:`Claim` given to the store's ``enqueue_with_events``), so "queued" and "the key
remembers the answer" are one durable fact: a retry after a crash either finds both or
neither. Two requests with the same key (in any worker, on any node) cannot both queue:
the second finds the first's record and its writes, message included, are rolled back
(:class:`Replay`). SQLite gets this from its single writer lock, PostgreSQL from the
primary key (an insert waits for a concurrent one with the same key to commit).

This module holds the rule and the SQLite dialect; ``queue/postgres.py`` the other.

Records are per API key (one application's keys never collide with another's) and live
:data:`TTL` seconds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
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


@dataclass(frozen=True)
class Claim:
    """What to remember, in the enqueue's transaction, for an ``Idempotency-Key``:
    ``answer(queue_id)`` is the response (the final queue ID is known only there)."""

    api_key: str
    key: str
    body_hash: str
    status: int
    answer: Callable[[str], dict[str, Any]]


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


def remember(conn: sqlite3.Connection, claim: Claim, queue_id: str, now: float) -> None:
    """:func:`store` a claim's answer for the message stored as ``queue_id``."""
    answer = claim.answer(queue_id)
    store(conn, claim.api_key, claim.key, claim.body_hash, claim.status, answer, now)


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
