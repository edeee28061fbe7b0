"""``mailwright check DOMAIN``: the doctor, a thin layer over ``doctor.run_checks``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from ..config import Config, load_config
from ..dns import Resolver
from ..doctor import CheckResult, DoctorOptions, Report, run_checks
from .context import (
    app,
    console,
    emit_json,
    require_domain,
    require_ip,
    require_selector,
    run,
    safe,
    styled,
)

GROUPS = ("host", "rdns", "spf", "dkim", "dmarc", "blocklists", "ports", "tls")


@click.command(
    epilog="\b\nExamples:\n"
    "  mailwright check example.com\n"
    "  mailwright check example.com --ip 192.0.2.10 --selector mail --selector mail-ed\n"
    "  mailwright check example.com --json | jq '.checks[] | select(.status != \"ok\")'\n"
    "  mailwright check example.com --strict          # warnings fail too (exit 1)\n"
    "  mailwright --nameserver 127.0.0.1:5353 check example.test --skip ports"
)
@click.argument("domain")
@click.option("--config", "config_file", metavar="FILE", help="Config file (else the global one).")
@click.option(
    "--ip",
    "ips",
    multiple=True,
    metavar="IP",
    help="Sending IP (repeat); default: the config's, else the hostname's addresses.",
)
@click.option("--selector", "selectors", multiple=True, metavar="S", help="DKIM selector (repeat).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (README: check).")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings and could-not-check too.")
@click.option("--skip", multiple=True, type=click.Choice(GROUPS), help="Leave out a group.")
@click.option(
    "--smtp-port",
    type=click.IntRange(1, 65535),
    default=25,
    show_default=True,
    help="Port for the TLS check.",
)
@click.option(
    "--smtp-address", metavar="IP", help="Connect here for the TLS check, not the A record."
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, exists=True),
    help="Trust this CA bundle for the certificate check (private CAs).",
)
def check(
    domain: str,
    config_file: str | None,
    ips: tuple[str, ...],
    selectors: tuple[str, ...],
    as_json: bool,
    strict: bool,
    skip: tuple[str, ...],
    smtp_port: int,
    smtp_address: str | None,
    ca_file: str | None,
) -> None:
    """Check DOMAIN's DNS and mail server: MX, reverse DNS, SPF, DKIM, DMARC, blocklists,
    ports and TLS. Exit 0 when nothing fails, 1 otherwise (--strict: warnings too)."""
    require_domain(domain, "DOMAIN")
    for selector in selectors:
        require_selector(selector)
    context = app()
    config: Config = load_config(config_file) if config_file else context.config
    checked_ips = tuple(require_ip(ip, "--ip") for ip in ips)
    if smtp_address is not None:
        smtp_address = require_ip(smtp_address, "--smtp-address")
    options = DoctorOptions.from_config(
        config,
        domain,
        checked_ips,
        selectors,
        skip=frozenset(skip),
        smtp_port=smtp_port,
        smtp_address=smtp_address,
        tls_ca_file=Path(ca_file) if ca_file else None,
    )
    resolver = context.resolver
    if config_file and not context.effective_nameserver() and config.dns.nameserver:
        from ..dns import DnspythonResolver

        resolver = DnspythonResolver(config.dns.nameserver, timeout=config.dns.timeout)
    if as_json or not console.is_terminal:
        report = run(run_checks(domain, options, resolver))
    else:
        report = _with_progress(domain, options, resolver)
    if as_json:
        emit_json(report.to_json())
    else:
        print_report(report)
    raise SystemExit(1 if report.failed(strict) else 0)


def _with_progress(domain: str, options: DoctorOptions, resolver: Resolver) -> Report:
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]checking {task.fields[domain]}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("check", total=None, domain=domain, last="")

        def planned(n: int) -> None:
            progress.update(task, total=n)

        def done(result: CheckResult) -> None:
            progress.update(task, advance=1, last=f"{result.id}: {result.status}")

        return run(run_checks(domain, options, resolver, on_result=done, on_plan=planned))


def print_report(report: Report) -> None:
    table = Table(title=f"mailwright check {report.domain}", show_lines=True, expand=True)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("observed", overflow="fold", ratio=3)
    table.add_column("fix", overflow="fold", ratio=2)
    for c in report.checks:
        table.add_row(safe(c.id), styled(str(c.status)), safe(c.observed), safe(c.fix))
    console.print(table)
    counts = report.counts()
    summary = ", ".join(f"{styled(k)} {v}" for k, v in counts.items())
    console.print(
        f"{summary} — {report.elapsed:.2f} s for {report.dns_queries} DNS queries "
        f"({report.dns_time:.2f} s one after another)"
    )
    if report.dns_queries and report.dns_answered == 0:
        console.print(
            f"{styled('error')} no DNS query was answered: nothing about {safe(report.domain)} "
            "could be checked (is the resolver reachable?)"
        )
