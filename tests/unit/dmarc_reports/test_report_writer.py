"""Aggregate reports out: valid RFC 9990 XML that our own parser reads back."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from mailwright.dmarc_reports.observations import Observation, ObservationStore
from mailwright.dmarc_reports.parse import parse_report
from mailwright.dmarc_reports.writer import build_report, report_filename

XSD = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "testdata"
    / "dmarc"
    / "schema"
    / "rfc9990-dmarc-xml-0.2.xsd"
)


def _observation(ip: str, dkim: str = "pass", disposition: str = "none") -> Observation:
    return Observation(
        policy_domain="example.com",
        source_ip=ip,
        header_from="example.com",
        disposition=disposition,
        dkim_aligned=dkim,
        spf_aligned="fail",
        envelope_from="bounce.example.com",
        envelope_to="example.org",
        dkim=(("example.com", "mail", dkim),),
        spf=("bounce.example.com", "mfrom", "pass"),
        reasons=("local_policy",) if disposition == "none" and dkim == "fail" else (),
    )


def _report() -> bytes:
    observations = [_observation("192.0.2.1")] * 3 + [
        _observation("198.51.100.7", dkim="fail", disposition="none"),
        _observation("2001:db8::25", dkim="fail", disposition="reject"),
    ]
    return build_report(
        org_name="mail.example.org",
        email="dmarc-reports@example.org",
        report_id="r-1<&>",
        begin=1_700_000_000,
        end=1_700_086_399,
        policy_domain="example.com",
        policy={"p": "reject", "sp": "quarantine", "adkim": "r", "aspf": "s", "fo": "1"},
        observations=observations,
    )


def test_report_validates_against_the_rfc9990_schema() -> None:
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    document = etree.fromstring(_report())
    assert schema.validate(document), schema.error_log


def test_rows_are_grouped_with_counts_and_read_back() -> None:
    report = parse_report(_report())
    assert report.schema == "rfc9990"
    assert report.report_id == "r-1<&>"
    assert [(r.source_ip, r.count) for r in report.records] == [
        ("192.0.2.1", 3),
        ("198.51.100.7", 1),
        ("2001:db8::25", 1),
    ]
    assert report.records[2].disposition == "reject"
    assert report.records[1].reasons == ("local_policy",)


def test_filename_follows_rfc9990() -> None:
    assert report_filename("mail.example.org", "example.com", 1, 2, "x") == (
        "mail.example.org!example.com!1!2!x.xml.gz"
    )


def test_observation_store_groups_per_domain_and_empties(tmp_path: Path) -> None:
    store = ObservationStore(tmp_path / "obs.sqlite")
    store.add(_observation("192.0.2.1"), ["mailto:rua@example.com"])
    store.add(_observation("192.0.2.2"), [])  # no rua: nothing to report, nothing kept
    taken = store.take(until=float("inf"))
    assert list(taken) == ["example.com"]
    rua, observations = taken["example.com"]
    assert rua == ["mailto:rua@example.com"]
    assert observations == [_observation("192.0.2.1")]
    assert store.take(until=float("inf")) == {}
