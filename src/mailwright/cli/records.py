"""``mailwright records`` (print the records) and ``mailwright records apply`` (publish them
with an RFC 2136 dynamic update): a thin layer over :mod:`mailwright.setup.apply`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..setup import build_records
from ..setup.apply import (
    Primary,
    TsigKey,
    UpdateError,
    ZonePlan,
    apply_changes,
    authoritative_servers,
    find_primary,
    in_zone,
    parse_server,
    plan_changes,
    read_tsig_key,
    wait_until_served,
)
from . import setup as setup_cli
from .context import app, console, emit_json, err_console, run, safe

_print_records = setup_cli.records


@click.group(
    "records",
    invoke_without_command=True,
    epilog=(_print_records.epilog or "")
    + "\n  mailwright records apply --server 192.0.2.53 --tsig-key update.key --yes",
    params=list(_print_records.params),
)
@click.pass_context
def records(ctx: click.Context, /, **options: Any) -> None:
    """Print the DNS records the config needs: MX, A/AAAA, SPF, DKIM, DMARC and PTR.
    'records apply' publishes them with a signed dynamic update."""
    ctx.obj = options
    if ctx.invoked_subcommand is None:
        assert _print_records.callback is not None
        _print_records.callback(**options)


def _tsig(path: str) -> TsigKey:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--tsig-key {path}: {exc.strerror or exc}", "check the path") from None
    return read_tsig_key(text, f"--tsig-key {path}")


@records.command(
    "apply",
    epilog="\b\nExamples:\n"
    "  mailwright records apply --tsig-key update.key\n"
    "  mailwright records apply --server ns1.example.net --tsig-key update.key\n"
    "  mailwright records apply --server 192.0.2.53 --tsig-key update.key --yes\n"
    "  mailwright records apply --server 127.0.0.1:5300 --tsig-key k --yes "
    "--authoritative 127.0.0.1:5301",
)
@click.option(
    "--server",
    metavar="HOST[:PORT]",
    help="The zone's primary (takes UPDATE); default: each zone's SOA MNAME, port 53.",
)
@click.option(
    "--tsig-key", "tsig_key", required=True, metavar="FILE", help="TSIG key (Knot/BIND form)."
)
@click.option("--zone", "zones", multiple=True, metavar="ZONE", help="Zone (default: domains).")
@click.option(
    "--authoritative",
    multiple=True,
    metavar="HOST:PORT",
    help="Servers to wait for (default: the zone's NS addresses, port 53).",
)
@click.option("--yes", is_flag=True, help="Apply the plan (without it: show the plan only).")
@click.option(
    "--wait",
    type=click.FloatRange(0, 3600),
    default=120.0,
    show_default=True,
    help="Seconds to wait for every authoritative server.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (README).")
@click.pass_context
def apply(
    ctx: click.Context,
    server: str | None,
    tsig_key: str,
    zones: tuple[str, ...],
    authoritative: tuple[str, ...],
    yes: bool,
    wait: float,
    as_json: bool,
) -> None:
    """Publish the records with an RFC 2136 dynamic update signed with TSIG: the plan
    first (add/change/remove, only our names), then with --yes the update, then a wait
    until every authoritative server serves it. Without --server each zone's primary is
    its SOA MNAME (RFC 2136 §4) through the resolver, port 53. Exit 0 done (or nothing to
    do), 1 the update was refused, the primary not found or a server did not catch up."""
    options = ctx.obj or {}
    context = app()
    if options.get("config_file"):
        context.config_path = options["config_file"]
        context._config = None
    if not context.has_config_file:
        raise UsageError("no config file found", "pass --config FILE or run 'mailwright init'")
    given = Primary(parse_server(server)) if server is not None else None
    key = _tsig(tsig_key)
    waits = [parse_server(a) for a in authoritative]
    record_plan = build_records(context.config)
    names = zones or context.config.domains
    if not names:
        raise UsageError("no zone: the config has no domains", "pass --zone ZONE")
    plans: list[ZonePlan] = []
    primaries: dict[str, Primary] = {}
    try:
        for zone in names:
            # per zone: zones of one config may well have different primaries
            primary = given or run(find_primary(zone, context.resolver))
            try:
                plan = plan_changes(zone, record_plan.records, primary.address)
            except UpdateError as exc:
                if primary.mname is None:
                    raise
                raise UpdateError(
                    f"{exc} (the SOA MNAME {primary.mname} of {zone.lower().rstrip('.')}; "
                    "pass --server HOST[:PORT] if updates go elsewhere)"
                ) from None
            plans.append(plan)
            primaries[plan.zone] = primary
    except UpdateError as exc:
        err_console.print(f"[bold red]error:[/] {safe(str(exc))}", soft_wrap=True)
        raise SystemExit(1) from None
    result = run_plans(plans, primaries, key, waits, yes, wait)
    if as_json:
        emit_json(result)
    else:
        print_result(result, yes)
    raise SystemExit(1 if result["error"] or not all(result["served"].values()) else 0)


def run_plans(
    plans: list[ZonePlan],
    primaries: dict[str, Primary],
    key: TsigKey,
    waits: list[tuple[str, int]],
    yes: bool,
    wait: float,
) -> dict[str, Any]:
    """Apply (with ``yes``) and wait; the JSON document of ``records apply --json``."""
    by_hand = {
        f"{r.name} {r.rdtype} {r.value}"
        for p in plans
        for r in p.outside
        if not any(in_zone(r.name, q.zone) and r.publish == "dns" for q in plans)
    }
    result: dict[str, Any] = {
        "zones": [
            {
                "zone": p.zone,
                "primary": primaries[p.zone].text,
                "mname": primaries[p.zone].mname,
                "changes": [c.to_json() for c in p.changes],
            }
            for p in plans
        ],
        "by_hand": sorted(by_hand),
        "applied": False,
        "served": {},
        "error": None,
    }
    if not yes or not any(p.changes for p in plans):
        return result
    try:
        for plan in plans:
            apply_changes(plan, primaries[plan.zone].address, key)
        result["applied"] = True
        servers = waits or [
            s
            for p in plans
            for s in authoritative_servers(
                p.zone, primaries[p.zone].address, resolve=lookup_addresses
            )
        ]
        changes = [c for p in plans for c in p.changes]
        done = wait_until_served(changes, list(dict.fromkeys(servers)), wait)
        result["served"] = {f"{h}:{port}": ok for (h, port), ok in done.items()}
    except UpdateError as exc:
        result["error"] = str(exc)
    return result


def lookup_addresses(name: str) -> list[str]:
    """Addresses of a name server outside the zone, through the configured resolver."""
    a, aaaa = run(app().resolver.addresses(name))
    return [str(r) for r in (*a.records, *aaaa.records)]


def print_result(result: dict[str, Any], yes: bool) -> None:
    changes = [c for z in result["zones"] for c in z["changes"]]
    if not changes:
        console.print("[bold green]DNS is up to date[/]: the primary serves every record.")
    for zone in result["zones"]:
        if zone["changes"]:
            found = f", the SOA MNAME {zone['mname']}" if zone["mname"] else ""
            console.print(
                f"[bold]zone {safe(zone['zone'])}[/] [dim](primary {safe(zone['primary'])}"
                f"{safe(found)})[/]",
                soft_wrap=True,
            )
        for c in zone["changes"]:
            sign = {"add": "+", "change": "~", "remove": "-"}[c["action"]]
            text = f"  {sign} {c['action']:<6} {c['name']} {c['type']} "
            if c["action"] == "change":
                text += f"{' | '.join(c['before'])}  →  {' | '.join(c['after'])}"
            else:
                text += " | ".join(c["after"] or c["before"])
            console.print(safe(text), soft_wrap=True, markup=False)
    for line in result["by_hand"]:
        console.print(safe(f"  by hand (outside the zone): {line}"), soft_wrap=True, markup=False)
    if changes and not yes:
        console.print("Nothing was changed: run again with --yes to apply this plan.")
    if result["error"]:
        err_console.print(f"[bold red]error:[/] {safe(result['error'])}", soft_wrap=True)
    for server, ok in result["served"].items():
        console.print(
            f"  {safe(server)}: " + ("[green]serves it[/]" if ok else "[red]not yet (timeout)[/]")
        )
