"""The sendmail command line as programs write it (parse_argv)."""

from __future__ import annotations

import pytest

from mailwright.sendmail.command import (
    EX_USAGE,
    MAX_RECIPIENTS,
    Invocation,
    SendmailError,
    parse_argv,
    program_mode,
)


def usage_error(argv: list[str]) -> str:
    with pytest.raises(SendmailError) as info:
        parse_argv(argv)
    assert info.value.exit_code == EX_USAGE
    return info.value.message


def test_recipients_only() -> None:
    assert parse_argv(["root", "alice@example.com"]) == Invocation(
        recipients=("root", "alice@example.com")
    )


def test_mailx_style() -> None:
    # bsd-mailx runs "sendmail -i -t" (seen with a shim); mailutils "-oi -t".
    for argv in (["-i", "-t"], ["-oi", "-t"], ["-ti"], ["-it"]):
        invocation = parse_argv(argv)
        assert invocation.extract_recipients and invocation.ignore_dots, argv
        assert invocation.recipients == ()


def test_cron_styles() -> None:
    # Debian cron and cronie.
    debian = parse_argv(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"])
    assert debian.full_name == "CronDaemon"
    assert debian.body_type == "8BITMIME"
    assert debian.recipients == ("root",)
    assert debian.ignored == ("-oem",)
    cronie = parse_argv(["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"])
    assert cronie.sender == "root" and cronie.extract_recipients and cronie.ignore_dots


def test_php_style() -> None:
    invocation = parse_argv(["-t", "-i", "-fwebmaster@example.com"])
    assert invocation.sender == "webmaster@example.com"
    assert invocation.extract_recipients


def test_git_send_email_style() -> None:
    invocation = parse_argv(["-i", "-f", "dev@example.com", "a@example.net", "b@example.org"])
    assert invocation.sender == "dev@example.com"
    assert invocation.recipients == ("a@example.net", "b@example.org")


@pytest.mark.parametrize(
    ("argv", "sender"),
    [(["-f", "<>"], ""), (["-f", ""], ""), (["-f<a@b.c>"], "a@b.c"), (["-r", "x@y.z"], "x@y.z")],
)
def test_sender_forms(argv: list[str], sender: str) -> None:
    assert parse_argv([*argv, "root"]).sender == sender


def test_modes() -> None:
    assert parse_argv(["-bs"]).mode == "smtp"
    assert parse_argv(["-b", "s"]).mode == "smtp"
    assert parse_argv(["-bm", "root"]).mode == "deliver"
    assert parse_argv(["-bp"]).mode == "mailq"
    assert parse_argv(["-bi"]).mode == "newaliases"
    assert parse_argv(["-I"]).mode == "newaliases"
    assert parse_argv(["-q"]).mode == "flush"
    assert parse_argv(["-q30m"]).mode == "flush"
    assert parse_argv(["--help"]).mode == "help"
    assert program_mode("/usr/bin/mailq") == "mailq"
    assert program_mode("newaliases") == "newaliases"
    assert program_mode("/usr/sbin/sendmail") == "deliver"
    assert parse_argv([], program_mode("mailq")).mode == "mailq"


def test_ignored_legacy_options() -> None:
    argv = ["-v", "-oem", "-odb", "-odi", "-oQ/var/spool", "-O", "DeliveryMode=b", "-U", "-m"]
    argv += ["-n", "-G", "-N", "never", "-R", "hdrs", "-V", "envid1", "-h", "5", "-L", "tag"]
    argv += ["-X", "/tmp/log", "-Am", "-o", "x", "root"]
    invocation = parse_argv(argv)
    assert invocation.recipients == ("root",)
    assert not invocation.ignore_dots
    assert invocation.mode == "deliver"


def test_options_end_at_double_dash_and_first_recipient() -> None:
    assert parse_argv(["--", "-notanoption"]).recipients == ("-notanoption",)
    assert parse_argv(["root", "-t"]).recipients == ("root", "-t")
    assert not parse_argv(["root", "-t"]).extract_recipients


def test_config_option() -> None:
    assert parse_argv(["-C", "/etc/x.toml", "root"]).config_path == "/etc/x.toml"
    assert parse_argv(["-C/etc/x.toml", "root"]).config_path == "/etc/x.toml"


def test_full_name_loses_controls() -> None:
    assert parse_argv(["-F", "Cron\r\nBcc: evil@x", "root"]).full_name == "Cron Bcc: evil@x"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-Z"], "unknown option -Z"),
        (["-tZ"], "unknown option -Z"),
        (["--frobnicate"], "unknown option --frobnicate"),
        (["-f"], "option -f needs a value"),
        (["-b"], "option -b needs a value"),
        (["-bx"], "unknown mode -bx"),
        (["-B", "BINARYMIME", "root"], "-B 'BINARYMIME': write -B 7BIT or -B 8BITMIME"),
        (["-f", "a b@c"], "-f: 'a b@c' is not a mail address"),
        (["-f", "a@"], "-f: 'a@' is not a mail address"),
        (["-f", "x@y\nz"], "-f: 'x@y\\nz' is not a mail address"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    assert usage_error(argv) == message


def test_daemon_mode_is_refused_with_a_pointer() -> None:
    assert usage_error(["-bd"]) == "-bd: daemon mode: run 'mailwright serve'"


def test_ten_thousand_recipients_are_fine_and_the_ceiling_is_an_error() -> None:
    many = [f"user{i}@example.net" for i in range(10_000)]
    assert len(parse_argv(many).recipients) == 10_000
    too_many = ["x@example.net"] * (MAX_RECIPIENTS + 1)
    assert (
        usage_error(too_many)
        == f"{MAX_RECIPIENTS + 1} recipients: at most {MAX_RECIPIENTS} in one call"
    )
