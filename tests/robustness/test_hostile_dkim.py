"""DKIM (RFC 6376) under hostile messages and key records: verify_message always returns
one result per signature and never raises; the tag-list and key-record parsers raise only
their own errors; work is bounded for many signatures, huge fields and absurd tags."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from robust_support import mixed_text, mutate, robust, run, timed

from mailwright.dkim import (
    DEFAULT_MAX_SIGNATURES,
    DkimStatus,
    KeyRecordError,
    SigningKey,
    dns_record_value,
    generate_key,
    parse_key_record,
    sign_message,
    verify_message,
)
from mailwright.dkim.tags import TagSyntaxError, parse_tag_list
from mailwright.dns import MemoryResolver, Outcome

ED = SigningKey.from_key("example.com", "ed", generate_key("ed25519"))
RSA = SigningKey.from_key("example.com", "rsa", generate_key("rsa", 1024))
NOW = 1_800_000_000

MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: hello\r\n"
    b"Date: Tue, 24 Nov 2026 19:00:00 +0000\r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"\r\n"
    b"Hi Bob,\r\n  trailing  \r\n\r\n\r\n"
)
SIGNED = sign_message(MESSAGE, [ED, RSA], timestamp=NOW - 10) + MESSAGE

TAG_PIECES = [
    "v=1",
    "v=DKIM1",
    "a=rsa-sha256",
    "a=ed25519-sha256",
    "a=rsa-sha1",
    "c=relaxed/simple",
    "c=nonsense",
    "d=example.com",
    "s=ed",
    "s=rsa",
    "h=from:to",
    "h=",
    "bh=",
    "b=",
    "l=0",
    "l=99999999999999999999999",
    "t=1",
    "x=0",
    "i=@example.com",
    "i=x@sub.example.com",
    "k=rsa",
    "k=ed25519",
    "p=",
    "p=MIIB",
    "t=y:s",
    "q=dns/txt",
    "z=From:a|To:b",
    "=",
    ";",
    "; ",
    " ",
    "\r\n\t",
]


@robust(1000)
@given(mixed_text(TAG_PIECES))
def test_tag_list_parser_raises_only_tag_syntax_error(text: str) -> None:
    try:
        tags = parse_tag_list(text)
    except TagSyntaxError:
        return
    for name, (start, end) in tags.spans.items():
        assert 0 <= start <= end <= len(text)
        assert tags[name] == text[start:end].strip(" \t\r\n")


@st.composite
def key_record(draw: st.DrawFn) -> str:
    der = draw(
        st.sampled_from(
            [
                b"",
                base64.b64decode(dns_record_value(ED.private_key).split("p=")[1]),
                base64.b64decode(dns_record_value(RSA.private_key).split("p=")[1]),
                b"\x30\x82\x01\x22",
                b"\x00" * 32,
                b"\x30" * 3000,
            ]
        )
    )
    der = draw(st.one_of(st.just(der), mutate(der) if der else st.binary(max_size=64)))
    p = base64.b64encode(der).decode()
    if draw(st.booleans()):
        p = draw(mutate(p.encode())).decode("latin-1")
    tags = draw(st.lists(st.sampled_from(TAG_PIECES), max_size=5))
    tags.insert(draw(st.integers(0, len(tags))), f"p={p}")
    return draw(st.sampled_from(["; ", ";", ";\r\n\t"])).join(tags)


@robust(250)
@given(st.one_of(key_record(), mixed_text(TAG_PIECES)))
def test_key_record_parser_raises_only_key_record_error(text: str) -> None:
    try:
        record = parse_key_record(text)
    except KeyRecordError as exc:
        assert str(exc)
        return
    assert record.key_type in ("rsa", "ed25519")


def _resolver(*records: str, outcome: Outcome | None = None) -> MemoryResolver:
    r = MemoryResolver()
    for selector, key in (("ed", ED), ("rsa", RSA)):
        name = f"{selector}._domainkey.example.com"
        if outcome is not None:
            r.fail(name, "TXT", outcome)
        elif records:
            for text in records:
                r.add(name, "TXT", text)
        else:
            r.add(name, "TXT", dns_record_value(key.private_key))
    return r


def _check_results(message: bytes, results: list[object]) -> None:
    count = message.lower().count(b"dkim-signature")
    assert len(results) <= count
    for index, result in enumerate(results):
        assert result.status in set(DkimStatus)  # type: ignore[attr-defined]
        assert isinstance(result.reason, str)  # type: ignore[attr-defined]
        assert result.index == index  # type: ignore[attr-defined]


def test_the_unmutated_message_passes() -> None:
    results = run(verify_message(SIGNED, _resolver(), now=NOW))
    assert [r.status for r in results] == [DkimStatus.PASS, DkimStatus.PASS]


@robust(200)
@given(mutate(SIGNED))
def test_mutated_signed_messages_always_get_results(message: bytes) -> None:
    results = run(verify_message(message, _resolver(), now=NOW))
    _check_results(message, results)


@robust(150)
@given(st.lists(key_record(), min_size=1, max_size=2))
def test_hostile_key_records_give_results(records: list[str]) -> None:
    results = run(verify_message(SIGNED, _resolver(*records), now=NOW))
    assert len(results) == 2
    _check_results(SIGNED, results)
    for result in results:
        assert result.status in (
            DkimStatus.PASS,
            DkimStatus.FAIL,
            DkimStatus.PERMERROR,
            DkimStatus.POLICY,
        )


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.SERVFAIL, Outcome.NXDOMAIN])
def test_dns_failures_are_temperror_or_permerror(outcome: Outcome) -> None:
    results = run(verify_message(SIGNED, _resolver(outcome=outcome), now=NOW))
    expected = DkimStatus.PERMERROR if outcome is Outcome.NXDOMAIN else DkimStatus.TEMPERROR
    assert [r.status for r in results] == [expected, expected]


@robust(300)
@given(
    st.lists(
        st.lists(st.sampled_from(TAG_PIECES), max_size=12).map("; ".join),
        min_size=1,
        max_size=4,
    ),
    st.binary(max_size=200),
)
def test_random_signature_fields_give_results(fields: list[str], body: bytes) -> None:
    message = b"".join(b"DKIM-Signature: " + f.encode() + b"\r\n" for f in fields) + MESSAGE
    message += body
    results = run(verify_message(message, _resolver(), now=NOW))
    assert len(results) == len(fields)
    _check_results(message, results)


def test_a_hundred_signatures_are_bounded() -> None:
    """Only DEFAULT_MAX_SIGNATURES are evaluated; the rest are neutral, quickly."""
    one = sign_message(MESSAGE, [ED], timestamp=NOW - 10)
    message = one * 100 + MESSAGE
    resolver = _resolver()
    with timed(5.0):
        results = run(verify_message(message, resolver, now=NOW))
    assert len(results) == 100
    assert [r.status for r in results[:DEFAULT_MAX_SIGNATURES]] == [DkimStatus.PASS] * 10
    assert {r.status for r in results[DEFAULT_MAX_SIGNATURES:]} == {DkimStatus.NEUTRAL}
    assert len(resolver.queries) == 1  # one key lookup shared by every signature


def test_ten_megabyte_header_line_is_bounded() -> None:
    huge = b"X-Junk: " + b"a" * 10_000_000 + b"\r\n"
    message = sign_message(MESSAGE, [ED], timestamp=NOW - 10) + huge + MESSAGE
    with timed(10.0):
        results = run(verify_message(message, _resolver(), now=NOW))
    assert [r.status for r in results] == [DkimStatus.PASS]


def test_ten_megabyte_signature_field_is_bounded() -> None:
    field = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=rsa; h=from; bh=; b=" + (
        b"A" * 10_000_000
    )
    with timed(10.0):
        results = run(verify_message(field + b"\r\n" + MESSAGE, _resolver(), now=NOW))
    assert len(results) == 1
    assert results[0].status in (DkimStatus.PERMERROR, DkimStatus.FAIL)


def test_h_tag_with_ten_thousand_names_is_bounded() -> None:
    """h= naming From 10 000 times: header selection must not go quadratic."""
    many = ":".join(["from"] * 10_000)
    field = (
        f"DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=ed; c=relaxed/relaxed; "
        f"h={many}; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA"
    ).encode()
    message = field + b"\r\n" + b"From: a@example.com\r\n" * 2000 + b"\r\n"
    with timed(10.0):
        results = run(verify_message(message, _resolver(), now=NOW))
    assert len(results) == 1
    assert results[0].status in (DkimStatus.FAIL, DkimStatus.PERMERROR, DkimStatus.POLICY)


def test_header_only_and_empty_messages() -> None:
    for message in (b"", b"\r\n", b"DKIM-Signature:", b"DKIM-Signature: \r\n", SIGNED[:200]):
        results = run(verify_message(message, _resolver(), now=NOW))
        _check_results(message, results)


# --- sign → verify round trip over arbitrary messages --------------------------------------

_FIELD_NAME = st.sampled_from(["Subject", "To", "Cc", "X-A", "Reply-To", "Date", "subject"])
_FIELD_VALUE = st.lists(
    st.sampled_from(["a", " ", "  ", "\t", "\r\n ", "\r\n\t", "é", ":", ";", "=", "x" * 80]),
    max_size=12,
).map("".join)
_BODY = st.lists(
    st.sampled_from([b"line", b" ", b"\t", b"\r\n", b"\n", b"\r", b"  \r\n", b"\xc3\xa9", b"."]),
    max_size=30,
).map(b"".join)


@robust(250)
@given(
    st.lists(st.tuples(_FIELD_NAME, _FIELD_VALUE), max_size=6),
    _BODY,
    st.sampled_from([("relaxed", "relaxed"), ("simple", "simple"), ("relaxed", "simple")]),
)
def test_what_we_sign_verifies(
    fields: list[tuple[str, str]], body: bytes, canonicalization: tuple[str, str]
) -> None:
    """Any message we accept for signing verifies with our own key, under every
    canonicalization: catches canonicalization mismatches between signer and verifier."""
    head = b"From: a@example.com\r\n" + b"".join(
        f"{name}:{value}\r\n".encode() for name, value in fields
    )
    message = head + b"\r\n" + body
    signature = sign_message(message, [ED], canonicalization=canonicalization, timestamp=NOW)
    results = run(verify_message(signature + message, _resolver(), now=NOW))
    assert [r.status for r in results] == [DkimStatus.PASS], results[0].reason
