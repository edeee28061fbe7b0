"""The linter's findings and lookup tree, over the in-memory resolver."""

from __future__ import annotations

from mailwright.dns import MemoryResolver, Outcome
from mailwright.spf.lint import Severity, lint


def zone(records: dict[str, str | list[str]]) -> MemoryResolver:
    r = MemoryResolver()
    for name, txt in records.items():
        for value in [txt] if isinstance(txt, str) else txt:
            r.add(name, "TXT", value)
    return r


def ids(report: object) -> set[str]:
    return {f.id for f in report.findings}  # type: ignore[attr-defined]


async def test_clean_policy_has_no_findings() -> None:
    r = zone(
        {
            "example.com": "v=spf1 mx include:_spf.example.net -all",
            "_spf.example.net": "v=spf1 ip4:192.0.2.0/24 a:out.example.net ~all",
        }
    )
    r.add("example.com", "MX", (10, "mx.example.com")).add("out.example.net", "A", "192.0.2.9")
    report = await lint("example.com", r)
    assert report.findings == []
    assert not report.permerror
    assert report.record == "v=spf1 mx include:_spf.example.net -all"
    assert report.total_lookups == 3
    assert report.tree.lookups == 2
    (child,) = report.tree.children
    assert (child.domain, child.via, child.lookups) == (
        "_spf.example.net",
        "include:_spf.example.net",
        1,
    )


async def test_tree_counts_lookups_per_branch_and_flags_over_limit() -> None:
    records: dict[str, str | list[str]] = {
        "example.com": "v=spf1 include:a.example.net include:b.example.net -all",
        "a.example.net": "v=spf1 " + " ".join(f"exists:%{{i}}.a{i}.example.net" for i in range(5)),
        "b.example.net": "v=spf1 " + " ".join(f"exists:%{{i}}.b{i}.example.net" for i in range(5)),
    }
    report = await lint("example.com", zone(records))
    assert [c.total_lookups for c in report.tree.children] == [5, 5]
    assert report.total_lookups == 12
    assert "too-many-lookups" in ids(report)
    assert report.permerror
    assert report.to_json()["dns_lookups"] == 12


async def test_syntax_error_with_position() -> None:
    report = await lint("example.com", zone({"example.com": "v=spf1 ip4:192.0.2.1/33 -all"}))
    (finding,) = report.findings
    assert (finding.id, finding.term, finding.offset, finding.permerror) == (
        "syntax",
        "ip4:192.0.2.1/33",
        7,
        True,
    )


async def test_duplicate_records() -> None:
    report = await lint("example.com", zone({"example.com": ["v=spf1 -all", "v=spf1 mx -all"]}))
    assert ids(report) == {"multiple-records"} and report.permerror
    assert len(report.records) == 2 and report.record is None


async def test_all_qualifiers_ptr_void_and_spf_rr_type() -> None:
    r = zone(
        {
            "example.com": "v=spf1 ptr a:gone.example.com mx:nomx.example.com "
            "exists:none.example.com +all"
        }
    )
    r.add("nomx.example.com", "A", "192.0.2.1")
    r.add("example.com", "SPF", "v=spf1 +all")
    report = await lint("example.com", r)
    assert {"pass-all", "ptr", "void-lookup", "too-many-void", "spf-rr-type"} <= ids(report)
    assert report.void_lookups == 3
    assert report.spf_rr == ["v=spf1 +all"]
    assert report.findings[0].severity is Severity.ERROR
    neutral = await lint("example.com", zone({"example.com": "v=spf1 mx ?all"}))
    assert "neutral-all" in ids(neutral) and not neutral.permerror


async def test_include_without_record_and_loops_are_permerrors() -> None:
    report = await lint(
        "example.com", zone({"example.com": "v=spf1 include:nothing.example.net -all"})
    )
    assert "target-without-record" in ids(report) and report.permerror
    loop = await lint(
        "example.com",
        zone(
            {
                "example.com": "v=spf1 include:example.net -all",
                "example.net": "v=spf1 redirect=example.com",
            }
        ),
    )
    assert "loop" in ids(loop) and loop.permerror


async def test_no_record_dns_error_and_redirect_with_all() -> None:
    none = await lint("example.com", MemoryResolver())
    assert ids(none) == {"no-record"} and not none.permerror
    err = await lint("example.com", MemoryResolver().fail("example.com", "TXT", Outcome.TIMEOUT))
    assert err.dns_error and not err.permerror
    red = await lint("example.com", zone({"example.com": "v=spf1 a -all redirect=x.example.net"}))
    assert "redirect-ignored" in ids(red)
    after = await lint("example.com", zone({"example.com": "v=spf1 -all mx"}))
    assert "after-all" in ids(after) and after.total_lookups == 0


async def test_malformed_domain_is_a_finding_not_an_exception() -> None:
    report = await lint("a..example.com", MemoryResolver())
    assert ids(report) == {"bad-domain"}
    report = await lint("bücher.example", zone({"xn--bcher-kva.example": "v=spf1 -all"}))
    assert report.findings == []


async def test_client_dependent_targets_are_counted_not_followed() -> None:
    r = zone({"example.com": "v=spf1 include:%{l}._u.example.com exists:%{i}.x.example.com -all"})
    report = await lint("example.com", r)
    assert report.total_lookups == 2 and report.tree.children == []
    (finding,) = report.findings
    assert (finding.id, finding.severity, finding.term) == (
        "macro-target",
        Severity.INFO,
        "include:%{l}._u.example.com",
    )
