"""RFC 8460: the _smtp._tls record, the report we send, the reports we read, the counts."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import gzip
import json
from pathlib import Path

import pytest

from mailwright.delivery.tls_results import TlsResultStore, send_due_tls_reports
from mailwright.dns import MemoryResolver
from mailwright.tlsrpt import (
    PolicyResults,
    TlsRptError,
    build_report,
    parse_record,
    parse_report,
    report_filename,
    report_mail,
    reports_in_mail,
    select_record,
)

START = datetime.datetime(2026, 12, 3, tzinfo=datetime.UTC)
END = START + datetime.timedelta(seconds=86399)


def test_record_with_mailto_and_https() -> None:
    record = parse_record("v=TLSRPTv1; rua=mailto:tls@example.net, https://r.example.net/x")
    assert record.mailto == ["tls@example.net"]
    assert record.https == ["https://r.example.net/x"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("rua=mailto:a@b.example", "does not begin"),
        ("v=TLSRPTv1;", "no rua"),
        ("v=TLSRPTv1; rua=http://insecure.example/", "mailto: or https:"),
        ("v=TLSRPTv1; rua", "malformed"),
    ],
)
def test_bad_records(text: str, why: str) -> None:
    with pytest.raises(TlsRptError, match=why):
        parse_record(text)


def test_select_needs_exactly_one() -> None:
    assert select_record(["v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@b.example"]).mailto
    with pytest.raises(TlsRptError):
        select_record(["v=TLSRPTv1; rua=mailto:a@b.example"] * 2)


def _results() -> PolicyResults:
    results = PolicyResults("sts", "example.net", ("version: STSv1", "mode: enforce"))
    results.successes = 5
    results.failures[("certificate-expired", "mx.example.net", "192.0.2.25")] = 2
    return results


def test_report_follows_section_4_4() -> None:
    report = build_report(
        organization="mail.example.com",
        contact="tls-reports@example.com",
        report_id="r1",
        start=START,
        end=END,
        policies=[_results()],
    )
    assert report["date-range"] == {
        "start-datetime": "2026-12-03T00:00:00Z",
        "end-datetime": "2026-12-03T23:59:59Z",
    }
    [policy] = report["policies"]
    assert policy["policy"]["policy-string"] == ["version: STSv1", "mode: enforce"]
    assert policy["summary"] == {
        "total-successful-session-count": 5,
        "total-failure-session-count": 2,
    }
    assert policy["failure-details"] == [
        {
            "result-type": "certificate-expired",
            "failed-session-count": 2,
            "receiving-mx-hostname": "mx.example.net",
            "receiving-ip": "192.0.2.25",
        }
    ]
    # What we send, we can read.
    parsed = parse_report(gzip.compress(json.dumps(report).encode()))
    assert parsed.policies[0].failure_types == (("certificate-expired", 2),)


def test_report_mail_section_5_3() -> None:
    report = build_report(
        organization="o",
        contact="c",
        report_id="r1@mail.example.com",
        start=START,
        end=END,
        policies=[_results()],
    )
    raw = report_mail(
        report=report,
        submitter="mail.example.com",
        policy_domain="example.net",
        from_address="tls-reports@example.com",
        to=["tls@example.net"],
        start=1,
        end=2,
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["TLS-Report-Domain"] == "example.net"
    assert message["TLS-Report-Submitter"] == "mail.example.com"
    assert 'report-type="tlsrpt"' in message["Content-Type"]
    assert message["Subject"].startswith("Report Domain: example.net Submitter: mail.example.com")
    [part] = [p for p in message.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    assert part.get_filename() == report_filename("mail.example.com", "example.net", 1, 2)
    assert reports_in_mail(raw)[0][:2] == b"\x1f\x8b"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b"{}", "date-range or policies missing"),
        (gzip.compress(b"{" + b" " * 5_000_000 + b"}"), "bomb"),
        (gzip.compress(b"{}")[:-4], "truncated"),
        (b"x" * (10 * 1024 * 1024 + 1), "exceeds"),
    ],
    ids=["text", "array", "empty", "bomb", "truncated", "huge"],
)
def test_bad_reports_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(TlsRptError, match=why):
        parse_report(data)


def test_hostile_counts_become_zero() -> None:
    report = {
        "date-range": {},
        "policies": [{"policy": {}, "summary": {"total-successful-session-count": -5}}],
    }
    assert parse_report(json.dumps(report).encode()).policies[0].successes == 0


def test_store_counts_and_hands_out_finished_days(tmp_path: Path) -> None:
    store = TlsResultStore(tmp_path / "q.sqlite3")
    day = 20_000 * 86_400
    for _ in range(3):
        store.record("example.net", "sts", now=day + 10)
    store.record("example.net", "sts", "certificate-expired", mx_host="mx", now=day + 20)
    store.record("example.net", "sts", now=day + 86_400 + 5)  # the next day: not finished
    assert store.take_finished_days(now=day + 100) == {}
    days = store.take_finished_days(now=day + 86_400 + 10)
    [results] = days[20_000]
    assert results.successes == 3 and results.failures == {("certificate-expired", "mx", ""): 1}
    assert store.take_finished_days(now=day + 86_400 + 10) == {}  # taken once
    store.close()


def test_daily_sender_mails_and_posts(tmp_path: Path) -> None:
    store = TlsResultStore(tmp_path / "q.sqlite3")
    store.record("example.net", "tlsa", now=1000.0)
    store.record("quiet.example", "sts", now=1000.0)  # publishes no _smtp._tls: skipped
    dns = MemoryResolver().add(
        "_smtp._tls.example.net", "TXT", "v=TLSRPTv1;rua=mailto:tls@example.net,https://r.example/"
    )
    queued: list[tuple[str, list[str], bytes]] = []
    posted: list[tuple[str, bytes]] = []

    async def enqueue(sender: str, to: list[str], message: bytes) -> str:
        queued.append((sender, to, message))
        return "QID"

    async def post(url: str, body: bytes) -> None:
        posted.append((url, body))

    done = asyncio.run(
        send_due_tls_reports(
            store,
            hostname="mail.example.com",
            from_address="tls-reports@example.com",
            resolver=dns,
            enqueue=enqueue,
            post=post,
            now=200_000.0,
        )
    )
    assert ("example.net", "mail QID", None) in done
    assert ("example.net", "https://r.example/", None) in done
    assert done[-1][0] == "quiet.example" and done[-1][2] is not None
    assert queued[0][1] == ["tls@example.net"]
    report = json.loads(gzip.decompress(posted[0][1]))
    assert report["policies"][0]["policy"]["policy-type"] == "tlsa"
    store.close()
