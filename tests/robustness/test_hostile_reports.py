"""DMARC aggregate reports (RFC 9990) in: decompress, parse_report and
reports_from_message refuse anything unusable with ReportRefused — never another
exception — and bound their work on bombs, deep MIME nesting and junk XML."""

from __future__ import annotations

import gzip
import io
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from robust_support import mutate, robust, timed

from mailwright.dmarc_reports.parse import (
    AggregateReport,
    ReportRefused,
    decompress,
    parse_report,
    reports_from_message,
)

SAMPLE = (
    Path(__file__).resolve().parents[2].parent
    / "shared/testdata/dmarc/schema/rfc9990-sample-report.xml"
).read_bytes()
SMALL = b"""<?xml version="1.0"?>
<feedback><report_metadata><org_name>x</org_name><email>a@x.example</email>
<report_id>1</report_id><date_range><begin>1</begin><end>2</end></date_range>
</report_metadata><policy_published><domain>example.com</domain><p>none</p>
</policy_published><record><row><source_ip>192.0.2.1</source_ip><count>3</count>
<policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>
</policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers>
<auth_results><dkim><domain>example.com</domain><result>pass</result></dkim></auth_results>
</record></feedback>
"""


def test_the_samples_parse() -> None:
    assert parse_report(SAMPLE).records
    assert parse_report(SMALL).message_count == 3


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _check(call: object) -> None:
    try:
        result = call()  # type: ignore[operator]
    except ReportRefused as exc:
        assert str(exc)
        return
    assert isinstance(result, (bytes, AggregateReport))


@robust(400)
@given(st.one_of(mutate(SMALL), mutate(SAMPLE)))
def test_mutated_xml_parses_or_is_refused(xml: bytes) -> None:
    _check(lambda: parse_report(xml))


@robust(300)
@given(
    st.one_of(
        mutate(gzip.compress(SMALL)), mutate(_zip({"r.xml": SMALL})), st.binary(max_size=300)
    ),
    st.sampled_from(["", "r.xml.gz", "r.zip", "r.xml", "R.GZIP"]),
)
def test_mutated_archives_decompress_or_are_refused(data: bytes, name: str) -> None:
    def both() -> AggregateReport:
        return parse_report(decompress(data, name))

    _check(lambda: decompress(data, name))
    _check(both)


def _mail(parts: list[tuple[str, str, bytes]]) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "noreply@reporter.example"
    msg["Subject"] = "Report domain: example.com"
    msg.set_content("report attached")
    for ctype, name, data in parts:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    if msg.is_multipart():
        msg.set_boundary("==robust-boundary==")  # no random boundary: examples reproduce
    return msg.as_bytes()


ATTACHMENTS = st.tuples(
    st.sampled_from(
        ["application/gzip", "application/zip", "text/xml", "application/octet-stream"]
    ),
    st.sampled_from(["r.xml.gz", "r.zip", "r.xml", "r.bin", ""]),
    st.sampled_from([SMALL, gzip.compress(SMALL), _zip({"r.xml": SMALL}), b"junk", b""]),
)


@robust(100)
@given(
    st.lists(ATTACHMENTS, max_size=4).map(_mail).flatmap(lambda m: st.one_of(st.just(m), mutate(m)))
)
def test_report_mails_give_reports_or_refusals(message: bytes) -> None:
    results = reports_from_message(message)
    assert results
    assert all(isinstance(r, (AggregateReport, ReportRefused)) for r in results)


def test_gzip_bomb_is_refused_quickly() -> None:
    bomb = gzip.compress(b"<" * 200_000_000, compresslevel=9)
    with timed(10.0), pytest.raises(ReportRefused, match="bomb"):
        decompress(bomb)


def test_zip_bomb_and_lying_sizes_are_refused() -> None:
    bomb = _zip({"r.xml": b"\0" * 100_000_000})
    with timed(10.0), pytest.raises(ReportRefused):
        decompress(bomb)
    many = _zip({f"r{i}.xml": SMALL for i in range(5)})
    with pytest.raises(ReportRefused, match="files"):
        decompress(many)


def test_billion_laughs_and_external_entities_are_refused() -> None:
    laughs = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><feedback>&lol2;</feedback>"""
    xxe = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<feedback>&x;</feedback>"""
    for xml in (laughs, xxe):
        with pytest.raises(ReportRefused):
            parse_report(xml)


def test_deeply_nested_mime_is_bounded() -> None:
    head = b"From: a@b.example\r\nSubject: r\r\nMIME-Version: 1.0\r\n"
    body = b""
    depth = 2000
    for i in range(depth):
        body += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    body += b"Content-Type: text/xml\r\nContent-Disposition: attachment; filename=r.xml\r\n\r\n"
    body += SMALL + b"\r\n"
    for i in reversed(range(depth)):
        body += b"--b%d--\r\n" % i
    with timed(10.0):
        results = reports_from_message(head + body)
    assert all(isinstance(r, (AggregateReport, ReportRefused)) for r in results)


def test_deeply_nested_xml_is_bounded() -> None:
    deep = b"<feedback>" + b"<a>" * 200_000 + b"</a>" * 200_000 + b"</feedback>"
    with timed(10.0), pytest.raises(ReportRefused):
        parse_report(deep)


def test_huge_counts_and_junk_numbers_are_read_as_numbers_or_zero() -> None:
    xml = SMALL.replace(b"<count>3</count>", b"<count>" + b"9" * 5000 + b"</count>")
    report = parse_report(xml)
    assert report.message_count == 0 and report.warnings


# --- regressions: found here, fixed in dmarc_reports/parse.py ------------------------------


def test_unknown_xml_encoding_is_refused() -> None:
    with pytest.raises(ReportRefused):
        parse_report(b'<?xml version="1.0" encoding="x-nope"?><feedback/>')


def test_malformed_xml_recovery_is_linear() -> None:
    junk = b"<feedback " * 8_000  # 80 KB: ~0.4 s today, a few ms when linear
    start = time.perf_counter()
    with pytest.raises(ReportRefused):
        parse_report(junk)
    assert time.perf_counter() - start < 0.1


def test_zip_with_a_damaged_local_header_is_refused() -> None:
    good = _zip({"r.xml": SMALL})
    with pytest.raises(ReportRefused):
        decompress(good[:4] + good[6:])


# --- writing reports: observations carry sender-controlled text ---------------------------


def test_written_report_is_well_formed_with_control_characters() -> None:
    from mailwright.dmarc_reports.observations import Observation
    from mailwright.dmarc_reports.writer import build_report

    observation = Observation(
        "example.com",
        "192.0.2.1",
        "example.com",
        "none",
        "fail",
        "fail",
        envelope_from="a\x01b",
        spf=("a\x01b", "helo", "fail"),
    )
    xml = build_report(
        org_name="mx.example.net",
        email="dmarc@example.net",
        report_id="1",
        begin=0,
        end=86400,
        policy_domain="example.com",
        policy={"p": "none"},
        observations=[observation],
    )
    assert parse_report(xml).records


_XML_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")),  # controls: escaped, not kept
    max_size=20,
).map(lambda t: t + "&<>\"']]>")


@robust(150)
@given(_XML_TEXT, _XML_TEXT, _XML_TEXT, _XML_TEXT)
def test_written_reports_read_back(
    envelope_from: str, header_from: str, selector: str, reason: str
) -> None:
    """What we send parses with our own reader, every sender-supplied value intact."""
    from mailwright.dmarc_reports.observations import Observation
    from mailwright.dmarc_reports.writer import build_report

    observation = Observation(
        "example.com",
        "192.0.2.1",
        header_from,
        "none",
        "fail",
        "pass",
        envelope_from=envelope_from,
        dkim=(("example.com", selector, "pass"),),
        spf=(envelope_from, "mfrom", "pass"),
        reasons=(reason,),
    )
    xml = build_report(
        org_name="mx.example.net",
        email="dmarc@example.net",
        report_id="r1",
        begin=0,
        end=86400,
        policy_domain="example.com",
        policy={"p": "none"},
        observations=[observation],
    )
    [record] = parse_report(xml).records
    assert record.header_from == header_from.strip().lower()
    assert record.envelope_from == envelope_from.strip().lower()
    assert record.dkim_results[0].selector == (selector.strip() or None)
