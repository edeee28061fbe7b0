"""``mailwright.django.EmailBackend`` with real Django against a real server: an
``EmailMultiAlternatives`` with an attachment, tags, metadata, send_at and an
idempotency key goes through the API, and arrives as sent."""

from __future__ import annotations

import datetime
import email
import email.policy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mailwright.testing.api import ApiServer, start_api_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    running = start_api_server(tmp_path_factory.mktemp("django"))
    yield running
    assert running.stop() == 0


def connection(server: ApiServer, **kw: Any) -> Any:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(DEFAULT_CHARSET="utf-8", USE_TZ=True)
        django.setup()
    from django.core.mail import get_connection

    return get_connection(
        "mailwright.django.EmailBackend",
        api_url=server.base,
        api_key=server.keys["send"],
        **kw,
    )


def delivered(server: ApiServer, timeout: float = 20) -> list[email.message.EmailMessage]:
    data = server.config.parent / "data"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(data.glob("**/new/*"))
        if files:
            return [
                email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
                for p in files
            ]
        time.sleep(0.2)
    return []


def test_django_message_through_the_api(server: ApiServer) -> None:
    from django.core.mail import EmailMultiAlternatives

    message = EmailMultiAlternatives(
        subject="Bienvenue, Zoë ☕",
        body="Merci — à bientôt!\n",
        from_email="Équipe <app@example.com>",
        to=["admin@example.com"],
        cc=["copy@example.net"],
        bcc=["hidden@example.net"],
        reply_to=["support@example.com"],
        headers={"X-Campaign": "spring"},
        connection=connection(server),
    )
    message.attach_alternative("<p>Merci, <b>café</b></p>", "text/html")
    message.attach("reçu.bin", bytes(range(256)), "application/octet-stream")
    message.tags = ["welcome"]  # type: ignore[attr-defined]
    message.metadata = {"user_id": 42}  # type: ignore[attr-defined]
    message.idempotency_key = "signup-42"  # type: ignore[attr-defined]
    assert message.send() == 1
    answer = message.mailwright  # type: ignore[attr-defined]
    assert {r["address"]: r["status"] for r in answer["recipients"]} == {
        "admin@example.com": "queued",
        "copy@example.net": "queued",
        "hidden@example.net": "queued",
    }
    # the same idempotency key: the first answer, nothing new queued
    assert message.send() == 1
    assert message.mailwright == answer  # type: ignore[attr-defined]
    _, events = server.json("GET", "/v1/events?type=queued&tag=welcome", key="read")
    assert len(events["events"]) == 3
    assert events["events"][0]["metadata"] == {"user_id": 42}

    (got,) = delivered(server)
    assert got["Subject"] == "Bienvenue, Zoë ☕"
    assert got["Reply-To"] == "support@example.com" and got["X-Campaign"] == "spring"
    assert "Bcc" not in got and "X-Mailwright-Tags" not in got
    text = got.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.replace("\r\n", "\n") == "Merci — à bientôt!\n"
    assert "café" in got.get_body(("html",)).get_content()  # type: ignore[union-attr]
    (part,) = got.iter_attachments()
    assert part.get_filename() == "reçu.bin" and part.get_content() == bytes(range(256))


def test_send_at_and_errors(server: ApiServer) -> None:
    from django.core.mail import EmailMessage

    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    message = EmailMessage(
        "later", "x", "app@example.com", ["x@example.net"], connection=connection(server)
    )
    message.send_at = later  # type: ignore[attr-defined]
    message.content_subtype = "html"
    assert message.send() == 1
    queue_id = message.mailwright["queue_id"]  # type: ignore[attr-defined]
    _, status = server.json("GET", f"/v1/messages/{queue_id}", key="read")
    assert status["recipients"][0]["next_attempt"] >= later.timestamp() - 1

    from mailwright.django import MailwrightApiError

    bad = EmailMessage(
        "x", "x", "app@example.com", ["not-an-address"], connection=connection(server)
    )
    with pytest.raises(MailwrightApiError) as caught:
        bad.send()
    assert caught.value.status == 400 and caught.value.answer["field"] == "to[0]"
    quiet = EmailMessage(
        "x",
        "x",
        "app@example.com",
        ["not-an-address"],
        connection=connection(server, fail_silently=True),
    )
    assert quiet.send(fail_silently=True) == 0
