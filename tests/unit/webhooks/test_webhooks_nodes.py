"""Webhooks with several nodes on one PostgreSQL store: every event is posted once (one
node at a time sends a webhook), and when that node stops another one takes over from
the durable position."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from mailwright import webhooks
from mailwright.queue.events import Event
from mailwright.queue.postgres import PostgresQueueStore
from mailwright.queue.tracking import Tracking
from mailwright.webhooks import Webhook, WebhookSender

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[list[bytes], str]]:
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        bodies.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield bodies, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


def posted(bodies: list[bytes]) -> Counter[str]:
    return Counter(e["event_id"] for b in bodies for e in json.loads(b)["data"]["events"])


async def wait_for(bodies: list[bytes], count: int) -> Counter[str]:
    deadline = time.monotonic() + 20
    while len(posted(bodies)) < count:
        assert time.monotonic() < deadline, posted(bodies)
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # a second node posting too would show by now
    return posted(bodies)


async def test_one_node_posts_each_event_once_and_another_takes_over(
    postgres_url: str,
    endpoint: tuple[list[bytes], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhooks, "TURN", 1.0)
    monkeypatch.setattr(webhooks, "POLL", 0.2)
    bodies, url = endpoint
    stores = [await PostgresQueueStore.open(postgres_url, migrate_schema=True) for _ in range(2)]
    senders = [WebhookSender(store, [Webhook(url, SECRET)]) for store in stores]
    for n, sender in enumerate(senders):
        sender.holder = f"node{n}:1"
    try:
        for sender in senders:
            await sender.start()
        await asyncio.sleep(0.5)  # the cursor exists: events from now on are sent
        tracking = Tracking(stores[0])
        first = [Event("delivered", time.time(), recipient=f"a{i}@x.example") for i in range(5)]
        await tracking.record(first)
        seen = await wait_for(bodies, 5)
        assert set(seen) == {e.event_id for e in first} and set(seen.values()) == {1}
        # whichever node sends stops; the other takes over where it left off
        sending = [s for s in senders if s.delivered]
        assert len(sending) == 1
        await sending[0].close()
        more = [Event("delivered", time.time(), recipient=f"b{i}@x.example") for i in range(5)]
        await tracking.record(more)
        seen = await wait_for(bodies, 10)
        assert set(seen) == {e.event_id for e in first + more}
        assert set(seen.values()) == {1}, "an event was posted twice"
        assert next(s for s in senders if s is not sending[0]).delivered >= 1
    finally:
        for sender in senders:
            await sender.close()
        for store in stores:
            await store.close()
