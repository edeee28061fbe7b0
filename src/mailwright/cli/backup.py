"""``mailwright backup DIR`` and ``mailwright restore DIR``: thin layers over
:mod:`mailwright.backup`."""

from __future__ import annotations

from pathlib import Path

import click

from .. import backup as backups
from .context import app, console, emit_json, safe

BACKUP_EPILOG = """\b
Examples:
  mailwright backup /var/backups/mailwright/$(date +%F)   # while the server runs
  mailwright --config /etc/mailwright/mailwright.toml backup /mnt/backup/mw --json
"""

RESTORE_EPILOG = """\b
Examples:
  mailwright restore /var/backups/mailwright/2026-12-04     # into the original data_dir
  mailwright restore /mnt/backup/mw --data-dir /srv/mailwright-new
"""


@click.command(epilog=BACKUP_EPILOG)
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def backup(directory: Path, as_json: bool) -> None:
    """Copy the queue, the other databases, keys and config into DIRECTORY (new or empty),
    consistently, while the server runs."""
    result = backups.backup(app().config, directory)
    if as_json:
        emit_json(result.to_json())
        return
    console.print(
        f"backed up {result.files} files ({result.bytes:,} bytes) to {safe(str(directory))}",
        soft_wrap=True,
    )
    if result.databases:
        console.print(f"  databases: {safe(', '.join(result.databases))}", soft_wrap=True)
    for path in result.external:
        console.print(f"  outside the data directory: {safe(path)}", soft_wrap=True)


@click.command(epilog=RESTORE_EPILOG)
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="New data directory (default: the one the backup was taken from). Must be empty.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def restore(directory: Path, data_dir: Path | None, as_json: bool) -> None:
    """Put a backup made by 'mailwright backup' into a new, empty data directory."""
    result = backups.restore(directory, data_dir)
    if as_json:
        emit_json(result.to_json())
        return
    console.print(
        f"restored {result.files} files into {safe(str(result.data_dir))}", soft_wrap=True
    )
    for path in result.created:
        console.print(f"  put back: {safe(path)}", soft_wrap=True)
    for path in result.kept:
        console.print(
            f"  kept {safe(path)}: it exists and differs from the backup's copy", soft_wrap=True
        )
    if data_dir is not None:
        console.print(
            f"  start it with: mailwright serve --data-dir {safe(str(result.data_dir))}",
            soft_wrap=True,
        )
