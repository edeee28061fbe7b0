"""Every user mistake is one line on stderr saying what is wrong and how to fix it, exit 2,
nothing on stdout and no traceback -- click's own errors included."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import CliRun, assert_one_line_error, shared_testdata


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--bogus"], ["no such option '--bogus'", "see 'mailwright --help'"]),
        (["nosuchcmd"], ["no such command 'nosuchcmd'", "see 'mailwright --help'"]),
        (["spf", "check"], ["missing option '--ip'", "see 'mailwright spf check --help'"]),
        (
            ["spf", "check", "--ip", "192.0.2.1", "--sender", "a@example.com", "--frob"],
            ["no such option '--frob'", "mailwright spf check --help"],
        ),
        (["spf", "lint"], ["missing argument 'DOMAIN'", "mailwright spf lint --help"]),
        (["dns"], ["missing argument 'NAME'", "mailwright dns --help"]),
        (["check", "example.com", "--skip", "nope"], ["'--skip'", "mailwright check --help"]),
        (["dmarc", "reports", "--since", "abc"], ["'--since'", "not a valid integer"]),
        (["init", "example.com", "--format", "yaml"], ["'--format'", "mailwright init --help"]),
        (["explain", "--frob"], ["no such option '--frob'", "mailwright explain --help"]),
    ],
)
def test_click_usage_errors_are_one_line(
    cli_run: CliRun, args: list[str], needles: list[str]
) -> None:
    assert_one_line_error(cli_run(*args), *needles)


def test_directory_given_as_file_is_one_line(cli_run: CliRun, tmp_path: Path) -> None:
    assert_one_line_error(cli_run("dmarc", "import", str(tmp_path)), "is a directory")


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "abc"])
def test_dns_timeout_must_be_a_positive_number(cli_run: CliRun, value: str) -> None:
    assert_one_line_error(cli_run("--dns-timeout", value, "dns", "example.com"), "--dns-timeout")


@pytest.mark.parametrize("args", [["dns", "a..b"], ["dns", "a..b", "TXT", "--json"], ["dns", ""]])
def test_dns_bad_name_is_a_usage_error(cli_run: CliRun, args: list[str]) -> None:
    """A typo is not a DNS outcome: nothing is queried, exit 2 (1 means 'no such record')."""
    assert_one_line_error(cli_run(*args), "is not a domain name")


@pytest.mark.parametrize(
    ("domain", "needle"),
    [
        ("exa mple.com", "label 'exa mple'"),
        ("ex[bold]ample.com", "label 'ex[bold]ample'"),
        ("under_score.example", "label 'under_score'"),
        ("example", "at least two labels"),
    ],
)
def test_init_bad_domain_writes_nothing(
    cli_run: CliRun, tmp_path: Path, domain: str, needle: str
) -> None:
    """Before the fix, 'exa mple.com' wrote keys and a config the loader then refused,
    and 'ex[bold]ample.com' was accepted (and printed with its markup interpreted)."""
    target = tmp_path / "conf"
    result = cli_run("init", domain, "--ip", "192.0.2.10", "--dir", str(target))
    assert_one_line_error(result, needle)
    assert not target.exists() or not any(target.rglob("*"))


def test_init_bad_hostname_writes_nothing(cli_run: CliRun, tmp_path: Path) -> None:
    target = tmp_path / "conf"
    result = cli_run(
        "init", "example.com", "--ip", "192.0.2.10", "--hostname", "a b.example.com",
        "--dir", str(target),
    )  # fmt: skip
    assert_one_line_error(result, "--hostname", "label 'a b'")
    assert not target.exists()


def test_init_ipv4_given_as_ipv6(cli_run: CliRun, tmp_path: Path) -> None:
    target = tmp_path / "conf"
    result = cli_run(
        "init", "example.com", "--ip", "192.0.2.10", "--ipv6", "192.0.2.11", "--dir", str(target)
    )
    assert_one_line_error(result, "--ipv6 '192.0.2.11' is an IPv4 address", "--ip 192.0.2.11")
    assert not target.exists()


def test_records_without_config(cli_run: CliRun) -> None:
    assert_one_line_error(cli_run("records"), "no config file found", "mailwright init")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["check", "exa mple.com"], ["DOMAIN 'exa mple.com'", "label 'exa mple'"]),
        (["check", "ex[bold]ample.com"], ["DOMAIN 'ex[bold]ample.com'"]),
        (["check", "example.com", "--selector", "a b"], ["--selector 'a b' is not a DKIM"]),
        (["check", "example.com", "--selector", "-x"], ["--selector '-x' is not a DKIM"]),
    ],
)
def test_check_rejects_bad_names_before_querying(
    cli_run: CliRun, args: list[str], needles: list[str]
) -> None:
    """Before: these ran every check (DNS errors, exit 0 or 1) instead of naming the typo.
    No nameserver is reachable at 127.0.0.1:9: a query would time out, not exit 2 at once."""
    result = cli_run("--nameserver", "127.0.0.1:9", "--dns-timeout", "0.2", *args)
    assert_one_line_error(result, *needles)


@pytest.mark.parametrize(
    ("relay", "needle"),
    [
        ("smtp://u@[bold]x:587", "not appear to be an IPv4 or IPv6"),  # was exit 70, files left
        ("smtp://", "no host name"),  # was accepted: a config without a relay host
        ("smtp://u@host_x.example:587", "label 'host_x'"),
        ("smtp://h.example:99999", "Port out of range"),
        ("smtp://h.example/path", "unexpected path"),
    ],
)
def test_init_bad_relay_writes_nothing(
    cli_run: CliRun, tmp_path: Path, relay: str, needle: str
) -> None:
    target = tmp_path / "conf"
    result = cli_run("init", "example.com", "--ip", "192.0.2.10", "--relay", relay,
                     "--dir", str(target))  # fmt: skip
    assert_one_line_error(result, f"--relay {relay!r}", needle)
    assert not target.exists()


def test_init_unwritable_dir_is_one_line(cli_run: CliRun, tmp_path: Path) -> None:
    """Before: a file in the way was an internal error (exit 70)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli_run("init", "example.com", "--ip", "192.0.2.10", "--dir", str(blocker / "sub"))
    assert_one_line_error(result, f"cannot write {blocker / 'sub'}: Not a directory", "--dir")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "keys").write_text("")
    result = cli_run("init", "example.com", "--ip", "192.0.2.10", "--dir", str(tmp_path / "conf"))
    assert_one_line_error(result, f"cannot write {tmp_path / 'conf' / 'keys'}: File exists")


def test_dmarc_report_store_problems_are_one_line(cli_run: CliRun, tmp_path: Path) -> None:
    """Before: a data_dir that is a file, or a report store that is not SQLite, were
    internal errors (exit 70)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "dmarc-reports.sqlite").write_text("not a database\n" * 100)
    report = shared_testdata() / "dmarc" / "aggregate" / "parsedmarc" / "rfc9990-sample.xml"
    for data_dir in (blocker, broken):
        config = tmp_path / f"{data_dir.name}.toml"
        config.write_text(f'domains = ["example.com"]\ndata_dir = "{data_dir}"\n')
        for args in (["dmarc", "import", str(report)], ["dmarc", "reports", "--no-resolve"]):
            result = cli_run("--config", str(config), *args)
            if data_dir is blocker and args[1] == "reports":
                assert result.code == 0  # nothing stored there: nothing to read
                continue
            assert_one_line_error(result, "cannot use the DMARC report store", "data_dir")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["check", "example.com", "--nameserver", "127.0.0.1:9"],
            "mailwright --nameserver ... check",
        ),
        (
            ["spf", "lint", "example.com", "--dns-timeout", "2"],
            "mailwright --dns-timeout ... spf lint",
        ),
        (["dns", "example.com", "--config", "x.toml"], "mailwright --config ... dns"),
    ],
)
def test_global_option_after_the_command(cli_run: CliRun, args: list[str], needle: str) -> None:
    """A global option written after the command says where it goes."""
    assert_one_line_error(cli_run(*args), "is a global option: put it before the command", needle)


def test_error_lines_show_control_bytes_escaped(cli_run: CliRun) -> None:
    """A pasted command with an ESC sequence: the error line shows it, never replays it."""
    result = cli_run("nosuch\x1b[2Jcmd")
    assert_one_line_error(result, "no such command 'nosuch\\x1b[2Jcmd'")
    assert "\x1b" not in result.err
    result = cli_run("explain", "/no/such\x1b[2Jfile.log")  # a message without repr()
    assert_one_line_error(result, "/no/such\\x1b[2Jfile.log: no such file")
    assert "\x1b" not in result.err


@pytest.mark.parametrize("sender", ["a@", "nobody", "<a@>"])
def test_spf_check_sender_without_domain(cli_run: CliRun, sender: str) -> None:
    """Before: 'a@' was evaluated (result none for the empty domain, exit 1)."""
    result = cli_run("--nameserver", "127.0.0.1:9", "--dns-timeout", "0.2",
                     "spf", "check", "--ip", "192.0.2.1", "--sender", sender)  # fmt: skip
    assert_one_line_error(result, "is not an email address", "local-part@domain")


@pytest.mark.parametrize(
    ("args", "ip"),
    [(["dns", "192.0.2.10"], "192.0.2.10"), (["dns", "2001:db8::25", "AAAA"], "2001:db8::25")],
)
def test_dns_ip_without_ptr(cli_run: CliRun, args: list[str], ip: str) -> None:
    """Before: 'dns 192.0.2.10' asked for the A record of the name '192.0.2.10'
    (NXDOMAIN, exit 1); the PTR was meant."""
    result = cli_run("--nameserver", "127.0.0.1:9", "--dns-timeout", "0.2", *args)
    assert_one_line_error(result, f"'{ip}' is an IP address", f"mailwright dns {ip} PTR")
