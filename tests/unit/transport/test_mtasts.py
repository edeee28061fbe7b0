"""RFC 8461: the TXT record (§3.1), the policy file (§3.2), MX matching (§4.1)."""

from __future__ import annotations

import pytest

from mailwright.mtasts import (
    MAX_AGE_LIMIT,
    MtaStsError,
    fresh,
    is_text_plain,
    mx_matches,
    parse_policy,
    parse_record,
    policy_host,
    record_name,
    select_record,
)

POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
    "mx: *.example.net\r\nmax_age: 604800\r\n"
)


def test_record_with_id() -> None:
    assert parse_record("v=STSv1; id=20160831085700Z;").id == "20160831085700Z"


def test_record_unknown_fields_are_ignored_and_order_is_free() -> None:
    assert parse_record("v=STSv1;ext=1;id=abc").id == "abc"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("id=abc; v=STSv1", "does not begin"),
        ("v=STSv1;", "no id"),
        ("v=STSv1; id=" + "a" * 33, "1-32"),
        ("v=STSv1; id=ab-c", "1-32"),
        ("v=STSv1; id", "malformed"),
        ("v=STSv1; id=é", "US-ASCII"),
    ],
)
def test_bad_records(text: str, why: str) -> None:
    with pytest.raises(MtaStsError, match=why):
        parse_record(text)


def test_first_id_counts() -> None:
    assert parse_record("v=STSv1; id=one; id=two").id == "one"


def test_select_discards_other_txt_records() -> None:
    assert select_record(["v=spf1 -all", "v=STSv1; id=x1"]).id == "x1"


def test_select_two_records_means_no_policy() -> None:
    with pytest.raises(MtaStsError, match="exactly one"):
        select_record(["v=STSv1; id=a", "v=STSv1; id=b"])


def test_select_no_record() -> None:
    with pytest.raises(MtaStsError, match="no TXT record"):
        select_record(["v=spf1 -all"])


def test_policy_parses() -> None:
    policy = parse_policy(POLICY)
    assert policy.mode == "enforce"
    assert policy.max_age == 604800
    assert policy.mx == ("mail.example.com", "*.example.net")


def test_policy_lf_line_ends_and_unknown_fields() -> None:
    policy = parse_policy("version: STSv1\nmode: testing\nfoo: bar baz\nmx: a.example\nmax_age: 5")
    assert policy.mode == "testing"


def test_policy_repeated_field_first_wins() -> None:
    text = "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 5\n"
    assert parse_policy(text).mode == "testing"


def test_policy_max_age_is_capped() -> None:
    text = "version: STSv1\nmode: none\nmax_age: 9999999999\n"
    assert parse_policy(text).max_age == MAX_AGE_LIMIT


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("mode: enforce\nmx: a.example\nmax_age: 5", "version"),
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 5", "version"),
        ("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 5", "mode"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901", "max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 5", "needs at least one mx"),
        ("version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 5", "mx"),
        ("version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 5", "mx"),
        ("<html>hello</html>", "not a 'key: value'"),
    ],
)
def test_bad_policies(text: str, why: str) -> None:
    with pytest.raises(MtaStsError, match=why):
        parse_policy(text)


@pytest.mark.parametrize(
    ("pattern", "host", "match"),
    [
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "MAIL.example.com.", True),
        ("*.example.com", "mail.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "foo.bar.example.com", False),
        ("mail.example.com", "other.example.com", False),
    ],
)
def test_mx_matching_section_4_1(pattern: str, host: str, match: bool) -> None:
    assert mx_matches(pattern, host) is match


def test_allows_mx() -> None:
    policy = parse_policy(POLICY)
    assert policy.allows_mx("a.example.net")
    assert not policy.allows_mx("evil.example.org")


def test_names_and_media_type() -> None:
    assert policy_host("Example.COM.") == "mta-sts.example.com"
    assert record_name("example.com") == "_mta-sts.example.com"
    assert is_text_plain("text/plain; charset=utf-8")
    assert not is_text_plain("text/html")
    assert not is_text_plain(None)


def test_freshness() -> None:
    assert fresh(1000.0, 60, 1059.0)
    assert not fresh(1000.0, 60, 1060.0)
