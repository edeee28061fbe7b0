"""``mailwright serve``: run the mail server (see :mod:`mailwright.server`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..errors import UsageError
from ..server import ServeOptions
from ..server import serve as run_server
from .context import app

EPILOG = """\b
Examples:
  mailwright serve                         # development mode without a config file:
                                           # submission on 127.0.0.1:2525, every message
                                           # DKIM-signed and saved to ./mailwright-data/outbox
  mailwright --config /etc/mailwright.toml serve
  mailwright serve --workers 2             # two worker processes (default: [workers] or cores)
  mailwright serve --listen 127.0.0.1:2526 # development mode on another port

\b
Signals: SIGTERM stops (transactions in flight finish), SIGHUP reloads the config,
DKIM keys and users, and reopens the log file.
"""


@click.command(epilog=EPILOG)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Worker processes sharing the listeners and the queue (0: one per core).",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Address of the first listener instead of the configured one (e.g. another port "
    "for development mode).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Data directory instead of the configured one (queue, log, outbox, dev key).",
)
def serve(workers: int | None, listen: str | None, data_dir: Path | None) -> None:
    """Run the mail server: listeners, queue and delivery."""
    ctx = app()
    dev_mode = not ctx.has_config_file
    config = ctx.config
    if listen is not None:
        host, sep, port = listen.rpartition(":")
        # ASCII digits only: str.isdigit() also accepts '²', which int() refuses.
        if not sep or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise UsageError(f"--listen {listen!r} is not HOST:PORT", "write e.g. 127.0.0.1:2526")
        first = replace(config.listeners[0], address=host.strip("[]"), port=int(port))
        config = replace(config, listeners=(first, *config.listeners[1:]))
    if data_dir is not None:
        config = replace(config, data_dir=data_dir)
    options = ServeOptions(config=config, dev_mode=dev_mode, workers=workers)
    raise SystemExit(run_server(options))
