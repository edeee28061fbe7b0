"""DMARC (RFC 9989) and Authentication-Results (RFC 8601) under hostile input.

DMARC records from DNS never raise: parse_record classifies them, evaluate() and
check_domain() always give a status with a bounded number of queries. The
Authentication-Results parser raises only AuthResSyntaxError, and what it accepts
formats back to a value that parses to the same thing; strip_forged never raises and
removes only Authentication-Results fields."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from robust_support import mixed_text, mutate, robust, run, timed

from mailwright.authres import (
    AuthenticationResults,
    AuthResSyntaxError,
    Property,
    ResInfo,
    parse,
    strip_forged,
)
from mailwright.dmarc import (
    AlignmentMode,
    Classification,
    DmarcRecord,
    DmarcStatus,
    Finding,
    Severity,
    check_alignment,
    check_domain,
    evaluate,
    organizational_domain,
    parse_record,
    verify_destination,
)
from mailwright.dmarc.record import parse_report_uri
from mailwright.dns import MemoryResolver, Outcome
from mailwright.dns.names import to_ascii

DMARC_PIECES = [
    "v=DMARC1",
    "v=dmarc1",
    "V=DMARC1",
    "p=none",
    "p=quarantine",
    "p=reject",
    "p=bogus",
    "sp=reject",
    "np=reject",
    "adkim=s",
    "aspf=r",
    "adkim=x",
    "pct=50",
    "pct=²",
    "pct=٥٠",
    "pct=101",
    "pct=99999999999999999999",
    "t=y",
    "t=n",
    "psd=y",
    "psd=n",
    "psd=u",
    "fo=1:d:s",
    "fo=",
    "rf=afrf",
    "ri=86400",
    "rua=mailto:r@example.com",
    "rua=mailto:r@example.com!10m",
    "ruf=mailto:a@x.example,mailto:b@y.example",
    "rua=https://example.com/x",
    "rua=mailto:",
    "rua=mailto:@",
    "rua=mailto:a@[192.0.2.1]",
    "rua=" + ",".join(f"mailto:r{i}@example.com" for i in range(40)),
    ";",
    "; ",
    " ",
    "=",
    ",",
    "!",
]
record_text = st.one_of(
    mixed_text(DMARC_PIECES),
    st.lists(st.sampled_from(DMARC_PIECES), max_size=14).map("; ".join),
    st.lists(st.sampled_from(DMARC_PIECES), max_size=14).map(lambda t: "v=DMARC1; " + ";".join(t)),
)


@robust(1200)
@given(record_text)
def test_parse_record_never_raises(text: str) -> None:
    record = parse_record(text)
    assert isinstance(record, DmarcRecord)
    assert record.classification in set(Classification)
    if record.classification is not Classification.VALID:
        assert record.reason
    assert record.pct is None or 0 <= record.pct <= 100
    assert len(record.rua) <= 32 and len(record.ruf) <= 32


@robust(300)
@given(mixed_text(["mailto:", "https://", "@", "!", "10m", "5g", "%", ",", "example.com"]))
def test_report_uri_parser_never_raises(text: str) -> None:
    uri, problem = parse_report_uri(text)
    assert uri is not None or problem


DOMAINS = ["example.com", "mail.example.com", "a.b.c.d.e.f.g.h.i.example.com", "com", "example.net"]


@st.composite
def dmarc_world(draw: st.DrawFn) -> MemoryResolver:
    r = MemoryResolver()
    for name in DOMAINS:
        for _ in range(draw(st.integers(0, 2))):
            r.add(f"_dmarc.{name}", "TXT", draw(record_text))
        if draw(st.booleans()):
            r.add(name, "A", "192.0.2.1")
        failure = draw(st.sampled_from([None, None, Outcome.TIMEOUT, Outcome.SERVFAIL]))
        if failure is not None:
            r.fail(f"_dmarc.{name}", "TXT", failure)
    return r


identifier = st.one_of(
    st.sampled_from([*DOMAINS, "", ".", "..", "x" * 300, "é.example", "EXAMPLE.COM.", "[1.2.3.4]"]),
    st.text(max_size=20),
)
result_word = st.sampled_from(["pass", "fail", "none", "temperror", "permerror", "PASS", "x"])


@robust(250)
@given(
    dmarc_world(),
    identifier,
    st.one_of(st.none(), st.tuples(identifier, result_word)),
    st.lists(st.tuples(identifier, result_word), max_size=30),
)
def test_evaluate_always_gives_a_status_with_bounded_queries(
    world: MemoryResolver,
    author: str,
    spf: tuple[str, str] | None,
    dkim: list[tuple[str, str]],
) -> None:
    with timed(5.0):
        result = run(evaluate(author, spf, dkim, world))
    assert result.result in set(DmarcStatus)
    # The tree walk is at most 8 queries (§4.10.2); alignment looks up organizational
    # domains of at most 20 DKIM identifiers + 1 SPF identifier, each one more walk.
    assert len(world.queries) <= 8 * (1 + 21)


@robust(100)
@given(dmarc_world(), identifier)
def test_check_domain_never_raises(world: MemoryResolver, domain: str) -> None:
    report = run(check_domain(domain, world))
    # The doctor prints every finding and `mailwright dmarc check --json` dumps the report:
    # each finding is complete, the status follows from the severities, the JSON encodes.
    for finding in report.findings:
        assert isinstance(finding, Finding) and finding.severity in set(Severity)
        assert finding.id.startswith("dmarc-") and finding.message.strip()
    assert report.status in ("ok", "warn", "fail")
    assert report.ok is (report.status != "fail")
    if report.record is None:
        assert report.findings, "no applicable record and nothing to say about it"
    assert json.loads(json.dumps(report.as_json()))["status"] == report.status


@robust(200)
@given(dmarc_world(), identifier, identifier, st.sampled_from(list(AlignmentMode)))
def test_alignment_and_org_domain_never_raise(
    world: MemoryResolver, author: str, ident: str, mode: AlignmentMode
) -> None:
    async def go() -> None:
        org = await organizational_domain(author, world)
        await check_alignment(author, org.organizational_domain, ident, mode, world)

    run(go())


@robust(150)
@given(dmarc_world(), st.sampled_from([p for p in DMARC_PIECES if p.startswith("ru")]))
def test_external_destination_verification_never_raises(world: MemoryResolver, tag: str) -> None:
    record = parse_record("v=DMARC1; p=none; " + tag)

    async def go() -> None:
        for uri in record.rua + record.ruf:
            await verify_destination("rua", uri, "example.com", "example.com", world)

    run(go())


def test_a_hundred_dkim_results_are_bounded() -> None:
    r = MemoryResolver().add("_dmarc.example.com", "TXT", "v=DMARC1; p=reject")
    dkim = [(f"d{i}.sub{i}.example.org", "pass") for i in range(1000)]
    with timed(5.0):
        result = run(evaluate("example.com", None, dkim, r))
    assert result.result is DmarcStatus.FAIL
    assert len(r.queries) <= 8 * 21


def test_slow_dns_walk_is_concurrent() -> None:
    r = MemoryResolver(latency=0.05)
    with timed(2.0):
        result = run(evaluate("a.b.c.d.e.f.g.h.i.j.example.com", None, [], r))
    assert result.result is DmarcStatus.NONE
    assert asyncio.iscoroutinefunction(evaluate)


# --- Authentication-Results ---------------------------------------------------------------

AR_PIECES = [
    "mx.example.com",
    "mx.example.com 1",
    "mx.example.com 2",
    "; ",
    ";",
    "none",
    "spf=pass",
    "dkim=fail",
    "dmarc=pass",
    "arc=none",
    "auth/1=pass",
    "x-foo/9=neutral",
    " smtp.mailfrom=a@example.com",
    " header.d=example.com",
    " header.b=abcd",
    " policy.dmarc=reject",
    " reason=",
    '"quoted ; value"',
    '"\\"',
    "(comment)",
    "(nested (comment))",
    "(unterminated",
    "\\)",
    " ",
    "\t",
    "\r\n ",
    "=",
    ".",
    "@",
    "²",
]


@robust(800)
@given(mixed_text(AR_PIECES))
def test_authres_parse_raises_only_syntax_error_and_round_trips(value: str) -> None:
    try:
        parsed = parse(value)
    except AuthResSyntaxError as exc:
        assert 0 <= exc.offset <= len(value)
        return
    again = parse(parsed.value())
    assert again == parsed


def test_authres_huge_values_are_bounded() -> None:
    for value in (
        "mx.example.com; " + "spf=pass " * 50_000,
        "mx.example.com; " + "(" * 60_000,
        "mx.example.com; " + "spf=pass; " * 5000,
        "mx.example.com; " + '"' * 60_000,
    ):
        with timed(2.0), pytest.raises(AuthResSyntaxError):
            parse(value)


HEADERS = [
    b"Authentication-Results: mx.example.com; spf=pass\r\n",
    b"Authentication-Results: MX.Example.COM.; dkim=pass\r\n",
    b"Authentication-Results: other.example; spf=pass\r\n",
    b"Authentication-Results: (;;;\r\n",
    b"authentication-results:mx.example.com;none\r\n",
    b"Authentication-Results: mx.example.com;\r\n\tspf=pass\r\n",
    b"Authentication-Results: xn--mx-\r\n",
    b"Authentication-Results: xn--bcher-kva.example; none\r\n",
    b"From: a@example.com\r\n",
    b"Subject: Authentication-Results: mx.example.com\r\n",
    b" continuation\r\n",
    b"\tAuthentication-Results: mx.example.com; none\r\n",
    b"X: y\n",
    b"Bare\r",
]


@robust(600)
@given(
    st.lists(st.sampled_from(HEADERS), max_size=10),
    st.sampled_from([b"\r\n", b"\n", b""]),
    st.binary(max_size=60),
)
def test_strip_forged_removes_only_authentication_results(
    headers: list[bytes], blank: bytes, body: bytes
) -> None:
    message = b"".join(headers) + blank + body
    stripped, removed = strip_forged(message, ["mx.example.com", "bücher.example"])
    assert 0 <= removed <= len(headers) + 1
    assert len(stripped) <= len(message)
    assert stripped.endswith(body) or not blank
    if removed == 0:
        assert stripped == message


@robust(200)
@given(mutate(b"".join(HEADERS) + b"\r\nbody\r\n"))
def test_strip_forged_never_raises_on_mutated_messages(message: bytes) -> None:
    stripped, removed = strip_forged(message, "mx.example.com")
    assert removed >= 0 and len(stripped) <= len(message)


def test_strip_forged_handles_a_ten_megabyte_header() -> None:
    message = b"Authentication-Results: mx.example.com; " + b"x" * 10_000_000 + b"\r\n\r\nbody"
    with timed(5.0):
        stripped, removed = strip_forged(message, "mx.example.com")
    assert (stripped, removed) == (b"\r\nbody", 1)


@pytest.mark.parametrize(
    "value",
    [
        "mx.example.com \u00b2; spf=pass",  # superscript two: str.isdigit() is True
        "mx.example.com \u0662; spf=pass",  # Arabic-Indic two
        "mx.example.com; auth/\u00b2=pass",
        "mx.example.com; auth/\u0665=pass",
    ],
)
def test_versions_are_ascii_digits_only(value: str) -> None:
    """RFC 8601 §2.2: version = 1*DIGIT, and DIGIT is ASCII (RFC 5234 B.1). A non-ASCII
    digit used to be taken as an unknown header version (results silently dropped)."""
    with pytest.raises(AuthResSyntaxError):
        parse(value)


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("mailto:a%0d%0aBcc:%20evil@x.example@example.com", "not a plain addr-spec"),
        ("mailto:a%0aRCPT%20TO:%3Cv@x.example%3E@example.com", "not a plain addr-spec"),
        ("mailto:%3Cx%3E@example.com", "not a plain addr-spec"),
        ("mailto:a%20b@example.com", "not a plain addr-spec"),
        ("mailto:a..b@example.com", "not a plain addr-spec"),
        ("mailto:r@ex%00ample.com", "not a mail domain"),
        ("mailto:r@ex%0d%0aample.com", "not a mail domain"),
        ("mailto:r@%20example.com", "not valid"),
    ],
)
def test_rua_addresses_cannot_inject_into_the_report_mail(uri: str, why: str) -> None:
    """A rua mailbox is %-decoded and becomes the report's RCPT TO and To: field; a
    record (written by whoever sends us mail) used to smuggle CR/LF, NUL or "<>" there."""
    record = parse_record(f"v=DMARC1; p=none; rua={uri}")
    assert record.rua == ()
    assert any(why in problem.message for problem in record.problems)


def test_plain_and_internationalized_rua_addresses_still_parse() -> None:
    record = parse_record(
        "v=DMARC1; p=none; rua=mailto:dmarc+x@example.com,mailto:d%C3%A9@b%C3%BCcher.example"
    )
    assert [(u.address, u.host) for u in record.rua] == [
        ("dmarc+x@example.com", "example.com"),
        ("dé@xn--bcher-kva.example", "xn--bcher-kva.example"),
    ]


@robust(300)
@given(mixed_text(["mailto:", "%0d", "%0a", "%00", "%20", "%3c", "@", ".", "a", "example.com"]))
def test_accepted_rua_addresses_are_printable(text: str) -> None:
    record = parse_record(f"v=DMARC1; p=none; rua={text}")
    for uri in record.rua + record.ruf:
        if uri.address is not None:
            assert uri.address.isprintable() and " " not in uri.address
            assert "<" not in uri.address and ">" not in uri.address


# --- producing Authentication-Results from hostile values ------------------------------

_FREE = mixed_text(['"', "\\", "@", "(", ")", ";", "=", "example.com", "a b", "\r\n", "\n"])
_KEYWORDS = st.sampled_from(["spf", "dkim", "dmarc", "x-custom", "pass", "fail", "none", "smtp"])


@st.composite
def results_field(draw: st.DrawFn) -> AuthenticationResults:
    infos = []
    for _ in range(draw(st.integers(1, 4))):
        props = tuple(
            Property(draw(_KEYWORDS), draw(_KEYWORDS), draw(_FREE))
            for _ in range(draw(st.integers(0, 3)))
        )
        infos.append(
            ResInfo(
                draw(_KEYWORDS),
                draw(_KEYWORDS),
                draw(st.one_of(st.none(), _FREE)),
                props,
                draw(st.sampled_from([None, "1"])),
                draw(st.one_of(st.none(), _FREE)),
            )
        )
    return AuthenticationResults(draw(_FREE), tuple(infos))


@robust(200)
@given(results_field())
def test_produced_fields_are_one_well_formed_field(ar: AuthenticationResults) -> None:
    """Whatever a signer or sender put in d=, i=, the MAIL FROM or a reason: our field is
    one header field (no bare CR/LF, continuation lines start with WSP) that parses."""
    for value in (ar.value(), ar.field().partition(":")[2]):
        assert "\x00" not in value
    one_line = ar.value()
    assert "\r" not in one_line and "\n" not in one_line
    folded = ar.field()
    for line in folded.split("\r\n")[1:]:
        assert line[:1] in (" ", "\t")
    assert "\r" not in folded.replace("\r\n", "") and "\n" not in folded.replace("\r\n", "")
    if not any(p.value == "" for r in ar.results for p in r.properties) and ar.authserv_id:
        parsed = parse(one_line)
        assert [(r.method, r.result) for r in parsed.results] == [
            (r.method, r.result) for r in ar.results
        ]


@pytest.mark.parametrize(
    "value",
    ['"a"b"@example.com', '"\\"@example.com', '"a\r\nX: y"@example.com', "a@example.com\n"],
)
def test_pvalues_that_are_not_a_clean_addr_spec_are_quoted(value: str) -> None:
    """A quoted local part was passed bare when it merely started and ended with '"', and
    "$" let a trailing newline through: the field then did not parse or was cut."""
    ar = AuthenticationResults(
        "mx.example.com", (ResInfo("dkim", "pass", None, (Property("header", "i", value),)),)
    )
    text = ar.value()
    assert "\n" not in text and "\r" not in text
    parsed = parse(text)
    assert parsed.results[0].properties[0].value.replace(" ", "") == (
        value.replace("\r\n", "").replace("\n", "").replace(" ", "")
    )


@robust(100)
@given(
    st.lists(st.sampled_from(["a", "b", "mail", "x-1", "é"]), max_size=9),
    st.sampled_from(DMARC_PIECES),
    st.sampled_from(["spf", "dkim"]),
    st.booleans(),
)
def test_identical_passing_identifier_always_passes(
    labels: list[str], extra_tag: str, method: str, at_author: bool
) -> None:
    """Whatever the record holds beyond v and p, and wherever on the walk it sits, a passing
    identifier identical to the Author Domain aligns (strict and relaxed alike); an
    unrelated one never does."""
    author = ".".join([*labels, "example.com"])
    r = MemoryResolver()
    record = f"v=DMARC1; p=reject; {extra_tag}"
    if not parse_record(record).is_dmarc or parse_record(record).classification is not (
        Classification.VALID
    ):
        return
    # DNS holds A-labels: the walk asks for _dmarc.xn--9ca.example.com, not the U-label.
    r.add(f"_dmarc.{to_ascii(author) if at_author else 'example.com'}", "TXT", record)
    same = (author, "pass")
    result = run(
        evaluate(author, same if method == "spf" else None, [same] * (method == "dkim"), r)
    )
    assert result.result is DmarcStatus.PASS, result.reasons
    other = ("example.net", "pass")
    result = run(evaluate(author, other, [other], r))
    assert result.result is DmarcStatus.FAIL, result.reasons
