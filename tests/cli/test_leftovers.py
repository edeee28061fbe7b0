"""Leftover CLI defects found in review: each test failed before its fix."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from mailwright.doctor.model import CheckResult, Report, Status
from mailwright.queue import open_store
from mailwright.testing.ports import free_port

from .helpers import CliRun, assert_one_line_error


def _queue_config(tmp_path: Path) -> Path:
    """A config whose data directory holds a queue with one message (hostile header)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    config = tmp_path / "mailwright.toml"
    config.write_text(f'hostname = "mail.example.com"\ndata_dir = "{data_dir}"\n')

    async def fill() -> str:
        store = await open_store(data_dir)
        try:
            return await store.enqueue(
                "app@example.com",
                ["rcpt@example.net"],
                b"Subject: hi \x1b[2J\x07\r\nFrom: <app@example.com>\r\n\r\nbody\r\n",
            )
        finally:
            await store.close()

    queue_id = asyncio.run(fill())
    (tmp_path / "id").write_text(queue_id)
    return config


def test_queue_show_escapes_control_characters_in_headers(cli_run: CliRun, tmp_path: Path) -> None:
    config = _queue_config(tmp_path)
    queue_id = (tmp_path / "id").read_text()
    result = cli_run("--config", str(config), "queue", "show", queue_id)
    assert result.code == 0, result
    assert "\x1b" not in result.out and "\x07" not in result.out
    assert "Subject: hi \\x1b[2J\\x07" in result.out


def test_queue_bad_id_is_shown_as_typed(cli_run: CliRun, tmp_path: Path) -> None:
    config = _queue_config(tmp_path)
    result = cli_run("--config", str(config), "queue", "delete", "x[bold]y")
    assert_one_line_error(result, "'x[bold]y' is not a queue ID")
    result = cli_run("--config", str(config), "queue", "delete", "x\x1b[2Jy")
    assert_one_line_error(result, "is not a queue ID")
    assert "\x1b" not in result.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-d", "ex ample.com", "-s", "dk1"], "--domain 'ex ample.com' is not a domain name"),
        (["-d", "example.com", "-s", "dk 1"], "--selector 'dk 1' is not a DKIM selector"),
        (["-d", "example.com", "-s", "../dk1"], "--selector '../dk1' is not a DKIM selector"),
    ],
)
def test_dkim_genkey_refuses_bad_names_before_writing(
    cli_run: CliRun, tmp_path: Path, args: list[str], needle: str
) -> None:
    out = tmp_path / "keys"
    result = cli_run("dkim", "genkey", *args, "--algorithm", "ed25519", "-D", str(out))
    assert_one_line_error(result, needle)
    assert not out.exists()


@pytest.mark.parametrize("domain", ["example.com", "example.com.", "bücher.example"])
def test_dkim_genkey_accepts_good_names(cli_run: CliRun, tmp_path: Path, domain: str) -> None:
    out = tmp_path / "keys"
    result = cli_run(
        "dkim", "genkey", "-d", domain, "-s", "dk_1", "--algorithm", "ed25519", "-D", str(out)
    )
    assert result.code == 0, result
    assert (out / "dk_1.private").exists()


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "-inf"])
def test_send_test_wait_must_be_a_number_of_seconds(cli_run: CliRun, value: str) -> None:
    result = cli_run("send-test", "a@example.net", "--server", "127.0.0.1:9", "--wait", value)
    assert_one_line_error(result, "--wait")


def test_send_test_server_down_is_a_failure_not_a_usage_error(cli_run: CliRun) -> None:
    """Connection refused: the test failed (exit 1, one line), nothing was mistyped."""
    server = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = cli_run("send-test", "a@example.net", "--server", server, "--wait", "1")
    assert result.code == 1, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"error: cannot submit to {server}: "), result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("hostname_line", ["", 'hostname = "localhost"\n'])
def test_records_without_hostname_is_a_config_error(
    cli_run: CliRun, tmp_path: Path, hostname_line: str
) -> None:
    """MX 10 localhost. would send the domain's mail nowhere: refuse, naming file and key."""
    config = tmp_path / "mailwright.toml"
    config.write_text(f'{hostname_line}domains = ["example.com"]\nipv4 = ["192.0.2.10"]\n')
    result = cli_run("records", "--config", str(config))
    assert_one_line_error(result, f"{config}: hostname: ", 'hostname = "mail.example.com"')


def _report(statuses: list[str], queries: int = 0, answered: int | None = None) -> Report:
    checks = tuple(
        CheckResult(f"c{i}", Status(status), "title", "observed")
        for i, status in enumerate(statuses)
    )
    return Report("example.com", checks, dns_queries=queries, dns_answered=answered)


@pytest.mark.parametrize(
    ("report", "failed"),
    [
        # Nothing could be checked: every check 'error', or no DNS query answered.
        (_report(["error", "error"]), True),
        (_report(["error", "warn", "ok"], queries=5, answered=0), True),
        # Something got through: error rows alone do not fail (without --strict).
        (_report(["error", "ok"]), False),
        (_report(["error", "ok"], queries=5, answered=1), False),
        (_report(["ok", "warn"], queries=0, answered=0), False),
        (_report([]), False),
    ],
)
def test_doctor_fails_when_nothing_could_be_checked(report: Report, failed: bool) -> None:
    assert report.failed() is failed
    assert report.failed(strict=True) is (failed or any(c.status != "ok" for c in report.checks))


def test_check_with_the_resolver_unreachable_exits_1(cli_run: CliRun) -> None:
    """Cron monitoring must notice a run that could not check anything (every DNS check
    'error'): exit 1, the report still printed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nameserver = f"127.0.0.1:{port}"
    args = ("--nameserver", nameserver, "--dns-timeout", "0.3", "check", "example.com")
    result = cli_run(*args, "--skip", "blocklists", "--json")
    assert result.code == 1, result
    summary = json.loads(result.out)["summary"]
    assert summary["fail"] == 0 and summary["error"] > 0
    human = cli_run(*args, "--skip", "blocklists")
    assert human.code == 1, human
    assert (
        "error no DNS query was answered: nothing about example.com could be checked" in human.out
    )


@pytest.mark.parametrize(
    "command", [["records"], ["queue", "list"], ["spf", "lint", "example.com"]]
)
def test_missing_config_from_the_environment_says_so(
    cli_run: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("MAILWRIGHT_CONFIG", str(missing))
    result = cli_run(*command)
    assert_one_line_error(result, f"{missing}: file not found (from $MAILWRIGHT_CONFIG)")


def test_missing_config_named_by_option_does_not_blame_the_environment(
    cli_run: CliRun, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.toml"
    result = cli_run("--config", str(missing), "records")
    assert_one_line_error(result, f"{missing}: file not found")
    assert "MAILWRIGHT_CONFIG" not in result.err
