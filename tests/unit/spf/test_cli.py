"""``spf check`` / ``spf lint`` over an in-memory DNS: exit codes, JSON, hostile DNS text."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mailwright.cli.context import AppContext
from mailwright.cli.spf import spf
from mailwright.dns import MemoryResolver

HOSTILE = "v=spf1 a:[/]x.example.com [bold]x -all exp=[link=http://x]"


def run(resolver: MemoryResolver, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(spf, list(args), obj=AppContext(_resolver=resolver))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def world() -> MemoryResolver:
    r = MemoryResolver()
    r.add("example.com", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    r.add("hostile.example.com", "TXT", HOSTILE)
    r.add("[/].example.com", "TXT", "v=spf1 -all exp=e.example.com")
    r.add("e.example.com", "TXT", "[/][bold] %{l}")
    return r


def test_check_exit_codes_and_json_schema() -> None:
    code, out = run(world(), "check", "--ip", "192.0.2.1", "--sender", "a@example.com", "--json")
    data = json.loads(out)
    assert code == 0 and data["result"] == "pass"
    assert list(data) == [
        "result",
        "identity",
        "ip",
        "domain",
        "sender",
        "helo",
        "mechanism",
        "mechanism_domain",
        "explanation",
        "explanation_source",
        "problem",
        "problem_domain",
        "problem_term",
        "problem_offset",
        "record",
        "dns_lookups",
        "void_lookups",
        "trace",
    ]
    code, out = run(world(), "check", "--ip", "198.51.100.1", "--sender", "a@example.com")
    assert code == 1 and "SPF fail" in out


def test_hostile_dns_text_is_printed_not_interpreted() -> None:
    code, out = run(world(), "check", "--ip", "192.0.2.1", "--sender", "a@hostile.example.com")
    assert code == 1 and "permerror" in out and "[/]x.example.com" in out
    code, out = run(
        world(),
        "check",
        "--ip",
        "192.0.2.1",
        "--sender",
        "[/][x]@[/].example.com",
        "--helo",
        "h.example",
    )
    assert code == 1
    code, out = run(world(), "lint", "hostile.example.com")
    assert code == 1 and "[/]x.example.com" in out


def test_control_characters_from_dns_are_shown_escaped() -> None:
    r = MemoryResolver().add("example.com", "TXT", "v=spf1 \x1b[2J\x07 -all")
    code, out = run(r, "check", "--ip", "192.0.2.1", "--sender", "a@example.com", "--trace")
    assert code == 1 and "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J\\x07" in out
    code, out = run(r, "lint", "example.com")
    assert code == 1 and "\x1b" not in out


def test_usage_errors_exit_2() -> None:
    for args in (
        ["check", "--ip", "300.1.1.1", "--sender", "a@example.com"],
        ["check", "--ip", "192.0.2.1", "--sender", "no-at-sign"],
        ["check", "--ip", "192.0.2.1", "--sender", ""],
        ["check", "--ip", "192.0.2.1", "--identity", "helo"],
        ["check", "--ip", "192.0.2.1"],
        ["lint", "a..example.com"],
        ["lint", "x" * 64 + ".example.com"],
    ):
        result = CliRunner().invoke(spf, args, obj=AppContext(_resolver=world()))
        assert result.exception is not None
        assert type(result.exception).__name__ == "UsageError", (args, result.exception)


def test_helo_identity_and_null_sender() -> None:
    r = world().add("mail.example.com", "TXT", "v=spf1 a -all")
    r.add("mail.example.com", "A", "192.0.2.7")
    code, out = run(
        r,
        "check",
        "--ip",
        "192.0.2.7",
        "--helo",
        "mail.example.com",
        "--identity",
        "helo",
        "--json",
    )
    data = json.loads(out)
    assert (code, data["result"], data["identity"]) == (0, "pass", "helo")
    assert data["sender"] == "postmaster@mail.example.com"
    code, out = run(
        r, "check", "--ip", "192.0.2.8", "--sender", "", "--helo", "mail.example.com", "--json"
    )
    data = json.loads(out)
    assert (code, data["result"], data["identity"]) == (1, "fail", "mailfrom")
    assert data["domain"] == "mail.example.com"
