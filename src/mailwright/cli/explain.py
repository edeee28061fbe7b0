"""``mailwright explain``: why mail was deferred or bounced, read from the mail logs."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..errors import UsageError, UserError
from ..explain import Explainer, parse_since, read_source, resolve_sources
from ..explain.logline import split_replies
from ..explain.sources import Source
from .context import app, console, emit_json, err_console, visible

EPILOG = """\b
Examples:
  mailwright explain                           # /var/log/mail.log and its rotations
  mailwright explain /var/log/mail.log.2.gz --since 3d
  mailwright explain --since 2026-11-24T08:00 -v mail.log
  journalctl -u postfix -o short | mailwright explain -
  mailwright explain --json mail.log | jq '.causes[] | {cause, count, check}'
  mailwright explain bounce.eml                # a bounce message saved from a mail client
  echo '550 5.7.26 Unauthenticated email ...' | mailwright explain -
  mailwright explain --reply '421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred'

\b
Causes: reverse-dns, blocklisted, dmarc, spf, dkim, sender-null-mx, sender-domain,
recipient-unknown, mailbox-full, message-too-large, greylisted, rate-limited,
tls-required, spam-content, connection-failed, recipient-domain-dns, unknown.
Exit status: 0 nothing failed; 1 something was classified as failing (or an input
could not be read completely); 2 a usage mistake.
"""

PROGRESS_MIN_BYTES = 64 << 20


@click.command(epilog=EPILOG)
@click.argument("files", nargs=-1, metavar="[FILE ...]")
@click.option(
    "--since", metavar="TIME", help="Only failures at or after TIME: 2h, 3d, 1w, or an ISO date."
)
@click.option(
    "--reply",
    "replies",
    multiple=True,
    metavar="TEXT",
    help="Classify this reply text (as pasted from a bounce); repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see README).")
@click.option("-v", "--verbose", is_flag=True, help="Details: each cause's messages, every text.")
def explain(
    files: tuple[str, ...],
    since: str | None,
    replies: tuple[str, ...],
    as_json: bool,
    verbose: bool,
) -> None:
    """Explain why mail was deferred or bounced: read Postfix's, Exim's and mailwright's
    logs (plain or .gz, '-' for stdin), a bounce message (.eml) or a pasted reply, and
    sort every failure into a known cause with its fix and the `mailwright check` item
    that confirms it."""
    since_at = _since(since) if since else None
    own_domain, relay_mode = _config_hints()
    explainer = Explainer(since=since_at, own_domain=own_domain, relay_mode=relay_mode)
    for text in replies:
        for reply in split_replies(text) or [text]:
            explainer.add_reply(reply)
    sources = (
        resolve_sources(files, _own_logs() if not files else None) if files or not replies else []
    )
    total = sum(s.size() or 0 for s in sources)
    if not as_json and sys.stdout.isatty() and total >= PROGRESS_MIN_BYTES:
        _read_with_progress(explainer, sources, total)
    else:
        for source in sources:
            read_source(explainer, source)
    report = explainer.to_json()
    if as_json:
        emit_json(report)
    else:
        _print_report(report, verbose)
    raise SystemExit(1 if report["errors"] or explainer.failed else 0)


def _since(text: str) -> datetime:
    """``--since``; a value beyond the calendar (``99999999999d``) is a usage error too."""
    try:
        return parse_since(text)
    except (OverflowError, ValueError):
        raise UsageError(
            f"--since {text!r} is out of range", "write e.g. 2h, 3d, 2026-11-24 or 2026-11-24T18:00"
        ) from None


def _config_hints() -> tuple[str | None, bool]:
    """Our domain (fills ``mailwright check DOMAIN``) and whether mail leaves through a
    relay host, when a config file says so."""
    ctx = app()
    if not ctx.has_config_file:
        return None, False
    try:
        config = ctx.config
    except UserError:
        return None, False
    return (config.domains[0] if config.domains else None), config.delivery.mode == "relay"


def _own_logs() -> list[Path]:
    """mailwright's log, when a config file says where it is (no config: none)."""
    ctx = app()
    if not ctx.has_config_file:
        return []
    try:
        config = ctx.config
    except UserError:
        return []  # a broken config is not this command's business
    return [config.log.file or config.data_dir / "mailwright.log"]


def _read_with_progress(explainer: Explainer, sources: list[Source], total: int) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("reading", total=total)
        done = 0
        for source in sources:
            progress.update(task, description=escape(source.name))

            def at(position: int, base: int = done) -> None:
                progress.update(task, completed=base + max(position, 0))

            read_source(explainer, source, progress=at)
            done += source.size() or 0
            progress.update(task, completed=done)


def _text(text: str, style: str = "") -> Text:
    """Log text for the terminal: never markup (a Text), control bytes shown, not obeyed
    (a reply line can carry ESC sequences that would rewrite the screen)."""
    return Text(visible(text), style=style)


def _when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def _period(first: str | None, last: str | None) -> str:
    if not first or not last:
        return "-"
    a, b = datetime.fromisoformat(first), datetime.fromisoformat(last)
    if a.date() == b.date():
        return f"{a:%m-%d %H:%M}→{b:%H:%M}"
    return f"{a:%m-%d %H:%M}→{b:%m-%d %H:%M}"


def _domains(domains: list[str], shown: int = 3) -> str:
    text = ", ".join(domains[:shown])
    if len(domains) > shown:
        text += f" +{len(domains) - shown}"
    return text


def _print_report(report: dict[str, Any], verbose: bool) -> None:
    totals = report["totals"]
    files = report["files"]
    console.print(
        f"Read {totals['lines']:,} lines ({totals['bytes'] / 1e6:,.1f} MB) from "
        f"{len(files)} file{'s' if len(files) != 1 else ''}"
        + (f", failures since {_when(report['since'])}" if report["since"] else "")
        + f": [bold red]{totals['bounced']:,} bounced[/], "
        f"[bold yellow]{totals['deferred']:,} deferred[/], "
        f"{totals['delivered']:,} delivered, {totals['expired']:,} expired.",
        soft_wrap=True,
    )
    causes = report["causes"]
    if not causes and not report["refused"]:
        console.print("[bold green]No deferred or bounced mail.[/]")
    if causes:
        table = Table(show_lines=False)
        table.add_column("cause", style="bold", no_wrap=True)
        table.add_column("count", justify="right", no_wrap=True)
        table.add_column("bnc/dfr", justify="right", no_wrap=True)
        table.add_column("recipient domains")
        table.add_column("first→last", no_wrap=True)
        table.add_column("check", no_wrap=True)
        for c in causes:
            table.add_row(
                c["cause"],
                f"{c['count']:,}",
                f"{c['bounced']:,}/{c['deferred']:,}",
                _text(_domains(c["recipient_domains"], 2)),
                _period(c["first"], c["last"]),
                _text(c["check"] or "-"),
            )
        console.print(table)
        for c in causes:
            head = _text(c["cause"], style="bold")
            head.append(visible(f"  {c['title']}"), style="")
            if c["lists"]:
                head.append(visible("  (lists: " + ", ".join(c["lists"]) + ")"), style="yellow")
            console.print(head)
            console.print(_text("  fix: " + c["fix"]), soft_wrap=True)
            for advice in c["advice"]:
                console.print(
                    _text(f"  {advice['provider']} {advice['code']}: {advice['fix']}"),
                    soft_wrap=True,
                )
            if c["check"]:
                whose = "RECIPIENT-DOMAIN" if c["cause"] == "recipient-domain-dns" else "DOMAIN"
                command = c["confirm"] or f"mailwright check {whose}"
                ids = ", ".join(c["checks"] or [c["check"]])
                console.print(_text(f"  confirm: {command} → {ids}"))
            console.print(_text("  sample: " + c["sample"], style="dim"), soft_wrap=True)
            if verbose:
                for ex in c["examples"]:
                    who = f"from=<{ex['from']}> " if ex["from"] is not None else ""
                    console.print(
                        _text(
                            f"    {_when(ex['time'])} {ex['queue_id']} {who}to=<{ex['to']}> "
                            f"{ex['status']} dsn={ex['dsn']} via {ex['remote_host'] or 'none'} "
                            f"[{ex['rule']}]: {ex['text']}"
                        ),
                        soft_wrap=True,
                    )
                if c["count"] > len(c["examples"]):
                    console.print(f"    … {c['count'] - len(c['examples']):,} more")
    if report["refused"]:
        console.print(
            f"[bold]Refused by this server[/] ({report['totals']['refused']:,} "
            "event=rejected replies):"
        )
        for r in report["refused"]:
            head = _text(f"  {r['count']:>6,}× {r['stage'] or '-'}: {r['reply']}", style="bold")
            console.print(head, soft_wrap=True)
            console.print(_text(f"         why: {r['why']}; fix: {r['fix']}"), soft_wrap=True)
    if report["unrecognised"]:
        console.print("[bold]Unrecognised replies, by remote host[/] (cause 'unknown'):")
        for group in report["unrecognised"]:
            console.print(_text(f"  {group['remote_host']}: {group['count']:,}", style="bold"))
            lines = group["lines"] if verbose else group["lines"][:3]
            for entry in lines:
                console.print(_text(f"    {entry['count']:>6,}× {entry['line']}"), soft_wrap=True)
            hidden = len(group["lines"]) - len(lines) + group["more_distinct_texts"]
            if hidden:
                console.print(f"    … {hidden:,} more distinct texts (-v shows them)")
    if report["skipped_lines"]:
        console.print(
            f"[yellow]{report['skipped_lines']:,} line(s) looked like delivery events but "
            "could not be parsed (truncated or garbled)"
            + (":[/]" if verbose else "; -v shows the first ones.[/]")
        )
        if verbose:
            for line in report["skipped_samples"]:
                console.print(_text("    " + line), soft_wrap=True)
    for error in report["errors"]:
        err_console.print(_text("error: " + error, style="bold red"), soft_wrap=True)
