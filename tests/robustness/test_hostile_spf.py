"""SPF (RFC 7208) under hostile records: the parser raises only its syntax errors, the
macro expander only MacroSyntaxError, and check_host() always ends in one of the seven
results within the lookup limits (§4.6.4) — include loops, redirect chains, void-lookup
floods and broken DNS included."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from robust_support import mixed_text, robust, run, timed

from mailwright.dns import MemoryResolver, Outcome
from mailwright.spf import (
    MAX_DNS_TERMS,
    MacroContext,
    MacroSyntaxError,
    Result,
    SpfResult,
    SpfSyntaxError,
    check_host,
    check_mail_from,
    expand,
    parse_domain_spec,
    parse_macro_string,
    parse_record,
    received_spf,
)
from mailwright.spf.macro import MacroContextKind, expand_domain

NAMES = ["example.com", "a.example", "b.example", "c.example", "loop.example"]
TERMS = [
    "v=spf1",
    " ",
    "a",
    "mx",
    "ptr",
    "ip4:",
    "ip6:",
    "all",
    "-all",
    "~all",
    "?all",
    "+all",
    "include:",
    "exists:",
    "redirect=",
    "exp=",
    "a:",
    "mx:",
    "/24",
    "//64",
    "/33",
    "192.0.2.1",
    "2001:db8::1",
    "%{i}",
    "%{ir}",
    "%{d2}",
    "%{l-}",
    "%{s}",
    "%{h}",
    "%{p}",
    "%{c}",
    "%{r}",
    "%{t}",
    "%{v}",
    "%{o}",
    "%{i9999999999r.}",
    "%%",
    "%_",
    "%-",
    *NAMES,
    ".",
    "..",
    "x" * 64,
]

record_text = st.one_of(
    mixed_text(TERMS, max_size=40),
    st.lists(st.sampled_from(TERMS), max_size=40).map(" ".join),
    st.lists(st.sampled_from(TERMS), max_size=40).map(lambda t: "v=spf1 " + " ".join(t)),
)

SEVEN = set(Result)


@robust(1000)
@given(record_text)
def test_parse_record_raises_only_spf_syntax_error(text: str) -> None:
    try:
        record = parse_record(text)
    except SpfSyntaxError as exc:
        assert exc.offset is None or 0 <= exc.offset <= len(text)
        assert str(exc)
        return
    assert all(str(term) for term in record.terms)


@robust(600)
@given(mixed_text(TERMS, max_size=20), st.sampled_from(list(MacroContextKind)))
def test_macro_parse_and_expand_raise_only_macro_syntax_error(
    text: str, kind: MacroContextKind
) -> None:
    ctx = MacroContext(
        sender="us\u00e9r.a.b@example.com",
        domain="example.com",
        ip=ipaddress.ip_address("2001:db8::1"),
        helo="h\u00e9lo.example",
        timestamp=1_700_000_000,
    )
    try:
        spec = parse_macro_string(text, kind)
    except MacroSyntaxError as exc:
        assert 0 <= exc.offset <= len(text)
        return
    out = expand(spec, ctx)
    assert isinstance(out, str)
    # §7.3: the expansion of a macro is bounded by its input; no blow-up from "r" or digits.
    assert len(out) <= 1000 + 100 * len(text)
    try:
        domain_spec = parse_domain_spec(text)
    except MacroSyntaxError:
        return
    assert len(expand_domain(domain_spec, ctx)) <= 253 or "." not in expand_domain(domain_spec, ctx)


def _name_record() -> st.SearchStrategy[str]:
    target = st.sampled_from([*NAMES, "%{d}", "%{i}.%{d}", "nx.example", "x" * 70 + ".example"])
    term = st.one_of(
        st.sampled_from(["a", "mx", "ptr", "-all", "~all", "?all", "ip4:192.0.2.0/24", "exp=x"]),
        target.map(lambda t: f"include:{t}"),
        target.map(lambda t: f"redirect={t}"),
        target.map(lambda t: f"exists:{t}"),
        target.map(lambda t: f"a:{t}/24"),
        target.map(lambda t: f"mx:{t}"),
    )
    return st.lists(term, max_size=15).map(lambda t: "v=spf1 " + " ".join(t))


@st.composite
def dns_world(draw: st.DrawFn) -> MemoryResolver:
    r = MemoryResolver()
    for name in NAMES:
        for _ in range(draw(st.integers(0, 2))):  # 0: none, 2: multiple records → permerror
            r.add(name, "TXT", draw(st.one_of(_name_record(), record_text)))
        if draw(st.booleans()):
            r.add(name, "A", draw(st.sampled_from(["192.0.2.1", "198.51.100.7"])))
        for i in range(draw(st.integers(0, 12))):  # more than 10 MX names: §4.6.4 limit
            r.add(name, "MX", (i, draw(st.sampled_from([*NAMES, f"mx{i}.example"]))))
        failure = draw(st.sampled_from([None, Outcome.TIMEOUT, Outcome.SERVFAIL]))
        if failure is not None:
            r.fail(name, draw(st.sampled_from(["TXT", "A", "MX", "AAAA"])), failure)
    r.add("1.2.0.192.in-addr.arpa", "PTR", "a.example")
    return r


@robust(150)
@given(
    dns_world(),
    st.sampled_from(["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1%eth0"]),
    st.sampled_from(["a@example.com", "@example.com", "%{x}@a.example", "\u00e9@b.example", ""]),
    st.sampled_from(["example.com", "", "helo", "x" * 300, "é.example"]),
)
def test_check_host_always_one_of_seven_results_bounded(
    world: MemoryResolver, ip: str, sender: str, helo: str
) -> None:
    with timed(5.0):
        result = run(check_mail_from(ip, sender, helo, world, timeout=5.0))
    assert result.result in SEVEN
    assert result.lookups <= MAX_DNS_TERMS + 1  # the term that went over is counted
    # Bounded work: the 10 DNS terms, each at most 10 MX/PTR names × A+AAAA, the TXT
    # of includes/redirects and one exp= — a sequential worst case, not unbounded.
    assert len(world.queries) <= 1 + MAX_DNS_TERMS * (2 + 10 * 2) + 2


@robust(50)
@given(st.integers(2, 30))
def test_include_and_redirect_loops_end_in_permerror(length: int) -> None:
    r = MemoryResolver()
    for i in range(length):
        nxt = f"n{(i + 1) % length}.example"
        r.add(f"n{i}.example", "TXT", f"v=spf1 include:{nxt} redirect={nxt}")
    r.add("self.example", "TXT", "v=spf1 redirect=self.example")
    for domain in ("n0.example", "self.example"):
        with timed(2.0):
            result = run(check_host("192.0.2.1", domain, f"a@{domain}", helo="h", resolver=r))
        assert result.result is Result.PERMERROR
        assert result.lookups <= MAX_DNS_TERMS + 1
    assert len(r.queries) < 100


def test_void_lookup_flood_is_cut_at_two() -> None:
    """RFC 7208 §4.6.4: more than two void lookups → permerror, not 10 more queries."""
    r = MemoryResolver()
    r.add("v.example", "TXT", "v=spf1 " + " ".join(f"exists:nx{i}.example" for i in range(9)))
    result = run(check_host("192.0.2.1", "v.example", "a@v.example", helo="h", resolver=r))
    assert result.result is Result.PERMERROR
    assert result.void_lookups == 3


def test_huge_txt_record_parses_in_linear_time() -> None:
    text = "v=spf1 " + "ip4:192.0.2.1 " * 20_000 + "-all"
    with timed(5.0):
        record = parse_record(text)
    assert len(record.terms) == 20_001
    bad = "v=spf1 " + "%{" * 100_000
    with timed(2.0), pytest.raises(SpfSyntaxError):
        parse_record(bad)


_HOSTILE_TEXT = mixed_text(["a@b.example", "\r\n", "\n", "(", ")", '"', "\\", ";", "é", " "])


@robust(300)
@given(
    st.sampled_from(list(Result)),
    _HOSTILE_TEXT,
    _HOSTILE_TEXT,
    _HOSTILE_TEXT,
    st.one_of(st.none(), _HOSTILE_TEXT),
    st.one_of(st.none(), _HOSTILE_TEXT),
)
def test_received_spf_is_one_printable_field(
    result: Result,
    sender: str,
    helo: str,
    receiver: str,
    mechanism: str | None,
    problem: str | None,
) -> None:
    """RFC 7208 §9.1: sender, HELO, record terms and problems come from outside; the field
    must stay printable ASCII, one field, its continuation lines starting with a space."""
    spf = SpfResult(
        result=result,
        ip="192.0.2.1",
        domain="example.com",
        sender=sender,
        helo=helo,
        identity="mailfrom",
        mechanism=mechanism,
        problem=problem,
        receiver=receiver,
    )
    for fold in (True, False):
        field = received_spf(spf, fold=fold)
        assert field.startswith(f"Received-SPF: {result}")
        lines = field.split("\r\n")
        assert all(line.isascii() and line.isprintable() for line in lines)
        assert all(line.startswith(" ") for line in lines[1:])
        assert fold or len(lines) == 1


@robust(80)
@given(dns_world(), st.sampled_from(NAMES))
def test_linter_always_gives_a_report(world: MemoryResolver, domain: str) -> None:
    """The doctor and `spf lint` read the same hostile records: a report, never a raise."""
    from mailwright.spf.lint import lint

    with timed(10.0):
        report = run(lint(domain, world))
    assert isinstance(report.permerror, bool)


def test_slow_dns_is_cut_at_the_timeout() -> None:
    """§4.6.4: the whole evaluation is bounded in time; a slow include chain is temperror."""
    r = MemoryResolver(latency=0.2)
    for i in range(10):
        r.add(f"n{i}.example", "TXT", f"v=spf1 include:n{i + 1}.example -all")
    with timed(1.5):
        result = run(
            check_host("192.0.2.1", "n0.example", "a@n0.example", helo="h", resolver=r, timeout=0.5)
        )
    assert result.result is Result.TEMPERROR
