"""The suppression list: addresses we do not send to, and why (durable, in the queue DB).

An address is suppressed by a hard bounce (it does not exist), by ``soft_limit`` soft
bounces within ``soft_window`` seconds (a mailbox that keeps refusing), by a complaint
(the recipient said "spam": sending again hurts the domain's reputation at Gmail, Yahoo
and Microsoft, whose sender rules count complaints), or by hand. An entry may expire.

Addresses compare case-insensitively as a whole (like :mod:`mailwright.local`: for a
sender, ``Bob@`` and ``bob@`` being different people is a trap, and over-suppressing a
case variant is the safe side).

Every function takes a connection and works inside the caller's transaction, so the
queue store's group commit covers them (see :mod:`mailwright.queue.sqlite`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

SuppressionReason = Literal["hard-bounce", "soft-bounces", "complaint", "manual"]
REASONS: tuple[str, ...] = get_args(SuppressionReason)
DEFAULT_SOFT_LIMIT = 5
DEFAULT_SOFT_WINDOW = 7 * 86400

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS suppressions (
    address      TEXT PRIMARY KEY,       -- lower-cased
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '',
    source_event TEXT,                   -- event_id that caused it (NULL: manual)
    created_at   REAL NOT NULL,
    expires_at   REAL                    -- NULL: never
);
CREATE TABLE IF NOT EXISTS soft_bounces (
    address  TEXT NOT NULL,
    at       REAL NOT NULL,
    event_id TEXT
);
CREATE INDEX IF NOT EXISTS soft_bounces_address ON soft_bounces (address, at);
"""


def key(address: str) -> str:
    return address.strip().strip("<>").lower()


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    detail: str
    source_event: str | None
    created_at: float
    expires_at: float | None

    def to_json(self) -> dict[str, Any]:
        from .events import iso

        return {
            "address": self.address,
            "reason": self.reason,
            "detail": self.detail,
            "source_event": self.source_event,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at) if self.expires_at is not None else None,
        }


_COLUMNS = "address, reason, detail, source_event, created_at, expires_at"


def add(
    conn: sqlite3.Connection,
    address: str,
    reason: SuppressionReason,
    *,
    now: float,
    detail: str = "",
    source_event: str | None = None,
    expires_at: float | None = None,
) -> Suppression:
    """Suppress ``address`` (replacing an earlier entry: the latest reason is the one
    shown)."""
    entry = Suppression(key(address), reason, detail[:500], source_event, now, expires_at)
    conn.execute(
        f"INSERT OR REPLACE INTO suppressions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (
            entry.address,
            entry.reason,
            entry.detail,
            entry.source_event,
            entry.created_at,
            entry.expires_at,
        ),
    )
    return entry


def remove(conn: sqlite3.Connection, address: str) -> bool:
    conn.execute("DELETE FROM soft_bounces WHERE address = ?", (key(address),))
    return conn.execute("DELETE FROM suppressions WHERE address = ?", (key(address),)).rowcount > 0


def check(
    conn: sqlite3.Connection, addresses: Iterable[str], *, now: float
) -> dict[str, Suppression]:
    """The live suppressions among ``addresses``, keyed by the address as given."""
    wanted: dict[str, list[str]] = {}
    for address in addresses:
        wanted.setdefault(key(address), []).append(address)
    if not wanted:
        return {}
    found: dict[str, Suppression] = {}
    keys = list(wanted)
    for start in range(0, len(keys), 500):  # SQLite's variable limit
        chunk = keys[start : start + 500]
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM suppressions WHERE address IN ({','.join('?' * len(chunk))})"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (*chunk, now),
        )
        for row in rows:
            for address in wanted[row[0]]:
                found[address] = Suppression(*row)
    return found


def list_all(
    conn: sqlite3.Connection, *, now: float, include_expired: bool = False
) -> list[Suppression]:
    sql = f"SELECT {_COLUMNS} FROM suppressions"
    args: tuple[Any, ...] = ()
    if not include_expired:
        sql += " WHERE expires_at IS NULL OR expires_at > ?"
        args = (now,)
    return [Suppression(*row) for row in conn.execute(sql + " ORDER BY created_at, address", args)]


def record_soft_bounce(
    conn: sqlite3.Connection,
    address: str,
    *,
    now: float,
    event_id: str | None,
    limit: int = DEFAULT_SOFT_LIMIT,
    window: float = DEFAULT_SOFT_WINDOW,
    detail: str = "",
) -> Suppression | None:
    """Count a soft bounce; the new suppression when this one reaches ``limit`` within
    ``window`` seconds."""
    k = key(address)
    conn.execute("DELETE FROM soft_bounces WHERE address = ? AND at < ?", (k, now - window))
    conn.execute(
        "INSERT INTO soft_bounces (address, at, event_id) VALUES (?, ?, ?)", (k, now, event_id)
    )
    (count,) = conn.execute("SELECT count(*) FROM soft_bounces WHERE address = ?", (k,)).fetchone()
    if count < limit:
        return None
    if check(conn, [k], now=now):
        return None
    return add(
        conn,
        k,
        "soft-bounces",
        now=now,
        detail=f"{count} soft bounces in {window / 86400:g} days; last: {detail}",
        source_event=event_id,
    )
