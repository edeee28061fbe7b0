"""The queue store the config names: the embedded SQLite queue in ``data_dir`` (the
default), or the PostgreSQL one when ``[queue] url`` is set (several nodes, one queue).

The PostgreSQL driver is an optional extra (``mailwright[postgresql]``): it is imported
only here and only when a URL is configured, so a SQLite-only install never needs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import ConfigError, UserError
from .sqlite import SqliteQueueStore
from .store import QueueError, QueueStore, SchemaMismatch

if TYPE_CHECKING:
    from .postgres import PostgresQueueStore


def database_conninfo(config: Config) -> str | None:
    """The libpq connection string for ``[queue] url`` with its password from the URL,
    ``password_file`` or ``password_env`` (exactly one, as for the relay); None: SQLite."""
    queue = config.queue
    if queue.url is None:
        return None
    file = config.source
    make_conninfo, conninfo_to_dict, error = _driver()
    try:
        given = conninfo_to_dict(queue.url)
    except error as exc:
        raise ConfigError(
            file, "queue.url", f"not a valid PostgreSQL URL: {str(exc).strip()}", "fix the URL"
        ) from None
    sources = [
        name
        for name, present in (
            ("url", "password" in given),
            ("password_file", queue.password_file is not None),
            ("password_env", queue.password_env is not None),
        )
        if present
    ]
    if len(sources) > 1:
        raise ConfigError(
            file, "queue", f"password given twice ({' and '.join(sources)})", "keep one"
        )
    extra: dict[str, str] = {}
    if "application_name" not in given:
        extra["application_name"] = "mailwright"
    if queue.password_file is not None:
        try:
            extra["password"] = queue.password_file.read_text("utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                file, "queue.password_file", f"cannot read: {exc.strerror}", "fix the path"
            ) from None
    elif queue.password_env is not None:
        password = os.environ.get(queue.password_env)
        if password is None:
            raise ConfigError(
                file,
                "queue.password_env",
                f"environment variable {queue.password_env} is not set",
                f"export {queue.password_env}=...",
            )
        extra["password"] = password
    return str(make_conninfo(queue.url, **extra))


def _driver() -> tuple[Any, Any, type[Exception]]:
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ImportError:
        raise UserError(
            "[queue] url needs the PostgreSQL driver, which is not installed",
            "install mailwright[postgresql] (psycopg), or remove [queue] url",
        ) from None
    return make_conninfo, conninfo_to_dict, psycopg.ProgrammingError


async def open_postgres(conninfo: str, *, migrate_schema: bool = False) -> PostgresQueueStore:
    from .postgres import PostgresQueueStore

    return await PostgresQueueStore.open(conninfo, migrate_schema=migrate_schema)


async def open_store(where: Config | Path) -> QueueStore:
    """The configured queue store, opened. A PostgreSQL schema must already be current
    (``serve`` and ``mailwright db migrate`` bring it there). A bare data directory
    (tools, tests, older callers) means the embedded SQLite queue in it."""
    if not isinstance(where, Config):
        return await SqliteQueueStore.open(Path(where))
    config = where
    conninfo = database_conninfo(config)
    if conninfo is None:
        return await SqliteQueueStore.open(config.data_dir)
    return await open_postgres(conninfo)


def describe_store(config: Config) -> str:
    """Where the queue is, for people (never a password)."""
    conninfo = database_conninfo(config)
    if conninfo is None:
        return str(config.data_dir / "queue.sqlite3")
    from .postgres import describe

    return describe(conninfo)


async def prepare_database(config: Config) -> str | None:
    """``serve``'s start, before any worker: reach the database and bring an older schema
    up to date (a newer one is refused). Returns a note for the startup log, None for
    SQLite. Raises :class:`UserError` (one line, exit 2) when that cannot be done."""
    conninfo = database_conninfo(config)
    if conninfo is None:
        return None
    from .postgres import describe, migrate

    try:
        before, after = await migrate(conninfo)
    except SchemaMismatch as exc:
        raise UserError(exc.message, exc.hint) from None
    except QueueError as exc:
        raise UserError(str(exc), "start PostgreSQL, or fix [queue] url in the config") from None
    if before == after:
        return None
    return f"queue database {describe(conninfo)}: schema {before} -> {after}"
