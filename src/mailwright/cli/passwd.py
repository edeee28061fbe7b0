"""``mailwright passwd``: make a password hash for ``[[users]]`` (or ``[http]``), or a new
API key and its hash for ``[[api_keys]]``."""

from __future__ import annotations

import json
import sys

import click

from ..apikeys import SCOPES, hash_key, new_key
from ..errors import UserError
from ..smtp.auth import hash_password
from .context import err_console

EPILOG = """\b
Examples:
  mailwright passwd                      # asks twice, prints the hash
  mailwright passwd app                  # prints a ready [[users]] block for "app"
  printf '%s' "$PW" | mailwright passwd --stdin app
  mailwright passwd --api-key shop --scope send --scope read
                                         # a new API key (shown once) and its [[api_keys]] block
"""


@click.command(epilog=EPILOG)
@click.argument("user", required=False)
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from stdin.")
@click.option(
    "--api-key",
    "api_key",
    is_flag=True,
    help="Make a new API key named USER: print the key once and its [[api_keys]] block.",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="Scope of the API key (repeatable; default: send).",
)
def passwd(user: str | None, from_stdin: bool, api_key: bool, scopes: tuple[str, ...]) -> None:
    """Print an scrypt hash of a password, for [[users]] password_hash in the config
    (or [http] password_hash, the status page password); with --api-key, a new API key."""
    if api_key:
        if not user:
            raise UserError("--api-key needs a name", hint="mailwright passwd --api-key NAME")
        key = new_key()
        err_console.print("[bold]API key[/] (shown once, store it now):")
        print(key)
        print()
        print("[[api_keys]]")
        print(f"name = {json.dumps(user)}")
        print(f'hash = "{hash_key(key)}"')
        print(f"scopes = {json.dumps(list(scopes or ('send',)))}")
        return
    if scopes:
        raise UserError(
            "--scope is for --api-key", hint="mailwright passwd --api-key NAME --scope send"
        )
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
