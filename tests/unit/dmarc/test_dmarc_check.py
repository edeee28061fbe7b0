"""External destination verification (RFC 9990 §4) and check_domain findings."""

from __future__ import annotations

from mailwright.dmarc.check import Severity, check_domain, suggest
from mailwright.dmarc.external import ExternalStatus, authorization_name, verify_destination
from mailwright.dmarc.record import parse_record, parse_report_uri
from mailwright.dns import MemoryResolver, Outcome


def uri(text: str):  # type: ignore[no-untyped-def]
    parsed, problem = parse_report_uri(text)
    assert parsed is not None, problem
    return parsed


def world(*records: tuple[str, str]) -> MemoryResolver:
    resolver = MemoryResolver()
    for name, text in records:
        resolver.add(name, "TXT", text)
    return resolver


# --- external destinations ------------------------------------------------------


def test_authorization_name_b23() -> None:
    assert (
        authorization_name("example.com", "thirdparty.example.net")
        == "example.com._report._dmarc.thirdparty.example.net"
    )


async def test_internal_destination_needs_no_authorization() -> None:
    resolver = world(("_dmarc.example.com", "v=DMARC1; p=none"))
    check = await verify_destination(
        "rua", uri("mailto:d@reports.example.com"), "example.com", "example.com", resolver
    )
    assert check.status is ExternalStatus.INTERNAL
    assert check.usable
    assert not any("_report" in name for name, _ in resolver.queries)


async def test_authorized_external_destination() -> None:
    resolver = world(("example.com._report._dmarc.thirdparty.example.net", "v=DMARC1;"))
    check = await verify_destination(
        "ruf",
        uri("mailto:auth-reports@thirdparty.example.net"),
        "example.com",
        "example.com",
        resolver,
    )
    assert check.status is ExternalStatus.AUTHORIZED
    assert check.name == "example.com._report._dmarc.thirdparty.example.net"
    assert check.usable


async def test_unauthorized_external_destination() -> None:
    resolver = MemoryResolver()
    check = await verify_destination(
        "rua", uri("mailto:x@victim.example"), "example.com", "example.com", resolver
    )
    assert check.status is ExternalStatus.UNAUTHORIZED
    assert not check.usable
    assert "nxdomain" in check.detail


async def test_authorization_must_start_with_v_dmarc1() -> None:
    resolver = world(("example.com._report._dmarc.victim.example", "p=none; v=DMARC1"))
    check = await verify_destination(
        "rua", uri("mailto:x@victim.example"), "example.com", "example.com", resolver
    )
    assert check.status is ExternalStatus.UNAUTHORIZED


async def test_override_at_the_same_host_b24() -> None:
    resolver = world(
        (
            "example.com._report._dmarc.thirdparty.example.net",
            "v=DMARC1; rua=mailto:aggregate-reports@thirdparty.example.net; "
            "ruf=mailto:failure-reports@thirdparty.example.net",
        )
    )
    check = await verify_destination(
        "ruf",
        uri("mailto:auth-reports@thirdparty.example.net"),
        "example.com",
        "example.com",
        resolver,
    )
    assert check.status is ExternalStatus.AUTHORIZED
    assert [o.address for o in check.overrides] == ["failure-reports@thirdparty.example.net"]


async def test_override_to_another_host_cancels_reports() -> None:
    resolver = world(
        (
            "example.com._report._dmarc.thirdparty.example.net",
            "v=DMARC1; rua=mailto:x@other.example",
        )
    )
    check = await verify_destination(
        "rua", uri("mailto:r@thirdparty.example.net"), "example.com", "example.com", resolver
    )
    assert check.status is ExternalStatus.OVERRIDE_REJECTED
    assert not check.usable


async def test_authorization_dns_error_is_temperror() -> None:
    resolver = MemoryResolver().fail(
        "example.com._report._dmarc.thirdparty.example.net", "TXT", Outcome.TIMEOUT
    )
    check = await verify_destination(
        "rua", uri("mailto:r@thirdparty.example.net"), "example.com", "example.com", resolver
    )
    assert check.status is ExternalStatus.TEMPERROR


async def test_authorization_name_too_long() -> None:
    policy_domain = ".".join(["a" * 60] * 3) + ".example"
    check = await verify_destination(
        "rua",
        uri("mailto:r@" + ".".join(["b" * 50] * 2) + ".example"),
        policy_domain,
        policy_domain,
        MemoryResolver(),
    )
    assert check.status is ExternalStatus.TOO_LONG


async def test_destination_in_same_org_by_tree_walk() -> None:
    # reports.example.com is internal because its Organizational Domain is example.com.
    resolver = world(("_dmarc.example.com", "v=DMARC1; p=none"))
    check = await verify_destination(
        "rua", uri("mailto:d@x.reports.example.com"), "mail.example.com", "example.com", resolver
    )
    assert check.status is ExternalStatus.INTERNAL


async def test_https_uri_without_host() -> None:
    check = await verify_destination(
        "rua", uri("https:/dmarc"), "example.com", "example.com", MemoryResolver()
    )
    assert check.status is ExternalStatus.NO_HOST


# --- check_domain -----------------------------------------------------------------------


def ids(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.id for f in report.findings}


async def test_no_record() -> None:
    report = await check_domain("example.com", MemoryResolver())
    assert not report.ok
    assert report.status == "fail"
    (finding,) = report.findings
    assert finding.id == "dmarc-no-record"
    assert finding.fix and '_dmarc.example.com. TXT "v=DMARC1; p=none; rua=mailto:' in finding.fix


async def test_p_none_gives_the_staged_rollout() -> None:
    report = await check_domain(
        "example.com",
        world(("_dmarc.example.com", "v=DMARC1; p=none; rua=mailto:d@example.com")),
    )
    assert report.ok
    assert report.status == "warn"
    assert ids(report) == {"dmarc-p-none"}
    fix = report.findings[0].fix or ""
    assert "p=quarantine" in fix and "p=reject" in fix and "month" in fix


async def test_p_reject_with_rua_is_clean() -> None:
    report = await check_domain(
        "example.com",
        world(("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@example.com")),
    )
    assert report.status == "ok"
    assert report.findings == ()


async def test_missing_rua_removed_tags_and_testing() -> None:
    report = await check_domain(
        "example.com", world(("_dmarc.example.com", "v=DMARC1; p=reject; pct=0; ri=3600"))
    )
    assert ids(report) == {
        "dmarc-no-rua",
        "dmarc-removed-pct",
        "dmarc-removed-ri",
        "dmarc-testing",
    }
    pct = next(f for f in report.findings if f.id == "dmarc-removed-pct")
    assert pct.fix and '"v=DMARC1; p=reject; t=y"' in pct.fix
    testing = next(f for f in report.findings if f.id == "dmarc-testing")
    assert "quarantine" in testing.message
    assert report.ok  # warnings only


async def test_unauthorized_external_rua_is_an_error() -> None:
    resolver = world(
        (
            "_dmarc.example.com",
            "v=DMARC1; p=reject; rua=mailto:d@example.com,mailto:x@reports.example.net",
        )
    )
    report = await check_domain("example.com", resolver)
    assert not report.ok
    finding = next(f for f in report.findings if f.id == "dmarc-external-unauthorized")
    assert "example.com._report._dmarc.reports.example.net" in (finding.fix or "")
    assert [e.status for e in report.external] == [
        ExternalStatus.INTERNAL,
        ExternalStatus.UNAUTHORIZED,
    ]


async def test_authorized_external_rua_is_info() -> None:
    resolver = world(
        ("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:x@reports.example.net"),
        ("example.com._report._dmarc.reports.example.net", "v=DMARC1"),
    )
    report = await check_domain("example.com", resolver)
    assert report.ok
    assert ids(report) == {"dmarc-external-authorized"}


async def test_dns_error() -> None:
    resolver = MemoryResolver().fail("_dmarc.example.com", "TXT", Outcome.SERVFAIL)
    report = await check_domain("example.com", resolver)
    assert ids(report) == {"dmarc-dns-error"}
    assert not report.ok


async def test_multiple_records_and_spf_at_dmarc() -> None:
    resolver = world(
        ("_dmarc.example.com", "v=DMARC1; p=reject"),
        ("_dmarc.example.com", "v=DMARC1; p=none"),
        ("_dmarc.example.com", "v=spf1 -all"),
    )
    report = await check_domain("example.com", resolver)
    assert ids(report) == {"dmarc-multiple-records", "dmarc-not-dmarc-text", "dmarc-no-record"}


async def test_invalid_record() -> None:
    report = await check_domain(
        "example.com", world(("_dmarc.example.com", "v=DMARC1; p=reject; p=none"))
    )
    assert ids(report) == {"dmarc-invalid-record"}
    assert "permerror" in report.findings[0].message


async def test_invalid_policy_with_rua() -> None:
    report = await check_domain(
        "example.com", world(("_dmarc.example.com", "v=DMARC1; p=block; rua=mailto:d@example.com"))
    )
    assert "dmarc-policy-invalid" in ids(report)
    assert not report.ok


async def test_inherited_record_is_info() -> None:
    resolver = world(("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@example.com"))
    report = await check_domain("mail.example.com", resolver)
    assert ids(report) == {"dmarc-inherited"}
    assert report.findings[0].severity is Severity.INFO


async def test_psd_y_on_own_domain_and_weak_sp_np() -> None:
    resolver = world(
        (
            "_dmarc.example.com",
            "v=DMARC1; p=reject; sp=none; np=quarantine; psd=y; rua=mailto:d@example.com",
        )
    )
    report = await check_domain("example.com", resolver)
    assert {"dmarc-psd-y", "dmarc-sp-weaker"} <= ids(report)
    assert "dmarc-np-weaker" not in ids(report)  # np=quarantine is stronger than sp=none


async def test_org_domain_too_high_when_tld_publishes_without_psd() -> None:
    resolver = world(
        ("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@example.com"),
        ("_dmarc.com", "v=DMARC1; p=none"),
    )
    report = await check_domain("example.com", resolver)
    assert "dmarc-org-domain-too-high" in ids(report)


async def test_invalid_domain() -> None:
    report = await check_domain("not..valid", MemoryResolver())
    assert ids(report) == {"dmarc-invalid-domain"}


def test_suggest_puts_p_second_and_drops_removed_tags() -> None:
    record = parse_record("v=DMARC1; rua=mailto:d@example.com!10m; pct=50; foo=bar; p=none")
    assert suggest(record, {"p": "quarantine"}) == (
        "v=DMARC1; p=quarantine; rua=mailto:d@example.com"
    )
    assert suggest(None, {"p": "none", "rua": "mailto:x@example.com"}) == (
        "v=DMARC1; p=none; rua=mailto:x@example.com"
    )


async def test_report_json_schema_keys() -> None:
    report = await check_domain(
        "example.com", world(("_dmarc.example.com", "v=DMARC1; p=none; rua=mailto:d@example.com"))
    )
    data = report.as_json()
    assert list(data) == ["domain", "status", "discovery", "policy", "external", "findings"]
    assert data["status"] == "warn"
    findings = data["findings"]
    assert isinstance(findings, list)
    assert set(findings[0]) == {"id", "severity", "message", "fix"}


async def test_multiple_records_above_the_checked_name_are_a_warning() -> None:
    resolver = world(
        ("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@example.com"),
        ("_dmarc.com", "v=DMARC1; p=none; psd=y"),
        ("_dmarc.com", "v=DMARC1; p=reject; psd=y"),
    )
    report = await check_domain("example.com", resolver)
    (finding,) = [f for f in report.findings if f.id == "dmarc-multiple-records"]
    assert finding.severity is Severity.WARNING
    assert report.ok


async def test_public_suffix_record_with_ruf() -> None:
    resolver = world(
        ("_dmarc.bank.example", "v=DMARC1; p=reject; psd=y; ruf=mailto:f@bank.example; fo=1")
    )
    report = await check_domain("bank.example", resolver)
    finding = next(f for f in report.findings if f.id == "dmarc-psd-ruf")
    assert finding.fix == 'publish _dmarc.bank.example. TXT "v=DMARC1; p=reject; psd=y"'


async def test_below_a_public_suffix_only_own_record_matters() -> None:
    resolver = world(("_dmarc.bank.example", "v=DMARC1; p=none; psd=y"))
    report = await check_domain("shop.bank.example", resolver)
    (finding,) = report.findings
    assert finding.id == "dmarc-inherited"
    assert finding.severity is Severity.WARNING
    assert finding.fix is not None
    assert finding.fix.startswith(
        'publish _dmarc.shop.bank.example. TXT "v=DMARC1; p=none; '
        'rua=mailto:dmarc-reports@shop.bank.example"'
    )
