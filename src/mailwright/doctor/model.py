"""What the doctor reports: one :class:`CheckResult` per check id, gathered in a :class:`Report`.

The ids and the JSON form are a stable interface for monitoring (README.md,
"check"): ``{"domain", "checks": [{"id", "status", "title", "observed", "fix"}],
"summary"}``. ``error`` means "could not check" (a timeout, a refused query, a
bug in one check), never a verdict about the domain.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"


_SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.ERROR: 2, Status.FAIL: 3}


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.OK)


@dataclass(frozen=True)
class Finding:
    """What one check concluded; the runner adds the id and title."""

    status: Status
    observed: str
    fix: str = ""

    @classmethod
    def ok(cls, observed: str) -> Finding:
        return cls(Status.OK, observed)

    @classmethod
    def warn(cls, observed: str, fix: str) -> Finding:
        return cls(Status.WARN, observed, fix)

    @classmethod
    def fail(cls, observed: str, fix: str) -> Finding:
        return cls(Status.FAIL, observed, fix)

    @classmethod
    def error(cls, observed: str, fix: str = "") -> Finding:
        return cls(Status.ERROR, observed, fix or "could not check: run the check again later")


def combine(parts: list[tuple[str, Finding]]) -> Finding:
    """One finding for several subjects (sending IPs, MX hosts): the worst status wins,
    every subject's observation is kept, and the fix of the worst one is given."""
    if not parts:
        return Finding.ok("nothing to check")
    if len(parts) == 1:
        return parts[0][1]
    status = worst([f.status for _, f in parts])
    observed = "\n".join(f"{subject}: {f.observed}" for subject, f in parts)
    fixes = [f.fix for _, f in parts if f.status is status and f.fix]
    return Finding(status, observed, fixes[0] if fixes else "")


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: Status
    title: str
    observed: str
    fix: str = ""
    group: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": str(self.status),
            "title": self.title,
            "observed": self.observed,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Report:
    domain: str
    checks: tuple[CheckResult, ...]
    elapsed: float = 0.0
    """Wall time of the whole run, in seconds."""
    dns_queries: int = 0
    dns_time: float = 0.0
    """Sum of the durations of every DNS query: what a sequential run would wait."""
    dns_answered: int | None = None
    """Queries that got an answer (NXDOMAIN and NODATA included; not SERVFAIL or timeout)."""
    notes: tuple[str, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        counter = Counter(c.status for c in self.checks)
        return {str(s): counter.get(s, 0) for s in Status}

    def failed(self, strict: bool = False) -> bool:
        """Exit status 1: any fail, or nothing could be checked; with ``strict``, any warn
        or error too.

        A lone ``error`` is not a verdict, but a run where every check ended in ``error``,
        or where no DNS query got an answer (the resolver unreachable), checked nothing:
        cron monitoring must notice it. (Checks that need no DNS, such as this host's
        ports or a missing DKIM selector, still conclude then.)
        """
        bad = {Status.FAIL, Status.WARN, Status.ERROR} if strict else {Status.FAIL}
        if any(c.status in bad for c in self.checks):
            return True
        if self.checks and all(c.status is Status.ERROR for c in self.checks):
            return True
        return self.dns_queries > 0 and self.dns_answered == 0

    def get(self, check_id: str) -> CheckResult:
        for check in self.checks:
            if check.id == check_id:
                return check
        raise KeyError(check_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "checks": [c.to_json() for c in self.checks],
            "summary": {
                **self.counts(),
                "total": len(self.checks),
                "elapsed_seconds": round(self.elapsed, 3),
                "dns_queries": self.dns_queries,
                "dns_seconds_sum": round(self.dns_time, 3),
            },
        }
