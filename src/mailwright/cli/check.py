"""``mailwright check DOMAIN``: the doctor, a thin layer over ``doctor.run_checks``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from ..config import Config, load_config
from ..dns import Resolver
from ..doctor import CheckResult, DoctorOptions, Report, run_checks
from ..doctor.watch import Change, changes, load_state, notification, save_state
from ..errors import UsageError
from .context import (
    app,
    console,
    emit_json,
    err_console,
    require_domain,
    require_ip,
    require_selector,
    run,
    safe,
    styled,
    submission_address,
)

GROUPS = ("host", "rdns", "spf", "dkim", "dmarc", "blocklists", "ports", "tls", "bulk")


@click.command(
    epilog="\b\nExamples:\n"
    "  mailwright check example.com\n"
    "  mailwright check example.com --ip 192.0.2.10 --selector mail --selector mail-ed\n"
    "  mailwright check example.com --json | jq '.checks[] | select(.status != \"ok\")'\n"
    "  mailwright check example.com --strict          # warnings fail too (exit 1)\n"
    "  mailwright --nameserver 127.0.0.1:5353 check example.test --skip ports\n"
    "  mailwright check example.com --message newsletter.eml   # an offline mail-tester\n"
    "  mailwright check example.com --state /var/lib/mailwright/check.json --notify me@example.com"
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
@click.option(
    "--message",
    "message_file",
    metavar="FILE",
    help="Also check this message (.eml, '-' for stdin) as receivers would.",
)
@click.option(
    "--state",
    "state_file",
    metavar="FILE",
    help="Remember the result in FILE; print only the rows whose status changed (cron).",
)
@click.option(
    "--notify",
    metavar="ADDRESS",
    help="With --state: mail the changes to ADDRESS through the local server.",
)
@click.option(
    "--notify-server",
    metavar="HOST:PORT",
    help="Submit --notify mail here (default: the config's submission listener).",
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
    message_file: str | None,
    state_file: str | None,
    notify: str | None,
    notify_server: str | None,
) -> None:
    """Check DOMAIN's DNS and mail server: MX, reverse DNS, SPF, DKIM, DMARC, blocklists,
    ports and TLS. Exit 0 when nothing fails, 1 otherwise (--strict: warnings too)."""
    require_domain(domain, "DOMAIN")
    for selector in selectors:
        require_selector(selector)
    if notify is not None and state_file is None:
        raise UsageError("--notify needs --state FILE", "the changes are relative to that file")
    if notify is not None and ("@" not in notify or any(c in notify for c in "<>\r\n ")):
        raise UsageError(f"--notify {notify!r} is not an address", "write e.g. you@example.com")
    previous = load_state(Path(state_file)) if state_file else None
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
        message=_read_message(message_file) if message_file else None,
    )
    resolver = context.resolver
    if config_file and not context.effective_nameserver() and config.dns.nameserver:
        from ..dns import StubResolver

        resolver = StubResolver(config.dns.nameserver, timeout=config.dns.timeout)
    if as_json or not console.is_terminal:
        report = run(run_checks(domain, options, resolver))
    else:
        report = _with_progress(domain, options, resolver)
    if state_file is not None:
        found = changes(previous, report)
        save_state(Path(state_file), report)
        if as_json:
            emit_json(
                {
                    "domain": report.domain,
                    "first_run": previous is None,
                    "changes": [c.to_json() for c in found],
                    "summary": report.to_json()["summary"],
                }
            )
        elif found:
            print_changes(report, found, first_run=previous is None)
        if notify is not None and found:
            _notify(config, notify, notify_server, report.domain, found)
    elif as_json:
        emit_json(report.to_json())
    else:
        print_report(report)
    raise SystemExit(1 if report.failed(strict) else 0)


def print_changes(report: Report, found: list[Change], first_run: bool) -> None:
    """Only what changed since the last run (the first run: every row not ok)."""
    title = (
        f"mailwright check {report.domain}: first run, rows not ok"
        if first_run
        else f"mailwright check {report.domain}: changed since the last run"
    )
    table = Table(title=title, show_lines=True, expand=True)
    table.add_column("check", no_wrap=True)
    table.add_column("before → now", no_wrap=True)
    table.add_column("observed", overflow="fold", ratio=3)
    table.add_column("fix", overflow="fold", ratio=2)
    for c in found:
        before = styled(c.before) if c.before else "new"
        after = styled(c.after) if c.after else "gone"
        table.add_row(safe(c.id), f"{before} → {after}", safe(c.observed), safe(c.fix))
    console.print(table)


def _notify(config: Config, to: str, server: str | None, domain: str, found: list[Change]) -> None:
    """Mail the changes through the local server (a plain submission listener, trusted
    from loopback as any local application).  A failure is said and exits 1."""
    import smtplib

    address = submission_address(config, server, "--notify-server")
    sender = f"mailwright-check@{config.domains[0] if config.domains else config.hostname}"
    data = notification(domain, found, sender, to, config.hostname)
    try:
        with smtplib.SMTP(*address, timeout=30) as client:
            client.sendmail(sender, [to], data)
    except (OSError, smtplib.SMTPException) as exc:
        err_console.print(
            f"[bold red]error:[/] --notify: cannot submit to {safe(address[0])}:{address[1]}: "
            f"{safe(str(exc))} (is 'mailwright serve' running?)",
            soft_wrap=True,
        )
        raise SystemExit(1) from None


MAX_MESSAGE = 64 * 1024 * 1024


def _read_message(name: str) -> bytes:
    """The message for ``--message``: a file or stdin, at most 64 MiB."""
    import sys

    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_MESSAGE + 1)
        else:
            with open(name, "rb") as f:
                data = f.read(MAX_MESSAGE + 1)
    except OSError as exc:
        raise UsageError(f"--message {name}: {exc.strerror or exc}", "check the path") from None
    if len(data) > MAX_MESSAGE:
        raise UsageError(f"--message {name}: over 64 MiB", "no receiver takes it; send a link")
    if not data.strip():
        raise UsageError(f"--message {name}: empty", "save the message as .eml and pass that")
    return data


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
