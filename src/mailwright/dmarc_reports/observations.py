"""What the inbound DMARC checks observed, kept until the next daily report (RFC 9990 §2.1).

Sending reports is optional and off by default (``[inbound]
send_aggregate_reports``). When on, every inbound DMARC evaluation of a domain
that asked for reports is stored as an :class:`Observation` in one SQLite file
in the data directory — or, with ``[queue] url``, in the shared PostgreSQL
database (:class:`PostgresObservationStore`), so that several nodes send one
report per policy domain per day (RFC 9990 §3.1) instead of one each;
:mod:`.sender` takes them out once a day and :mod:`.writer` turns them into
report XML. This module is storage only.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

OBSERVATIONS_DB = "dmarc-observations.sqlite"
"""Where the inbound checks keep observations between two daily reports."""


@dataclass(frozen=True)
class Observation:
    """One inbound message as DMARC saw it (the raw material of a report row)."""

    policy_domain: str
    source_ip: str
    header_from: str
    disposition: str
    """What we did: none / pass / quarantine / reject (RFC 9990 ActionDispositionType)."""
    dkim_aligned: str
    """pass / fail: did an aligned DKIM signature pass?"""
    spf_aligned: str
    envelope_from: str = ""
    envelope_to: str = ""
    dkim: tuple[tuple[str, str, str], ...] = ()
    """(domain, selector, result) of each DKIM signature."""
    spf: tuple[str, str, str] | None = None
    """(domain, scope "mfrom"/"helo", result) of the SPF check."""
    policy: tuple[tuple[str, str], ...] = ()
    """The published policy's tags as evaluated (p, sp, np, adkim, aspf, testing, ...)."""
    reasons: tuple[str, ...] = ()
    when: float = field(default=0.0, compare=False)


class Observations(Protocol):
    """What the inbound checks and the daily sender need (blocking calls: run them on
    a thread)."""

    def add(self, observation: Observation, rua: Sequence[str]) -> None: ...

    def take(self, until: float) -> dict[str, tuple[list[str], list[Observation]]]: ...

    def close(self) -> None: ...


def open_observations(data_dir: Path, conninfo: str | None = None) -> Observations:
    """The shared PostgreSQL store when ``conninfo`` is given, else the node's SQLite."""
    if conninfo is not None:
        return PostgresObservationStore(conninfo)
    return ObservationStore(data_dir / OBSERVATIONS_DB)


def _group(
    rows: Sequence[tuple[str, Any, Any]],
) -> dict[str, tuple[list[str], list[Observation]]]:
    """(policy_domain, rua, data) rows (JSON text or already decoded) per policy domain."""
    grouped: dict[str, tuple[list[str], list[Observation]]] = {}
    for domain, rua, data in rows:
        fields = json.loads(data) if isinstance(data, str) else dict(data)
        for key in ("dkim", "policy", "reasons"):
            fields[key] = tuple(tuple(x) if isinstance(x, list) else x for x in fields[key])
        if fields["spf"] is not None:
            fields["spf"] = tuple(fields["spf"])
        entry = grouped.setdefault(domain, (json.loads(rua) if isinstance(rua, str) else rua, []))
        entry[1].append(Observation(**fields))
    return grouped


class PostgresObservationStore:
    """Observations in the shared queue database (table ``dmarc_observations``, schema
    step 3 of :mod:`mailwright.queue.postgres`). ``take`` is one ``DELETE ... RETURNING``:
    when every node's daily task runs, the first takes everything and the others find
    nothing, so each policy domain gets one report a day."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._db: Any = None

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        """Run one statement; a connection the database dropped (a restart) is made
        again once."""
        import psycopg

        for attempt in (1, 2):
            if self._db is None or self._db.closed:
                self._db = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
                self._db.execute("SET synchronous_commit = on")
            try:
                return self._db.execute(sql.encode(), params)
            except psycopg.OperationalError:
                self._db.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    def add(self, observation: Observation, rua: Sequence[str]) -> None:
        if not rua:
            return  # the domain asked for no reports
        self._execute(
            "INSERT INTO dmarc_observations (policy_domain, rua, ts, data)"
            " VALUES (%s, %s::jsonb, %s, %s::jsonb)",
            (
                observation.policy_domain,
                json.dumps(list(rua)),
                observation.when or time.time(),
                json.dumps(asdict(observation)),
            ),
        )

    def take(self, until: float) -> dict[str, tuple[list[str], list[Observation]]]:
        """Remove and return the observations before ``until``, per policy domain."""
        cur = self._execute(
            "DELETE FROM dmarc_observations WHERE ts < %s RETURNING policy_domain, rua, data",
            (until,),
        )
        return _group(cur.fetchall())


class ObservationStore:
    """Observations waiting for the next daily report, in SQLite in the data directory."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS observations ("
            " policy_domain TEXT NOT NULL, rua TEXT NOT NULL, ts REAL NOT NULL, data TEXT NOT NULL)"
        )

    def close(self) -> None:
        self._db.close()

    def add(self, observation: Observation, rua: Sequence[str]) -> None:
        if not rua:
            return  # the domain asked for no reports
        data = asdict(observation)
        with self._db:
            self._db.execute(
                "INSERT INTO observations VALUES (?, ?, ?, ?)",
                (
                    observation.policy_domain,
                    json.dumps(list(rua)),
                    observation.when or time.time(),
                    json.dumps(data),
                ),
            )

    def take(self, until: float) -> dict[str, tuple[list[str], list[Observation]]]:
        """Remove and return the observations before ``until``, per policy domain."""
        with self._db:
            rows = self._db.execute(
                "SELECT policy_domain, rua, data FROM observations WHERE ts < ?", (until,)
            ).fetchall()
            self._db.execute("DELETE FROM observations WHERE ts < ?", (until,))
        return _group(rows)
