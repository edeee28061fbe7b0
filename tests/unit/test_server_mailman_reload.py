"""``[mailman]`` added to the config by a SIGHUP takes effect without a restart: the
worker makes its RFC 8058 key (the SMTP server mints one-click links with it, the http
listener checks them) and asks Mailman for its lists, as it does at start."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from mailwright.rfc8058 import KEY_FILE
from mailwright.server import list_cache
from mailwright.smtp.server import SmtpServer
from mailwright.testing.ports import free_port
from mailwright.testing.worker import idle_worker

CONFIG = """
hostname = "mx.lists.example"
domains = ["lists.example"]
mailboxes = ["postmaster@lists.example"]
data_dir = "{data}"
allow_root = true  # the test may run as root
"""
MAILMAN = """
[mailman]
rest_url = "http://127.0.0.1:{port}/3.1"
rest_password_file = "{password}"
cache_seconds = 0
unsubscribe_url = "https://lists.example/unsubscribe"
"""


async def test_mailman_added_by_a_reload_gets_its_key_and_lists(tmp_path: Path) -> None:
    async def lists(request: web.Request) -> web.Response:
        entries = [{"fqdn_listname": "team@lists.example", "list_id": "team.lists.example"}]
        return web.json_response({"entries": entries, "total_size": 1})

    app = web.Application()
    app.router.add_get("/3.1/lists", lists)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    password = tmp_path / "mailman-rest-password"
    password.write_text("secret\n")
    path = tmp_path / "mailwright.toml"
    path.write_text(CONFIG.format(data=tmp_path / "data"))
    worker, events = await idle_worker(path)
    store, config = worker.store, worker.runtime.config
    assert store is not None
    worker.smtp = SmtpServer(worker.runtime, store, worker.logger)
    try:
        worker._reload()  # nothing changed: no [mailman], no key
        assert worker._mailman_task is None and worker.unsubscribe_key is None
        path.write_text(
            CONFIG.format(data=tmp_path / "data") + MAILMAN.format(port=port, password=password)
        )
        worker._reload()
        assert worker._mailman_task is not None
        await asyncio.wait_for(worker._mailman_task, 10)
        key = (config.data_dir / KEY_FILE).read_bytes()
        assert worker.unsubscribe_key == worker.smtp.unsubscribe_key == key
        cache = list_cache(worker.runtime.config)
        assert cache is not None and cache.exists("team@lists.example") is True
        assert worker.runtime.directory.is_list_address("team-bounces@lists.example")
        assert any(e.get("reason") == "[mailman] enabled" for e in events), events
        worker._reload()  # once set up, a later reload does not start it again
        assert worker._mailman_task.done()
    finally:
        await store.close()
        await runner.cleanup()
