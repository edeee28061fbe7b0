"""``mailwright queue ...``: look at and steer the mail queue, also while the server runs.

The commands open the same store as ``mailwright serve`` (the SQLite database in the
data directory, or the PostgreSQL database of ``[queue] url``); the store's locking lets
them work beside the running workers, and
leases keep ``retry`` from duplicating a delivery in flight. A running agent polls the
queue every few seconds, so ``retry`` and ``release`` take effect within that time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import click
from rich.table import Table

from ..errors import UserError
from ..log import log_event, logger
from ..message import split_header
from ..privileges import Account, drop_to
from ..queue import QueueEntry, QueueError, QueueStore, SchemaMismatch, is_queue_id, open_store
from ..spool import HEAD_LIMIT
from .context import app, console, emit_json, run, safe, visible

T = TypeVar("T")

EPILOG = """\b
Examples:
  mailwright queue list                 # what is waiting, and why
  mailwright queue list --json
  mailwright queue show 2K6EERE55KMKDX  # envelope, per-recipient status, headers
  mailwright queue retry --all          # everything due now
  mailwright queue hold 2K6EERE55KMKDX  # keep it from being delivered
  mailwright queue release 2K6EERE55KMKDX
  mailwright queue delete 2K6EERE55KMKDX
  mailwright queue migrate --to postgresql://mailwright@db.example.net/mailwright
"""


def _as_server_user() -> None:
    """Run as root with a config that names ``user``: become that user first, so that
    files SQLite creates beside the queue (``-wal``, ``-shm``) stay the server's."""
    ctx = app()
    if os.geteuid() != 0 or not ctx.has_config_file or ctx.config.user is None:
        return
    drop_to(Account.named(ctx.config.user, ctx.config.source))


def _with_store(action: Callable[[QueueStore], Awaitable[T]]) -> T:
    _as_server_user()
    config = app().config
    if config.queue.url is None and not (config.data_dir / "queue.sqlite3").exists():
        raise UserError(
            f"no queue in {config.data_dir}",
            "run 'mailwright serve' first, or point --config at the server's config",
        )

    async def go() -> T:
        store = await open_store(config)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return run(go())
    except SchemaMismatch as exc:
        raise UserError(exc.message, exc.hint) from None
    except QueueError as exc:  # the database went away, a disk is full, ...
        raise UserError(str(exc), "check [queue] url and that the database is up") from None


def _check_id(typed: str) -> str:
    """The canonical (upper-case) ID; a bad one is reported as typed, not as normalised."""
    queue_id = typed.strip().upper()
    if not is_queue_id(queue_id):
        raise UserError(f"{typed!r} is not a queue ID", "see 'mailwright queue list'")
    return queue_id


REPLY_WIDTH = 80
"""Characters of the last reply ``queue list`` shows; ``queue show`` has it whole."""


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when something was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def header_text(head: str) -> str:
    """A message header for the terminal: folded lines keep their indentation (RFC 5322
    §2.2.3 folds with a space or a tab), other control characters are shown escaped."""
    return visible(head.replace("\r\n", "\n").expandtabs(4))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _status(entry: QueueEntry, now: float) -> str:
    if entry.held:
        return "held"
    if entry.lease_until is not None and entry.lease_until > now:
        return "delivering"
    due = entry.next_attempt
    if due is not None and due > now:
        return "deferred"
    return "due"


def _entry_json(entry: QueueEntry, now: float) -> dict[str, object]:
    data = entry.to_json()
    data["status"] = _status(entry, now)
    return data


@click.group(epilog=EPILOG)
def queue() -> None:
    """Inspect and manage the mail queue (works while the server runs)."""
    logger.set_stderr(False)  # management events go to the log file only


def _open_log() -> None:
    config = app().config
    path = config.log.file or config.data_dir / "mailwright.log"
    if path.parent.exists():
        logger.open(path)


@queue.command(
    "list", epilog="\b\nExamples:\n  mailwright queue list\n  mailwright queue list --json"
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(as_json: bool) -> None:
    """List queued messages, oldest first."""
    entries = _with_store(lambda s: s.list_entries())
    now = time.time()
    if as_json:
        emit_json({"count": len(entries), "entries": [_entry_json(e, now) for e in entries]})
        return
    if not entries:
        console.print("The queue is empty.")
        return
    table = Table(title=f"{len(entries)} message(s) in the queue")
    table.add_column("ID", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for column in ("queued", "size", "from", "pending", "next attempt", "last reply"):
        table.add_column(column)
    for entry in entries:
        pending = entry.pending
        last = next((r.last_reply for r in pending if r.last_reply), "") or ""
        table.add_row(
            entry.id,
            _status(entry, now),
            _when(entry.created_at),
            str(entry.size),
            safe(f"<{entry.sender}>"),
            safe(", ".join(r.address for r in pending[:3]) + (" ..." if len(pending) > 3 else "")),
            _when(entry.next_attempt),
            safe(shorten(last, REPLY_WIDTH)),
        )
    console.print(table)


@queue.command(
    epilog="\b\nExamples:\n  mailwright queue show 2K6EERE55KMKDX\n"
    "  mailwright queue show 2K6EERE55KMKDX --json"
)
@click.argument("queue_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(queue_id: str, as_json: bool) -> None:
    """Show one message: envelope, each recipient's state, and its header."""
    queue_id = _check_id(queue_id)

    async def get(store: QueueStore) -> tuple[QueueEntry | None, bytes]:
        entry = await store.get(queue_id)
        if entry is None:
            return None, b""
        try:
            # the header is all it shows: a big message is not read whole
            return entry, await store.read_message_part(queue_id, 0, HEAD_LIMIT)
        except KeyError:
            return entry, b""

    entry, data = _with_store(get)
    if entry is None:
        raise UserError(f"no message {queue_id} in the queue", "it may have been delivered")
    now = time.time()
    head = split_header(data)[0].removesuffix(b"\r\n").decode("utf-8", "replace")
    if as_json:
        result = _entry_json(entry, now)
        result["header"] = head
        emit_json(result)
        return
    console.print(
        f"[bold]{entry.id}[/] {_status(entry, now)}, {entry.size} bytes, "
        f"queued {_when(entry.created_at)}"
    )
    console.print(f"from {safe('<' + entry.sender + '>')}")
    table = Table()
    for column in ("recipient", "status", "attempts", "next attempt", "last reply"):
        table.add_column(column)
    for r in entry.recipients:
        table.add_row(
            safe(r.address),
            r.status,
            str(r.attempts),
            _when(r.next_attempt) if r.status == "pending" else "-",
            safe(r.last_reply or ""),
        )
    console.print(table)
    meta = entry.meta.to_json()
    if meta:
        console.print("meta: " + safe(", ".join(f"{k}={v}" for k, v in meta.items())))
    # The header is untrusted: an ESC or BEL in a Subject is shown, not obeyed.
    console.print(header_text(head), markup=False, highlight=False)


@queue.command(
    epilog="\b\nExamples:\n  mailwright queue retry 2K6EERE55KMKDX\n  mailwright queue retry --all"
)
@click.argument("queue_id", required=False)
@click.option("--all", "all_", is_flag=True, help="Every message in the queue.")
def retry(queue_id: str | None, all_: bool) -> None:
    """Make a deferred message (or all) due for delivery now."""
    if all_ == (queue_id is not None):
        raise UserError("give a queue ID or --all (not both)")
    target = None if all_ else _check_id(queue_id or "")
    count = _with_store(lambda s: s.retry(target))
    if target is not None and count == 0:
        raise UserError(f"no message {target} in the queue")
    _open_log()
    log_event("retry", target if target else None, count=count)
    console.print(f"{count} message(s) due now.")


def _simple(action: str, queue_id: str, past: str) -> None:
    queue_id = _check_id(queue_id)

    async def act(store: QueueStore) -> bool:
        method: Callable[[str], Awaitable[bool]] = getattr(store, action)
        return await method(queue_id)

    if not _with_store(act):
        raise UserError(f"no message {queue_id} in the queue")
    _open_log()
    log_event(past, queue_id)
    console.print(f"{queue_id} {past}.")


@queue.command(epilog="\b\nExamples:\n  mailwright queue hold 2K6EERE55KMKDX")
@click.argument("queue_id")
def hold(queue_id: str) -> None:
    """Keep a message in the queue without delivering it."""
    _simple("hold", queue_id, "held")


@queue.command(epilog="\b\nExamples:\n  mailwright queue release 2K6EERE55KMKDX")
@click.argument("queue_id")
def release(queue_id: str) -> None:
    """Release a held message (it is due at once)."""
    _simple("release", queue_id, "released")


@queue.command(epilog="\b\nExamples:\n  mailwright queue delete 2K6EERE55KMKDX")
@click.argument("queue_id")
def delete(queue_id: str) -> None:
    """Remove a message from the queue without delivering it or sending a bounce."""
    _simple("delete", queue_id, "deleted")


@queue.command(
    epilog="\b\nExamples:\n"
    "  mailwright queue migrate --to postgresql://mailwright@db.example.net/mailwright\n"
    "  mailwright queue migrate --to postgresql://... --json"
)
@click.option(
    "--to",
    "url",
    required=True,
    metavar="URL",
    help="The PostgreSQL database (password: from [queue] password_file/password_env).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def migrate(url: str, as_json: bool) -> None:
    """Move the embedded SQLite queue into PostgreSQL (stop 'mailwright serve' first)."""
    import dataclasses

    from ..config import QueueConfig
    from ..queue.configured import database_conninfo

    config = app().config
    if not url.startswith(("postgresql://", "postgres://")):
        raise UserError(f"--to {url!r} is not a postgresql:// URL", "write postgresql://...")
    if not (config.data_dir / "queue.sqlite3").exists():
        raise UserError(
            f"no SQLite queue in {config.data_dir}", "point --config at the server's config"
        )
    target = dataclasses.replace(config.queue, url=url)
    if config.queue.url is None:
        target = QueueConfig(url=url)
    conninfo = database_conninfo(dataclasses.replace(config, queue=target))
    assert conninfo is not None
    from ..queue.transfer import move_sqlite_queue

    try:
        result = run(move_sqlite_queue(config.data_dir, conninfo))
    except SchemaMismatch as exc:
        raise UserError(exc.message, exc.hint) from None
    except QueueError as exc:
        raise UserError(str(exc), "fix that and run the command again: it resumes") from None
    _open_log()
    log_event("queue-migrated", None, to=result.destination, count=result.moved)
    if as_json:
        emit_json(result.to_json())
        return
    console.print(
        f"moved {result.moved} message(s) to {result.destination}"
        + (f" ({result.already_there} were already there)" if result.already_there else "")
        + f", {result.events} event(s) and {result.suppressions} suppression(s)"
    )
    if result.moved or config.queue.url != url:
        console.print(f'next: set [queue] url = "{url}" in {config.source}, then start serve')
