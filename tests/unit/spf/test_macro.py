"""The macro language (RFC 7208 §7), with the RFC's own expansion examples (§7.4)."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwright.dns import MemoryResolver
from mailwright.spf import (
    MacroContext,
    MacroSyntaxError,
    Result,
    check_host,
    expand,
    parse_domain_spec,
    parse_macro_string,
)
from mailwright.spf import macro as macro_module
from mailwright.spf.macro import MacroContextKind, expand_domain, split_sender, truncate_name

V4 = MacroContext(
    sender="strong-bad@email.example.com",
    domain="email.example.com",
    ip=ipaddress.ip_address("192.0.2.3"),
    helo="mx.example.org",
    receiver="mx.receiver.example",
    timestamp=1_700_000_000,
    validated_name="mx.example.org",
)
V6 = MacroContext(
    sender="strong-bad@email.example.com",
    domain="email.example.com",
    ip=ipaddress.ip_address("2001:db8::cb01"),
    helo="mx.example.org",
)


def x(text: str, ctx: MacroContext = V4, kind: MacroContextKind = MacroContextKind.EXPLAIN) -> str:
    return expand(parse_macro_string(text, kind), ctx)


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        # RFC 7208 §7.4, first table.
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        # second table
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ],
)
def test_rfc_examples(macro: str, expansion: str) -> None:
    assert x(macro, kind=MacroContextKind.DOMAIN) == expansion


def test_ipv6_i_macro_is_dotted_nibbles() -> None:
    # RFC 7208 §7.4, IPv6 example.
    assert x("%{ir}.%{v}._spf.%{d2}", V6) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
    )
    assert x("%{c}", V6) == "2001:db8::cb01"


def test_explanation_only_letters() -> None:
    assert x("%{c} %{r} %{t}") == "192.0.2.3 mx.receiver.example 1700000000"
    with pytest.raises(MacroSyntaxError, match="only in explanation"):
        parse_macro_string("%{c}.example.com", MacroContextKind.DOMAIN)


def test_p_macro_uses_validated_name_or_unknown() -> None:
    assert x("%{p}") == "mx.example.org"
    assert x("%{p2}") == "example.org"
    assert x("%{p}", V6) == "unknown"  # §7.3: no validated name → "unknown"


def test_special_escapes() -> None:
    # §7.1: "%%" → "%", "%_" → " ", "%-" → "%20".
    assert x("macro%%percent%_%_space%-url-space") == "macro%percent  space%20url-space"


def test_uppercase_macros_are_url_escaped() -> None:
    # §7.3: everything outside RFC 3986 "unreserved" is escaped.
    ctx = MacroContext(
        sender="~jack&jill=up-a_b3.c@e8.example.com",
        domain="e8.example.com",
        ip=ipaddress.ip_address("192.0.2.1"),
        helo="h",
    )
    assert x("%{L}", ctx) == "~jack%26jill%3Dup-a_b3.c"
    assert x("%{l}", ctx) == "~jack&jill=up-a_b3.c"


def test_multiple_delimiters_and_rejoin_with_dots() -> None:
    ctx = MacroContext(
        sender="foo-bar+zip+quux@e12.example.com",
        domain="e12.example.com",
        ip=ipaddress.ip_address("192.0.2.1"),
        helo="h",
    )
    assert x("%{l2r+-}", ctx) == "bar.foo"
    assert x("%{l+-}", ctx) == "foo.bar.zip.quux"


def test_more_digits_than_parts_keeps_all() -> None:
    assert x("%{d127}") == "email.example.com"
    assert x("%{d99999}") == "email.example.com"


def test_missing_local_part_is_postmaster() -> None:
    # §4.3: "If the <sender> has no local-part, substitute the string 'postmaster'".
    assert split_sender("@example.net") == ("postmaster", "example.net")
    assert split_sender("example.net") == ("postmaster", "example.net")
    assert split_sender("a@b@example.net") == ("a@b", "example.net")


def test_domain_truncation_and_trailing_dot() -> None:
    # §7.3: over 253 characters, labels are removed from the left.
    long = ".".join(["a" * 60] * 5) + ".example.com"
    assert len(long) > 253
    cut = truncate_name(long)
    assert len(cut) <= 253 and long.endswith(cut) and not cut.startswith(".")
    assert cut == ".".join(["a" * 60] * 3) + ".example.com"
    spec = parse_domain_spec("_spf.%{d2}.example.net.")
    assert expand_domain(spec, V4) == "_spf.example.com.example.net"  # trailing dot dropped


def _truncate_reference(name: str) -> str:
    """RFC 7208 §7.3 read literally: remove the leftmost label while over 253 characters."""
    while len(name) > 253 and "." in name:
        name = name.split(".", 1)[1]
    return name


@given(st.lists(st.text("ab", max_size=90), min_size=1, max_size=12).map(".".join))
def test_truncate_name_is_the_label_by_label_rule(name: str) -> None:
    assert truncate_name(name) == _truncate_reference(name)


_SPEC_PARTS = ["%{i}", "%{ir}", "%{d}", "%{l}", "%{h}.", "x.", "a" * 70, ".", "%{d2}.", "%{o1}"]


@given(
    st.lists(st.sampled_from(_SPEC_PARTS), max_size=40),
    st.sampled_from([".example", ".example.", "%{d}", "%{l}", "%{d}."]),
    st.sampled_from([V4, V6]),
)
def test_expand_domain_keeps_the_rfc_result(parts: list[str], end: str, ctx: MacroContext) -> None:
    # Expanding from the right and stopping early must give exactly the §7.3 name.
    spec = parse_macro_string("".join(parts) + end, MacroContextKind.DOMAIN)
    full = expand(spec, ctx)
    full = full[:-1] if full.endswith(".") else full
    assert expand_domain(spec, ctx) == _truncate_reference(full)


def test_expand_domain_stops_once_the_kept_name_is_decided(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 8000 IPv6 %{i} (63 characters each): only the last few can survive truncation.
    calls = 0
    real = macro_module._expand_one

    def counting(m: macro_module.MacroExpand, ctx: MacroContext) -> str:
        nonlocal calls
        calls += 1
        return real(m, ctx)

    monkeypatch.setattr(macro_module, "_expand_one", counting)
    name = expand_domain(parse_domain_spec("%{i}" * 8000 + ".example"), V6)
    assert len(name) <= 253 and name.endswith(".example")
    assert calls <= 5


async def test_hostile_macro_record_is_evaluated_quickly() -> None:
    # RFC 7208 §4.6.4: evaluation is bounded; a 32 KB record of "%{i}" must not stall the
    # event loop (it took seconds when truncation removed one label per pass).
    r = MemoryResolver()
    r.add("example.com", "TXT", "v=spf1 a:" + "%{i}" * 8000 + ".example -all")
    start = time.perf_counter()
    res = await check_host(
        "2001:db8::1", "example.com", "a@example.com", helo="h.example", resolver=r, timeout=1.0
    )
    elapsed = time.perf_counter() - start
    assert res.result is Result.FAIL  # the name does not exist: void lookup, then -all
    assert elapsed < 1.0
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    "text",
    ["%", "%x", "a%", "%{", "%{}", "%{z}", "%{d0}", "%{dq}", "%{d2x}", "%(d)", "sp ace"],
)
def test_bad_macro_strings(text: str) -> None:
    with pytest.raises(MacroSyntaxError):
        parse_macro_string(text, MacroContextKind.DOMAIN)


def test_explain_string_allows_spaces_but_not_non_ascii() -> None:
    assert x("The %{d} policy.") == "The email.example.com policy."
    with pytest.raises(MacroSyntaxError) as info:
        parse_macro_string("\ufeffExplanation", MacroContextKind.EXPLAIN)
    assert info.value.offset == 0


@pytest.mark.parametrize(
    "text", ["%{d}", "x.%{d}", "_spf.example.com", "example.com.", "foo.xn--zckzah", "a.b%%", "a%-"]
)
def test_valid_domain_specs(text: str) -> None:
    parse_domain_spec(text)


@pytest.mark.parametrize("text", ["", "com", "example.123", "example.-com", "%{d}com", "a.b-"])
def test_invalid_domain_specs(text: str) -> None:
    with pytest.raises(MacroSyntaxError):
        parse_domain_spec(text)


@given(
    st.lists(st.sampled_from([*_SPEC_PARTS, "%{c}", " ", "%_"]), max_size=40),
    st.integers(0, 600),
)
def test_expand_with_a_limit_is_the_prefix_of_the_full_expansion(
    parts: list[str], limit: int
) -> None:
    spec = parse_macro_string("".join(parts), MacroContextKind.EXPLAIN)
    assert expand(spec, V6, limit=limit) == expand(spec, V6)[:limit]


def test_explanation_expansion_stops_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # An exp= TXT record of 16000 "%{i}" (1 MB expanded) is cut to 400 characters
    # (evaluator.MAX_EXPLANATION): expanding the rest would be wasted work.
    calls = 0
    real = macro_module._expand_one

    def counting(m: macro_module.MacroExpand, ctx: MacroContext) -> str:
        nonlocal calls
        calls += 1
        return real(m, ctx)

    monkeypatch.setattr(macro_module, "_expand_one", counting)
    spec = parse_macro_string("%{i}" * 16000, MacroContextKind.EXPLAIN)
    assert len(expand(spec, V6, limit=400)) == 400
    assert calls <= 7
