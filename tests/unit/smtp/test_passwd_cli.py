"""``mailwright passwd``: the hash it prints verifies, the [[users]] block parses."""

from __future__ import annotations

import tomllib

from click.testing import CliRunner

from mailwright.cli.main import cli
from mailwright.smtp.auth import verify_password


def test_passwd_prints_a_verifiable_hash() -> None:
    result = CliRunner().invoke(cli, ["passwd", "--stdin"], input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    hashed = result.output.strip()
    assert hashed.startswith("$scrypt$ln=15,r=8,p=1$")
    assert verify_password("correct horse battery", hashed)


def test_passwd_with_user_prints_a_users_block() -> None:
    result = CliRunner().invoke(cli, ["passwd", "--stdin", 'a"pp'], input="long enough pw\n")
    assert result.exit_code == 0, result.output
    users = tomllib.loads(result.output)["users"]
    assert users[0]["name"] == 'a"pp'
    assert verify_password("long enough pw", users[0]["password_hash"])


def test_passwd_refuses_an_empty_password() -> None:
    result = CliRunner().invoke(cli, ["passwd", "--stdin"], input="\n")
    assert result.exit_code != 0
