"""A ``serve`` worker for tests that drive its methods (a reload, the agent it makes)
without starting it: no listeners, no event loop of its own."""

from __future__ import annotations

from pathlib import Path

from ..config import load_config
from ..log import EventLogger
from ..queue import SqliteQueueStore
from ..server import ServeOptions, Worker, build_runtime


async def idle_worker(config_path: Path) -> tuple[Worker, list[dict[str, str]]]:
    """The worker of the config at ``config_path``, with its runtime and its own SQLite
    queue opened (``worker.store``: close it when done), and the events it logs."""
    config = load_config(config_path)
    runtime, _ = build_runtime(config, dev_mode=False)
    events: list[dict[str, str]] = []
    logger = EventLogger(stderr=False)
    logger.subscribe(events.append)
    worker = Worker(ServeOptions(config, console=lambda line: None), runtime, logger)
    worker.store = await SqliteQueueStore.open(config.data_dir)
    return worker, events
