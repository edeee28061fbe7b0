"""Record syntax (RFC 7208 §4.5, §4.6.1, §5, §6, §7.1): every error names its term and offset."""

from __future__ import annotations

import ipaddress

import pytest

from mailwright.spf import (
    Mechanism,
    Modifier,
    Qualifier,
    SpfSyntaxError,
    is_spf_record,
    parse_record,
)


def error(text: str) -> SpfSyntaxError:
    with pytest.raises(SpfSyntaxError) as info:
        parse_record(text)
    return info.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v=spf1", True),
        ("v=spf1 -all", True),
        ("V=SpF1 ~all", True),  # §4.5: case-insensitive
        ("v=spf10", False),  # §4.5: "v=spf10" does not match
        ("v=spf1mx", False),
        ("spf1 -all", False),
        ("", False),
    ],
)
def test_version_selection(text: str, expected: bool) -> None:
    assert is_spf_record(text) is expected


def test_terms_qualifiers_and_offsets() -> None:
    record = parse_record("v=spf1  +a -mx:example.com/24 ~ip4:192.0.2.0/24 ?all exp=x.%{d}")
    kinds = [(t.name, t.offset) for t in record.terms]
    assert kinds == [("a", 8), ("mx", 11), ("ip4", 30), ("all", 48), ("exp", 53)]
    a, mx, ip4, all_ = record.mechanisms
    assert a.qualifier is Qualifier.PASS
    assert mx.qualifier is Qualifier.FAIL and mx.cidr4 == 24 and mx.cidr6 is None
    assert ip4.qualifier is Qualifier.SOFTFAIL
    assert ip4.network == ipaddress.ip_network("192.0.2.0/24")
    assert all_.qualifier is Qualifier.NEUTRAL
    assert record.exp is not None and record.exp.value.text == "x.%{d}"
    assert record.has_all


def test_default_qualifier_is_pass() -> None:
    (mech,) = parse_record("v=spf1 mx").mechanisms
    assert mech.qualifier is Qualifier.PASS and mech.qualifier.result == "pass"


def test_trailing_spaces_are_allowed() -> None:
    # §4.5: record = version terms *SP
    assert len(parse_record("v=spf1 a -all   ").mechanisms) == 2


def test_dual_cidr_lengths() -> None:
    (mech,) = parse_record("v=spf1 a:mail.example.com/24//64").mechanisms
    assert (mech.cidr4, mech.cidr6) == (24, 64)
    assert mech.domain_spec is not None and mech.domain_spec.text == "mail.example.com"
    (mech,) = parse_record("v=spf1 mx//0").mechanisms
    assert (mech.cidr4, mech.cidr6, mech.domain_spec) == (None, 0, None)


def test_domain_spec_may_contain_colons_and_slashes() -> None:
    # §7.1: macro-literal is any visible character except "%".
    (mech,) = parse_record("v=spf1 a:foo:bar/baz.example.com").mechanisms
    assert mech.domain_spec is not None and mech.domain_spec.text == "foo:bar/baz.example.com"
    assert mech.cidr4 is None


def test_unknown_modifiers_are_kept_and_ignored() -> None:
    record = parse_record("v=spf1 moo.cow-far_out=man:dog/cat default=+ -all")
    assert [m.name for m in record.unknown_modifiers] == ["moo.cow-far_out", "default"]


@pytest.mark.parametrize(
    ("text", "term", "offset", "fragment"),
    [
        ("v=spf1 ip4:1.2.3.4 -all moo", "moo", 24, "unknown mechanism"),
        ("v=spf1 -all.", "-all.", 7, "unexpected '.'"),
        ("v=spf1 -all:foobar", "-all:foobar", 7, "takes no argument"),
        ("v=spf1 -all/8", "-all/8", 7, "takes no argument"),
        ("v=spf1 redirect:example.com", "redirect:example.com", 7, "unknown mechanism"),
        ("v=spf1 =all", "=all", 7, "missing mechanism name"),
        ("v=spf1 1up=foo", "1up=foo", 7, "unknown mechanism"),
        ("v=spf1 a/33", "a/33", 7, "over 32"),
        ("v=spf1 a//129", "a//129", 7, "over 128"),
        ("v=spf1 a/24/64", "a/24/64", 7, "bad CIDR length"),
        ("v=spf1 ip4:1.2.3.4/33", "ip4:1.2.3.4/33", 7, "over 32"),
        ("v=spf1 ip4:1.2.3.4/032", "ip4:1.2.3.4/032", 7, "bad CIDR"),
        ("v=spf1 ip4:1.2.3", "ip4:1.2.3", 7, "dotted-quad"),
        ("v=spf1 ip4:1.2.3.4:8080", "ip4:1.2.3.4:8080", 7, "dotted-quad"),
        ("v=spf1 ip4:01.2.3.4", "ip4:01.2.3.4", 7, "dotted-quad"),
        ("v=spf1 ip4", "ip4", 7, "needs ':'"),
        ("v=spf1 ip6::CAFE::BABE", "ip6::CAFE::BABE", 7, "not an IPv6"),
        ("v=spf1 ip6:::1.1.1.1//33", "ip6:::1.1.1.1//33", 7, "not an IPv6"),
        ("v=spf1 ip6:2001:db8::/129", "ip6:2001:db8::/129", 7, "over 128"),
        ("v=spf1 include", "include", 7, "needs ':'"),
        ("v=spf1 include:", "include:", 7, "empty domain-spec"),
        ("v=spf1 include:example.com/24", "include:example.com/24", 7, "top-level label"),
        ("v=spf1 exists", "exists", 7, "needs ':'"),
        ("v=spf1 ptr/0", "ptr/0", 7, "no CIDR"),
        ("v=spf1 a:foo-bar", "a:foo-bar", 7, "top-level label"),
        ("v=spf1 a:museum", "a:museum", 7, "top-level label"),
        ("v=spf1 a:museum.", "a:museum.", 7, "top-level label"),
        ("v=spf1 a:111.222.33.44", "a:111.222.33.44", 7, "top-level label"),
        ("v=spf1 a:example.-com", "a:example.-com", 7, "top-level label"),
        ("v=spf1 a:example.com:8080", "a:example.com:8080", 7, "top-level label"),
        ("v=spf1 exp=", "exp=", 7, "empty domain-spec"),
        ("v=spf1 redirect=-all", "redirect=-all", 7, "top-level label"),
        ("v=spf1 -all foo=%abc", "foo=%abc", 12, "'%' must be followed"),
        ("v=spf1 exists:%(ir).sbl.example.com", "exists:%(ir).sbl.example.com", 7, "'%'"),
        ("v=spf1 a:%{a}.example.com", "a:%{a}.example.com", 7, "unknown macro letter"),
        ("v=spf1 exp=%{r}.example.com", "exp=%{r}.example.com", 7, "only in explanation"),
        ("v=spf1 a:%{d0}.example.com", "a:%{d0}.example.com", 7, "must not be zero"),
        ("v=spf1 a:%{d.example.com", "a:%{d.example.com", 7, "unterminated"),
        ("v=spf1 exp=a.example.com exp=b.example.com", "exp=b.example.com", 25, "more than once"),
        (
            "v=spf1 redirect=a.example.com redirect=a.example.com",
            "redirect=a.example.com",
            30,
            "more than once",
        ),
    ],
)
def test_syntax_errors_name_term_and_offset(
    text: str, term: str, offset: int, fragment: str
) -> None:
    exc = error(text)
    assert exc.term == term
    assert exc.offset == offset
    assert text[exc.offset :].startswith(term)
    assert fragment in exc.message
    assert f"at offset {offset}" in str(exc)


@pytest.mark.parametrize(
    "text",
    [
        "v=spf1 a:ctrl.example.com\rptr -all",  # §4.6.1: terms are separated by SP only
        "v=spf1 ip4:192.0.2.5\n include:x.example.com ~all",
        "v=spf1 a:\ufeffgarbage.example.net -all",  # §3.1: 7-bit ASCII
        "v=spf1 \x80a:example.net -all",
        "v=spf1 a:example.net \x96all",
        "v=spf1 a:foo.example.com\0",
        "v=spf1 a:foo.example.com\t-all",
    ],
)
def test_control_and_non_ascii_characters_are_syntax_errors(text: str) -> None:
    exc = error(text)
    assert exc.term is not None and exc.offset is not None
    assert "not allowed" in exc.message


def test_mechanism_and_modifier_names_are_case_insensitive() -> None:
    record = parse_record("v=spf1 A:example.com MX IP4:192.0.2.1 -ALL Redirect=x.example.com")
    assert [t.name for t in record.terms] == ["a", "mx", "ip4", "all", "redirect"]
    assert isinstance(record.terms[-1], Modifier)
    assert all(isinstance(t, Mechanism) for t in record.terms[:-1])


def test_ip6_accepts_rfc4291_forms() -> None:
    for text in ("ip6:::1.1.1.1/0", "ip6:Cafe:Babe:8000::/33", "ip6:a::a", "ip6:::FFFF:1.2.3.4"):
        (mech,) = parse_record(f"v=spf1 {text}").mechanisms
        assert mech.network is not None and mech.network.version == 6


def test_not_an_spf_record() -> None:
    exc = error("v=spf10 -all")
    assert exc.term is None and "v=spf1" in str(exc)
