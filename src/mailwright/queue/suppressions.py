"""The suppression list: addresses we do not send to, and why (durable, in the queue DB).

An address is suppressed by a hard bounce (it does not exist), by ``soft_limit`` soft
bounces within ``soft_window`` seconds (a mailbox that keeps refusing), by a complaint
(the recipient said "spam": sending again hurts the domain's reputation at Gmail, Yahoo
and Microsoft, whose sender rules count complaints), or by hand. An entry may expire.

Addresses compare case-insensitively as a whole (like :mod:`mailwright.local`: for a
sender, ``Bob@`` and ``bob@`` being different people is a trap, and over-suppressing a
case variant is the safe side).

The rules (:func:`actions_for`) are pure: they say what to do, and each store does it
(:func:`apply` here for SQLite; :mod:`mailwright.queue.postgres` for PostgreSQL). The
other functions take a SQLite connection and work inside the caller's transaction, so
the queue store's group commit covers them (see :mod:`mailwright.queue.sqlite`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from ..errors import MailwrightError

if TYPE_CHECKING:
    from .events import Event

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


def prune_soft_bounces(conn: sqlite3.Connection, before: float) -> int:
    """Forget soft bounces older than ``before`` (outside every counting window): an
    address that soft-bounced once and never again would otherwise keep its row."""
    return conn.execute("DELETE FROM soft_bounces WHERE at < ?", (before,)).rowcount


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


class RecipientsSuppressed(MailwrightError):
    """Raised inside an enqueue transaction (which it undoes) by the SQLite store's
    ``refuse_suppressed``: the suppression list holds some of the recipients (``found``,
    as :func:`check` gives)."""

    def __init__(self, found: dict[str, Suppression]) -> None:
        super().__init__(f"suppressed: {', '.join(found)}")
        self.found = found


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
        detail=soft_bounce_detail(count, window, detail),
        source_event=event_id,
    )


def soft_bounce_detail(count: int, window: float, detail: str) -> str:
    return f"{count} soft bounces in {window / 86400:g} days; last: {detail}"


@dataclass(frozen=True)
class SuppressionPolicy:
    soft_limit: int = DEFAULT_SOFT_LIMIT
    soft_window: float = DEFAULT_SOFT_WINDOW
    hard_for: float | None = None
    """Seconds a hard bounce suppresses (None: for ever)."""
    complaint_for: float | None = None

    @classmethod
    def from_config(cls, config: object) -> SuppressionPolicy:
        s = getattr(config, "suppression", None)
        if s is None:
            return cls()
        return cls(
            soft_limit=s.soft_bounce_limit,
            soft_window=s.soft_bounce_days * 86400,
            hard_for=s.hard_bounce_days * 86400 or None,
            complaint_for=s.complaint_days * 86400 or None,
        )


@dataclass(frozen=True)
class Suppress:
    """Put ``address`` on the list (replacing an earlier entry)."""

    address: str
    reason: SuppressionReason
    now: float
    detail: str
    source_event: str | None
    expires_at: float | None


@dataclass(frozen=True)
class CountSoftBounce:
    """Count a soft bounce; suppress when ``limit`` fall within ``window`` seconds."""

    address: str
    now: float
    event_id: str | None
    limit: int
    window: float
    detail: str


Action = Suppress | CountSoftBounce


def trusted(event: Event) -> bool:
    """May this event change the suppression list?"""
    if event.recipient is None:
        return False
    if event.event_type == "bounced" and event.bounce_source == "sync":
        return True
    if event.event_type == "expired":
        return True  # our own verdict: days of refusals ended it
    return event.details.get("verified") is True


def actions_for(events: Sequence[Event], policy: SuppressionPolicy) -> list[Action]:
    """What the suppression rules (see :mod:`mailwright.queue.tracking`) do for ``events``."""
    actions: list[Action] = []
    for event in events:
        if not trusted(event):
            continue
        assert event.recipient is not None
        reason = (event.mta_response or event.cause or "")[:300]
        if event.event_type == "bounced" and event.bounce_type == "hard":
            expires = event.timestamp + policy.hard_for if policy.hard_for else None
            actions.append(
                Suppress(
                    event.recipient, "hard-bounce", event.timestamp, reason, event.event_id, expires
                )
            )
        elif (event.event_type == "bounced" and event.bounce_type == "soft") or (
            event.event_type == "expired"  # a message that never got through counts too
        ):
            actions.append(
                CountSoftBounce(
                    event.recipient,
                    event.timestamp,
                    event.event_id,
                    policy.soft_limit,
                    policy.soft_window,
                    reason,
                )
            )
        elif event.event_type == "complained":
            expires = event.timestamp + policy.complaint_for if policy.complaint_for else None
            feedback = str(event.details.get("feedback_type") or "abuse")
            actions.append(
                Suppress(
                    event.recipient,
                    "complaint",
                    event.timestamp,
                    f"feedback-type {feedback}",
                    event.event_id,
                    expires,
                )
            )
    return actions


def apply(conn: sqlite3.Connection, actions: Sequence[Action]) -> list[Suppression]:
    """Carry out ``actions`` on a SQLite connection; the suppressions added."""
    added: list[Suppression] = []
    for action in actions:
        if isinstance(action, Suppress):
            added.append(
                add(
                    conn,
                    action.address,
                    action.reason,
                    now=action.now,
                    detail=action.detail,
                    source_event=action.source_event,
                    expires_at=action.expires_at,
                )
            )
        else:
            found = record_soft_bounce(
                conn,
                action.address,
                now=action.now,
                event_id=action.event_id,
                limit=action.limit,
                window=action.window,
                detail=action.detail,
            )
            if found is not None:
                added.append(found)
    return added
