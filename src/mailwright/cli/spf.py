"""``mailwright spf check`` and ``mailwright spf lint``: the SPF evaluator and linter."""

from __future__ import annotations

import click
from rich.table import Table
from rich.tree import Tree

from ..errors import UsageError
from ..spf import (
    MAX_DNS_TERMS,
    MAX_VOID_LOOKUPS,
    SpfResult,
    check_helo,
    check_mail_from,
    domain_problem,
    parse_client_ip,
)
from ..spf.lint import LintNode, LintReport, Severity, lint
from .context import app, console, emit_json, require_ip, run, styled, visible
from .context import safe as e

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow", Severity.INFO: "dim"}


@click.group(
    epilog="\b\nExamples:\n"
    "  mailwright spf check --ip 192.0.2.10 --sender app@example.com\n"
    "  mailwright --nameserver 127.0.0.1:5353 spf lint example.com"
)
def spf() -> None:
    """Evaluate (check) or audit (lint) SPF policies, RFC 7208."""


@spf.command(
    epilog="\b\nExamples:\n"
    "  mailwright spf check --ip 192.0.2.10 --sender app@example.com\n"
    "  mailwright spf check --ip 2001:db8::25 --sender '' --helo mail.example.com\n"
    "  mailwright spf check --ip 192.0.2.10 --helo mail.example.com --identity helo --json\n"
    "\b\nExit status: 0 for pass, 1 for any other result, 2 for a usage mistake."
)
@click.option("--ip", "ip", required=True, metavar="IP", help="The SMTP client's address.")
@click.option(
    "--sender",
    default=None,
    metavar="ADDRESS",
    help='MAIL FROM address; "" is the null reverse path (postmaster@HELO is checked).',
)
@click.option(
    "--helo", default=None, metavar="NAME", help="HELO/EHLO name (default: sender domain)."
)
@click.option(
    "--identity",
    type=click.Choice(["mailfrom", "helo"]),
    default="mailfrom",
    show_default=True,
    help="Which identity to check (RFC 7208 §2.3, §2.4).",
)
@click.option("--receiver", default="unknown", metavar="NAME", help="This host's name, for %{r}.")
@click.option("--trace", is_flag=True, help="Show every step of the evaluation.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check(
    ip: str,
    sender: str | None,
    helo: str | None,
    identity: str,
    receiver: str,
    trace: bool,
    as_json: bool,
) -> None:
    """Evaluate SPF for a client IP and a sender, as a receiving server would."""
    require_ip(ip, "--ip")
    try:
        client = str(parse_client_ip(ip))
    except ValueError as exc:
        raise UsageError(f"--ip: {exc}", "write e.g. 192.0.2.10 or 2001:db8::25") from None
    if identity == "helo":
        if not helo:
            raise UsageError("--identity helo needs --helo NAME", "give the HELO/EHLO name")
        result = run(check_helo(client, helo, app().resolver, receiver=receiver))
    else:
        if sender is None:
            raise UsageError(
                "--sender is required for the mailfrom identity",
                'give an address, or --sender "" with --helo for the null reverse path',
            )
        sender = sender.strip().strip("<>")
        if sender and ("@" not in sender or not sender.rpartition("@")[2]):
            raise UsageError(
                f"--sender {sender!r} is not an email address", "write local-part@domain"
            )
        if not sender and not helo:
            raise UsageError(
                'the null reverse path (--sender "") needs --helo NAME',
                "RFC 7208 §2.4 checks postmaster@<HELO name> then",
            )
        helo = helo or sender.rpartition("@")[2]
        result = run(check_mail_from(client, sender, helo, app().resolver, receiver=receiver))
    if as_json:
        emit_json(result.to_json())
    else:
        _print_check(result, trace)
    raise SystemExit(0 if result.ok else 1)


class _Rows:
    """``label  value`` lines, labels aligned. Not a rich grid: a grid folds a long SPF
    record inside its cell on a terminal and pads every line with trailing spaces; a
    soft-wrapped line stays one line however the terminal shows it, so it copies whole."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def add_row(self, label: str, value: str) -> None:
        self.rows.append((label, value))

    def print(self) -> None:
        width = max(len(label) for label, _ in self.rows) + 2
        for label, value in self.rows:
            console.print(f"[dim]{label:<{width}}[/]{value}", soft_wrap=True)


def _print_check(result: SpfResult, trace: bool) -> None:
    who = result.sender if result.identity == "mailfrom" else result.helo
    console.print(
        f"SPF {styled(str(result.result))} for [bold]{e(who)}[/] from {e(result.ip)} "
        f"(identity {result.identity})"
    )
    grid = _Rows()
    grid.add_row("domain", e(result.domain))
    if result.record:
        grid.add_row("record", e(result.record))
    if result.mechanism:
        where = (
            f" (in {e(result.mechanism_domain or '')})"
            if result.mechanism_domain != result.domain
            else ""
        )
        grid.add_row("matched", f"{e(result.mechanism)}{where}")
    elif result.result in ("neutral",):
        grid.add_row("matched", "nothing: default result (RFC 7208 §4.7)")
    if result.explanation:
        grid.add_row(
            "explanation", f"{e(result.explanation)} [dim]({result.explanation_source})[/]"
        )
    if result.problem:
        where = ""
        if result.problem_term is not None:
            record = (
                f" in the record of {e(result.problem_domain or '')}"
                if result.problem_domain not in (None, result.domain)
                else ""
            )
            where = (
                f" [dim](term {e(repr(result.problem_term))} "
                f"at offset {result.problem_offset}{record})[/]"
            )
        grid.add_row("problem", f"{e(result.problem or '')}{where}")
    grid.add_row(
        "DNS lookups",
        f"{result.lookups} of {MAX_DNS_TERMS}, void {result.void_lookups} of {MAX_VOID_LOOKUPS}",
    )
    grid.print()
    if trace:
        console.print("[bold]trace[/]")
        for step in result.trace:
            console.print(
                visible(f"  {'  ' * step.depth}{step.domain}: {step.message}"),
                markup=False,
                soft_wrap=True,
            )


@spf.command(
    "lint",
    epilog="\b\nExamples:\n"
    "  mailwright spf lint example.com\n"
    "  mailwright --nameserver 127.0.0.1:5353 spf lint example.com --json\n"
    "\b\nExit status: 1 when receivers would get permerror (or the DNS could not\n"
    "be queried), 0 otherwise (warnings included), 2 for a usage mistake.",
)
@click.argument("domain")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lint_command(domain: str, as_json: bool) -> None:
    """Audit DOMAIN's SPF policy: syntax, include tree, lookup limits, risky terms."""
    problem = domain_problem(domain.strip().rstrip("."))
    if problem is not None:
        raise UsageError(f"{domain!r} is not a domain SPF can be checked for: {problem}")
    report = run(lint(domain, app().resolver))
    if as_json:
        emit_json(report.to_json())
    else:
        _print_lint(report)
    raise SystemExit(1 if report.permerror or report.dns_error else 0)


def _node_label(node: LintNode) -> str:
    domain = f"[bold]{e(node.domain)}[/]"
    head = domain if node.via is None else f"{e(node.via)} → {domain}"
    count = f"{node.total_lookups} lookup{'s' if node.total_lookups != 1 else ''}"
    if node.children:
        count += f" ({node.lookups} here)"
    status = "" if node.status == "ok" else f" {styled('fail')} {node.status}"
    void = f", {node.void_lookups} void" if node.void_lookups else ""
    record = f"\n[dim]{e(node.record)}[/]" if node.record else ""
    return f"{head} [cyan]{count}{void}[/]{status}{record}"


def _add_children(tree: Tree, node: LintNode) -> None:
    for child in node.children:
        _add_children(tree.add(_node_label(child)), child)


def _print_lint(report: LintReport) -> None:
    tree = Tree(_node_label(report.tree))
    _add_children(tree, report.tree)
    console.print(tree)
    total, void = report.total_lookups, report.void_lookups
    total_style = "bold red" if total > MAX_DNS_TERMS else "bold green"
    void_style = "bold red" if void > MAX_VOID_LOOKUPS else "bold green"
    console.print(
        f"DNS lookups: [{total_style}]{total}[/] of {MAX_DNS_TERMS}"
        f"   void lookups: [{void_style}]{void}[/] of {MAX_VOID_LOOKUPS}"
    )
    if report.findings:
        table = Table(show_header=True, header_style="bold", expand=False)
        table.add_column("severity")
        table.add_column("finding")
        table.add_column("message", overflow="fold")
        table.add_column("fix", overflow="fold")
        for f in report.findings:
            severity = f"[{SEVERITY_STYLE[f.severity]}]{f.severity}[/]"
            table.add_row(severity, f.id, e(f.message), e(f.fix))
        console.print(table)
    verdict = (
        f"{styled('permerror')}: receivers cannot evaluate this policy"
        if report.permerror
        else f"{styled('ok')}: receivers can evaluate this policy"
    )
    if report.dns_error and not report.permerror:
        verdict = f"{styled('temperror')}: some lookups failed; run again"
    console.print(verdict)
