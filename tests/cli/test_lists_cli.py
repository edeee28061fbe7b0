"""``mailwright init --mailman`` and ``mailwright lists`` without Mailman running."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import CliRun, assert_one_line_error


def test_init_mailman_writes_the_section_and_prints_mailman_cfg(cli_run: CliRun) -> None:
    result = cli_run("init", "lists.example", "--ip", "192.0.2.10", "--mailman")
    assert result.code == 0, result
    assert "[mta]\nincoming: mailman.mta.null.NullMTA\n" in result.out
    assert "lmtp_port: 8024\n" in result.out and "smtp_host: 127.0.0.1\n" in result.out
    text = Path("mailwright.toml").read_text()
    assert "\n[mailman]\n" in text and "\nlmtp_port = 8024\n" in text


def test_lists_without_mailman_section_is_a_usage_error(cli_run: CliRun) -> None:
    Path("mailwright.toml").write_text('domains = ["lists.example"]\n')
    assert_one_line_error(cli_run("lists"), "no [mailman] section", "init --mailman")


def test_lists_with_mailman_down_exits_1(cli_run: CliRun, unused_tcp_port: int) -> None:
    Path("pw").write_text("secret\n")
    Path("mailwright.toml").write_text(
        f'[mailman]\nrest_url = "http://127.0.0.1:{unused_tcp_port}/3.1"\n'
        'rest_password_file = "pw"\n'
    )
    result = cli_run("lists", "--json")
    assert result.code == 1
    answer = json.loads(result.out)
    assert answer["lists"] is None and "Mailman REST" in answer["error"]
