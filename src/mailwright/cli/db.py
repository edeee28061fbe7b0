"""``mailwright db ...``: the PostgreSQL queue database's schema.

Only for ``[queue] url``: the embedded SQLite queue brings its own schema up to date
when it is opened. ``serve`` runs ``migrate`` itself when the schema is older than it
speaks; running it by hand first (e.g. from a deploy script, before the nodes restart)
is the same and harmless: it is idempotent.
"""

from __future__ import annotations

import click

from ..errors import UserError
from ..queue import QueueError, SchemaMismatch
from ..queue.configured import database_conninfo
from .context import app, console, emit_json, run

EPILOG = """\b
Examples:
  mailwright db migrate          # the schema of [queue] url, up to date
  mailwright db migrate --json
"""


@click.group(epilog=EPILOG)
def db() -> None:
    """The PostgreSQL queue database ([queue] url)."""


@db.command(epilog=EPILOG)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def migrate(as_json: bool) -> None:
    """Bring the queue database's schema up to date (idempotent)."""
    config = app().config
    conninfo = database_conninfo(config)
    if conninfo is None:
        raise UserError(
            f"{config.source}: no [queue] url: the queue is the embedded SQLite one, which "
            "migrates itself",
            'set [queue] url = "postgresql://..." to use PostgreSQL',
        )
    from ..queue.postgres import describe
    from ..queue.postgres import migrate as migrate_schema

    try:
        before, after = run(migrate_schema(conninfo))
    except SchemaMismatch as exc:
        raise UserError(exc.message, exc.hint) from None
    except QueueError as exc:
        raise UserError(str(exc), "start PostgreSQL, or fix [queue] url in the config") from None
    where = describe(conninfo)
    if as_json:
        emit_json({"database": where, "before": before, "after": after})
    elif before == after:
        console.print(f"{where}: schema {after}, up to date")
    else:
        console.print(f"{where}: schema {before} -> {after}")
