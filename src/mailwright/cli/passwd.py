"""``mailwright passwd``: make a password hash for ``[[users]]``."""

from __future__ import annotations

import json
import sys

import click

from ..errors import UserError
from ..smtp.auth import hash_password
from .context import err_console

EPILOG = """\b
Examples:
  mailwright passwd                      # asks twice, prints the hash
  mailwright passwd app                  # prints a ready [[users]] block for "app"
  printf '%s' "$PW" | mailwright passwd --stdin app
"""


@click.command(epilog=EPILOG)
@click.argument("user", required=False)
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from stdin.")
def passwd(user: str | None, from_stdin: bool) -> None:
    """Print an scrypt hash of a password, for [[users]] password_hash in the config."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise UserError("empty password")
    if len(password) < 8:
        err_console.print(
            "[yellow]warning:[/] a password shorter than 8 characters is easy to guess"
        )
    hashed = hash_password(password)
    if user:
        print("[[users]]")
        print(f"name = {json.dumps(user)}")  # a JSON string is a valid TOML basic string
        print(f'password_hash = "{hashed}"')
    else:
        print(hashed)
