"""``mailwright dmarc reports`` and ``dmarc import``: what the world's receivers saw of our mail."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.table import Table

from ..dmarc_reports.parse import (
    AggregateReport,
    ReportRefused,
    decompress,
    parse_report,
    reports_from_message,
)
from ..dmarc_reports.received import DB_NAME, ReportStore
from ..errors import UsageError
from .context import STATUS_STYLES, app, console, emit_json, err_console, run, safe, visible

VERDICT_STATUS = {"ok": "ok", "partial": "warn", "failing": "fail"}


def _store() -> ReportStore:
    path = app().config.data_dir / DB_NAME
    try:
        return ReportStore(path)
    except (OSError, sqlite3.Error) as exc:
        raise _store_error(path, exc) from None


def _store_error(path: Path, exc: Exception) -> UsageError:
    """The report database cannot be opened or used: a file where a directory goes,
    permissions, or a file that is not SQLite. Said once, with the file to look at."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return UsageError(
        f"cannot use the DMARC report store {path}: {text}",
        "check data_dir in the config, or move that file away",
    )


@click.command(
    "reports",
    epilog="\b\nExamples:\n  mailwright dmarc reports\n"
    "  mailwright dmarc reports --since 30 --json",
)
@click.option("--since", type=int, default=None, metavar="DAYS", help="Only the last DAYS days.")
@click.option("--no-resolve", is_flag=True, help="Do not look up reverse names of the sources.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reports(since: int | None, no_resolve: bool, as_json: bool) -> None:
    """Summarise received DMARC aggregate reports: who sends mail as your domain, and does it pass?

    Each row is a source IP seen by the reporters, with its message count and
    how much of it passed DMARC (an aligned DKIM or SPF pass). A source that
    fails is either a sender you forgot to authorize (a CRM, a newsletter
    service: add it to SPF or let it DKIM-sign) or someone spoofing you: check
    both before moving to p=quarantine or p=reject.
    """
    if since is not None and since <= 0:
        raise UsageError(f"--since {since}: must be a positive number of days")
    database = app().config.data_dir / DB_NAME
    if not database.exists():  # reading must not create a data directory where it is run
        if as_json:
            emit_json({"reports": 0, "messages": 0, "sources": []})
        else:
            console.print(
                f"No DMARC aggregate reports stored yet (none in {safe(database)}; "
                "load some with 'mailwright dmarc import FILE', or point --config at "
                "the server's config).",
                soft_wrap=True,
            )
        return
    store = _store()
    try:
        summary = store.summarize(time.time() - since * 86400 if since else None)
    except sqlite3.Error as exc:
        raise _store_error(store.path, exc) from None
    finally:
        store.close()
    if not no_resolve and summary.sources:
        run(summary.resolve_names(app().resolver))
    notes = _signature_notes(database, time.time() - since * 86400 if since else None)
    if as_json:
        document = summary.as_json()
        sources = document.get("sources")
        for entry in sources if isinstance(sources, list) else []:
            note = notes.get(entry["source_ip"]) or SignatureNote()
            entry["dkim_unverified_harmless"] = note.harmless
            entry["dkim_unverified_algorithms"] = sorted(note.algorithms)
        emit_json(document)
        return
    if not summary.sources:
        console.print("No DMARC aggregate reports stored yet.")
        return
    table = Table(title=f"{summary.reports} reports, {summary.messages} messages")
    for column in ("source", "reverse name", "messages", "DMARC pass", "DKIM", "SPF", "status"):
        table.add_column(column, justify="right" if column in ("messages",) else "left")
    # An address is never shortened to "192.0.2.…": it is what you look up next.
    table.columns[0].min_width = max(len(s.source_ip) for s in summary.sources)
    table.columns[0].no_wrap = True
    for source in summary.sources:
        table.add_row(
            safe(source.source_ip),
            safe(source.reverse_name) if source.reverse_name else "[dim](none)[/]",
            str(source.messages),
            f"{source.dmarc_pass}/{source.messages}",
            _dkim_cell(source.dkim_aligned_pass, notes.get(source.source_ip)),
            f"{source.spf_aligned_pass} aligned",
            # The README's (and JSON's) word, in the colour of ok/warn/fail.
            f"[{STATUS_STYLES[VERDICT_STATUS[source.verdict]]}]{source.verdict}[/]",
        )
    console.print(table)


@dataclass
class SignatureNote:
    harmless: int = 0
    """Messages with a signature not verified while another of its domain passed."""
    algorithms: set[str] = field(default_factory=set)
    """``ed25519`` / ``other``: what the unverified signatures were."""


def signature_notes(
    rows: Iterable[tuple[str, int, str]], ed25519: set[tuple[str, str]]
) -> dict[str, SignatureNote]:
    """Per source IP, the messages carrying a signature the receiver did not verify while
    another signature of the same domain passed: harmless, not a DKIM failure.

    We sign twice (RSA and Ed25519, RFC 8463); receivers that do not implement Ed25519
    report that signature as ``none``/``neutral``/``permerror``/``fail`` next to the RSA
    ``pass``.  ``rows`` are (source IP, message count, the record's DKIM results as JSON
    ``[[domain, selector, result], ...]``); ``ed25519`` the (domain, selector) pairs whose
    key is Ed25519 (from the config)."""
    notes: dict[str, SignatureNote] = {}
    for ip, count, dkim_json in rows:
        try:
            results = [(str(d).lower(), str(s), str(r)) for d, s, r in json.loads(dkim_json)]
        except (ValueError, TypeError):
            continue
        passed = {d for d, _s, r in results if r == "pass"}
        unverified = [(d, s) for d, s, r in results if r != "pass" and d in passed]
        if unverified:
            note = notes.setdefault(ip, SignatureNote())
            note.harmless += count
            note.algorithms.update("ed25519" if p in ed25519 else "other" for p in unverified)
    return notes


def _signature_notes(database: Path, since: float | None) -> dict[str, SignatureNote]:
    """:func:`signature_notes` over the stored records (read-only connection)."""
    where, params = ("WHERE reports.end_ts >= ?", (int(since),)) if since else ("", ())
    try:
        db = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT records.source_ip, records.count, records.dkim_results FROM records"
                f" JOIN reports ON records.report_pk = reports.pk {where}",
                params,
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return {}  # the summary above already read the store; notes are extra
    config = app().config
    ed25519 = {(k.domain.lower(), k.selector) for k in config.dkim if k.algorithm == "ed25519"}
    return signature_notes(rows, ed25519)


def _dkim_cell(aligned: int, note: SignatureNote | None) -> str:
    text = f"{aligned} aligned"
    if note is not None and note.harmless:
        which = "Ed25519 " if note.algorithms == {"ed25519"} else "second "
        text += f"\n{note.harmless} {which}signature not verified by this receiver (harmless)"
    return text


@click.command(
    "import",
    epilog="\b\nExamples:\n  mailwright dmarc import report.xml.gz\n"
    "  mailwright dmarc import ~/Maildir/.dmarc/cur/*",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def import_reports(files: tuple[str, ...]) -> None:
    """Store aggregate reports from files: XML, .gz, .zip, or whole report mails (.eml)."""
    config = app().config
    store = _store()
    stored = duplicates = refused = 0
    try:
        for name in files:
            data = sys.stdin.buffer.read() if name == "-" else _read(name)
            for item in _parse_any(name, data):
                if isinstance(item, ReportRefused):
                    refused += 1
                    err_console.print(visible(f"{name}: refused: {item}"), markup=False)
                    continue
                try:
                    added = store.add(item, our_domains=config.domains or None)
                except ReportRefused as exc:
                    refused += 1
                    err_console.print(visible(f"{name}: refused: {exc}"), markup=False)
                    continue
                except sqlite3.Error as exc:
                    raise _store_error(store.path, exc) from None
                stored += added
                duplicates += not added
    finally:
        store.close()
    console.print(f"stored {stored}, already known {duplicates}, refused {refused}")
    if refused:
        raise SystemExit(1)


def _read(name: str) -> bytes:
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise UsageError(f"{name}: cannot read: {exc.strerror}") from None


def _parse_any(name: str, data: bytes) -> list[AggregateReport | ReportRefused]:
    head = data.lstrip()[:5]
    if data[:2] == b"\x1f\x8b" or data[:4] == b"PK\x03\x04" or head.startswith(b"<"):
        try:
            return [parse_report(decompress(data, name))]
        except ReportRefused as exc:
            return [exc]
    return reports_from_message(data)
