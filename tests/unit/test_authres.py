"""Authentication-Results (RFC 8601): producing, parsing, stripping forged fields."""

from __future__ import annotations

import pytest

from mailwright.authres import (
    MAX_FIELD_LENGTH,
    MAX_REASON_LENGTH,
    MAX_RESULTS,
    AuthenticationResults,
    AuthResSyntaxError,
    Property,
    ResInfo,
    authserv_id_of,
    build,
    clean_reason,
    dkim_result,
    dmarc_result,
    format_pvalue,
    parse,
    quote,
    spf_result,
    strip_forged,
)
from mailwright.dkim.verifier import DkimResult, DkimStatus
from mailwright.dmarc import evaluate
from mailwright.dns import MemoryResolver
from mailwright.spf.result import Result, SpfResult

# --- parsing the RFC 8601 Appendix B examples -------------------------------------


def test_b2_none_with_version() -> None:
    parsed = parse(" example.org 1; none")
    assert parsed == AuthenticationResults("example.org", (), "1")


def test_b3_single_result() -> None:
    parsed = parse(" example.com;\r\n          spf=pass smtp.mailfrom=example.net")
    assert parsed.authserv_id == "example.com"
    assert parsed.results == (
        ResInfo("spf", "pass", None, (Property("smtp", "mailfrom", "example.net"),)),
    )


def test_b4_comment_after_result() -> None:
    parsed = parse(
        " example.com;\r\n   auth=pass (cram-md5) smtp.auth=sender@example.net;\r\n"
        "   spf=pass smtp.mailfrom=example.net"
    )
    auth, spf = parsed.results
    assert auth.comment == "cram-md5"
    assert auth.get("smtp", "auth") == "sender@example.net"
    assert spf.get("SMTP", "MailFrom") == "example.net"


def test_b6_reasons_and_header_i() -> None:
    parsed = parse(
        ' example.com;\n dkim=pass reason="good signature"\n   header.i=@mail-router.example.net;\n'
        ' dkim=fail reason="bad signature"\n   header.i=@newyork.example.com'
    )
    assert [(r.result, r.reason, r.get("header", "i")) for r in parsed.find("dkim")] == [
        ("pass", "good signature", "@mail-router.example.net"),
        ("fail", "bad signature", "@newyork.example.com"),
    ]


def test_b7_comment_heavy() -> None:
    parsed = parse(
        " foo.example.net (foobar) 1 (baz);\n"
        "    dkim (Because I like it) / 1 (One yay) = (wait for it) fail\n"
        "      policy (A dot can go here) . (like that) expired\n"
        "      (this surprised me) = (as I wasn't expecting it) 1362471462"
    )
    assert parsed.authserv_id == "foo.example.net"
    assert parsed.version == "1"
    (dkim,) = parsed.results
    assert (dkim.method, dkim.method_version, dkim.result) == ("dkim", "1", "fail")
    assert dkim.properties == (Property("policy", "expired", "1362471462"),)


def test_unknown_version_stops_parsing() -> None:
    parsed = parse("example.com 2; anything (at all) = goes")
    assert parsed == AuthenticationResults("example.com", (), "2")


def test_nested_comments_quoted_pairs_and_trailing_semicolon() -> None:
    parsed = parse("mx.example.com; spf=pass (a (nested \\) one)) smtp.mailfrom=example.com;")
    (spf,) = parsed.results
    assert spf.comment == "a (nested ) one)"


def test_quoted_authserv_id_and_quoted_local_part() -> None:
    parsed = parse('"mx example"; spf=pass smtp.mailfrom="john doe"@example.com')
    assert parsed.authserv_id == "mx example"
    assert parsed.results[0].get("smtp", "mailfrom") == '"john doe"@example.com'


def test_unquoted_base64_header_b_is_accepted() -> None:
    parsed = parse("mx.example.com; dkim=pass header.d=example.com header.b=ab/c+d=1")
    assert parsed.results[0].get("header", "b") == "ab/c+d=1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "expected an authserv-id"),
        ("example.com spf=pass", "expected ';'"),
        ("example.com; spf pass", "expected '='"),
        ("example.com; spf=pass smtp mailfrom=x", "expected '.'"),
        ("example.com; spf=pass smtp.mailfrom=", "empty value"),
        ("example.com; spf=pass (unterminated", "unterminated comment"),
        ('example.com; spf=pass reason="open', "unterminated quoted string"),
        ("example.com; =pass", "expected a method name"),
        ("example.com; dkim/=pass", "expected a method version"),
        ("example.com; spf=pass; ;", "expected a method name"),
    ],
)
def test_syntax_errors(value: str, message: str) -> None:
    with pytest.raises(AuthResSyntaxError, match=message):
        parse(value)


def test_bounded_input() -> None:
    with pytest.raises(AuthResSyntaxError, match="longer than"):
        parse("a; " + "x" * MAX_FIELD_LENGTH)
    many = "a; " + "; ".join(["spf=pass"] * (MAX_RESULTS + 1))
    with pytest.raises(AuthResSyntaxError, match="more than"):
        parse(many)


# --- quoting ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", "example.com"),
        ("mx example", '"mx example"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a;b", '"a;b"'),
        ("", '""'),
    ],
)
def test_quote(value: str, expected: str) -> None:
    assert quote(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", "example.com"),
        ("user@example.com", "user@example.com"),
        ("@example.com", "@example.com"),
        ('"john doe"@example.com', '"john doe"@example.com'),
        ("ab/cd+=", '"ab/cd+="'),
        ("rsa-sha256", "rsa-sha256"),
        ("user@sel_1.example", "user@sel_1.example"),  # a DNS name: underscores are fine
        ("a@-x.example", '"a@-x.example"'),  # not a DNS name: a quoted value
    ],
)
def test_pvalue_formatting(value: str, expected: str) -> None:
    assert format_pvalue(value) == expected


# --- producing --------------------------------------------------------------------


def test_spf_result_reports_only_the_domain() -> None:
    info = spf_result("pass", mailfrom="bounce+x@example.com")
    assert info.format() == "spf=pass smtp.mailfrom=example.com"


def test_spf_result_from_spf_objects() -> None:
    mailfrom = SpfResult(Result.FAIL, "192.0.2.1", "example.com", "a@example.com", "h", "mailfrom")
    assert spf_result(mailfrom).format() == "spf=fail smtp.mailfrom=example.com"
    helo = SpfResult(
        Result.NONE, "192.0.2.1", "mx.example.net", "", "mx.example.net", "helo", problem="none"
    )
    assert spf_result(helo).format() == 'spf=none reason="none" smtp.helo=mx.example.net'


def test_explicit_identity_wins_over_the_spf_object() -> None:
    # A null reverse path: SPF checked postmaster@HELO as the mailfrom identity, and
    # the caller chooses to report it as smtp.helo.
    spf = SpfResult(Result.PASS, "192.0.2.1", "mx.example.net", "", "mx.example.net", "mailfrom")
    assert spf_result(spf, helo="mx.example.net").format() == "spf=pass smtp.helo=mx.example.net"
    assert spf_result(spf).format() == "spf=pass smtp.mailfrom=mx.example.net"


def test_dkim_result_from_dkim_object() -> None:
    result = DkimResult(
        DkimStatus.FAIL,
        "body hash mismatch",
        0,
        "example.com",
        "s1",
        "rsa-sha256",
        "@example.com",
        header_b="AbC/dEf+GhIjKl",
    )
    assert dkim_result(result).format() == (
        'dkim=fail reason="body hash mismatch" header.d=example.com header.i=@example.com '
        'header.s=s1 header.a=rsa-sha256 header.b="AbC/dEf+"'
    )


async def test_dmarc_result_with_testing_policy() -> None:
    resolver = MemoryResolver().add("_dmarc.example.com", "TXT", "v=DMARC1; p=reject; t=y")
    failed = await evaluate("example.com", ("evil.example", "pass"), [], resolver)
    info = dmarc_result(failed)
    assert info.format() == (
        "dmarc=fail (p=reject t=y dis=quarantine) header.from=example.com policy.dmarc=quarantine"
    )
    passed = await evaluate("example.com", None, [("example.com", "pass")], resolver)
    assert dmarc_result(passed).get("policy", "dmarc") == "quarantine"


async def test_dmarc_none_has_no_policy() -> None:
    none = await evaluate("example.org", None, [], MemoryResolver())
    assert dmarc_result(none).format() == "dmarc=none header.from=example.org"


async def test_build_folds_and_parses_back() -> None:
    resolver = MemoryResolver().add("_dmarc.example.com", "TXT", "v=DMARC1; p=reject")
    result = await evaluate("example.com", None, [("example.com", "pass")], resolver)
    field = build(
        "mx.example.net",
        spf=spf_result("softfail", mailfrom="bounce@example.com"),
        dkim=[dkim_result("pass", domain="example.com", selector="s2026", header_b="abcdefghij")],
        dmarc=result,
    )
    text = field.field()
    lines = text.split("\r\n")
    assert lines[0] == "Authentication-Results: mx.example.net;"
    assert all(line.startswith("\t") for line in lines[1:])
    assert all(len(line) <= 78 for line in lines)
    assert parse(text.split(":", 1)[1]) == field
    assert parse(field.value()) == field


def test_build_without_signatures_reports_dkim_none() -> None:
    field = build("mx.example.net", spf=spf_result("pass", mailfrom="example.com"))
    assert field.value() == "mx.example.net; spf=pass smtp.mailfrom=example.com; dkim=none"


def test_no_results_is_none() -> None:
    assert AuthenticationResults("mx.example.net").field() == (
        "Authentication-Results: mx.example.net; none"
    )


def test_long_result_is_folded_between_words() -> None:
    info = ResInfo("dkim", "fail", "x" * 40, (Property("header", "d", "a" * 50 + ".example"),))
    text = AuthenticationResults("mx.example.net", (info,)).field()
    assert all(len(line) <= 78 for line in text.split("\r\n")[:-1])
    assert parse(text.split(":", 1)[1]).results == (info,)


# --- removing forged fields (RFC 8601 §5) -----------------------------------------------


MESSAGE = (
    b"Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=evil.example\r\n"
    b"Received: from a by b\r\n"
    b"Authentication-Results: other.example;\r\n\tdkim=pass header.d=other.example\r\n"
    b"Authentication-Results: MX.Example.COM;\r\n dkim=pass\r\n"
    b"Subject: hi\r\n"
    b"\r\n"
    b"Authentication-Results: mx.example.com; this is the body\r\n"
)


def test_strip_forged_removes_ours_only() -> None:
    stripped, count = strip_forged(MESSAGE, "mx.example.com")
    assert count == 2
    assert stripped == (
        b"Received: from a by b\r\n"
        b"Authentication-Results: other.example;\r\n\tdkim=pass header.d=other.example\r\n"
        b"Subject: hi\r\n"
        b"\r\n"
        b"Authentication-Results: mx.example.com; this is the body\r\n"
    )


def test_strip_forged_last_header_field_and_lf_only() -> None:
    message = b"Subject: x\nAuthentication-Results: mx.example.com; none\n\nbody\n"
    assert strip_forged(message, ["mx.example.com"]) == (b"Subject: x\n\nbody\n", 1)


def test_strip_forged_removes_unparsable_and_keeps_headers_only_messages() -> None:
    message = b"Authentication-Results: ;;;\r\nSubject: x\r\n"
    assert strip_forged(message, "mx.example.com") == (b"Subject: x\r\n", 1)


def test_strip_forged_leaves_the_body_of_a_message_without_header() -> None:
    """RFC 5322 §2.1: a message that starts with the empty line is all body."""
    message = b"\r\nAuthentication-Results: mx.example.com; none\r\n\r\nmore\r\n"
    assert strip_forged(message, "mx.example.com") == (message, 0)


def test_strip_forged_compares_a_labels_and_u_labels() -> None:
    message = b"Authentication-Results: xn--bcher-kva.example; none\r\n\r\n"
    assert strip_forged(message, "b\u00fccher.example")[1] == 1


def test_nothing_to_strip() -> None:
    message = b"Subject: x\r\n\r\nbody"
    assert strip_forged(message, "mx.example.com") == (message, 0)


def test_authserv_id_of() -> None:
    assert authserv_id_of(" (c) mx.example.com; garbage (") == "mx.example.com"
    assert authserv_id_of("  ") is None


def test_mutated_fields_only_raise_syntax_errors() -> None:
    """Valid fields with random edits: a syntax error with an offset, or a result that
    formats back to the same parse (so the formatter never emits what it cannot read)."""
    import random

    rng = random.Random(8601)
    seeds = [
        "mx.example.com; spf=pass smtp.mailfrom=example.com; dkim=pass header.d=example.com",
        'example.com; dkim=fail reason="bad sig" header.i=@a.example header.b="ab/c+="',
        "foo.example.net (c) 1 (d); dkim/1=fail policy.expired=1362471462",
        'x; spf=pass smtp.mailfrom="john doe"@example.com; dmarc=fail (p=reject) header.from=x',
    ]
    alphabet = 'ab.=;()"\\/@ \t\r\n1\u00e9'
    parsed_count = 0
    for _ in range(4000):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(text) + 1)
            action = rng.random()
            if action < 0.4:
                text.insert(pos, rng.choice(alphabet))
            elif action < 0.7 and pos < len(text):
                del text[pos]
            elif pos < len(text):
                text[pos] = rng.choice(alphabet)
        value = "".join(text)
        try:
            parsed = parse(value)
        except AuthResSyntaxError as exc:
            assert 0 <= exc.offset <= len(value)
        else:
            parsed_count += 1
            assert parse(parsed.value()) == parsed, value
    assert parsed_count > 500


async def test_dmarc_result_with_reason() -> None:
    resolver = MemoryResolver().add("_dmarc.example.com", "TXT", "v=DMARC1; p=reject")
    failed = await evaluate("example.com", None, [], resolver)
    info = dmarc_result(failed, with_reason=True)
    assert info.reason == failed.reason
    assert "no SPF or DKIM result" in (info.reason or "")
    assert dmarc_result(failed).reason is None


# --- RFC 8601 §5: fields with a version we do not support ---------------------------
# §5 (last paragraph): "An MTA SHOULD remove any instance of this header field bearing a
# version (express or implied) that it does not support. However, an MTA MUST remove
# such a header field if the SMTP connection relaying the message is not from a trusted
# internal MTA." That holds whatever the authserv-id; strip_forged runs on mail from
# outside (inbound.apply_verdict), so it removes them.


@pytest.mark.parametrize(
    "field",
    [
        b"Authentication-Results: relay.example 2; dmarc=pass header.from=bank.example\r\n",
        b"Authentication-Results: relay.example (c) 9 ; anything at all {\r\n",
        b"Authentication-Results: relay.example\r\n\t3;\r\n\tdkim=pass header.d=bank.example\r\n",
    ],
)
def test_strip_forged_removes_unsupported_versions_of_any_authserv_id(field: bytes) -> None:
    message = field + b"From: a@bank.example\r\nSubject: x\r\n\r\nbody\r\n"
    stripped, count = strip_forged(message, "mx.ours.example")
    assert count == 1
    assert stripped == b"From: a@bank.example\r\nSubject: x\r\n\r\nbody\r\n"


@pytest.mark.parametrize(
    "value",
    [
        b"relay.example 1; dkim=pass header.d=bank.example",
        b"relay.example 01; dkim=pass header.d=bank.example",  # 1*DIGIT: still version 1
        b"relay.example; dkim=pass header.d=bank.example",  # no version: 1 is implied
        b"relay2.example; dkim=pass",  # digits inside the authserv-id are no version
        b"relay.example (unterminated comment; dkim=pass",  # no version to be read
    ],
)
def test_strip_forged_keeps_other_parties_version_1_fields(value: bytes) -> None:
    message = b"Authentication-Results: " + value + b"\r\nSubject: x\r\n\r\nbody\r\n"
    assert strip_forged(message, "mx.ours.example") == (message, 0)


def test_consumers_see_an_unknown_version_as_unsupported() -> None:
    # §2.6: what follows an unknown version may be in any format; the field is ignored.
    assert not parse("relay.example 2; dmarc=pass header.from=bank.example").supported
    assert parse("relay.example 1; none").supported
    assert parse("relay.example 01; none").supported
    assert parse("relay.example; spf=pass smtp.mailfrom=example.net").supported


# --- RFC 5322 §2.1.1 line lengths, RFC 8601 §2.2 reasons ----------------------------


def _lines(field: str) -> list[str]:
    return field.split("\r\n")


def test_a_hostile_spf_problem_gives_a_short_ascii_reason_and_lines_under_998() -> None:
    # The review's case: an SPF permerror whose problem text quotes a 3000-character term.
    problem = "syntax error in the SPF record: 'ip4:" + "1" * 3000 + "' is not an address"
    spf = SpfResult(
        Result.PERMERROR, "192.0.2.1", "evil.example", "a@evil.example", "h", "mailfrom",
        problem=problem,
    )  # fmt: skip
    field = build("mx.example.com", spf=spf).field()
    assert max(len(line) for line in _lines(field)) <= 998
    info = parse(field.partition(":")[2]).results[0]
    assert info.reason is not None and len(info.reason) <= MAX_REASON_LENGTH
    assert info.reason.startswith("syntax error in the SPF record: 'ip4:111")
    assert info.reason.endswith("...")
    # Every line but the one holding the (unbreakable) quoted reason stays under 78.
    assert [line for line in _lines(field) if len(line) >= 78] == [
        f"\t  reason={quote(info.reason, always=True)}"
    ]


def test_non_ascii_and_control_characters_in_reasons_are_escaped() -> None:
    assert clean_reason("character 'é' is not allowed\r\n\there\x00") == (
        "character '\\xe9' is not allowed here\\x00"
    )
    spf = SpfResult(
        Result.PERMERROR, "192.0.2.1", "evil.example", "a@evil.example", "h", "mailfrom",
        problem="character 'é' is not allowed in a record",
    )  # fmt: skip
    field = build("mx.example.com", spf=spf).field()
    assert field.isascii()
    assert parse(field.partition(":")[2]).results[0].reason == (
        "character '\\xe9' is not allowed in a record"
    )
    dkim = DkimResult(DkimStatus.PERMERROR, "key p= is not base64: «€»", 0, "example.com")
    assert dkim_result(dkim).reason == "key p= is not base64: \\xab\\u20ac\\xbb"


def test_folding_never_breaks_inside_a_quoted_string() -> None:
    # A reason with many spaces, longer than a line: folding between its words would
    # put CRLF + indent inside the quotes and change the value a reader unfolds.
    reason = " ".join(["word"] * 30)
    info = ResInfo(
        "dkim", "fail", reason, (Property("header", "i", '"a b c d e"@example.com'),),
        comment="a (comment) with spaces " * 3,
    )  # fmt: skip
    field = AuthenticationResults("mx.example.com", (info,)).field()
    for line in _lines(field):
        assert line.count('"') % 2 == 0, line  # each quoted string ends on its own line
        assert line.count("(") == line.count(")"), line
    parsed = parse(field.partition(":")[2]).results[0]
    assert parsed.reason == reason
    assert parsed.get("header", "i") == '"a b c d e"@example.com'


def test_no_line_over_998_whatever_the_result_holds() -> None:
    info = ResInfo(
        "dkim", "fail", "x " * 3000, (
            Property("header", "d", "example.com"),
            Property("header", "i", "a" * 2000 + "@example.com"),
        ),
        comment="(" * 1500,
    )  # fmt: skip
    field = AuthenticationResults("mx.example.com", (info,)).field()
    assert max(len(line) for line in _lines(field)) <= 998
    parsed = parse(field.partition(":")[2]).results[0]
    assert parsed.reason is not None and parsed.reason.endswith("...")
    # A cut identity would be another identity: the over-long header.i is left out.
    assert parsed.properties == (Property("header", "d", "example.com"),)


def test_ordinary_fields_fold_under_78() -> None:
    dkim = DkimResult(
        DkimStatus.FAIL, "body hash mismatch", 0, "example.com", "s1", "rsa-sha256",
        "@example.com", header_b="AbC/dEf+GhIjKl",
    )  # fmt: skip
    spf = SpfResult(Result.PASS, "192.0.2.1", "example.com", "a@example.com", "h", "mailfrom")
    field = build("mx.example.com", spf=spf, dkim=[dkim, dkim]).field()
    assert max(len(line) for line in _lines(field)) < 78
