"""TLS results per policy domain and day (RFC 8460 §4), and the daily reports from them.

The agent counts, for every MX session under an MTA-STS or DANE policy, a success or
a failure with its result type (table ``tls_results`` in the queue database). Once a
day :func:`send_due_tls_reports` turns each finished UTC day into one report per
policy domain that publishes ``_smtp._tls`` (RFC 8460 §3): by mail through the
intake (DKIM-signed, origin ``report``) and by HTTPS POST, then forgets that day.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import secrets
import sqlite3
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

import aiohttp

from ..dns import Resolver
from ..tlsrpt import (
    MEDIA_GZIP,
    PolicyResults,
    TlsRptError,
    build_report,
    gzip_report,
    record_name,
    report_mail,
    select_record,
)

DAY = 86_400
TABLE = """
CREATE TABLE IF NOT EXISTS tls_results (
    day INTEGER NOT NULL,
    policy_domain TEXT NOT NULL,
    policy_type TEXT NOT NULL,
    policy_strings TEXT NOT NULL,
    result_type TEXT NOT NULL,
    mx_host TEXT NOT NULL,
    receiving_ip TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (day, policy_domain, policy_type, result_type, mx_host, receiving_ip)
)
"""
SUCCESS = "success"


class ResultKey(NamedTuple):
    policy_domain: str
    policy_type: str
    result_type: str
    mx_host: str
    receiving_ip: str


class TlsResultStore:
    """Counts in the queue database; a connection of its own used under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA synchronous=NORMAL")  # counts, not mail: no fsync each
            conn.execute(TABLE)
            conn.commit()
            self._conn = conn
        return self._conn

    def record(
        self,
        policy_domain: str,
        policy_type: str,
        result_type: str = SUCCESS,
        *,
        mx_host: str = "",
        receiving_ip: str = "",
        policy_strings: tuple[str, ...] = (),
        now: float | None = None,
    ) -> None:
        key = ResultKey(policy_domain, policy_type, result_type, mx_host, receiving_ip)
        self.add({key: (1, policy_strings)}, now)

    def add(
        self, counts: dict[ResultKey, tuple[int, tuple[str, ...]]], now: float | None = None
    ) -> None:
        """Add counted sessions (one transaction for a batch the agent collected)."""
        day = int((time.time() if now is None else now) // DAY)
        with self._lock:
            db = self._db()
            for key, (count, strings) in counts.items():
                db.execute(
                    "INSERT INTO tls_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (day, policy_domain, policy_type, result_type, mx_host,"
                    " receiving_ip) DO UPDATE SET count = count + ?, policy_strings = ?",
                    (
                        day,
                        key.policy_domain,
                        key.policy_type,
                        json.dumps(strings),
                        key.result_type,
                        key.mx_host,
                        key.receiving_ip,
                        count,
                        count,
                        json.dumps(strings),
                    ),
                )
            db.commit()

    def take_finished_days(self, now: float | None = None) -> dict[int, list[PolicyResults]]:
        """The results of every UTC day before today, removed from the table (one
        transaction: of several workers, one gets them)."""
        today = int((time.time() if now is None else now) // DAY)
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute(
                "SELECT day, policy_domain, policy_type, policy_strings, result_type, mx_host,"
                " receiving_ip, count FROM tls_results WHERE day < ? ORDER BY day",
                (today,),
            ).fetchall()
            db.execute("DELETE FROM tls_results WHERE day < ?", (today,))
            db.commit()
        days: dict[int, dict[tuple[str, str], PolicyResults]] = {}
        for day, domain, kind, strings, result, mx, ip, count in rows:
            policies = days.setdefault(day, {})
            entry = policies.get((domain, kind))
            if entry is None:
                entry = policies[(domain, kind)] = PolicyResults(kind, domain)
            if strings and strings != "[]":
                entry.policy_strings = tuple(json.loads(strings))
            if result == SUCCESS:
                entry.successes += count
            else:
                entry.failures[(result, mx, ip)] = entry.failures.get((result, mx, ip), 0) + count
        return {day: list(p.values()) for day, p in days.items()}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


Enqueue = Callable[[str, list[str], bytes], Awaitable[str]]
"""(from, recipients, message) → queue ID, through the intake (signed)."""


async def post_report(
    url: str, body: bytes, timeout: float = 60.0, context: ssl.SSLContext | None = None
) -> None:
    """§5.4: POST the gzip report; certificate errors may be ignored (§3), we do not
    (``context``: CAs other than the system's)."""
    connector = aiohttp.TCPConnector(ssl=context if context is not None else True)
    async with (
        aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout), trust_env=False
        ) as session,
        session.post(
            url, data=body, headers={"Content-Type": MEDIA_GZIP}, allow_redirects=False
        ) as response,
    ):
        if not 200 <= response.status < 300:
            raise TlsRptError(f"{url}: HTTP {response.status}")


async def send_due_tls_reports(
    store: TlsResultStore,
    *,
    hostname: str,
    from_address: str,
    resolver: Resolver,
    enqueue: Enqueue,
    post: Callable[[str, bytes], Awaitable[None]] = post_report,
    now: float | None = None,
) -> list[tuple[str, str, str | None]]:
    """Send the reports of finished days; returns ``(policy domain, where, problem)``."""
    done: list[tuple[str, str, str | None]] = []
    days = await asyncio.to_thread(store.take_finished_days, now)
    for day, policies in sorted(days.items()):
        start = datetime.datetime.fromtimestamp(day * DAY, datetime.UTC)
        end = start + datetime.timedelta(seconds=DAY - 1)
        by_domain: dict[str, list[PolicyResults]] = {}
        for policy in policies:
            by_domain.setdefault(policy.policy_domain, []).append(policy)
        for domain, results in sorted(by_domain.items()):
            txt = await resolver.txt(record_name(domain))
            try:
                record = select_record(txt.records if txt.ok else ())
            except TlsRptError as exc:
                done.append((domain, "-", str(exc)))
                continue
            report_id = f"{start:%Y%m%d}.{secrets.token_hex(6)}@{hostname}"
            report = build_report(
                organization=hostname,
                contact=from_address,
                report_id=report_id,
                start=start,
                end=end,
                policies=results,
            )
            if record.mailto:
                message = report_mail(
                    report=report,
                    submitter=hostname,
                    policy_domain=domain,
                    from_address=from_address,
                    to=record.mailto,
                    start=int(start.timestamp()),
                    end=int(end.timestamp()),
                )
                queue_id = await enqueue(from_address, record.mailto, message)
                done.append((domain, f"mail {queue_id}", None))
            for url in record.https:
                try:
                    await post(url, gzip_report(report))
                    done.append((domain, url, None))
                except (TlsRptError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
                    done.append((domain, url, str(exc) or type(exc).__name__))
                except TimeoutError:
                    done.append((domain, url, "timeout"))
    return done
