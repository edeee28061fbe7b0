"""``mailwright spf check`` / ``spf lint`` end to end: the real CLI against a real NSD."""

from __future__ import annotations

import json
import subprocess

import pytest

from mailwright.testing import NsdServer

pytestmark = pytest.mark.integration

EXAMPLE = """\
@ MX 10 mail
mail A 192.0.2.10
mail AAAA 2001:db8::10
@ TXT "v=spf1 mx include:_spf.example.net -all exp=why.%{d}"
why TXT "%{i} is not allowed to send for %{d}"
bad TXT "v=spf1 ip4:192.0.2.10 a:foo_bar -all"
two TXT "v=spf1 -all"
two TXT "v=spf1 mx -all"
slow TXT "v=spf1 include:down.example.org -all"
"""
EXAMPLE_NET = """\
_spf TXT "v=spf1 ip4:198.51.100.0/24 a:out.example.net ~all"
out A 198.51.100.99
"""


def mailwright(ns: NsdServer, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "uv",
            "run",
            "--quiet",
            "mailwright",
            "--nameserver",
            ns.nameserver,
            "--dns-timeout",
            "2",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def world(dns_world: NsdServer) -> NsdServer:
    dns_world.set_zone("example.com", EXAMPLE)
    dns_world.set_zone("example.net", EXAMPLE_NET)
    return dns_world


def check_json(ns: NsdServer, *args: str) -> tuple[int, dict[str, object]]:
    proc = mailwright(ns, "spf", "check", "--json", *args)
    assert proc.stderr == "", proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_check_pass_via_mx_and_include(world: NsdServer) -> None:
    code, data = check_json(world, "--ip", "192.0.2.10", "--sender", "app@example.com")
    assert code == 0
    assert data["result"] == "pass" and data["mechanism"] == "mx"
    code, data = check_json(world, "--ip", "198.51.100.7", "--sender", "app@example.com")
    assert code == 0 and data["mechanism"] == "include:_spf.example.net"
    assert data["dns_lookups"] == 2


def test_check_fail_with_explanation_and_ipv6(world: NsdServer) -> None:
    code, data = check_json(world, "--ip", "203.0.113.5", "--sender", "app@example.com")
    assert code == 1
    assert data["result"] == "fail" and data["mechanism"] == "-all"
    assert data["explanation"] == "203.0.113.5 is not allowed to send for example.com"
    assert data["explanation_source"] == "exp"
    code, data = check_json(world, "--ip", "2001:db8::10", "--sender", "app@example.com")
    assert (code, data["result"]) == (0, "pass")
    code, data = check_json(world, "--ip", "::ffff:192.0.2.10", "--sender", "app@example.com")
    assert (code, data["result"], data["ip"]) == (0, "pass", "192.0.2.10")


def test_check_syntax_error_is_permerror_with_term(world: NsdServer) -> None:
    code, data = check_json(world, "--ip", "192.0.2.99", "--sender", "x@bad.example.com")
    assert code == 1
    assert data["result"] == "permerror"
    assert (data["problem_term"], data["problem_offset"]) == ("a:foo_bar", 22)


def test_check_two_records_none_and_null_sender(world: NsdServer) -> None:
    code, data = check_json(world, "--ip", "192.0.2.10", "--sender", "x@two.example.com")
    assert (code, data["result"]) == (1, "permerror")
    code, data = check_json(world, "--ip", "192.0.2.10", "--sender", "x@nothing.example.com")
    assert (code, data["result"]) == (1, "none")
    code, data = check_json(world, "--ip", "192.0.2.10", "--sender", "", "--helo", "example.com")
    assert (code, data["result"], data["sender"]) == (0, "pass", "postmaster@example.com")


def test_check_dns_failure_is_temperror(world: NsdServer) -> None:
    # down.example.org is not served by the test server: NSD refuses it → temperror.
    code, data = check_json(world, "--ip", "192.0.2.99", "--sender", "x@slow.example.com")
    assert (code, data["result"]) == (1, "temperror")


def test_check_human_output_and_usage_errors(world: NsdServer) -> None:
    proc = mailwright(
        world, "spf", "check", "--ip", "192.0.2.10", "--sender", "a@example.com", "--trace"
    )
    assert proc.returncode == 0
    assert "SPF pass" in proc.stdout and "matched" in proc.stdout and "trace" in proc.stdout
    proc = mailwright(world, "spf", "check", "--ip", "not-an-ip", "--sender", "a@example.com")
    assert proc.returncode == 2 and "--ip 'not-an-ip' is not an IP address" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = mailwright(world, "spf", "check", "--ip", "192.0.2.1", "--sender", "")
    assert proc.returncode == 2 and "--helo" in proc.stderr


def test_lint_tree_and_counts(world: NsdServer) -> None:
    proc = mailwright(world, "spf", "lint", "example.com", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["dns_lookups"] == 3 and data["void_lookups"] == 0
    assert data["tree"]["children"][0]["domain"] == "_spf.example.net"
    assert data["tree"]["children"][0]["lookups"] == 1
    assert data["permerror"] is False
    human = mailwright(world, "spf", "lint", "example.com")
    assert human.returncode == 0
    assert "include:_spf.example.net → _spf.example.net" in human.stdout
    assert "DNS lookups: 3 of 10" in human.stdout


def test_lint_permerror_exits_1_and_names_position(world: NsdServer) -> None:
    proc = mailwright(world, "spf", "lint", "bad.example.com", "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    (finding,) = [f for f in data["findings"] if f["id"] == "syntax"]
    assert (finding["term"], finding["offset"]) == ("a:foo_bar", 22)
    proc = mailwright(world, "spf", "lint", "two.example.com")
    assert proc.returncode == 1 and "multiple-records" in proc.stdout


def test_lint_warns_about_spf_rr_type_ptr_and_all(dns_world: NsdServer) -> None:
    dns_world.set_zone(
        "example.org",
        '@ TXT "v=spf1 ptr a:gone.example.org ?all"\n@ TYPE99 \\# 12 0b763d73706631202d616c6c\n',
    )
    proc = mailwright(dns_world, "spf", "lint", "example.org", "--json")
    data = json.loads(proc.stdout)
    ids = {f["id"] for f in data["findings"]}
    assert {"spf-rr-type", "ptr", "neutral-all", "void-lookup"} <= ids
    assert data["spf_rr_type"] == ["v=spf1 -all"]
    assert proc.returncode == 0  # warnings only


def test_lint_bad_domain_is_a_usage_error(world: NsdServer) -> None:
    proc = mailwright(world, "spf", "lint", "a" * 64 + ".example.com")
    assert proc.returncode == 2 and "label longer than 63" in proc.stderr
