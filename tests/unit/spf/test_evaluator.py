"""check_host() rules (RFC 7208 §2-§6) and bad input, over the in-memory resolver."""

from __future__ import annotations

import time

import pytest

from mailwright.dns import MemoryResolver, Outcome
from mailwright.spf import Result, check_helo, check_host, check_mail_from, received_spf


def zone(**records: str | list[str]) -> MemoryResolver:
    """``zone(**{"example.com": "v=spf1 -all"})``: TXT records per name."""
    r = MemoryResolver()
    for name, txt in records.items():
        for value in [txt] if isinstance(txt, str) else txt:
            r.add(name, "TXT", value)
    return r


async def mail_from(
    r: MemoryResolver,
    ip: str = "192.0.2.10",
    sender: str = "a@example.com",
    helo: str = "mail.example.org",
    **kw: object,
) -> object:
    return await check_mail_from(ip, sender, helo, r, **kw)  # type: ignore[arg-type]


# -- results -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qualifier", "result"),
    [("+", "pass"), ("", "pass"), ("-", "fail"), ("~", "softfail"), ("?", "neutral")],
)
async def test_qualifiers(qualifier: str, result: str) -> None:
    # §4.6.2
    r = zone(**{"example.com": f"v=spf1 {qualifier}ip4:192.0.2.0/24 -all"})
    res = await check_mail_from("192.0.2.10", "a@example.com", "h.example", r)
    assert res.result == result
    assert res.mechanism == f"{qualifier}ip4:192.0.2.0/24"
    assert res.mechanism_domain == "example.com"


async def test_default_result_is_neutral() -> None:
    # §4.7
    res = await check_mail_from(
        "192.0.2.99", "a@example.com", "h", zone(**{"example.com": "v=spf1 ip4:192.0.2.10"})
    )
    assert res.result is Result.NEUTRAL and res.mechanism is None


async def test_none_without_record_and_for_nxdomain() -> None:
    r = zone(**{"example.com": "google-site-verification=abc"})
    assert (await check_mail_from("192.0.2.1", "a@example.com", "h", r)).result is Result.NONE
    res = await check_mail_from("192.0.2.1", "a@nowhere.example", "h", r)
    assert res.result is Result.NONE and "no such domain" in (res.problem or "")


async def test_two_records_is_permerror() -> None:
    # §4.5
    r = zone(**{"example.com": ["v=spf1 -all", "v=spf1 +all", "unrelated"]})
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result is Result.PERMERROR
    assert "2 SPF records" in (res.problem or "")


async def test_type_spf_records_are_not_consulted() -> None:
    # §3.1/§4.4: TXT only.
    r = MemoryResolver().add("example.com", "SPF", "v=spf1 -all")
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result is Result.NONE
    assert ("example.com", "SPF") not in r.queries


async def test_syntax_error_is_permerror_naming_term_and_offset() -> None:
    # §4.6: checked before anything is evaluated, even after a matching term.
    r = zone(**{"example.com": "v=spf1 ip4:192.0.2.10 -all ip4:10.0.0.1/33"})
    res = await check_mail_from("192.0.2.10", "a@example.com", "h", r)
    assert res.result is Result.PERMERROR
    assert res.problem_term == "ip4:10.0.0.1/33"
    assert res.problem_offset == 27
    assert res.problem_domain == "example.com"
    assert "over 32" in (res.problem or "")


async def test_syntax_error_in_included_record_names_its_domain() -> None:
    r = zone(
        **{
            "example.com": "v=spf1 include:_spf.example.net -all",
            "_spf.example.net": "v=spf1 a:bad_domain",
        }
    )
    res = await check_mail_from("192.0.2.10", "a@example.com", "h", r)
    assert res.result is Result.PERMERROR
    assert (res.problem_domain, res.problem_term, res.problem_offset) == (
        "_spf.example.net",
        "a:bad_domain",
        7,
    )


# -- DNS errors ------------------------------------------------------------------------------


async def test_txt_timeout_is_temperror() -> None:
    # §4.4
    r = MemoryResolver().fail("example.com", "TXT", Outcome.TIMEOUT)
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result is Result.TEMPERROR and "TXT lookup" in (res.problem or "")


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.SERVFAIL])
@pytest.mark.parametrize(
    ("record", "name", "rdtype"),
    [
        ("v=spf1 a:x.example.net -all", "x.example.net", "A"),
        ("v=spf1 mx:x.example.net -all", "x.example.net", "MX"),
        ("v=spf1 exists:x.example.net -all", "x.example.net", "A"),
        ("v=spf1 include:x.example.net -all", "x.example.net", "TXT"),
    ],
)
async def test_mechanism_dns_errors_are_temperror(
    record: str, name: str, rdtype: str, outcome: Outcome
) -> None:
    # §5: an RCODE other than 0/3 or a timeout → temperror.
    r = zone(**{"example.com": record}).fail(name, rdtype, outcome)
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result is Result.TEMPERROR


async def test_ptr_lookup_error_is_no_match() -> None:
    # §5.5: a DNS error on the PTR lookup makes ptr not match.
    r = zone(**{"example.com": "v=spf1 ptr ~all"}).fail(
        "10.2.0.192.in-addr.arpa", "PTR", Outcome.TIMEOUT
    )
    assert (await check_mail_from("192.0.2.10", "a@example.com", "h", r)).result == "softfail"


async def test_overall_timeout_is_temperror() -> None:
    # §4.6.4: a limit on the elapsed time; exceeding it SHOULD give temperror.
    r = zone(**{"example.com": "v=spf1 a mx -all"})
    r.latency = 0.2
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r, timeout=0.1)
    assert res.result is Result.TEMPERROR and "longer than 0.1 s" in (res.problem or "")


# -- mechanisms ---------------------------------------------------------------------------------


async def test_a_and_mx_with_dual_cidr_and_ipv6() -> None:
    r = zone(**{"example.com": "v=spf1 a/24//64 mx:mx.example.com -all"})
    r.add("example.com", "A", "192.0.2.200").add("example.com", "AAAA", "2001:db8:1::1")
    r.add("mx.example.com", "MX", (10, "mail.example.net"))
    r.add("mail.example.net", "A", "198.51.100.7")
    assert (await check_mail_from("192.0.2.9", "a@example.com", "h", r)).result == "pass"
    assert (await check_mail_from("2001:db8:1::ffff", "a@example.com", "h", r)).result == "pass"
    res = await check_mail_from("198.51.100.7", "a@example.com", "h", r)
    assert res.result == "pass" and res.mechanism == "mx:mx.example.com"
    assert (await check_mail_from("2001:db8:2::1", "a@example.com", "h", r)).result == "fail"


async def test_mx_does_not_fall_back_to_a() -> None:
    # §5.4: no implicit MX.
    r = zone(**{"example.com": "v=spf1 mx -all"}).add("example.com", "A", "192.0.2.1")
    assert (await check_mail_from("192.0.2.1", "a@example.com", "h", r)).result == "fail"


async def test_more_than_ten_mx_records_is_permerror() -> None:
    # §4.6.4
    r = zone(**{"example.com": "v=spf1 mx -all"})
    for i in range(11):
        r.add("example.com", "MX", (i, f"mx{i}.example.com"))
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result is Result.PERMERROR and "11 MX records" in (res.problem or "")


async def test_ptr_uses_only_first_ten_names_and_validates() -> None:
    # §4.6.4 / §5.5
    r = zone(**{"example.com": "v=spf1 ptr -all"})
    for i in range(10):
        r.add("10.2.0.192.in-addr.arpa", "PTR", f"h{i}.elsewhere.example")
    r.add("10.2.0.192.in-addr.arpa", "PTR", "mail.example.com")
    r.add("mail.example.com", "A", "192.0.2.10")
    assert (await check_mail_from("192.0.2.10", "a@example.com", "h", r)).result == "fail"
    r2 = zone(**{"example.com": "v=spf1 ptr -all"})
    r2.add("10.2.0.192.in-addr.arpa", "PTR", "mail.example.com")
    r2.add("mail.example.com", "A", "192.0.2.11")  # does not point back: not validated
    assert (await check_mail_from("192.0.2.10", "a@example.com", "h", r2)).result == "fail"
    r2.add("mail.example.com", "A", "192.0.2.10")
    assert (await check_mail_from("192.0.2.10", "a@example.com", "h", r2)).result == "pass"


async def test_exists_queries_a_even_for_ipv6() -> None:
    r = zone(**{"example.com": "v=spf1 exists:%{ir}.%{v}._spf.%{d} -all"})
    r.add(
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com",
        "A",
        "127.0.0.2",
    )
    assert (await check_mail_from("2001:db8::1", "a@example.com", "h", r)).result == "pass"


@pytest.mark.parametrize(
    ("inner", "expected"),
    [("+all", "pass"), ("-all", "fail"), ("~all", "fail"), ("?all", "fail")],
)
async def test_include_matches_only_on_pass(inner: str, expected: str) -> None:
    # §5.2 table
    r = zone(
        **{
            "example.com": "v=spf1 include:_spf.example.net -all",
            "_spf.example.net": f"v=spf1 {inner}",
        }
    )
    assert (await check_mail_from("192.0.2.1", "a@example.com", "h", r)).result == expected


async def test_include_of_domain_without_record_is_permerror() -> None:
    r = zone(**{"example.com": "v=spf1 include:_spf.example.net -all"})
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result is Result.PERMERROR and res.problem_term == "include:_spf.example.net"


async def test_redirect_changes_domain_and_is_ignored_with_all() -> None:
    # §6.1: redirect changes <domain>; with "all" anywhere it is ignored (§5.1).
    r = zone(
        **{
            "example.com": "v=spf1 redirect=_spf.example.net",
            "_spf.example.net": "v=spf1 a -all",
            "other.example.com": "v=spf1 redirect=_spf.example.net ?all",
        }
    )
    r.add("_spf.example.net", "A", "192.0.2.1")
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result == "pass" and res.mechanism_domain == "_spf.example.net"
    res = await check_mail_from("192.0.2.1", "a@other.example.com", "h", r)
    assert res.result == "neutral" and res.mechanism == "?all"


async def test_redirect_to_nothing_is_permerror() -> None:
    r = zone(**{"example.com": "v=spf1 redirect=_spf.example.net"})
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result is Result.PERMERROR and "redirect target" in (res.problem or "")


# -- limits ----------------------------------------------------------------------------------------


async def test_ten_dns_terms_pass_eleven_permerror() -> None:
    # §4.6.4: counted across include levels; the 11th term is a permerror.
    ten = " ".join(f"a:h{i}.example.com" for i in range(9))
    r = zone(
        **{
            "example.com": "v=spf1 include:inc.example.com ip4:192.0.2.1 -all",
            "inc.example.com": f"v=spf1 {ten}",
            "over.example.com": "v=spf1 include:inc.example.com a:h9.example.com "
            "ip4:192.0.2.1 -all",
        }
    )
    for i in range(10):
        r.add(f"h{i}.example.com", "A", "198.51.100.1")
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result == "pass" and res.lookups == 10
    res = await check_mail_from("192.0.2.1", "a@over.example.com", "h", r)
    assert res.result is Result.PERMERROR and res.problem_term == "a:h9.example.com"
    assert res.problem_offset == 31 and res.problem_domain == "over.example.com"


async def test_include_loop_is_permerror() -> None:
    r = zone(
        **{"example.com": "v=spf1 include:example.net", "example.net": "v=spf1 include:example.com"}
    )
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result is Result.PERMERROR and "more than 10" in (res.problem or "")


async def test_third_void_lookup_is_permerror() -> None:
    # §4.6.4: two void lookups are allowed, the third is a permerror.
    two = zone(**{"example.com": "v=spf1 a:n1.example.com mx:n2.example.com ?all"})
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", two)
    assert res.result == "neutral" and res.void_lookups == 2
    three = zone(
        **{"example.com": "v=spf1 a:n1.example.com mx:n2.example.com exists:n3.example.com ?all"}
    )
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", three)
    assert res.result is Result.PERMERROR and res.problem_term == "exists:n3.example.com"


async def test_exp_lookup_is_not_a_void_lookup() -> None:
    r = zone(**{"example.com": "v=spf1 a:n1.example.com a:n2.example.com exp=n3.example.com -all"})
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.result == "fail" and res.void_lookups == 2 and res.explanation_source == "default"


# -- explanations ------------------------------------------------------------------------------


async def test_exp_explanation_with_c_r_t_macros() -> None:
    r = zone(
        **{
            "example.com": "v=spf1 -all exp=why.%{d}",
            "why.example.com": "%{c} may not send for %{o} (checked by %{r} at %{t})",
        }
    )
    before = int(time.time())
    res = await check_mail_from("2001:db8::5", "a@example.com", "h", r, receiver="mx.local")
    assert res.result == "fail" and res.explanation_source == "exp"
    assert res.explanation is not None
    head, stamp = res.explanation.rsplit(" at ", 1)
    assert head == "2001:db8::5 may not send for example.com (checked by mx.local"
    assert before <= int(stamp.rstrip(")")) <= int(time.time())


async def test_default_explanation() -> None:
    res = await check_mail_from(
        "192.0.2.1", "a@example.com", "h", zone(**{"example.com": "v=spf1 -all"})
    )
    assert res.explanation == "example.com does not designate 192.0.2.1 as a permitted sender"
    assert res.explanation_source == "default"


async def test_no_explanation_for_other_results() -> None:
    res = await check_mail_from(
        "192.0.2.1", "a@example.com", "h", zone(**{"example.com": "v=spf1 ~all exp=x.example.com"})
    )
    assert res.result == "softfail" and res.explanation is None


async def test_include_ignores_exp_but_redirect_uses_target_exp() -> None:
    # §6.2 note
    r = zone(
        **{
            "example.com": "v=spf1 -include:inc.example.com exp=a.example.com",
            "inc.example.com": "v=spf1 +all exp=b.example.com",
            "a.example.com": "from A",
            "b.example.com": "from B",
            "red.example.com": "v=spf1 exp=a.example.com redirect=target.example.com",
            "target.example.com": "v=spf1 -all exp=b.example.com",
        }
    )
    assert (await mail_from(r)).explanation == "from A"  # type: ignore[attr-defined]
    res = await mail_from(r, sender="x@red.example.com")
    assert res.explanation == "from B"  # type: ignore[attr-defined]


# -- identities and initial processing -----------------------------------------------------------


async def test_null_reverse_path_checks_postmaster_at_helo() -> None:
    # §2.4
    r = zone(**{"mail.example.org": "v=spf1 -all exp=x.example.org", "x.example.org": "%{s}"})
    res = await check_mail_from("192.0.2.1", "", "mail.example.org", r)
    assert res.sender == "postmaster@mail.example.org" and res.domain == "mail.example.org"
    assert res.explanation == "postmaster@mail.example.org"
    assert res.identity == "mailfrom"


async def test_helo_identity() -> None:
    # §2.3
    r = zone(**{"mail.example.org": "v=spf1 a -all"}).add("mail.example.org", "A", "192.0.2.1")
    res = await check_helo("192.0.2.1", "mail.example.org", r)
    assert res.result == "pass" and res.identity == "helo"
    assert res.sender == "postmaster@mail.example.org"


@pytest.mark.parametrize(
    "domain",
    [
        "a" * 64 + ".example.com",  # label over 63
        ".".join(["abcdefghi"] * 26) + ".com",  # over 253
        "a..example.com",
        "localhost",  # not multi-label
        "[192.0.2.1]",
        "192.0.2.1",
        "exa mple.com",
        "",
    ],
)
async def test_malformed_domain_is_none_without_lookup(domain: str) -> None:
    # §4.3: malformed or single-label <domain> → none, immediately.
    r = MemoryResolver()
    res = await check_host("192.0.2.1", domain, f"a@{domain}", helo="h", resolver=r)
    assert res.result is Result.NONE
    assert r.queries == []


async def test_non_ascii_domain_is_checked_as_a_label() -> None:
    # §4.3: internationalized names are encoded as A-labels.
    r = zone(**{"xn--bcher-kva.example": "v=spf1 -all"})
    res = await check_mail_from("192.0.2.1", "a@bücher.example", "h", r)
    assert res.result is Result.FAIL
    assert r.queries[0] == ("xn--bcher-kva.example", "TXT")
    bad = await check_mail_from("192.0.2.1", "a@\u2764\ufe0f\u0000.example", "h", r)
    assert bad.result is Result.NONE


async def test_ipv4_mapped_ipv6_is_treated_as_ipv4() -> None:
    # §5: "MUST still be considered an IPv4 address".
    r = zone(**{"example.com": "v=spf1 ip6:::ffff:0:0/96 ip4:192.0.2.0/24 a -all"})
    res = await check_mail_from("::ffff:192.0.2.1", "a@example.com", "h", r)
    assert res.result == "pass" and res.mechanism == "ip4:192.0.2.0/24" and res.ip == "192.0.2.1"
    r2 = zone(**{"example.com": "v=spf1 a -all"}).add("example.com", "A", "198.51.100.1")
    assert (await check_mail_from("::ffff:198.51.100.1", "a@example.com", "h", r2)).ok
    assert ("example.com", "AAAA") not in r2.queries


@pytest.mark.parametrize("ip", ["", "garbage", "192.0.2.256", "1.2.3", "2001:db8::g", "::1%eth0x/"])
async def test_garbage_ip_is_a_value_error(ip: str) -> None:
    with pytest.raises(ValueError, match="not an IPv4 or IPv6 address"):
        await check_mail_from(ip, "a@example.com", "h", MemoryResolver())


async def test_target_name_that_cannot_be_queried_does_not_match() -> None:
    # §4.8 leaves it undefined; we make the mechanism not match (module docstring).
    r = zone(**{"example.com": "v=spf1 a:%{l}.example.com -all"})
    res = await check_mail_from("192.0.2.1", "x" * 70 + "@example.com", "h", r)
    assert res.result == "fail" and res.void_lookups == 0


async def test_non_ascii_explanation_falls_back_to_default() -> None:
    r = zone(**{"example.com": "v=spf1 -all exp=e.example.com", "e.example.com": "caf\u00e9"})
    res = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert res.explanation_source == "default"


# -- concurrency -------------------------------------------------------------------------------


def chain(latency: float) -> MemoryResolver:
    r = zone(
        **{
            "example.com": "v=spf1 include:l1.example.com -all",
            "l1.example.com": "v=spf1 a:a1.example.com mx:l1.example.com include:l2.example.com",
            "l2.example.com": "v=spf1 a:a2.example.com mx:l2.example.com include:l3.example.com",
            "l3.example.com": "v=spf1 a:a3.example.com exists:%{i}.x.example.com ip4:192.0.2.1",
        }
    )
    for i in (1, 2):
        r.add(f"l{i}.example.com", "MX", (10, f"mx{i}.example.com"))
        r.add(f"mx{i}.example.com", "A", "198.51.100.9")
    for i in (1, 2, 3):
        r.add(f"a{i}.example.com", "A", "198.51.100.8")
    r.latency = latency
    return r


async def test_concurrent_lookups_cut_wall_time_with_the_same_result() -> None:
    started = time.perf_counter()
    seq = await mail_from(chain(0.02), ip="192.0.2.1", concurrent=False)
    sequential = time.perf_counter() - started
    started = time.perf_counter()
    con = await mail_from(chain(0.02), ip="192.0.2.1", concurrent=True)
    concurrent = time.perf_counter() - started
    assert seq.result == con.result == "pass"  # type: ignore[attr-defined]
    assert seq.lookups == con.lookups == 9  # type: ignore[attr-defined]
    assert seq.mechanism == con.mechanism  # type: ignore[attr-defined]
    assert concurrent < sequential * 0.6, (sequential, concurrent)


async def test_prefetch_does_not_change_first_match() -> None:
    # A later term would time out, but an earlier one matches first: pass, not temperror.
    r = zone(**{"example.com": "v=spf1 ip4:192.0.2.1 a:slow.example.com -all"})
    r.fail("slow.example.com", "A", Outcome.TIMEOUT)
    res = await mail_from(r, ip="192.0.2.1")
    assert res.result == "pass"  # type: ignore[attr-defined]
    # ...and an earlier timeout still wins over a later match.
    r2 = zone(**{"example.com": "v=spf1 a:slow.example.com ip4:192.0.2.1 -all"})
    r2.fail("slow.example.com", "A", Outcome.TIMEOUT)
    assert (await mail_from(r2, ip="192.0.2.1")).result == "temperror"  # type: ignore[attr-defined]


async def test_prefetch_never_exceeds_the_lookup_budget() -> None:
    many = " ".join(f"a:h{i}.example.com" for i in range(30))
    r = zone(**{"example.com": f"v=spf1 {many} -all"})
    res = await mail_from(r)
    assert res.result == "permerror"  # type: ignore[attr-defined]
    a_queries = [q for q in r.queries if q[1] == "A"]
    assert len(a_queries) <= 10


# -- Received-SPF --------------------------------------------------------------------------------


async def test_received_spf_header() -> None:
    r = zone(**{"example.com": "v=spf1 ip4:192.0.2.1 -all"})
    res = await check_mail_from(
        "192.0.2.1", "app@example.com", "mail.example.com", r, receiver="mx.example.net"
    )
    header = received_spf(res)
    unfolded = header.replace("\r\n", "")
    assert unfolded.startswith(
        "Received-SPF: pass (mx.example.net: domain of app@example.com "
        "designates 192.0.2.1 as permitted sender)"
    )
    for part in (
        "client-ip=192.0.2.1;",
        'envelope-from="app@example.com";',
        "helo=mail.example.com;",
        'mechanism="ip4:192.0.2.1";',
        "identity=mailfrom",
    ):
        assert part in unfolded
    assert all(len(line) <= 78 for line in header.split("\r\n"))


async def test_received_spf_header_neutralises_hostile_values() -> None:
    r = zone(**{"example.com": "v=spf1 -all"})
    res = await check_mail_from(
        "192.0.2.1", 'x"\r\nBcc: victim@example.net@example.com', "evil)(\r\nX: y", r
    )
    header = received_spf(res)
    lines = header.split("\r\n")
    assert all(line.startswith((" ", "Received-SPF:")) for line in lines)
    assert "\n" not in header.replace("\r\n", "")
    unfolded = header.replace("\r\n", "")
    assert 'helo="evil)(??X: y";' in unfolded
    assert 'envelope-from="x\\"??Bcc: victim@example.net@example.com";' in unfolded
    assert res.result == "fail"  # the domain after the last "@" is still checked


async def test_scoped_ipv6_peer_is_evaluated_without_its_zone() -> None:
    # What getpeername() gives for a link-local client: never a traceback.
    r = zone(**{"example.com": "v=spf1 ip6:fe80::/10 -all"})
    res = await check_mail_from("fe80::1%eth0", "a@example.com", "h", r)
    assert res.result == "pass" and res.ip == "fe80::1"


async def test_smtp_rejection_replies() -> None:
    # RFC 7208 §8.4/§8.6/§8.7 reply codes, RFC 7372 enhanced status codes.
    r = zone(
        **{
            "example.com": "v=spf1 -all exp=why.example.com",
            "why.example.com": "Go away",
            "perm.example.com": "v=spf1 a:bad_name",
            "pass.example.com": "v=spf1 +all",
            "soft.example.com": "v=spf1 ~all",
        }
    )
    r.fail("temp.example.com", "TXT", Outcome.TIMEOUT)
    fail = await check_mail_from("192.0.2.1", "a@example.com", "h", r)
    assert fail.smtp_rejection() == (
        550,
        "5.7.23",
        (
            "SPF MAIL FROM check failed: 192.0.2.1 may not send for example.com",
            "The domain example.com explains: Go away",
        ),
    )
    perm = await check_mail_from("192.0.2.1", "a@perm.example.com", "h", r)
    code, status, (line,) = perm.smtp_rejection()  # type: ignore[misc]
    assert (code, status) == (550, "5.7.24") and "perm.example.com is invalid" in line
    temp = await check_mail_from("192.0.2.1", "a@temp.example.com", "h", r)
    assert temp.smtp_rejection() is not None and temp.smtp_rejection()[:2] == (451, "4.7.24")  # type: ignore[index]
    for sender in ("a@pass.example.com", "a@soft.example.com", "a@none.example.com"):
        assert (await check_mail_from("192.0.2.1", sender, "h", r)).smtp_rejection() is None
