"""``mailwright suppress ...`` and ``mailwright events``: the suppression list and the
event log in the queue database (also while the server runs: SQLite WAL lets readers
and a second writer work beside it)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from rich.table import Table

from ..config import Config
from ..errors import UsageError, UserError
from ..log import log_event, logger
from ..queue import QueueError, QueueStore, SchemaMismatch, open_store
from ..queue.events import EVENT_TYPES, Event
from ..queue.eventstore import EventStore
from ..queue.suppressions import Suppression
from ..queue.tracking import SuppressionPolicy, Tracking
from .context import app, console, emit_json, run, safe, visible

T = TypeVar("T")

SUPPRESS_EPILOG = """\b
Examples:
  mailwright suppress list
  mailwright suppress check bob@example.net --json
  mailwright suppress add bob@example.net --reason "asked us to stop" --days 90
  mailwright suppress remove bob@example.net
"""

EVENTS_EPILOG = """\b
Examples:
  mailwright events                      # the latest 50 events
  mailwright events --since 2h --json    # JSON Lines, one event per line
  mailwright events --follow             # and wait for new ones (Ctrl-C stops)
  mailwright events --type bounced --type complained
"""


def _db_exists() -> bool:
    config = app().config
    return config.queue.url is not None or (config.data_dir / "queue.sqlite3").exists()


async def _open_tracking(config: Config) -> tuple[QueueStore, Tracking]:
    """The configured store (SQLite in the data directory, or ``[queue] url``)."""
    store = await open_store(config)
    if not isinstance(store, EventStore):  # pragma: no cover - both stores are EventStores
        await store.close()
        raise UserError("this queue store keeps no events", "check [queue] url")
    return store, Tracking(store, SuppressionPolicy.from_config(config))


def _run_store(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return run(coro)
    except SchemaMismatch as exc:
        raise UserError(exc.message, exc.hint) from None
    except QueueError as exc:  # the database went away, a disk is full, ...
        raise UserError(str(exc), "check [queue] url and that the database is up") from None


def _with_tracking(action: Callable[[Tracking], Awaitable[T]], *, create: bool = False) -> T:
    config = app().config

    async def go() -> T:
        store, tracking = await _open_tracking(config)
        try:
            return await action(tracking)
        finally:
            await store.close()

    if not create and not _db_exists():
        raise UserError(
            f"no queue database in {config.data_dir}",
            "run 'mailwright serve' first, or point --config at the server's config",
        )
    return _run_store(go())


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _address(text: str) -> str:
    address = text.strip().strip("<>")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise UsageError(f"{text!r} is not an email address", "write e.g. bob@example.net")
    return address


def _open_log() -> None:
    config = app().config
    path = config.log.file or config.data_dir / "mailwright.log"
    if path.parent.exists():
        logger.open(path)


@click.group(epilog=SUPPRESS_EPILOG)
def suppress() -> None:
    """The suppression list: addresses mail is not sent to (bounced, complained, by hand)."""
    logger.set_stderr(False)


def _table(entries: list[Suppression], title: str) -> Table:
    table = Table(title=title)
    for column in ("address", "reason", "since", "expires", "detail"):
        table.add_column(column)
    for s in entries:
        table.add_row(
            safe(s.address),
            s.reason,
            _when(s.created_at),
            _when(s.expires_at),
            safe(s.detail[:100]),
        )
    return table


@suppress.command(
    "list",
    epilog="\b\nExamples:\n  mailwright suppress list\n  mailwright suppress list --json",
)
@click.option("--expired", is_flag=True, help="Include entries that have expired.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(expired: bool, as_json: bool) -> None:
    """List suppressed addresses, oldest first."""
    entries: list[Suppression] = []
    if _db_exists():
        entries = _with_tracking(lambda t: t.suppressions(include_expired=expired))
    if as_json:
        emit_json({"count": len(entries), "suppressions": [s.to_json() for s in entries]})
        return
    if not entries:
        console.print("No address is suppressed.")
        return
    console.print(_table(entries, f"{len(entries)} suppressed address(es)"))


@suppress.command(
    epilog="\b\nExamples:\n  mailwright suppress check bob@example.net\n"
    "  mailwright suppress check a@example.net b@example.net --json"
)
@click.argument("addresses", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check(addresses: tuple[str, ...], as_json: bool) -> None:
    """Is mail to these addresses suppressed? Exit 1 if any is."""
    wanted = [_address(a) for a in addresses]
    found: dict[str, Suppression] = {}
    if _db_exists():
        found = _with_tracking(lambda t: t.check(wanted))
    if as_json:
        emit_json(
            {
                "suppressed": any(a in found for a in wanted),
                "addresses": [
                    {"address": a, "suppression": found[a].to_json() if a in found else None}
                    for a in wanted
                ],
            }
        )
    else:
        for a in wanted:
            s = found.get(a)
            if s is None:
                console.print(f"{safe(a)}: not suppressed")
            else:
                console.print(
                    f"{safe(a)}: [red]suppressed[/] ({s.reason} since {_when(s.created_at)}, "
                    f"expires {_when(s.expires_at)}) {safe(s.detail)}"
                )
    raise SystemExit(1 if found else 0)


@suppress.command(
    epilog="\b\nExamples:\n  mailwright suppress add bob@example.net\n"
    '  mailwright suppress add bob@example.net --reason "asked us to stop" --days 90'
)
@click.argument("address")
@click.option("--reason", "detail", default="", help="Why (kept with the entry).")
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True, max=36500),
    default=None,
    help="Expire after this many days (default: never).",
)
def add(address: str, detail: str, days: float | None) -> None:
    """Suppress an address by hand."""
    address = _address(address)
    expires = time.time() + days * 86400 if days is not None else None
    entry = _with_tracking(
        lambda t: t.suppress(address, "manual", detail=detail, expires_at=expires), create=True
    )
    _open_log()
    log_event("suppressed", None, to=address, reason="manual")
    console.print(f"{safe(entry.address)} suppressed (expires {_when(entry.expires_at)}).")


@suppress.command(epilog="\b\nExamples:\n  mailwright suppress remove bob@example.net")
@click.argument("address")
def remove(address: str) -> None:
    """Take an address off the suppression list (and forget its soft bounces)."""
    address = _address(address)
    if not _db_exists() or not _with_tracking(lambda t: t.unsuppress(address)):
        raise UserError(f"{address} is not suppressed", "see 'mailwright suppress list'")
    _open_log()
    log_event("unsuppressed", None, to=address)
    console.print(f"{safe(address)} removed from the suppression list.")


def _since(text: str) -> float:
    from ..explain import parse_since

    try:
        return parse_since(text).timestamp()
    except (OverflowError, ValueError):
        raise UsageError(
            f"--since {text!r} is out of range", "write e.g. 2h, 3d, 2026-11-24 or 2026-11-24T18:00"
        ) from None


def _line(event: Event) -> str:
    parts = [
        _when(event.timestamp),
        f"{event.event_type:<11}",
        event.queue_id or "-",
        f"<{event.recipient}>" if event.recipient else "-",
    ]
    extra = []
    if event.bounce_type:
        extra.append(f"{event.bounce_type}/{event.bounce_source}")
    if event.reject_reason:
        extra.append(f"reason={event.reject_reason}")
    if event.cause and event.cause != "unknown":
        extra.append(f"cause={event.cause}")
    if event.mta_response:
        extra.append(event.mta_response[:160])
    return visible(" ".join(parts + extra))  # printed with markup off: shown, not obeyed


@click.command(epilog=EVENTS_EPILOG)
@click.option(
    "--since", metavar="TIME", help="Events at or after TIME: 2h, 3d, 1w, or an ISO date."
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they happen.")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(EVENT_TYPES),
    help="Only these event types (repeatable).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=1_000_000),
    default=50,
    show_default=True,
    help="Without --since: show the latest this many.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one event object per line.")
def events(
    since: str | None, follow: bool, types: tuple[str, ...], limit: int, as_json: bool
) -> None:
    """The event log: every outcome of every recipient (queued, delivered, bounced ...)."""
    since_at = _since(since) if since else None
    if not _db_exists() and not follow:
        return
    config = app().config

    def show(batch: list[Event]) -> None:
        for event in batch:
            if as_json:
                sys.stdout.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
            else:
                console.print(_line(event), markup=False, highlight=False)
        sys.stdout.flush()

    async def go() -> None:
        while not _db_exists():
            await asyncio.sleep(1)
        store, tracking = await _open_tracking(config)
        try:
            chosen = list(types) or None
            if since_at is None:
                cursor = await tracking.last_seq()
                batch = await tracking.latest(limit, chosen)
            else:
                cursor = await tracking.last_seq()
                after = 0
                while True:  # page through: bounded memory however long the log
                    page = await tracking.read(after=after, since=since_at, limit=1000)
                    page = [e for e in page if (e.seq or 0) <= cursor]
                    if not page:
                        break
                    after = page[-1].seq or after
                    show([e for e in page if chosen is None or e.event_type in chosen])
                batch = []
            show(batch)
            while follow:
                await asyncio.sleep(0.5)
                more = await tracking.read(after=cursor, limit=1000)
                if more:
                    cursor = more[-1].seq or cursor
                    show([e for e in more if chosen is None or e.event_type in chosen])
        finally:
            await store.close()

    try:
        _run_store(go())
    except KeyboardInterrupt:
        return
