"""``mailwright dmarc``: check a domain's DMARC policy (RFC 9989); aggregate reports.

Each subcommand is its own function; ``dmarc reports``/``dmarc import`` come
from :mod:`mailwright.cli.dmarc_reports` when it is installed.
"""

from __future__ import annotations

import click
from rich.table import Table

from ..dmarc import DmarcReport, Severity, check_domain
from ..dmarc.discovery import DiscoveryStatus, Lookup
from ..dmarc.external import ExternalStatus
from ..dmarc.record import DmarcRecord, Policy
from ..dns.names import name_problem
from ..errors import UsageError
from .context import app, console, emit_json, run, safe, styled, visible

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow", Severity.INFO: "dim"}
EXTERNAL_STATUS = {
    ExternalStatus.INTERNAL: "ok",
    ExternalStatus.AUTHORIZED: "ok",
    ExternalStatus.UNAUTHORIZED: "fail",
    ExternalStatus.OVERRIDE_REJECTED: "fail",
    ExternalStatus.TOO_LONG: "fail",
    ExternalStatus.NO_HOST: "warn",
    ExternalStatus.TEMPERROR: "temperror",
}


@click.group(
    epilog="\b\nExamples:\n  mailwright dmarc check example.com\n"
    "  mailwright --nameserver 127.0.0.1:5353 dmarc check mail.example.com --json"
)
def dmarc() -> None:
    """DMARC (RFC 9989): the policy receivers apply to mail from your domain."""


@dmarc.command(
    "check",
    epilog="\b\nExamples:\n  mailwright dmarc check example.com\n"
    "  mailwright dmarc check news.example.com   # a subdomain: shows the inherited record\n"
    "  mailwright dmarc check example.com --json\n"
    "\b\nExit status: 0 when a usable record applies and nothing is an error (warnings,\n"
    "such as p=none or t=y, do not fail); 1 when there is no record, the record is\n"
    "unusable, a DNS error hid the answer, or reports cannot be delivered (an\n"
    "unauthorized external rua/ruf); 2 for a bad argument.",
)
@click.argument("domain")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (schema in README).")
def check(domain: str, as_json: bool) -> None:
    """Find DOMAIN's DMARC record by the RFC 9989 tree walk and list every problem with a fix."""
    problem = name_problem(domain)
    if problem is not None:
        raise UsageError(f"{domain!r} is not a domain name: {problem}", "write e.g. example.com")
    report = run(check_domain(domain, app().resolver))
    if as_json:
        emit_json(report.as_json())
    else:
        _print_report(report)
    raise SystemExit(0 if report.ok else 1)


def _print_report(report: DmarcReport) -> None:
    found = report.discovery
    console.print(f"DMARC for [bold]{safe(report.domain)}[/]: {styled(report.status)}")
    if found.status is DiscoveryStatus.FOUND and found.record is not None:
        where = (
            "the domain's own record"
            if found.at_author_domain
            else f"inherited from {safe(found.record_domain)}"
        )
        console.print(f"  record   {safe(found.record_name)} ({where})")
        console.print(f"           {visible(found.record.text)}", markup=False, soft_wrap=True)
        if found.record.usable:
            console.print(f"  applies  {safe(_applied(found.record, found.at_author_domain))}")
    else:
        console.print(f"  record   none ({found.status})")
    if found.organizational_domain:
        console.print(f"  org      {safe(found.organizational_domain)} (organizational domain)")
    walk = "  ->  ".join(f"{item.name} {_lookup_word(item)}" for item in found.walk.lookups)
    if walk:
        console.print(f"  walk     {visible(walk)}", markup=False, soft_wrap=True)
        if found.walk.stopped_by:
            console.print(f"           stopped at {safe(found.walk.stopped_by)}")
    if found.record is not None and found.record.is_dmarc:
        console.print(_policy_table(found.record))
    if report.external:
        table = Table(title="Report destinations", title_justify="left")
        table.add_column("tag", overflow="fold")
        table.add_column("URI", overflow="fold")
        table.add_column("status", overflow="fold")
        table.add_column("detail", overflow="fold")
        for item in report.external:
            table.add_row(
                safe(item.tag),
                safe(item.uri.uri),
                styled(EXTERNAL_STATUS.get(item.status, str(item.status))) + f" {item.status}",
                safe(item.detail),
            )
        console.print(table)
    if not report.findings:
        console.print("  no problems found")
        return
    table = Table(title="Findings", title_justify="left", show_lines=True)
    table.add_column("severity", overflow="fold")
    table.add_column("problem", overflow="fold")
    table.add_column("fix", overflow="fold")
    for finding in report.findings:
        table.add_row(
            f"[{SEVERITY_STYLE[finding.severity]}]{finding.severity}[/]",
            f"[dim]{safe(finding.id)}[/]\n{safe(finding.message)}",
            safe(finding.fix or ""),
        )
    console.print(table)


def _lookup_word(item: Lookup) -> str:
    """One step of the walk as a word: what the name held, for a human."""
    if item.record is not None:
        return "record"
    if item.multiple:
        return f"{len(item.dmarc_texts)} records (all ignored)"
    if item.texts:
        return "TXT but not DMARC"
    return str(item.outcome)


def _applied(record: DmarcRecord, own: bool) -> str:
    """The policy this name gets when its mail fails DMARC (RFC 9989 §4.10.1)."""
    strongest = (
        record.policy
        if own
        else max(record.subdomain_policy, record.nonexistent_policy, key=list(Policy).index)
    )
    lowered = record.testing and strongest is not Policy.NONE
    testing = " (t=y: applied one level lower)" if lowered else ""
    if own:
        return f"p={record.policy}{testing}"
    text = f"sp={record.subdomain_policy}"
    if record.nonexistent_policy != record.subdomain_policy:
        text += f", np={record.nonexistent_policy} if the name does not exist"
    return text + testing


def _policy_table(record: DmarcRecord) -> Table:
    table = Table(title="Policy", title_justify="left")
    table.add_column("tag", overflow="fold")
    table.add_column("published", overflow="fold")
    table.add_column("effective", overflow="fold")
    explicit = dict(record.tags)
    effective = {
        "p": str(record.policy),
        "sp": str(record.subdomain_policy),
        "np": str(record.nonexistent_policy),
        "adkim": str(record.dkim_alignment),
        "aspf": str(record.spf_alignment),
        "t": "y" if record.testing else "n",
        "psd": str(record.psd_flag),
        "fo": ":".join(record.failure_options),
        "rua": ", ".join(u.uri for u in record.rua) or "-",
        "ruf": ", ".join(u.uri for u in record.ruf) or "-",
    }
    for tag, value in effective.items():
        table.add_row(tag, _escape(explicit.get(tag, "-")), _escape(value))
    for removed in record.removed:
        table.add_row(
            safe(removed.tag),
            _escape(removed.value),
            f"[yellow]removed[/] ({_escape(removed.meaning)})",
        )
    return table


def _escape(text: str) -> str:
    return safe(text)


def _attach_report_commands() -> None:
    """Add ``dmarc reports`` and ``dmarc import`` when their module exists."""
    try:
        from . import dmarc_reports
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.dmarc_reports":
            raise
        return
    dmarc.add_command(dmarc_reports.reports)
    dmarc.add_command(dmarc_reports.import_reports)


_attach_report_commands()
