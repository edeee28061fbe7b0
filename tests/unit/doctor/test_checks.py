"""Each check on an in-memory DNS: the healthy world is all ok, each fault its row."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailwright.dkim import dns_record_value, generate_key
from mailwright.dns import Outcome
from mailwright.doctor import DoctorOptions, Report, Status, run_checks
from mailwright.errors import UsageError

from .world import DKIM_NAME, DOMAIN, HOST, IP, OTHER_KEY, REV, Rec, options, records, resolver
from .world import without as drop

Change = Callable[[list[Rec]], list[Rec]]


async def _run(tmp_path: Path, recs: list[Rec], **opts: Any) -> Report:
    base = options(tmp_path)
    return await run_checks(DOMAIN, dataclasses.replace(base, **opts), resolver(recs))


async def test_healthy_world_is_all_ok(tmp_path: Path) -> None:
    report = await _run(tmp_path, records())
    bad = [(c.id, c.status, c.observed) for c in report.checks if c.status is not Status.OK]
    assert bad == []
    assert {c.id for c in report.checks} >= {
        "mx", "mx-null", "mx-cname", "host-a", "host-aaaa", "ptr", "fcrdns", "ptr-helo",
        "ptr-generic", "spf-record", "spf-syntax", "spf-lookups", "spf-void", "spf-authorizes",
        "spf-all", "spf-ptr", "dkim-record:mail", "dkim-key-match:mail", "dkim-key-size:mail",
        "dkim-testing:mail", "dmarc-record", "dmarc-policy", "dmarc-rua", "dmarc-removed-tags",
        "dmarc-alignment", "dnsbl:dnsbl.test", "dbl:dbl.test",
    }  # fmt: skip
    assert not report.failed(strict=True)


def _spf(value: str) -> Change:
    return lambda r: [*drop(r, DOMAIN, "TXT"), (DOMAIN, "TXT", value)]


def _dkim(value: str) -> Change:
    return lambda r: [*drop(r, DKIM_NAME, "TXT"), (DKIM_NAME, "TXT", value)]


def _dmarc(value: str) -> Change:
    return lambda r: [*drop(r, f"_dmarc.{DOMAIN}", "TXT"), (f"_dmarc.{DOMAIN}", "TXT", value)]


_MANY = " ".join(f"include:s{i}.example.net" for i in range(11))
_INCLUDES: list[Rec] = [(f"s{i}.example.net", "TXT", "v=spf1 -all") for i in range(11)]

FAULTS: list[tuple[str, Change, str, Status, str]] = [
    ("no MX", lambda r: drop(r, DOMAIN, "MX"), "mx", Status.FAIL, "IN MX 10 mail.example.com"),
    (
        "MX target without address",
        lambda r: drop(r, HOST, "A"),
        "mx",
        Status.FAIL,
        "publish an A record for mail.example.com",
    ),
    (
        "MX to CNAME",
        lambda r: [
            *drop(drop(r, DOMAIN, "MX"), HOST, "A"),
            (DOMAIN, "MX", (10, "mx.example.com")),
            ("mx.example.com", "CNAME", HOST),
            (HOST, "A", IP),
        ],
        "mx-cname",
        Status.FAIL,
        "RFC 2181 §10.3",
    ),
    (
        "MX elsewhere",
        lambda r: [
            *drop(r, DOMAIN, "MX"),
            (DOMAIN, "MX", (10, "mx.other.example")),
            ("mx.other.example", "A", "198.51.100.25"),
        ],
        "mx",
        Status.WARN,
        "if this server receives example.com's mail",
    ),
    (
        "null MX with others",
        lambda r: [*r, (DOMAIN, "MX", (0, "."))],
        "mx-null",
        Status.FAIL,
        "must be the only MX",
    ),
    (
        "host A differs",
        lambda r: [*drop(r, HOST, "A"), (HOST, "A", "192.0.2.99")],
        "host-a",
        Status.FAIL,
        "IN A 192.0.2.10",
    ),
    ("missing PTR", lambda r: drop(r, REV, "PTR"), "ptr", Status.FAIL, "set the PTR of"),
    (
        "two PTRs",
        lambda r: [*r, (REV, "PTR", "other.example.com")],
        "ptr",
        Status.WARN,
        "keep one PTR",
    ),
    (
        "PTR not forward-confirmed",
        lambda r: [
            *drop(r, REV, "PTR"),
            (REV, "PTR", "other.example.com"),
            ("other.example.com", "A", "192.0.2.77"),
        ],
        "fcrdns",
        Status.FAIL,
        "other.example.com. IN A 192.0.2.10",
    ),
    (
        "PTR is not the HELO name",
        lambda r: [
            *drop(r, REV, "PTR"),
            (REV, "PTR", "other.example.com"),
            ("other.example.com", "A", IP),
        ],
        "ptr-helo",
        Status.WARN,
        "set the PTR of 192.0.2.10 to mail.example.com",
    ),
    (
        "generic PTR",
        lambda r: [
            *drop(r, REV, "PTR"),
            (REV, "PTR", "192-0-2-10.dsl.example.net"),
            ("192-0-2-10.dsl.example.net", "A", IP),
        ],
        "ptr-generic",
        Status.WARN,
        "not the provider's default",
    ),
    (
        "no SPF",
        lambda r: drop(r, DOMAIN, "TXT"),
        "spf-record",
        Status.FAIL,
        "v=spf1 ip4:192.0.2.10 -all",
    ),
    (
        "two SPF records",
        lambda r: [*r, (DOMAIN, "TXT", "v=spf1 -all")],
        "spf-record",
        Status.FAIL,
        "merge them into one",
    ),
    ("SPF syntax", _spf("v=spf1 ip4:192.0.2.300 -all"), "spf-syntax", Status.FAIL, ""),
    (
        "SPF over 10 lookups",
        lambda r: [*_spf(f"v=spf1 ip4:{IP} {_MANY} -all")(r), *_INCLUDES],
        "spf-lookups",
        Status.FAIL,
        "stop at 10",
    ),
    (
        "SPF void lookups",
        _spf(f"v=spf1 ip4:{IP} a:n1.example.org a:n2.example.org a:n3.example.org -all"),
        "spf-void",
        Status.FAIL,
        "",
    ),
    (
        "SPF not authorizing",
        _spf("v=spf1 ip4:198.51.100.1 -all"),
        "spf-authorizes",
        Status.FAIL,
        "add ip4:192.0.2.10",
    ),
    ("+all", _spf(f"v=spf1 ip4:{IP} +all"), "spf-all", Status.FAIL, ""),
    ("?all", _spf(f"v=spf1 ip4:{IP} ?all"), "spf-all", Status.WARN, ""),
    ("ptr in SPF", _spf(f"v=spf1 ip4:{IP} ptr -all"), "spf-ptr", Status.WARN, ""),
    (
        "DKIM missing",
        lambda r: drop(r, DKIM_NAME, "TXT"),
        "dkim-record:mail",
        Status.FAIL,
        "mailwright records",
    ),
    ("DKIM unparsable", _dkim("v=DKIM1; k=rsa; p=!!!"), "dkim-record:mail", Status.FAIL, ""),
    ("DKIM revoked", _dkim("v=DKIM1; k=rsa; p="), "dkim-record:mail", Status.FAIL, ""),
    (
        "DKIM key mismatch",
        _dkim(dns_record_value(OTHER_KEY)),
        "dkim-key-match:mail",
        Status.FAIL,
        "mailwright records",
    ),
    (
        "DKIM t=y",
        _dkim(dns_record_value(OTHER_KEY, testing=True)),
        "dkim-testing:mail",
        Status.WARN,
        "remove t=y",
    ),
    (
        "DMARC missing",
        lambda r: drop(r, f"_dmarc.{DOMAIN}", "TXT"),
        "dmarc-record",
        Status.FAIL,
        "p=none",
    ),
    (
        "p=none",
        _dmarc(f"v=DMARC1; p=none; rua=mailto:d@{DOMAIN}"),
        "dmarc-policy",
        Status.WARN,
        "quarantine",
    ),
    ("no rua", _dmarc("v=DMARC1; p=reject"), "dmarc-rua", Status.WARN, "rua=mailto:"),
    (
        "external rua unauthorized",
        _dmarc("v=DMARC1; p=reject; rua=mailto:reports@other.example.org"),
        "dmarc-rua",
        Status.FAIL,
        "example.com._report._dmarc.other.example.org",
    ),
    (
        "removed pct",
        _dmarc(f"v=DMARC1; p=reject; pct=50; rua=mailto:d@{DOMAIN}"),
        "dmarc-removed-tags",
        Status.WARN,
        "",
    ),
    (
        "DMARC fails for our mail",
        lambda r: _dkim(dns_record_value(OTHER_KEY))(_spf("v=spf1 -all")(r)),
        "dmarc-alignment",
        Status.FAIL,
        "",
    ),
    (
        "IP listed",
        lambda r: [
            *r,
            ("10.2.0.192.dnsbl.test", "A", "127.0.0.2"),
            ("10.2.0.192.dnsbl.test", "TXT", "listed: see http://dnsbl.test/"),
        ],
        "dnsbl:dnsbl.test",
        Status.FAIL,
        "request removal at the website of dnsbl.test",
    ),
    (
        "refused query code",
        lambda r: [*r, ("10.2.0.192.dnsbl.test", "A", "127.255.255.254")],
        "dnsbl:dnsbl.test",
        Status.ERROR,
        "not a public one",
    ),
    (
        "domain listed",
        lambda r: [*r, (f"{DOMAIN}.dbl.test", "A", "127.0.1.2")],
        "dbl:dbl.test",
        Status.FAIL,
        "request removal",
    ),
]


@pytest.mark.parametrize(
    ("change", "check_id", "status", "fix"),
    [f[1:] for f in FAULTS],
    ids=[f[0] for f in FAULTS],
)
async def test_seeded_fault(
    tmp_path: Path, change: Change, check_id: str, status: Status, fix: str
) -> None:
    report = await _run(tmp_path, change(records()))
    row = report.get(check_id)
    assert row.status is status, row
    assert fix in row.fix, row
    if status is Status.FAIL:
        assert report.failed()


async def test_timeout_is_error_not_fail(tmp_path: Path) -> None:
    r = resolver(records())
    r.fail(REV, "PTR", Outcome.TIMEOUT)
    report = await run_checks(DOMAIN, options(tmp_path), r)
    assert report.get("ptr").status is Status.ERROR
    assert report.get("fcrdns").status is Status.ERROR
    assert report.get("mx").status is Status.OK
    assert not report.failed() and report.failed(strict=True)


async def test_nxdomain_domain(tmp_path: Path) -> None:
    report = await run_checks("nowhere.example", options(tmp_path), resolver([]))
    row = report.get("mx")
    assert row.status is Status.FAIL
    assert "does not exist (NXDOMAIN)" in row.observed


async def test_one_broken_check_does_not_hide_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailwright.doctor import rdns

    async def boom(ctx: object) -> None:
        raise RuntimeError("kaputt")

    monkeypatch.setattr(rdns, "check_fcrdns", boom)
    report = await _run(tmp_path, records())
    row = report.get("fcrdns")
    assert row.status is Status.ERROR
    assert "RuntimeError: kaputt" in row.observed
    # bulk-fcrdns reads the fcrdns row: it says so, the rest is unaffected
    assert all(c.status is Status.OK for c in report.checks if "fcrdns" not in c.id)


@pytest.mark.parametrize(
    ("domain", "ips", "message"),
    [
        ("a..b", (), "'a..b' is not a domain"),
        (DOMAIN, ("192.0.2.300",), "--ip '192.0.2.300' is not an IP address"),
    ],
)
async def test_bad_input_is_usage_error(
    tmp_path: Path, domain: str, ips: tuple[str, ...], message: str
) -> None:
    base = dataclasses.replace(options(tmp_path), ips=ips or (IP,))
    with pytest.raises(UsageError, match=message):
        await run_checks(domain, base, resolver([]))


async def test_missing_key_file_fails_key_match(tmp_path: Path) -> None:
    base = options(tmp_path)
    spec = dataclasses.replace(base.selectors[0], private_key=tmp_path / "gone.pem")
    report = await run_checks(
        DOMAIN, dataclasses.replace(base, selectors=(spec,)), resolver(records())
    )
    row = report.get("dkim-key-match:mail")
    assert row.status is Status.FAIL and "fix [[dkim]] private_key" in row.fix


async def test_garbage_key_file_fails_key_match(tmp_path: Path) -> None:
    base = options(tmp_path)
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    spec = dataclasses.replace(base.selectors[0], private_key=bad)
    report = await run_checks(
        DOMAIN, dataclasses.replace(base, selectors=(spec,)), resolver(records())
    )
    row = report.get("dkim-key-match:mail")
    assert row.status is Status.FAIL and "cannot read the private key" in row.observed
    assert report.get("dmarc-alignment").status is Status.OK  # SPF still aligns


async def test_rsa_1024_warns(tmp_path: Path) -> None:
    weak = generate_key("rsa", 1024)
    report = await _run(tmp_path, _dkim(dns_record_value(weak))(records()))
    assert report.get("dkim-key-size:mail").status is Status.WARN


async def test_relay_needs_the_provider_include(tmp_path: Path) -> None:
    relay = "smtp://u@smtp.mailgun.org:587"
    ok = await _run(
        tmp_path,
        [
            *_spf("v=spf1 include:mailgun.org -all")(records()),
            ("mailgun.org", "TXT", "v=spf1 -all"),
        ],
        relay_url=relay,
    )
    assert ok.get("spf-authorizes").status is Status.OK
    bad = await _run(tmp_path, records(), relay_url=relay)
    row = bad.get("spf-authorizes")
    assert row.status is Status.FAIL and "include:mailgun.org" in row.fix


async def test_json_schema(tmp_path: Path) -> None:
    report = await _run(tmp_path, drop(records(), REV, "PTR"))
    data = json.loads(json.dumps(report.to_json()))
    assert list(data) == ["domain", "checks", "summary"]
    assert data["domain"] == DOMAIN
    for check in data["checks"]:
        assert list(check) == ["id", "status", "title", "observed", "fix"]
        assert check["status"] in ("ok", "warn", "fail", "error")
    assert data["summary"]["fail"] == 2  # ptr, and the bulk-sender row bulk-fcrdns
    assert data["summary"]["total"] == len(data["checks"])


def test_default_options_from_no_config() -> None:
    from mailwright.config import Config

    o = DoctorOptions.from_config(Config(), DOMAIN, (IP,), ("s1",))
    assert o.hostname is None and o.ips == (IP,)
    assert [s.selector for s in o.selectors] == ["s1"] and o.selectors[0].private_key is None


async def test_without_ips_the_helo_hosts_addresses_are_checked(tmp_path: Path) -> None:
    base = dataclasses.replace(options(tmp_path), ips=(), expected_ipv4=())
    report = await run_checks(DOMAIN, base, resolver(records()))
    assert report.get("ptr").status is Status.OK
    assert report.get("spf-authorizes").observed.startswith(f"check_host({IP}, {DOMAIN})")
    assert report.get("dnsbl:dnsbl.test").status is Status.OK


async def test_without_ips_or_addresses_is_could_not_check(tmp_path: Path) -> None:
    base = dataclasses.replace(options(tmp_path), ips=(), expected_ipv4=())
    report = await run_checks(DOMAIN, base, resolver(drop(records(), HOST, "A")))
    row = report.get("ptr")
    assert row.status is Status.ERROR and "pass --ip IP" in row.fix


async def test_ipv6_sender_all_ok_then_unauthorized(tmp_path: Path) -> None:
    v6 = "2001:db8::25"
    rev6 = "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    recs = [*_spf(f"v=spf1 ip4:{IP} ip6:{v6} -all")(records()), (HOST, "AAAA", v6),
            (rev6, "PTR", HOST)]  # fmt: skip
    base = dataclasses.replace(options(tmp_path), ips=(IP, v6), expected_ipv6=(v6,))
    report = await run_checks(DOMAIN, base, resolver(recs))
    assert [c.id for c in report.checks if c.status is not Status.OK] == []
    assert f"{v6}: check_host({v6}, {DOMAIN}) = pass" in report.get("spf-authorizes").observed
    report = await run_checks(DOMAIN, base, resolver([*_spf(f"v=spf1 ip4:{IP} -all")(recs)]))
    row = report.get("spf-authorizes")
    assert row.status is Status.FAIL and row.fix == f"add ip6:{v6} to the SPF record"
