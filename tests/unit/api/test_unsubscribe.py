"""``/unsubscribe/TOKEN`` (RFC 8058 one-click): POST unsubscribes through Mailman's REST
API, GET only shows the button, bad tokens and bodies get a page that says why.

Mailman's REST API is a small stand-in here (the integration test runs the real one):
it records the DELETEs it gets and answers as Mailman 3 does."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mailwright.certificates.store import CertificateStore
from mailwright.config import Config, MailmanConfig
from mailwright.http import Services, make_app
from mailwright.log import EventLogger
from mailwright.mailman import MailmanRest
from mailwright.queue import SqliteQueueStore
from mailwright.queue.tracking import Tracking
from mailwright.rfc8058 import make_token

KEY = b"k" * 32
LIST = "team@lists.example"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@dataclass
class FakeMailman:
    """Mailman 3's ``DELETE lists/LIST_ID/member/EMAIL``: 204, or 404 for a non-member."""

    members: set[str] = field(default_factory=lambda: {"alice@example.net", "bob@example.net"})
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def delete(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"].startswith("Basic ")
        form = dict(await request.post())
        list_id, email = request.match_info["list_id"], request.match_info["email"]
        self.calls.append((list_id, email, {k: str(v) for k, v in form.items()}))
        if list_id != "team.lists.example" or email not in self.members:
            return web.json_response({"title": "404 Not Found"}, status=404)
        self.members.discard(email)
        return web.Response(status=204)


@dataclass
class Site:
    client: TestClient  # type: ignore[type-arg]
    mailman: FakeMailman
    tracking: Tracking
    logged: list[dict[str, object]]
    up: list[bool]


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    fake = FakeMailman()
    rest_app = web.Application()
    rest_app.router.add_delete("/3.1/lists/{list_id}/member/{email}", fake.delete)
    async with TestServer(rest_app) as rest:
        up = [True]
        base = f"http://127.0.0.1:{rest.port}/3.1"

        def mailman() -> MailmanRest:
            # "down": a port nobody listens on
            url = base if up[0] else "http://127.0.0.1:9/3.1"
            return MailmanRest(url, "restadmin", "pw", timeout=5)

        config = Config(
            data_dir=tmp_path,
            mailman=MailmanConfig(unsubscribe_url="https://lists.example/unsubscribe"),
        )
        store = await SqliteQueueStore.open(tmp_path)
        tracking = Tracking(store)
        logger = EventLogger(stderr=False)
        logged: list[dict[str, object]] = []
        logger.subscribe(logged.append)
        services = Services(
            config=lambda: config,
            store=store,
            tracking=tracking,
            smtp=None,
            logger=logger,
            unsubscribe_key=KEY,
            mailman=mailman,
        )
        try:
            async with TestClient(
                TestServer(make_app(CertificateStore(tmp_path), services))
            ) as client:
                yield Site(client, fake, tracking, logged, up)
        finally:
            await store.close()


def path(member: str = "alice@example.net", *, now: float | None = None, key: bytes = KEY) -> str:
    return "/unsubscribe/" + make_token(key, LIST, member, now)


async def test_post_one_click_unsubscribes_at_once(site: Site) -> None:
    response = await site.client.post(path(), data=ONE_CLICK)
    assert response.status == 200  # RFC 8058 §3.2: no redirect
    assert response.content_type == "text/html"
    assert "alice@example.net is no longer subscribed to team@lists.example" in (
        await response.text()
    )
    assert site.mailman.members == {"bob@example.net"}
    # no confirmation by the member, no approval by a moderator
    assert site.mailman.calls == [
        (
            "team.lists.example",
            "alice@example.net",
            {"pre_confirmed": "true", "pre_approved": "true"},
        )
    ]
    [event] = await site.tracking.latest(10, ["unsubscribed"])
    assert event.recipient == "alice@example.net"
    assert event.details == {"list": LIST, "via": "one-click"}
    # again: already gone, the same kind of answer (a provider may POST twice)
    again = await site.client.post(path(), data=ONE_CLICK)
    assert again.status == 200 and "is not subscribed" in await again.text()
    assert len(await site.tracking.latest(10, ["unsubscribed"])) == 1


async def test_multipart_form_is_accepted_too(site: Site) -> None:
    from aiohttp import FormData

    form = FormData()
    form.add_field("List-Unsubscribe", "One-Click")
    form.add_field("x", b"y", filename="x.txt")  # forces multipart/form-data
    response = await site.client.post(path("bob@example.net"), data=form)
    assert response.status == 200
    assert site.mailman.members == {"alice@example.net"}


async def test_get_shows_a_form_and_never_unsubscribes(site: Site) -> None:
    for method in ("GET", "HEAD"):
        response = await site.client.request(method, path())
        assert response.status == 200
    page = await (await site.client.get(path())).text()
    assert '<form method="post">' in page
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page
    assert "alice@example.net" in page and "team@lists.example" in page
    assert "<script" not in page
    assert site.mailman.calls == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"List-Unsubscribe": "one-click"},
        {"List-Unsubscribe": "Yes"},
        {"Unsubscribe": "One-Click"},
    ],
)
async def test_wrong_body_is_400(site: Site, body: dict[str, str]) -> None:
    response = await site.client.post(path(), data=body)
    assert response.status == 400
    assert "List-Unsubscribe=One-Click" in await response.text()
    assert site.mailman.calls == []


async def test_json_or_garbage_body_is_400(site: Site) -> None:
    response = await site.client.post(path(), json={"List-Unsubscribe": "One-Click"})
    assert response.status == 400
    response = await site.client.post(
        path(),
        data=b"--x\r\ngarbage",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status == 400
    assert site.mailman.calls == []


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b",
        "x" * 5000,
        make_token(b"other key" * 4, LIST, "alice@example.net"),
        "%00",
        "..%2F..%2Fetc",
    ],
)
async def test_bad_tokens_are_404_pages(site: Site, token: str) -> None:
    for method in ("GET", "POST"):
        response = await site.client.request(method, f"/unsubscribe/{token}", data=ONE_CLICK)
        assert response.status == 404, token
        assert response.content_type == "text/html"
        text = await response.text()
        assert "not a valid unsubscribe link" in text and "Traceback" not in text
    assert site.mailman.calls == []


async def test_expired_token_is_410(site: Site) -> None:
    old = path(now=time.time() - 181 * 86400)
    response = await site.client.post(old, data=ONE_CLICK)
    assert response.status == 410 and "too old" in await response.text()
    assert site.mailman.calls == []


async def test_mailman_down_is_503_with_retry_after(site: Site) -> None:
    site.up[0] = False
    response = await site.client.post(path(), data=ONE_CLICK)
    assert response.status == 503
    assert response.headers["Retry-After"] == "300"
    assert "try again later" in await response.text()
    assert [e for e in site.logged if e.get("what") == "unsubscribe"]
    assert await site.tracking.latest(10, ["unsubscribed"]) == []


async def test_without_mailman_every_link_is_404(tmp_path: Path) -> None:
    services = Services(
        config=lambda: Config(data_dir=tmp_path),
        store=None,  # type: ignore[arg-type]
        tracking=None,
        smtp=None,
        logger=EventLogger(stderr=False),
    )
    async with TestClient(TestServer(make_app(CertificateStore(tmp_path), services))) as client:
        response = await client.post(path(), data=ONE_CLICK)
        assert response.status == 404
