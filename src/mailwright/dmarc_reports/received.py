"""Storage and summary of received DMARC aggregate reports.

Reports are kept in one SQLite file in the data directory
(``dmarc-reports.sqlite``). A report is identified by (reporter org, report
ID), so a reporter that sends the same report twice is counted once.

The summary answers the question an admin has before moving to ``p=reject``:
which source IPs send mail as our domain, how much, and does it pass?  A
forgotten sender (a CRM, a ticket system) shows up as a source that fails DKIM
and SPF alignment with a recognisable reverse name; a spoofer as one that
fails with a foreign or missing one.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..dns import Resolver
from .parse import AggregateReport, ReportRefused

DB_NAME = "dmarc-reports.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    pk INTEGER PRIMARY KEY,
    org_name TEXT NOT NULL,
    report_id TEXT NOT NULL,
    email TEXT NOT NULL,
    domain TEXT NOT NULL,
    begin_ts INTEGER NOT NULL,
    end_ts INTEGER NOT NULL,
    received_ts INTEGER NOT NULL,
    schema TEXT NOT NULL,
    policy TEXT NOT NULL,
    UNIQUE (org_name, report_id)
);
CREATE TABLE IF NOT EXISTS records (
    report_pk INTEGER NOT NULL REFERENCES reports(pk) ON DELETE CASCADE,
    source_ip TEXT NOT NULL,
    count INTEGER NOT NULL,
    disposition TEXT NOT NULL,
    dkim TEXT NOT NULL,
    spf TEXT NOT NULL,
    header_from TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    dkim_results TEXT NOT NULL,
    spf_results TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_report ON records(report_pk);
CREATE INDEX IF NOT EXISTS reports_by_end ON reports(end_ts);
"""


def domain_matches(report_domain: str, our_domains: Iterable[str]) -> bool:
    """A report is about us when its policy domain is one of ours or below one of ours."""
    report_domain = report_domain.lower().rstrip(".")
    return any(
        report_domain == d or report_domain.endswith("." + d)
        for d in (x.lower().rstrip(".") for x in our_domains)
    )


class ReportStore:
    """Reports received by this server, in SQLite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ReportStore:
        return cls(data_dir / DB_NAME)

    def close(self) -> None:
        self._db.close()

    def add(
        self,
        report: AggregateReport,
        *,
        our_domains: Sequence[str] | None = None,
        received: float | None = None,
    ) -> bool:
        """Store ``report``; False when it was already stored.

        With ``our_domains``, a report about another domain is refused: it was
        sent to our ``rua`` address by mistake or to pollute our statistics.
        """
        if our_domains is not None and not domain_matches(report.domain, our_domains):
            raise ReportRefused(
                f"report is about {report.domain!r}, not one of our domains "
                f"({', '.join(our_domains)})"
            )
        with self._db:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO reports (org_name, report_id, email, domain, begin_ts,"
                " end_ts, received_ts, schema, policy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    report.org_name,
                    report.report_id,
                    report.email,
                    report.domain,
                    report.begin,
                    report.end,
                    int(received if received is not None else time.time()),
                    report.schema,
                    json.dumps(report.policy),
                ),
            )
            if cursor.rowcount == 0:
                return False
            pk = cursor.lastrowid
            self._db.executemany(
                "INSERT INTO records (report_pk, source_ip, count, disposition, dkim, spf,"
                " header_from, envelope_from, dkim_results, spf_results)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        pk,
                        r.source_ip,
                        r.count,
                        r.disposition,
                        r.dkim,
                        r.spf,
                        r.header_from,
                        r.envelope_from,
                        json.dumps([[d.domain, d.selector, d.result] for d in r.dkim_results]),
                        json.dumps([[s.domain, s.scope, s.result] for s in r.spf_results]),
                    )
                    for r in report.records
                ],
            )
        return True

    def summarize(self, since: float | None = None) -> ReportSummary:
        """Aggregate every stored record whose report period ended after ``since``."""
        where, params = ("WHERE reports.end_ts >= ?", (int(since),)) if since else ("", ())
        rows = self._db.execute(
            "SELECT records.source_ip, records.count, records.disposition, records.dkim,"
            " records.spf, records.header_from, records.dkim_results, records.spf_results,"
            " reports.org_name, reports.domain, reports.pk"
            f" FROM records JOIN reports ON records.report_pk = reports.pk {where}",
            params,
        ).fetchall()
        sources: dict[str, SourceSummary] = {}
        report_keys: set[int] = set()
        for (
            ip,
            count,
            disposition,
            dkim,
            spf,
            header_from,
            dkim_json,
            spf_json,
            org,
            dom,
            pk,
        ) in rows:
            report_keys.add(pk)
            source = sources.setdefault(ip, SourceSummary(source_ip=ip))
            source.messages += count
            if dkim == "pass" or spf == "pass":
                source.dmarc_pass += count
            if dkim == "pass":
                source.dkim_aligned_pass += count
            if spf == "pass":
                source.spf_aligned_pass += count
            if any(result == "pass" for _d, _s, result in json.loads(dkim_json)):
                source.dkim_pass += count
            if any(result == "pass" for _d, _s, result in json.loads(spf_json)):
                source.spf_pass += count
            source.dispositions[disposition] = source.dispositions.get(disposition, 0) + count
            source.header_from.add(header_from or dom)
            source.reporters.add(org)
        ordered = sorted(sources.values(), key=lambda s: (-s.messages, s.source_ip))
        return ReportSummary(reports=len(report_keys), sources=ordered)


@dataclass
class SourceSummary:
    source_ip: str
    messages: int = 0
    dmarc_pass: int = 0
    dkim_aligned_pass: int = 0
    spf_aligned_pass: int = 0
    dkim_pass: int = 0
    spf_pass: int = 0
    dispositions: dict[str, int] = field(default_factory=dict)
    header_from: set[str] = field(default_factory=set)
    reporters: set[str] = field(default_factory=set)
    reverse_name: str | None = None

    @property
    def verdict(self) -> str:
        """``ok`` all mail passes DMARC; ``partial``; ``failing`` none passes."""
        if self.dmarc_pass == self.messages:
            return "ok"
        return "failing" if self.dmarc_pass == 0 else "partial"

    def as_json(self) -> dict[str, object]:
        return {
            "source_ip": self.source_ip,
            "reverse_name": self.reverse_name,
            "messages": self.messages,
            "dmarc_pass": self.dmarc_pass,
            "dmarc_fail": self.messages - self.dmarc_pass,
            "dkim_aligned_pass": self.dkim_aligned_pass,
            "spf_aligned_pass": self.spf_aligned_pass,
            "dkim_pass": self.dkim_pass,
            "spf_pass": self.spf_pass,
            "dispositions": dict(sorted(self.dispositions.items())),
            "header_from": sorted(self.header_from),
            "reporters": sorted(self.reporters),
            "verdict": self.verdict,
        }


@dataclass
class ReportSummary:
    reports: int
    sources: list[SourceSummary]

    @property
    def messages(self) -> int:
        return sum(s.messages for s in self.sources)

    async def resolve_names(self, resolver: Resolver, concurrency: int = 20) -> None:
        """Fill in reverse names (PTR) of the sources, a bounded number at a time."""
        gate = asyncio.Semaphore(concurrency)

        async def one(source: SourceSummary) -> None:
            async with gate:
                result = await resolver.reverse(source.source_ip)
            source.reverse_name = result.records[0] if result.ok and result.records else None

        await asyncio.gather(*(one(s) for s in self.sources))

    def as_json(self) -> dict[str, object]:
        return {
            "reports": self.reports,
            "messages": self.messages,
            "sources": [s.as_json() for s in self.sources],
        }
