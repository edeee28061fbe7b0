"""``check --state FILE``: remember the last result, report only what changed.

Made for cron: a run whose rows have the same statuses as the last one prints nothing
(cron mails only output), a change prints the rows that changed, before and after.
Only the status counts as a change: the observed text moves every day (a certificate's
days left, a DNS TTL) and would make every run noisy.  The state is a small JSON file
written atomically (a temporary file renamed over it), so a crash never leaves half a
state behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..files import write_atomically
from .model import Report

STATE_VERSION = 1


@dataclass(frozen=True)
class Change:
    id: str
    before: str | None
    """The status of the last run, None for a row the last run did not have."""
    after: str | None
    """The status now, None for a row that is gone."""
    observed: str = ""
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "before": self.before,
            "after": self.after,
            "observed": self.observed,
            "fix": self.fix,
        }


def load_state(path: Path) -> dict[str, Any] | None:
    """The last run's state, None when there was none.  A file that is not ours is a
    usage error: overwriting it could destroy something else."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"--state {path}: {exc.strerror or exc}", "check the path") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise UsageError(
            f"--state {path}: not a mailwright check state file",
            "name a new file (it is created), or delete this one",
        )
    return data


def changes(previous: dict[str, Any] | None, report: Report) -> list[Change]:
    """Rows whose status differs from the last run's (first run: every row not ok)."""
    if previous is None or previous.get("domain") != report.domain:
        return [
            Change(c.id, None, str(c.status), c.observed, c.fix)
            for c in report.checks
            if str(c.status) != "ok"
        ]
    before: dict[str, Any] = previous.get("checks", {})
    result: list[Change] = []
    for c in report.checks:
        old = before.get(c.id, {}).get("status") if isinstance(before.get(c.id), dict) else None
        if old != str(c.status):
            result.append(Change(c.id, old, str(c.status), c.observed, c.fix))
    now = {c.id for c in report.checks}
    for gone in sorted(set(before) - now):
        result.append(Change(gone, before[gone].get("status"), None))
    return result


def save_state(path: Path, report: Report, now: datetime | None = None) -> None:
    """Write this run's statuses atomically."""
    data = {
        "version": STATE_VERSION,
        "domain": report.domain,
        "time": (now or datetime.now(UTC)).isoformat(),
        "checks": {c.id: {"status": str(c.status)} for c in report.checks},
    }
    try:
        write_atomically(path, json.dumps(data, indent=1).encode())
    except OSError as exc:
        raise UsageError(f"--state {path}: {exc.strerror or exc}", "check the path") from None


def notification(domain: str, found: list[Change], sender: str, to: str, hostname: str) -> bytes:
    """The mail ``--notify`` sends: one line per changed row, then the details."""
    worse = sum(1 for c in found if c.after in ("fail", "error", "warn"))
    subject = f"mailwright check {domain}: {len(found)} change(s)" + (
        f", {worse} not ok" if worse else ""
    )
    lines = [f"mailwright check {domain} changed since the last run:", ""]
    for c in found:
        lines.append(f"  {c.id}: {c.before or 'new'} -> {c.after or 'gone'}")
    for c in found:
        if c.after and c.after != "ok":
            lines += ["", f"{c.id} ({c.after})", *(f"  {x}" for x in c.observed.splitlines())]
            if c.fix:
                lines.append(f"  fix: {c.fix}")
    body = "\r\n".join(lines) + "\r\n"
    headers = [
        f"From: mailwright check <{sender}>",
        f"To: <{to}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {make_msgid(domain=hostname)}",
        "Auto-Submitted: auto-generated",  # RFC 3834 §5: no vacation replies
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")
