"""Webhooks: Standard Webhooks signatures, at-least-once in order, durable cursor,
bounded against hostile endpoints (down, slow, 500, redirect loop, endless body)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mailwright.queue import SqliteQueueStore
from mailwright.queue.events import Event
from mailwright.queue.tracking import Tracking
from mailwright.testing.ports import free_port
from mailwright.webhooks import (
    BACKOFF,
    GATHER,
    MAX_RETRY_AGE,
    Cursor,
    Webhook,
    WebhookSender,
    sign,
    signing_key,
    verify,
)

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NOW = 1_790_000_000.0


class Endpoint:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.mode = "ok"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        if self.mode == "500":
            return web.Response(status=500, text="boom")
        if self.mode == "slow":
            await asyncio.sleep(30)
        if self.mode == "redirect":
            raise web.HTTPFound(str(request.url))
        if self.mode == "huge":
            response = web.StreamResponse(status=200)
            await response.prepare(request)
            chunk = b"x" * 65536
            for _ in range(16384):  # 1 GiB if anyone read it all
                await response.write(chunk)
            return response
        return web.Response(status=204)


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, str]]:
    ep = Endpoint()
    app = web.Application()
    app.router.add_post("/hook", ep.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield ep, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteQueueStore]:
    s = await SqliteQueueStore.open(tmp_path / "data")
    yield s
    await s.close()


Make = Callable[..., Awaitable[tuple[WebhookSender, Webhook, Cursor]]]


@pytest.fixture
async def make(store: SqliteQueueStore) -> AsyncIterator[Make]:
    senders: list[WebhookSender] = []

    async def go(url: str, clock: Callable[[], float] = lambda: NOW, **kw: Any) -> Any:
        hook = Webhook(url, SECRET, **kw)
        sender = WebhookSender(store, [hook], clock=clock)
        await sender.start()
        for task in sender._tasks:  # steps are driven by the test
            task.cancel()
        senders.append(sender)
        from functools import partial

        from mailwright.webhooks import _load_cursor

        cursor = await store.transact(partial(_load_cursor, name=url))
        return sender, hook, cursor

    yield go
    for sender in senders:
        await sender.close()


def events(n: int, kind: str = "delivered") -> list[Event]:
    return [
        Event(kind, NOW + i, recipient=f"r{i}@x.example", queue_id="Q", event_id=f"{kind[0]}{i}")  # type: ignore[arg-type]
        for i in range(n)
    ]


def test_signature_is_standard_webhooks() -> None:
    key = signing_key(SECRET)
    assert key == b"0123456789abcdef0123456789abcdef"
    assert signing_key("plain-secret-text!") == b"plain-secret-text!"
    body = b'{"a":1}'
    signature = sign(key, "msg_1", 1_700_000_000, body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": signature,
    }
    assert verify(SECRET, headers, body, now=1_700_000_010)
    assert not verify(SECRET, headers, body + b" ", now=1_700_000_010)
    assert not verify(SECRET, headers, body, now=1_700_001_000)  # replayed later
    assert not verify("whsec_other", headers, body, now=1_700_000_010)
    assert not verify(SECRET, {**headers, "webhook-timestamp": "x"}, body)


async def test_delivered_in_order_signed_and_cursor_moves(
    endpoint: tuple[Endpoint, str], make: Make, store: SqliteQueueStore
) -> None:
    ep, url = endpoint
    sender, hook, cursor = await make(url)
    await Tracking(store).record(events(150))
    assert await sender._step(hook, cursor) == 0
    assert await sender._step(hook, cursor) == GATHER  # 50 of 100: wait for more
    assert len(ep.requests) == 2
    seen = []
    for headers, body in ep.requests:
        assert verify(SECRET, headers, body, now=NOW)
        payload = json.loads(body)
        assert payload["type"] == "events" and payload["data"]["schema"] == 1
        seen += [e["event_id"] for e in payload["data"]["events"]]
    assert seen == [f"d{i}" for i in range(150)]
    assert cursor.batch_end is None and cursor.seq == 150
    assert await sender._step(hook, cursor) > 0  # nothing new: wait


async def test_new_webhook_starts_at_the_end_of_the_log(
    endpoint: tuple[Endpoint, str], make: Make, store: SqliteQueueStore
) -> None:
    await Tracking(store).record(events(3))
    ep, url = endpoint
    sender, hook, cursor = await make(url)
    assert cursor.seq == 3
    assert await sender._step(hook, cursor) > 0 and ep.requests == []


async def test_event_filter(
    endpoint: tuple[Endpoint, str], make: Make, store: SqliteQueueStore
) -> None:
    ep, url = endpoint
    sender, hook, cursor = await make(url, events=frozenset({"bounced"}))
    await Tracking(store).record(events(2) + events(1, "bounced"))
    await sender._step(hook, cursor)
    [(_, body)] = ep.requests
    assert [e["event_type"] for e in json.loads(body)["data"]["events"]] == ["bounced"]


async def test_500_is_retried_with_backoff_same_id_then_given_up(
    endpoint: tuple[Endpoint, str], make: Make, store: SqliteQueueStore
) -> None:
    ep, url = endpoint
    now = [NOW]
    sender, hook, cursor = await make(url, clock=lambda: now[0])
    await Tracking(store).record(events(2))
    ep.mode = "500"
    assert await sender._step(hook, cursor) == BACKOFF[0]
    assert cursor.last_error == "HTTP 500: boom" and cursor.attempts == 1
    assert await sender._step(hook, cursor) <= BACKOFF[0]  # not due yet: no request
    assert len(ep.requests) == 1
    now[0] += BACKOFF[0]
    assert await sender._step(hook, cursor) == BACKOFF[1]
    ids = {h["webhook-id"] for h, _ in ep.requests}
    assert len(ids) == 1  # the same delivery, retried
    now[0] = NOW + MAX_RETRY_AGE
    assert await sender._step(hook, cursor) == 0  # given up: moves on
    assert cursor.seq == 2 and cursor.batch_end is None


async def test_retry_state_survives_a_restart(
    endpoint: tuple[Endpoint, str], make: Make, store: SqliteQueueStore
) -> None:
    ep, url = endpoint
    sender, hook, cursor = await make(url)
    await Tracking(store).record(events(3))
    ep.mode = "500"
    await sender._step(hook, cursor)
    await Tracking(store).record(events(2, "bounced"))  # arrives while failing
    ep.mode = "ok"
    sender2, hook2, cursor2 = await make(url, clock=lambda: NOW + 10_000)
    assert (cursor2.batch_end, cursor2.attempts) == (3, 1)
    await sender2._step(hook2, cursor2)
    first, second = ep.requests
    assert first[0]["webhook-id"] == second[0]["webhook-id"]
    assert len(json.loads(second[1])["data"]["events"]) == 3  # exactly the same batch


async def test_hostile_endpoints_are_bounded(
    endpoint: tuple[Endpoint, str], make: Make, store: SqliteQueueStore
) -> None:
    ep, url = endpoint
    sender, hook, cursor = await make(url, timeout=1.0)
    await Tracking(store).record(events(1))
    for mode, expected in [
        ("slow", "no answer within 1 s"),
        ("redirect", "HTTP 302"),
    ]:
        ep.mode = mode
        cursor.next_try = None
        started = time.monotonic()
        await sender._step(hook, cursor)
        assert time.monotonic() - started < 5
        assert cursor.last_error is not None and cursor.last_error.startswith(expected), mode
    assert len(ep.requests) == 2  # the redirect was not followed
    ep.mode = "huge"
    cursor.next_try = None
    started = time.monotonic()
    assert await sender._step(hook, cursor) == GATHER  # 200: delivered, body not read
    assert time.monotonic() - started < 5


async def test_endpoint_down(make: Make, store: SqliteQueueStore) -> None:
    port = free_port()
    sender, hook, cursor = await make(f"http://127.0.0.1:{port}/hook")
    await Tracking(store).record(events(1))
    assert await sender._step(hook, cursor) == BACKOFF[0]
    assert cursor.last_error is not None and "Connect" in cursor.last_error


async def test_running_sender_delivers_when_woken(
    endpoint: tuple[Endpoint, str], store: SqliteQueueStore
) -> None:
    ep, url = endpoint
    sender = WebhookSender(store, [Webhook(url, SECRET)])
    tracking = Tracking(store)
    tracking.listeners.append(sender)
    await sender.start()
    try:
        await asyncio.sleep(0.2)  # the cursor is made at the end of the (empty) log
        await tracking.record(events(5))
        for _ in range(100):
            if ep.requests:
                break
            await asyncio.sleep(0.05)
        [(headers, body)] = ep.requests
        assert verify(SECRET, headers, body)
    finally:
        await sender.close()


async def test_pruning_waits_for_configured_webhooks_only(
    make: Make, store: SqliteQueueStore
) -> None:
    from mailwright.webhooks import min_webhook_seq

    await Tracking(store).record(events(5))
    _sender, _hook, cursor = await make("http://127.0.0.1:9/a")  # made at seq 5
    assert cursor.seq == 5
    await store.transact(
        lambda conn: conn.execute(
            "UPDATE webhook_cursors SET seq = 2 WHERE name = ?", ("http://127.0.0.1:9/a",)
        )
    )
    assert await store.query(lambda conn: min_webhook_seq(conn, ["http://127.0.0.1:9/a"])) == 2
    assert await store.query(lambda conn: min_webhook_seq(conn, [])) == 5  # removed webhook
    assert await store.query(lambda conn: min_webhook_seq(conn, ["http://other/"])) == 5
