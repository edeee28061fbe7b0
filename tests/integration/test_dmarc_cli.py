"""``mailwright dmarc check`` and DMARC evaluation end to end against a real NSD.

The TLD zones are served too (empty), as on the Internet: without them NSD
answers REFUSED for ``_dmarc.com``, which the tree walk rightly treats as a DNS
error rather than "no record".
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest

from mailwright.dmarc import DmarcStatus, Policy, discover_policy, evaluate
from mailwright.testing import NsdServer

pytestmark = pytest.mark.integration

EXAMPLE_COM = (
    '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.com,'
    'mailto:agg@reports.example.net; " "ruf=mailto:fail@bad.example.net"\n'
    "www A 192.0.2.80\n"
)
EXAMPLE_NET = """\
example.com._report._dmarc.reports TXT "v=DMARC1;"
*._report._dmarc.any TXT "v=DMARC1"
"""
EXAMPLE_ORG = """\
_dmarc TXT "v=DMARC1; p=none; rua=mailto:x@any.example.net"
clean TXT "nothing here"
_dmarc.clean TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.org"
_dmarc.lists TXT "v=DMARC1; p=quarantine; psd=n; rua=mailto:dmarc@example.org"
"""
EXAMPLE_TLD = """\
_dmarc.bank TXT "v=DMARC1; p=quarantine; np=reject; psd=y; rua=mailto:psd@bank.example"
"""
DEEP = "a.b.c.d.e.f.g.h.i.example.com"


def mailwright(ns: NsdServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *("uv", "run", "--quiet", "mailwright"),
            *("--nameserver", ns.nameserver, "--dns-timeout", "2"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def check_json(ns: NsdServer, domain: str) -> tuple[int, dict[str, Any]]:
    proc = mailwright(ns, "dmarc", "check", domain, "--json")
    assert proc.stderr == "", proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def finding_ids(data: dict[str, Any]) -> set[str]:
    return {f["id"] for f in data["findings"]}


@pytest.fixture
def world(dns_world: NsdServer) -> NsdServer:
    for tld in ("com", "net", "org"):
        dns_world.set_zone(tld, "")
    dns_world.set_zone("example", EXAMPLE_TLD)
    dns_world.set_zone("example.com", EXAMPLE_COM)
    dns_world.set_zone("example.net", EXAMPLE_NET)
    dns_world.set_zone("example.org", EXAMPLE_ORG)
    return dns_world


def test_walk_finds_the_org_record_from_a_deep_subdomain(world: NsdServer) -> None:
    code, data = check_json(world, DEEP)
    discovery = data["discovery"]
    assert discovery["status"] == "found"
    assert discovery["record_name"] == "_dmarc.example.com"
    assert discovery["inherited"] is True
    assert discovery["organizational_domain"] == "example.com"
    # RFC 9989 §4.10: the ten-label name is cut to seven labels after the first query.
    assert [q["name"] for q in discovery["queries"]] == [
        f"_dmarc.{DEEP}",
        "_dmarc.e.f.g.h.i.example.com",
        "_dmarc.f.g.h.i.example.com",
        "_dmarc.g.h.i.example.com",
        "_dmarc.h.i.example.com",
        "_dmarc.i.example.com",
        "_dmarc.example.com",
        "_dmarc.com",
    ]
    assert [q["outcome"] for q in discovery["queries"]][-2:] == ["answer", "nxdomain"]
    # The record's two character-strings were joined (RFC 9989 §4.5).
    assert data["policy"]["ruf"][0]["address"] == "fail@bad.example.net"
    assert code == 1  # the unauthorized ruf below


def test_external_destinations_authorized_and_not(world: NsdServer) -> None:
    code, data = check_json(world, "example.com")
    assert code == 1
    assert data["status"] == "fail"
    statuses = {(e["tag"], e["host"]): e["status"] for e in data["external"]}
    assert statuses == {
        ("rua", "example.com"): "internal",
        ("rua", "reports.example.net"): "authorized",
        ("ruf", "bad.example.net"): "unauthorized",
    }
    unauthorized = next(f for f in data["findings"] if f["id"] == "dmarc-external-unauthorized")
    assert unauthorized["severity"] == "error"
    assert "example.com._report._dmarc.bad.example.net" in unauthorized["fix"]


def test_wildcard_authorization(world: NsdServer) -> None:
    # RFC 9990 §4: "*._report._dmarc.<host>" accepts reports for any domain.
    code, data = check_json(world, "example.org")
    assert [e["status"] for e in data["external"]] == ["authorized"]
    assert finding_ids(data) == {"dmarc-p-none", "dmarc-external-authorized"}
    p_none = next(f for f in data["findings"] if f["id"] == "dmarc-p-none")
    assert "p=quarantine" in p_none["fix"] and "p=reject" in p_none["fix"]
    assert code == 0  # p=none is a warning, not a failed check


def test_clean_record_exits_zero(world: NsdServer) -> None:
    code, data = check_json(world, "clean.example.org")
    assert code == 0
    assert data["status"] == "ok"
    assert data["findings"] == []
    assert data["policy"]["effective"]["p"] == "reject"


def test_psd_record_applies_below_a_public_suffix(world: NsdServer) -> None:
    code, data = check_json(world, "shop.bank.example")
    discovery = data["discovery"]
    assert discovery["record_name"] == "_dmarc.bank.example"
    assert discovery["organizational_domain"] == "shop.bank.example"
    assert discovery["psd_record"] is True
    inherited = next(f for f in data["findings"] if f["id"] == "dmarc-inherited")
    assert inherited["severity"] == "warning"
    assert code == 0


def test_no_record_exits_one(world: NsdServer) -> None:
    world.set_zone("example.net", EXAMPLE_NET + "www A 192.0.2.1\n")
    code, data = check_json(world, "www.example.net")
    assert code == 1
    assert finding_ids(data) == {"dmarc-no-record"}
    assert data["discovery"]["status"] == "none"


def test_unserved_zone_is_a_dns_error_not_no_record(world: NsdServer) -> None:
    code, data = check_json(world, "unserved.test")
    assert code == 1
    assert data["discovery"]["status"] == "temperror"
    assert finding_ids(data) == {"dmarc-dns-error"}


def test_human_output(world: NsdServer) -> None:
    proc = mailwright(world, "dmarc", "check", "www.example.com")
    assert proc.returncode == 1
    assert "_dmarc.example.com (inherited from example.com)" in proc.stdout
    assert "dmarc-external-unauthorized" in proc.stdout
    assert "Report destinations" in proc.stdout


def test_bad_domain_argument_is_a_usage_error(world: NsdServer) -> None:
    proc = mailwright(world, "dmarc", "check", "bad..example.com")
    assert proc.returncode == 2
    assert "not a domain name" in proc.stderr


def test_help_has_examples(world: NsdServer) -> None:
    proc = mailwright(world, "dmarc", "check", "--help")
    assert proc.returncode == 0
    assert "mailwright dmarc check example.com --json" in proc.stdout


# --- the library over the real resolver ----------------------------------------------


def test_evaluate_over_real_dns(world: NsdServer) -> None:
    resolver = world.resolver()

    async def scenario() -> None:
        deep = await evaluate(DEEP, ("bounce.example.com", "pass"), [], resolver)
        assert deep.result is DmarcStatus.PASS
        assert deep.aligned_by == ("spf:bounce.example.com",)

        # np for a name that does not exist (real NXDOMAIN for the A query).
        ghost = await evaluate("ghost.bank.example", None, [], resolver)
        assert ghost.result is DmarcStatus.FAIL
        assert (ghost.requested_policy, ghost.policy_tag) == (Policy.REJECT, "np")

        # psd=n makes lists.example.org its own organizational domain: a pass for
        # example.org does not align with it in relaxed mode.
        lists = await evaluate("lists.example.org", None, [("example.org", "pass")], resolver)
        assert lists.result is DmarcStatus.FAIL
        assert lists.disposition is Policy.QUARANTINE

        found = await discover_policy("lists.example.org", resolver)
        assert found.walk.stopped_by == "psd=n"

    asyncio.run(scenario())
