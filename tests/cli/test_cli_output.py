"""What the commands print, as a sysadmin sees it in a pipe: records stay whole (never
folded at 80 columns), DNS and log text is shown literally (no rich markup, no terminal
escapes obeyed), JSON is one valid document, and the exit codes README documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailwright.testing import DnsWorld

from .helpers import CliRun, shared_testdata

ESC = "\x1b"

# Hostile TXT records: rich markup and terminal escape sequences (\027 is ESC).
EVIL_ZONE = r"""
@ MX 10 mail
mail A 192.0.2.20
@ TXT "v=spf1 ip4:192.0.2.20 [bold]x[/] \027[31mRED\027[0m include:[/]bad -all"
_dmarc TXT ( "v=DMARC1; p=reject; rua=mailto:[/]x@evil.example; [bold]=1;"
    " ruf=mailto:\027[2Jz@evil.example" )
txt TXT "[bold red]hi[/] \027]0;title\007 \027[2J"
"""

LONG_SPF = (
    "v=spf1 ip4:192.0.2.20 ip4:192.0.2.21 ip4:192.0.2.22 ip4:192.0.2.23 ip4:192.0.2.24 "
    "ip4:192.0.2.25 ip4:192.0.2.26 -all"
)


def one_line_with(out: str, text: str) -> bool:
    return any(text in line for line in out.splitlines())


@pytest.fixture
def evil(dns_world: DnsWorld) -> str:
    dns_world.set_zone("evil.example", EVIL_ZONE)
    return dns_world.nameserver


def test_dmarc_check_shows_hostile_record_literally(cli_run: CliRun, evil: str) -> None:
    """Before: the ESC bytes of the record went to the terminal as they were."""
    result = cli_run("--nameserver", evil, "dmarc", "check", "evil.example")
    assert result.code in (0, 1), result
    assert ESC not in result.out
    assert "ruf=mailto:\\x1b[2Jz@evil.example" in result.out
    assert "rua=mailto:[/]x@evil.example; [bold]=1;" in result.out
    assert "'[bold]=1' is not a tag=value pair" in result.out


def test_dmarc_check_json_is_one_document(cli_run: CliRun, evil: str) -> None:
    result = cli_run("--nameserver", evil, "dmarc", "check", "evil.example", "--json")
    report = json.loads(result.out)
    assert list(report) == ["domain", "status", "discovery", "policy", "external", "findings"]
    assert "\x1b[2J" in report["discovery"]["record"]  # JSON keeps the data as it is
    assert result.err == ""


def test_spf_commands_show_hostile_record_literally(cli_run: CliRun, evil: str) -> None:
    check = cli_run("--nameserver", evil, "spf", "check", "--ip", "192.0.2.20",
                    "--sender", "a@evil.example", "--trace")  # fmt: skip
    assert check.code == 1  # permerror
    lint = cli_run("--nameserver", evil, "spf", "lint", "evil.example")
    assert lint.code == 1
    for result in (check, lint):
        assert ESC not in result.out
        assert "[bold]x[/] \\x1b[31mRED\\x1b[0m include:[/]bad -all" in result.out


def test_dns_shows_hostile_txt_literally(cli_run: CliRun, evil: str) -> None:
    result = cli_run("--nameserver", evil, "dns", "txt.evil.example", "TXT")
    assert result.code == 0
    assert ESC not in result.out and "\x07" not in result.out
    assert '"[bold red]hi[/] \\027]0;title\\007 \\027[2J"' in result.out


def test_piped_records_are_not_folded(cli_run: CliRun, dns_world: DnsWorld) -> None:
    """Before: rich folded every line at 80 columns when stdout was not a terminal."""
    dns_world.set_zone("long.example", f'@ TXT "{LONG_SPF}"')
    ns = dns_world.nameserver
    dns = cli_run("--nameserver", ns, "dns", "long.example", "TXT")
    assert one_line_with(dns.out, f'long.example. 300 IN TXT "{LONG_SPF}"')
    spf = cli_run("--nameserver", ns, "spf", "check", "--ip", "192.0.2.99",
                  "--sender", "a@long.example", "--trace")  # fmt: skip
    assert spf.code == 1
    assert one_line_with(spf.out, f"record       {LONG_SPF}")
    assert one_line_with(spf.out, f"long.example: record: {LONG_SPF}")
    lint = cli_run("--nameserver", ns, "spf", "lint", "long.example")
    assert lint.code == 0
    assert one_line_with(lint.out, LONG_SPF)


def test_init_piped_paths_are_whole(cli_run: CliRun, tmp_path: Path) -> None:
    target = tmp_path / ("a-long-directory-name-" * 3) / "conf"
    result = cli_run("init", "example.com", "--ip", "192.0.2.10", "--dir", str(target))
    assert result.code == 0, result
    key = target / "keys" / "example.com.mail-ed.ed25519.pem"
    assert one_line_with(result.out, f"wrote {key} (DKIM private key, mode 0600)")


def _published_world(cli_run: CliRun, dns_world: DnsWorld, tmp_path: Path) -> tuple[Path, dict]:
    conf = tmp_path / "conf"
    assert cli_run("init", "example.com", "--ip", "192.0.2.10", "--dir", str(conf)).code == 0
    config = conf / "mailwright.toml"
    records = json.loads(cli_run("--config", str(config), "records", "--format", "json").out)
    zone = [r["zone"] for r in records["records"] if r["publish"] == "dns"]
    ptr = [r["zone"] for r in records["records"] if r["publish"] != "dns"]
    dns_world.set_zone("example.com", "\n".join(zone))
    dns_world.set_zone("2.0.192.in-addr.arpa", "\n".join(ptr))
    return config, records


def test_check_on_published_records(cli_run: CliRun, dns_world: DnsWorld, tmp_path: Path) -> None:
    """init -> records -> publish -> check: nothing fails (exit 0), --strict fails on the
    p=none warning (exit 1), the JSON has README's schema, and piped human output keeps
    the 2-string DKIM record on one line (before: folded inside a table cell)."""
    config, records = _published_world(cli_run, dns_world, tmp_path)
    base = ("--nameserver", dns_world.nameserver, "--config", str(config), "check",
            "example.com", "--skip", "ports", "--skip", "blocklists")  # fmt: skip
    human = cli_run(*base)
    assert human.code == 0, human.out
    dkim = next(r["zone"] for r in records["records"] if r["name"].startswith("mail._domainkey"))
    assert '" "' in dkim  # two strings: the line a fold used to break
    assert one_line_with(human.out, dkim)
    assert ESC not in human.out
    assert cli_run(*base, "--strict").code == 1

    report = json.loads(cli_run(*base, "--json").out)
    assert list(report) == ["domain", "checks", "summary"]
    assert list(report["summary"]) == [
        "ok", "warn", "fail", "error", "total", "elapsed_seconds", "dns_queries", "dns_seconds_sum"
    ]  # fmt: skip
    for check in report["checks"]:
        assert list(check) == ["id", "status", "title", "observed", "fix"]
        assert check["status"] in ("ok", "warn", "fail", "error")
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses["dkim-key-match:mail"] == "ok"
    assert statuses["spf-authorizes"] == "ok"
    assert statuses["dmarc-policy"] == "warn"


def test_explain_does_not_replay_escape_sequences(cli_run: CliRun, tmp_path: Path) -> None:
    """Before: an ESC sequence in a remote reply was printed raw (-v and 'unknown')."""
    log = tmp_path / "mail.log"
    log.write_text(
        "Nov 24 06:28:10 mail postfix/smtp[3066]: D4C123B1612: to=<y@example.org>, "
        "relay=mx.example.org[203.0.113.6]:25, dsn=4.0.0, status=deferred "
        "(host said: 451 odd \x1b[2J reply [bold]x[/])\n"
    )
    result = cli_run("explain", "-v", str(log))
    assert result.code == 1  # something failed
    assert ESC not in result.out
    assert "451 odd \\x1b[2J reply [bold]x[/]" in result.out


def test_dmarc_reports_piped_addresses_are_whole(cli_run: CliRun, tmp_path: Path) -> None:
    """Before: at 80 columns the source column was cut to '192.0.2.…'."""
    conf = tmp_path / "conf"
    assert cli_run("init", "example.com", "--ip", "192.0.2.10", "--dir", str(conf)).code == 0
    config = str(conf / "mailwright.toml")
    folder = shared_testdata() / "dmarc" / "aggregate" / "parsedmarc"
    files = [folder / "addisonfoods.com!example.com!1536105600!1536191999.xml",
             folder / "protection.outlook.com!example.com!1711756800!1711843200.xml"]  # fmt: skip
    imported = cli_run("--config", config, "dmarc", "import", *map(str, files))
    assert imported.code == 0, imported
    data = json.loads(cli_run("--config", config, "dmarc", "reports", "--no-resolve", "--json").out)
    ips = [source["source_ip"] for source in data["sources"]]
    assert ips
    human = cli_run("--config", config, "dmarc", "reports", "--no-resolve")
    assert "…" not in human.out
    for source in data["sources"]:
        # the whole address, with the verdict word README and the JSON use
        row = next(line for line in human.out.splitlines() if source["source_ip"] in line)
        assert f" {source['verdict']} " in row


def test_terminal_record_lines_are_soft_wrapped(
    cli_run: CliRun, evil: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a narrow terminal the record line is left to the terminal to wrap: rich would
    insert a newline inside it, and a record copied from the screen would be broken."""
    from mailwright.cli import context

    monkeypatch.setattr(context.console, "_force_terminal", True)
    monkeypatch.setattr(context.console, "_width", 60)
    monkeypatch.setattr(context.console, "_color_system", None)
    result = cli_run("--nameserver", evil, "dmarc", "check", "evil.example")
    assert one_line_with(
        result.out,
        "v=DMARC1; p=reject; rua=mailto:[/]x@evil.example; [bold]=1; "
        "ruf=mailto:\\x1b[2Jz@evil.example",
    )


def test_dmarc_reports_reads_without_creating_a_data_dir(cli_run: CliRun) -> None:
    """Before: 'dmarc reports' without a config created ./mailwright-data/ (and a SQLite
    file) wherever it was run."""
    human = cli_run("dmarc", "reports")
    assert human.code == 0
    assert "No DMARC aggregate reports stored yet" in human.out
    assert "mailwright dmarc import" in human.out
    machine = cli_run("dmarc", "reports", "--json")
    assert json.loads(machine.out) == {"reports": 0, "messages": 0, "sources": []}
    assert not Path("mailwright-data").exists()


def test_spf_check_record_whole_on_a_narrow_terminal(
    cli_run: CliRun, dns_world: DnsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the record was folded inside a rich grid cell (and lines padded with spaces)."""
    from mailwright.cli import context

    dns_world.set_zone("long.example", f'@ TXT "{LONG_SPF}"')
    monkeypatch.setattr(context.console, "_force_terminal", True)
    monkeypatch.setattr(context.console, "_width", 60)
    monkeypatch.setattr(context.console, "_color_system", None)
    result = cli_run("--nameserver", dns_world.nameserver, "spf", "check",
                     "--ip", "192.0.2.99", "--sender", "a@long.example")  # fmt: skip
    assert result.code == 1
    assert one_line_with(result.out, f"record       {LONG_SPF}")
    rows = [line for line in result.out.splitlines() if line.startswith(("domain ", "record "))]
    assert len(rows) == 2
    assert all(line == line.rstrip() for line in rows)


def test_explain_since_out_of_range_is_a_usage_error(cli_run: CliRun, tmp_path: Path) -> None:
    """Before: OverflowError from the date arithmetic, an internal error (exit 70)."""
    log = tmp_path / "mail.log"
    log.write_text("")
    for value in ("99999999999d", "0001-01-01T00:00:00+14:00"):
        result = cli_run("explain", "--since", value, str(log))
        assert result.code == 2, result
        assert result.err.startswith(f"error: --since {value!r} is out of range")
        assert len(result.err.splitlines()) == 1


def test_emoji_codes_in_dns_text_are_left_alone(cli_run: CliRun, dns_world: DnsWorld) -> None:
    """Before: rich replaced ':x:' and ':date:' with emoji, so 'a:x:y' printed as 'a❌y'
    (and a DKIM h=...:subject:date:... list lost its ':date:')."""
    record = "v=spf1 a:x:y include:date:now -all"
    dns_world.set_zone("emo.example", f'@ TXT "{record}"')
    ns = dns_world.nameserver
    dns = cli_run("--nameserver", ns, "dns", "emo.example", "TXT")
    assert one_line_with(dns.out, f'"{record}"')
    lint = cli_run("--nameserver", ns, "spf", "lint", "emo.example")
    assert one_line_with(lint.out, record)
    assert "'a:x:y'" in lint.out


def test_init_next_step_names_the_config_it_wrote(cli_run: CliRun, tmp_path: Path) -> None:
    """Before: 'Then run: mailwright check DOMAIN' even when the config was written
    elsewhere, where check does not look."""
    target = tmp_path / "my conf"
    result = cli_run("init", "example.com", "--ip", "192.0.2.10", "--dir", str(target))
    assert result.code == 0
    config = target / "mailwright.toml"
    assert one_line_with(result.out, f"Then run: mailwright --config '{config}' check example.com")
    here = cli_run("init", "example.com", "--ip", "192.0.2.10")  # in the working directory
    assert here.code == 0
    assert one_line_with(here.out, "Then run: mailwright check example.com")


def test_init_machine_formats_keep_stdout_clean(cli_run: CliRun, tmp_path: Path) -> None:
    """--format json/zone: stdout is only the records; what was written is said on stderr
    (before: not said at all)."""
    result = cli_run("init", "example.com", "--ip", "192.0.2.10", "--dir",
                     str(tmp_path / "a"), "--format", "json")  # fmt: skip
    assert result.code == 0
    assert list(json.loads(result.out)) == ["records", "notes"]
    assert f"wrote {tmp_path / 'a' / 'mailwright.toml'}" in result.err
    zone = cli_run("init", "example.com", "--ip", "192.0.2.10", "--dir",
                   str(tmp_path / "b"), "--format", "zone")  # fmt: skip
    assert zone.code == 0
    assert all(line.startswith(";") or " IN " in line for line in zone.out.splitlines())
    assert "(DKIM private key, mode 0600)" in zone.err


def test_check_exit_1_on_a_failing_check(cli_run: CliRun, dns_world: DnsWorld) -> None:
    dns_world.set_zone("bad.example", '@ MX 10 mail\nmail A 192.0.2.40\n@ TXT "v=spf1 +all"')
    base = ("--nameserver", dns_world.nameserver, "check", "bad.example", "--ip", "192.0.2.40",
            "--skip", "ports", "--skip", "blocklists")  # fmt: skip
    human = cli_run(*base)
    assert human.code == 1
    assert one_line_with(human.out, "spf-all  fail")
    report = json.loads(cli_run(*base, "--json").out)
    assert {c["id"]: c["status"] for c in report["checks"]}["spf-all"] == "fail"
