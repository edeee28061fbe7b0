"""Aggregate reports in: the shared samples parse, and every hostile input is refused."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest

from mailwright.dmarc_reports.parse import (
    MAX_XML_BYTES,
    ReportRefused,
    decompress,
    parse_report,
    reports_from_message,
)
from mailwright.dmarc_reports.received import ReportStore, domain_matches
from mailwright.dns import MemoryResolver

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "testdata" / "dmarc" / "aggregate"
PARSEDMARC = DATA / "parsedmarc"
STALWART = DATA / "stalwart-mail-auth"


def _load(path: Path) -> bytes:
    return path.read_bytes()


@pytest.mark.parametrize("number", ["001", "002", "003", "004", "005"])
def test_stalwart_xml_reports_match_expected_parse(number: str) -> None:
    expected = json.loads(_load(STALWART / f"{number}.json"))
    report = parse_report(_load(STALWART / f"{number}.xml"))
    _assert_matches(report, expected)


@pytest.mark.parametrize("number", ["100", "101", "102", "103", "104"])
def test_stalwart_report_mails_match_expected_parse(number: str) -> None:
    expected = json.loads(_load(STALWART / f"{number}.json"))
    (report,) = reports_from_message(_load(STALWART / f"{number}.eml"))
    assert not isinstance(report, ReportRefused), report
    _assert_matches(report, expected)


def _assert_matches(report: object, expected: dict[str, object]) -> None:
    from mailwright.dmarc_reports.parse import AggregateReport

    assert isinstance(report, AggregateReport)
    meta = expected["report_metadata"]
    assert isinstance(meta, dict)
    assert report.org_name == meta["org_name"]
    assert report.report_id == meta["report_id"]
    assert report.begin == meta["date_range"]["begin"]
    assert report.end == meta["date_range"]["end"]
    published = expected["policy_published"]
    assert isinstance(published, dict)
    assert report.domain == published["domain"]
    records = expected["record"]
    assert isinstance(records, list)
    assert [(r.source_ip, r.count) for r in report.records] == [
        (rec["row"]["source_ip"], rec["row"]["count"]) for rec in records
    ]
    for ours, theirs in zip(report.records, records, strict=True):
        evaluated = theirs["row"]["policy_evaluated"]
        assert ours.disposition == evaluated["disposition"].lower()
        assert ours.dkim == evaluated["dkim"].lower()
        assert ours.spf == evaluated["spf"].lower()
        assert [d.result for d in ours.dkim_results] == [
            d["result"].lower() for d in theirs["auth_results"]["dkim"]
        ]


@pytest.mark.parametrize(
    ("name", "domain", "schema", "messages"),
    [
        ("rfc9990-sample.xml", "example.com", "rfc9990", 123),
        ("rfc9990-example.net!example.com!1700000000!1700086399.xml", "example.com", "rfc9990", 7),
        ("old_draft_from_wiki.xml", "example.com", "rfc7489", 2),
        ("empty_reason.xml", "example.com", "rfc7489", 2),
        # An unclosed <xs:schema> before <feedback>: recovered by the lenient path.
        ("ikea.com!example.de!1538690400!1538776800.xml", "example.de", "rfc7489", 1),
        ("invalid_utf_8.xml", "example.com", "rfc7489", 1),
        ("invalid_report_with_upper_cased_pass.xml", "example.com", "rfc7489", 1),
        (
            "fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz",
            "indemed.com",
            "rfc7489",
            1,
        ),
        (
            "estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip",
            "example.com",
            "rfc7489",
            1,
        ),
    ],
)
def test_parsedmarc_samples(name: str, domain: str, schema: str, messages: int) -> None:
    report = parse_report(decompress(_load(PARSEDMARC / name), name))
    assert (report.domain, report.schema, report.message_count) == (domain, schema, messages)


def test_upper_case_results_are_normalised() -> None:
    report = parse_report(_load(PARSEDMARC / "invalid_report_with_upper_cased_pass.xml"))
    assert {r.spf for r in report.records} <= {"pass", "fail"}


@pytest.mark.parametrize(
    ("name", "reason"),
    [("empty.xml", "empty report"), ("invalid_xml.xml", "malformed XML")],
)
def test_broken_samples_are_refused_with_reason(name: str, reason: str) -> None:
    with pytest.raises(ReportRefused, match=reason):
        parse_report(_load(PARSEDMARC / name))


@pytest.mark.parametrize("name", ["twilight.eml", "mimecast-weird-gzip.eml"])
def test_report_mails_with_odd_attachments(name: str) -> None:
    (report,) = reports_from_message(_load(PARSEDMARC / name))
    assert not isinstance(report, ReportRefused), report
    assert report.message_count >= 1


MINIMAL = (
    b"<feedback><report_metadata><org_name>r</org_name><report_id>1</report_id>"
    b"<date_range><begin>1</begin><end>2</end></date_range></report_metadata>"
    b"<policy_published><domain>example.com</domain><p>none</p></policy_published>"
    b"<record><row><source_ip>192.0.2.1</source_ip><count>3</count><policy_evaluated>"
    b"<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>"
    b"<identifiers><header_from>example.com</header_from></identifiers></record></feedback>"
)


def test_external_entities_are_refused() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + MINIMAL.replace(b"<org_name>r<", b"<org_name>&x;<")
    )
    with pytest.raises(ReportRefused, match="unsafe XML"):
        parse_report(xxe)


def test_entity_expansion_bomb_is_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<feedback>&lol2;</feedback>"
    )
    with pytest.raises(ReportRefused, match="unsafe XML"):
        parse_report(laughs)


def test_gzip_bomb_is_refused_without_inflating_it_all() -> None:
    bomb = gzip.compress(b" " * (MAX_XML_BYTES + 1024))
    with pytest.raises(ReportRefused, match="bomb"):
        decompress(bomb, "report.xml.gz")


def test_zip_bomb_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("report.xml", b" " * (MAX_XML_BYTES + 1024))
    with pytest.raises(ReportRefused, match="bomb"):
        decompress(buffer.getvalue(), "report.zip")


def test_corrupt_gzip_is_refused() -> None:
    data = gzip.compress(MINIMAL)
    with pytest.raises(ReportRefused, match="corrupt gzip"):
        decompress(data[:20] + b"\x00" * 10 + data[30:], "r.xml.gz")


def test_truncated_gzip_is_refused() -> None:
    with pytest.raises(ReportRefused, match="truncated"):
        decompress(gzip.compress(MINIMAL)[:-12], "r.xml.gz")


def test_zip_with_many_members_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(10):
            archive.writestr(f"{i}.xml", MINIMAL)
    with pytest.raises(ReportRefused, match="10 files"):
        decompress(buffer.getvalue(), "r.zip")


def test_message_without_report_is_refused() -> None:
    (result,) = reports_from_message(b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n")
    assert isinstance(result, ReportRefused)
    assert "no report attachment" in str(result)


def test_store_refuses_report_about_another_domain(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "r.sqlite")
    with pytest.raises(ReportRefused, match="not one of our domains"):
        store.add(parse_report(MINIMAL), our_domains=["example.org"])


def test_domain_matching_includes_subdomains_only() -> None:
    assert domain_matches("mail.example.com", ["example.com"])
    assert not domain_matches("badexample.com", ["example.com"])


async def test_store_summarises_by_source_and_deduplicates(tmp_path: Path) -> None:
    store = ReportStore(tmp_path / "r.sqlite")
    assert store.add(parse_report(MINIMAL), our_domains=["example.com"])
    assert not store.add(parse_report(MINIMAL), our_domains=["example.com"])  # same org+id
    second = MINIMAL.replace(b"<report_id>1<", b"<report_id>2<").replace(
        b"<dkim>pass</dkim>", b"<dkim>fail</dkim>"
    )
    store.add(parse_report(second))
    summary = store.summarize()
    resolver = MemoryResolver().add("1.2.0.192.in-addr.arpa", "PTR", "mail.example.com")
    await summary.resolve_names(resolver)
    data = summary.as_json()
    assert data["reports"] == 2
    (source,) = data["sources"]  # type: ignore[misc]
    assert source["source_ip"] == "192.0.2.1"
    assert source["messages"] == 6
    assert source["dmarc_pass"] == 3
    assert source["verdict"] == "partial"
    assert source["reverse_name"] == "mail.example.com"


def test_huge_numbers_are_read_as_zero_with_a_warning(tmp_path: Path) -> None:
    report = parse_report(MINIMAL.replace(b"<count>3<", b"<count>99999999999999999999<"))
    assert report.records[0].count == 0
    assert any("row/count" in w for w in report.warnings)
    store = ReportStore(tmp_path / "r.sqlite")
    assert store.add(report)  # fits SQLite: no OverflowError
