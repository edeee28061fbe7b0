"""``mailwright serve``: run the mail server (see :mod:`mailwright.server`)."""

from __future__ import annotations

import click

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
def serve(workers: int | None) -> None:
    """Run the mail server: listeners, queue and delivery."""
    ctx = app()
    dev_mode = not ctx.has_config_file
    options = ServeOptions(config=ctx.config, dev_mode=dev_mode, workers=workers)
    raise SystemExit(run_server(options))
