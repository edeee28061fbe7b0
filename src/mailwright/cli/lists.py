"""``mailwright lists``: the Mailman lists we are the MTA of, and their addresses."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from ..errors import UsageError
from ..mailman import LIST_SUFFIXES, MailmanError
from .context import app, console, emit_json, err_console, safe

EPILOG = """\b
Examples:
  mailwright lists
  mailwright --config /etc/mailwright/mailwright.toml lists --json

\b
JSON: {"lists": [{"list": "team@lists.example", "list_id": "team.lists.example",
"display_name": str, "members": int, "addresses": [str]}]}. Exit status 1 when Mailman's
REST API cannot be asked, 2 without [mailman] in the config.
"""


def list_addresses(fqdn_listname: str) -> list[str]:
    """Every address mailwright accepts for the list (VERP and tokens as patterns)."""
    name, _, domain = fqdn_listname.partition("@")
    out = [fqdn_listname]
    for suffix in LIST_SUFFIXES:
        extension = {"bounces": "[+VERP]", "confirm": "+TOKEN"}.get(suffix, "")
        out.append(f"{name}-{suffix}{extension}@{domain}")
    return out


@click.command(epilog=EPILOG)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lists(as_json: bool) -> None:
    """Show the lists Mailman has and the addresses mail is accepted at for them."""
    from ..server import list_cache

    config = app().config
    if config.mailman is None:
        raise UsageError(
            f"{config.source}: no [mailman] section", "add one: mailwright init --mailman shows it"
        )
    cache = list_cache(config)
    assert cache is not None
    try:
        answer: dict[str, Any] = asyncio.run(cache.get("lists"))
    except MailmanError as exc:
        if as_json:
            emit_json({"lists": None, "error": str(exc)})
        else:
            err_console.print(
                f"{safe(str(exc))}: is Mailman running? (check [mailman] rest_url)",
                markup=False,
                highlight=False,
            )
        raise SystemExit(1) from None
    rows = []
    for entry in answer.get("entries", []):
        fqdn = str(entry.get("fqdn_listname", "")).lower()
        rows.append(
            {
                "list": fqdn,
                "list_id": entry.get("list_id"),
                "display_name": entry.get("display_name"),
                "members": entry.get("member_count"),
                "addresses": list_addresses(fqdn),
            }
        )
    if as_json:
        emit_json({"lists": rows})
        return
    if not rows:
        console.print("no lists (create one in Mailman, e.g. mailman create team@DOMAIN)")
        return
    for row in rows:
        console.print(f"[bold]{safe(row['list'])}[/] ({row['members']} members)", highlight=False)
        for address in row["addresses"][1:]:
            console.print(f"  {safe(address)}", highlight=False, markup=False)
