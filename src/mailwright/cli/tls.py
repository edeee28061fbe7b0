"""``mailwright tls reports``: what receivers' TLS reports (RFC 8460) say about our mail."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..errors import UsageError
from ..maildir import mailbox_path
from ..tlsrpt import ReceivedReport, TlsRptError, parse_report, reports_in_mail
from .context import app, console, emit_json, err_console, safe, visible

MAX_FILES = 10_000


@click.group(
    "tls",
    epilog="\b\nExamples:\n  mailwright tls reports\n  mailwright tls reports --json",
)
def tls() -> None:
    """Transport security: TLS reports (RFC 8460)."""


@tls.command(
    "reports",
    epilog="\b\nExamples:\n  mailwright tls reports\n"
    "  mailwright tls reports ~/Maildir/.tlsrpt/cur --json\n"
    "  mailwright tls reports report.json.gz",
)
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reports(paths: tuple[str, ...], as_json: bool) -> None:
    """Summarise received TLS reports: report files (.json, .json.gz), report mails,
    or Maildir folders of them; by default the tls-reports mailbox of the first domain.

    A policy domain with failures means senders could not authenticate our MX (an
    expired certificate, a TLSA record that no longer matches, a policy host down).
    """
    config = app().config
    if not paths:
        domain = config.domains[0] if config.domains else config.hostname
        default = mailbox_path(config.data_dir / "mail", f"tls-reports@{domain}")
        paths = (str(default),)
    found: list[ReceivedReport] = []
    refused: list[tuple[str, str]] = []
    for file in _files(paths):
        try:
            data = file.read_bytes()
        except OSError as exc:
            refused.append((str(file), exc.strerror or str(exc)))
            continue
        parts = [data] if _looks_like_report(data) else reports_in_mail(data)
        if not parts:
            refused.append((str(file), "no TLS report in it"))
        for part in parts:
            try:
                found.append(parse_report(part))
            except TlsRptError as exc:
                refused.append((str(file), str(exc)))
    summary = _summarise(found)
    if as_json:
        emit_json(
            {
                "reports": len(found),
                "refused": [{"file": f, "reason": r} for f, r in refused],
                "domains": summary,
            }
        )
    else:
        _show(found, summary, refused)
    if refused and not found:
        raise SystemExit(1)


def _looks_like_report(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b" or data.lstrip()[:1] == b"{"


def _files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for sub in (path, path / "cur", path / "new"):
                if sub.is_dir():
                    files += sorted(p for p in sub.iterdir() if p.is_file())
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"{name}: no such file or directory", "give report files or a Maildir")
    if len(files) > MAX_FILES:
        raise UsageError(f"{len(files)} files: more than {MAX_FILES}", "give fewer paths")
    return files


def _summarise(found: list[ReceivedReport]) -> list[dict[str, object]]:
    """Per (policy domain, policy type): sessions, failures by type, reporters."""
    table: dict[tuple[str, str], dict[str, object]] = {}
    for report in found:
        for policy in report.policies:
            key = (policy.policy_domain, policy.policy_type)
            row = table.setdefault(
                key,
                {
                    "policy_domain": policy.policy_domain,
                    "policy_type": policy.policy_type,
                    "successful_sessions": 0,
                    "failed_sessions": 0,
                    "failure_types": {},
                    "reporters": [],
                },
            )
            row["successful_sessions"] = int(str(row["successful_sessions"])) + policy.successes
            row["failed_sessions"] = int(str(row["failed_sessions"])) + policy.failures
            types = row["failure_types"]
            assert isinstance(types, dict)
            for kind, count in policy.failure_types:
                types[kind] = types.get(kind, 0) + count
            reporters = row["reporters"]
            assert isinstance(reporters, list)
            if report.organization not in reporters:
                reporters.append(report.organization)
    return [table[k] for k in sorted(table)]


def _show(
    found: list[ReceivedReport], summary: list[dict[str, object]], refused: list[tuple[str, str]]
) -> None:
    for file, reason in refused:
        err_console.print(visible(f"{file}: refused: {reason}"), markup=False)
    if not found:
        console.print("no TLS reports found")
        return
    table = Table(title=f"TLS reports ({len(found)})")
    for column in ("policy domain", "type", "ok sessions", "failed", "failure types", "reporters"):
        table.add_column(column)
    for row in summary:
        types = row["failure_types"]
        assert isinstance(types, dict)
        failed = int(str(row["failed_sessions"]))
        reporters = row["reporters"]
        assert isinstance(reporters, list)
        table.add_row(
            safe(str(row["policy_domain"])),
            safe(str(row["policy_type"])),
            str(row["successful_sessions"]),
            f"[red]{failed}[/]" if failed else "0",
            safe(", ".join(f"{k} {v}" for k, v in sorted(types.items()))) or "-",
            safe(", ".join(str(r) for r in reporters)),
        )
    console.print(table)
