"""Outgoing aggregate report mails: RFC 9990 subject, attachment name, destination checks."""

from __future__ import annotations

import email
import email.policy
import gzip
import threading
from pathlib import Path

import pytest

from mailwright.dmarc_reports.observations import Observation
from mailwright.dmarc_reports.parse import parse_report
from mailwright.dmarc_reports.sender import compose_reports
from mailwright.dns import MemoryResolver


def _obs(domain: str) -> Observation:
    return Observation(
        policy_domain=domain,
        source_ip="192.0.2.1",
        header_from=domain,
        disposition="none",
        dkim_aligned="pass",
        spf_aligned="pass",
        dkim=((domain, "s", "pass"),),
        spf=(domain, "mfrom", "pass"),
    )


async def test_report_goes_to_internal_and_authorized_destinations_only() -> None:
    r = MemoryResolver()
    r.add(
        "_dmarc.example.com",
        "TXT",
        "v=DMARC1; p=reject; rua=mailto:d@example.com,mailto:x@reports.example,"
        "mailto:y@unauthorized.example",
    )
    r.add("example.com._report._dmarc.reports.example", "TXT", "v=DMARC1")
    r.add("unauthorized.example", "A", "192.0.2.99")
    r.add("reports.example", "A", "192.0.2.98")
    (report,) = await compose_reports(
        {"example.com": (["mailto:d@example.com"], [_obs("example.com")] * 2)},
        reporter_domain="mx.example.net",
        from_address="dmarc-noreply@example.net",
        begin=100,
        end=200,
        resolver=r,
    )
    assert report.recipients == ("d@example.com", "x@reports.example")
    assert len(report.skipped) == 1
    assert "y@unauthorized.example" in report.skipped[0]
    msg = email.message_from_bytes(report.message, policy=email.policy.default)
    subject = " ".join(str(msg["Subject"]).split())
    assert subject == (
        "Report Domain: example.com Submitter: mx.example.net"
        " Report-ID: <100-example.com@mx.example.net>"
    )
    (part,) = [p for p in msg.walk() if p.get_content_type() == "application/gzip"]
    filename = part.get_filename()
    assert filename is not None
    assert filename.startswith("mx.example.net!example.com!100!200!")
    assert filename.endswith(".xml.gz")
    parsed = parse_report(gzip.decompress(part.get_payload(decode=True)))
    assert parsed.domain == "example.com"
    assert parsed.message_count == 2
    assert parsed.policy["p"] == "reject"


async def test_domain_that_no_longer_asks_for_reports_gets_none() -> None:
    r = MemoryResolver().add("_dmarc.example.com", "TXT", "v=DMARC1; p=none")
    reports = await compose_reports(
        {"example.com": (["mailto:d@example.com"], [_obs("example.com")])},
        reporter_domain="mx.example.net",
        from_address="dmarc-noreply@example.net",
        begin=1,
        end=2,
        resolver=r,
    )
    assert reports == []


async def test_consumer_override_replaces_the_published_address() -> None:
    # RFC 9990 §4 step 9.
    r = MemoryResolver()
    r.add("_dmarc.blue.example", "TXT", "v=DMARC1; p=none; rua=mailto:reports@red.example")
    r.add(
        "blue.example._report._dmarc.red.example",
        "TXT",
        "v=DMARC1; rua=mailto:other@red.example",
    )
    r.add("red.example", "A", "192.0.2.9")
    (report,) = await compose_reports(
        {"blue.example": (["mailto:reports@red.example"], [_obs("blue.example")])},
        reporter_domain="mx.example.net",
        from_address="dmarc@example.net",
        begin=1,
        end=2,
        resolver=r,
    )
    assert report.recipients == ("other@red.example",)


async def test_dns_failure_at_report_time_keeps_the_observations(tmp_path: Path) -> None:
    from mailwright.dmarc_reports.observations import OBSERVATIONS_DB, ObservationStore
    from mailwright.dmarc_reports.sender import send_due_reports
    from mailwright.dns import Outcome

    store = ObservationStore(tmp_path / OBSERVATIONS_DB)
    store.add(_obs("example.org"), ["mailto:d@example.org"])
    store.close()
    r = MemoryResolver().fail("_dmarc.example.org", "TXT", Outcome.TIMEOUT)

    async def enqueue(sender: str, recipients: list[str], data: bytes) -> str:
        raise AssertionError("nothing may be sent")

    sent = await send_due_reports(
        data_dir=tmp_path,
        hostname="mx.example.net",
        from_address="dmarc@example.net",
        resolver=r,
        enqueue=enqueue,
    )
    assert [(d, q) for d, q, _ in sent] == [("example.org", None)]
    assert "policy lookup failed" in sent[0][2][0]
    store = ObservationStore(tmp_path / OBSERVATIONS_DB)
    assert len(store.take(float("inf"))["example.org"][1]) == 1  # kept for the next run
    store.close()


async def test_daily_run_reads_and_keeps_observations_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daily run's SQLite calls (take, and the kept data on a DNS failure) never run
    on the event loop's thread: a sibling worker may hold the lock."""
    from mailwright.dmarc_reports.observations import OBSERVATIONS_DB, ObservationStore
    from mailwright.dmarc_reports.sender import send_due_reports
    from mailwright.dns import Outcome

    store = ObservationStore(tmp_path / OBSERVATIONS_DB)
    store.add(_obs("example.org"), ["mailto:d@example.org"])
    store.close()
    threads: list[tuple[str, int]] = []

    class Watched(ObservationStore):
        def take(self, until: float) -> dict[str, tuple[list[str], list[Observation]]]:
            threads.append(("take", threading.get_ident()))
            return super().take(until)

        def add(self, observation: Observation, rua: list[str]) -> None:  # type: ignore[override]
            threads.append(("add", threading.get_ident()))
            super().add(observation, rua)

    monkeypatch.setattr("mailwright.dmarc_reports.sender.ObservationStore", Watched)
    r = MemoryResolver().fail("_dmarc.example.org", "TXT", Outcome.TIMEOUT)

    async def enqueue(sender: str, recipients: list[str], data: bytes) -> str:
        raise AssertionError("nothing may be sent")

    await send_due_reports(
        data_dir=tmp_path,
        hostname="mx.example.net",
        from_address="dmarc@example.net",
        resolver=r,
        enqueue=enqueue,
    )
    assert [name for name, _ in threads] == ["take", "add"]
    assert threading.get_ident() not in {thread for _, thread in threads}
