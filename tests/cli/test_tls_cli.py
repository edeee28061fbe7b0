"""``mailwright tls reports``: received TLS reports (RFC 8460) summarised."""

from __future__ import annotations

import datetime
import gzip
import json
from pathlib import Path

from mailwright.tlsrpt import PolicyResults, build_report

from .helpers import CliRun

START = datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC)
END = START + datetime.timedelta(seconds=86399)


def _results() -> PolicyResults:
    results = PolicyResults("sts", "example.net")
    results.successes = 5
    results.failures[("certificate-expired", "mx.example.net", "192.0.2.25")] = 2
    return results


def test_tls_reports_summarises(cli_run: CliRun, tmp_path: Path) -> None:
    report = build_report(
        organization="Big Mail",
        contact="c",
        report_id="r",
        start=START,
        end=END,
        policies=[_results()],
    )
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(json.dumps(report).encode()))
    (tmp_path / "bad.json").write_bytes(b"{")
    result = cli_run("tls", "reports", str(tmp_path), "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["reports"] == 1 and len(data["refused"]) == 1
    [row] = data["domains"]
    assert row["failure_types"] == {"certificate-expired": 2}
    assert row["reporters"] == ["Big Mail"]


def test_tls_reports_missing_path_is_a_usage_error(cli_run: CliRun, tmp_path: Path) -> None:
    result = cli_run("tls", "reports", str(tmp_path / "nope"))
    assert result.code == 2
    assert "no such file or directory" in result.err
