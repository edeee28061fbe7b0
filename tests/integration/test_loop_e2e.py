"""The application's loop, end to end with real parts: Django submits UTF-8 mail to
``mailwright serve``, which signs and delivers it to a real Postfix MX (with and without
8BITMIME) where OpenDKIM verifies the signatures; a synchronous 5xx, an asynchronous DSN
written by Postfix and an ARF complaint each become the right event and suppression; the
next message to a suppressed address is ``rejected: suppressed``; a forged bounce
suppresses nobody.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import smtplib
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_delivery_postfix import strip_postfix_headers
from test_delivery_serve import publish_keys, start
from test_dkim_interop import ORIGIN, opendkim_testmsg_verify  # same directory

from mailwright.dkim import generate_key, private_key_pem
from mailwright.testing.nsd import NsdServer
from mailwright.testing.postfix import PostfixServer, free_port

pytestmark = pytest.mark.integration

SENDER = f"app@{ORIGIN}"


def write_config(
    tmp_path: Path,
    world: NsdServer,
    mx_port: int,
    extra: list[str] = (),  # type: ignore[assignment]
) -> tuple[Path, int, int]:
    submission, inbound = free_port(), free_port()
    keys: list[str] = []
    for selector, algorithm in (("rsa2048", "rsa"), ("ed1", "ed25519")):
        path = tmp_path / f"{selector}.private"
        path.write_bytes(private_key_pem(generate_key(algorithm, 2048)))
        keys += [
            "[[dkim]]",
            f'domain = "{ORIGIN}"',
            f'selector = "{selector}"',
            f'private_key = "{path}"',
            f'algorithm = "{algorithm}"',
        ]
    config = tmp_path / "mailwright.toml"
    config.write_text(
        "\n".join(
            [
                f'hostname = "mail.{ORIGIN}"',
                f'domains = ["{ORIGIN}"]',
                f'mailboxes = ["postmaster@{ORIGIN}"]',
                f'data_dir = "{tmp_path / "data"}"',
                "allow_root = true",
                "workers = 1",
                "[dns]",
                f'nameserver = "{world.nameserver}"',
                "[delivery]",
                'mode = "direct"',
                f"outbound_port = {mx_port}",
                "connect_timeout = 5.0",
                *extra,
                "[[listeners]]",
                'name = "submission"',
                'address = "127.0.0.1"',
                f"port = {submission}",
                "[[listeners]]",
                'name = "inbound"',
                'address = "127.0.0.1"',
                f"port = {inbound}",
                'role = "inbound"',
                *keys,
            ]
        )
        + "\n"
    )
    return config, submission, inbound


def read_events(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "data" / "queue.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return [json.loads(row[0]) for row in conn.execute("SELECT data FROM events ORDER BY seq")]


def wait_events(
    tmp_path: Path, predicate: Any, count: int = 1, timeout: float = 40
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = [e for e in read_events(tmp_path) if predicate(e)]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} events, got {found}: {read_events(tmp_path)}")


def suppressions(tmp_path: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{tmp_path / 'data' / 'queue.sqlite3'}?mode=ro", uri=True) as conn:
        return dict(conn.execute("SELECT address, reason FROM suppressions"))


@pytest.fixture
def serve() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def django_send(port: int, to: list[str], **headers: str) -> None:
    """What a Django view does: ``EmailMultiAlternatives(...).send()`` over SMTP."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            DEFAULT_CHARSET="utf-8",
        )
        django.setup()
    settings.EMAIL_PORT = port
    from django.core.mail import EmailMultiAlternatives, get_connection

    message = EmailMultiAlternatives(
        subject="Bienvenue à bord, Zoë ☕",
        body="Merci, café — à bientôt!\nGrüße aus Köln.\n",
        from_email=f"Équipe Café <{SENDER}>",
        to=to,
        headers=headers,
        connection=get_connection(port=port),
    )
    message.attach_alternative("<p>Merci, <b>café</b> — à bientôt!</p>", "text/html")
    message.attach("reçu.bin", bytes(range(256)) * 8, "application/octet-stream")
    assert message.send() == 1


@pytest.mark.parametrize("eight_bit_mx", [True, False], ids=["8bitmime", "no-8bitmime"])
def test_django_utf8_mail_verifies_at_postfix(
    tmp_path: Path,
    dns_world: NsdServer,
    serve: list[subprocess.Popen[bytes]],
    eight_bit_mx: bool,
) -> None:
    extra = {} if eight_bit_mx else {"smtpd_discard_ehlo_keywords": "8bitmime"}
    with PostfixServer(domains=["example.net"], settings=extra) as mx:
        config, port, _ = write_config(tmp_path, dns_world, mx.port)
        publish_keys(dns_world, tmp_path)
        dns_world.set_zone("example.net", "@ MX 10 mx\nmx A 127.0.0.1\n")
        start(serve, config, port)
        django_send(
            port,
            ["Zoë Ünlü <alice@example.net>"],
            **{"X-Mailwright-Tags": "welcome, onboarding", "X-Mailwright-Metadata": '{"user": 42}'},
        )
        [stored] = mx.wait_for_messages(1)
        original = strip_postfix_headers(stored)
        assert original.isascii()  # made 7-bit before signing (RFC 6152 §3)
        assert b"X-Mailwright-" not in original
        rc, stderr = opendkim_testmsg_verify(dns_world, original, tmp_path)
        assert (rc, stderr) == (0, "")
        parsed = email.message_from_bytes(original, policy=email.policy.default)
        assert parsed["Subject"] == "Bienvenue à bord, Zoë ☕"
        assert parsed["From"].addresses[0].display_name == "Équipe Café"
        text = parsed.get_body(("plain",))
        html = parsed.get_body(("html",))
        assert text is not None and "Grüße aus Köln" in text.get_content()
        assert html is not None and "<b>café</b>" in html.get_content()
        [attachment] = list(parsed.iter_attachments())
        assert attachment.get_filename() == "reçu.bin"
        assert attachment.get_content() == bytes(range(256)) * 8
        with smtplib.SMTP("127.0.0.1", mx.port) as probe:  # the MX is what it claims
            probe.ehlo("probe.example")
            assert probe.has_extn("8bitmime") == eight_bit_mx
        [queued] = wait_events(tmp_path, lambda e: e["event_type"] == "queued")
        assert queued["tags"] == ["welcome", "onboarding"] and queued["metadata"] == {"user": 42}
        [delivered] = wait_events(tmp_path, lambda e: e["event_type"] == "delivered")
        assert delivered["recipient"] == "alice@example.net"
        assert delivered["message_id"] == queued["message_id"] == parsed["Message-ID"]
        assert delivered["tags"] == ["welcome", "onboarding"]


def smtp_send(port: int, sender: str, to: list[str], data: bytes) -> str:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(sender, to, data)
        return "ok"


def simple_message(to: str, subject: str) -> bytes:
    return (
        f"From: App <{SENDER}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@{ORIGIN}>\r\n\r\nHello.\r\n"
    ).encode()


def test_bounces_complaints_and_suppression(
    tmp_path: Path,
    dns_world: NsdServer,
    serve: list[subprocess.Popen[bytes]],
) -> None:
    inbound_port = free_port()
    transport = (
        "inline:{ {gone@example.net=error:5.1.1 mailbox gone}, "
        f"{{{ORIGIN}=smtp:[127.0.0.1]:{inbound_port}}} }}"
    )
    with PostfixServer(
        domains=["example.net"],
        settings={"transport_maps": transport, "smtpd_reject_unlisted_recipient": "no"},
        recipient_access={"bad@example.net": "550 5.1.1 no such user"},
    ) as mx:
        config, port, inbound = write_config(tmp_path, dns_world, mx.port)
        text = config.read_text().replace(f"port = {inbound}\n", f"port = {inbound_port}\n")
        config.write_text(text)
        publish_keys(dns_world, tmp_path)
        dns_world.set_zone("example.net", "@ MX 10 mx\nmx A 127.0.0.1\n")
        start(serve, config, port)

        # 1. a synchronous 5xx: hard bounce, suppressed at once
        smtp_send(port, SENDER, ["bad@example.net"], simple_message("bad@example.net", "sync"))
        [sync] = wait_events(tmp_path, lambda e: e["event_type"] == "bounced")
        assert (sync["bounce_type"], sync["bounce_source"]) == ("hard", "sync")
        assert sync["cause"] == "recipient-unknown"
        assert sync["mta_response"].startswith("550 5.1.1")
        assert suppressions(tmp_path)["bad@example.net"] == "hard-bounce"

        # 2. an asynchronous DSN: Postfix accepts, fails, and bounces to our VERP address
        smtp_send(port, SENDER, ["gone@example.net"], simple_message("gone@example.net", "async"))
        [dsn] = wait_events(
            tmp_path, lambda e: e["event_type"] == "bounced" and e["bounce_source"] == "async"
        )
        assert dsn["recipient"] == "gone@example.net" and dsn["bounce_type"] == "hard"
        assert dsn["details"]["verified"] is True and dsn["details"]["format"] == "rfc3464"
        assert dsn["message_id"] == f"<async@{ORIGIN}>"
        assert suppressions(tmp_path)["gone@example.net"] == "hard-bounce"

        # 3. a delivered message; its Return-Path at the MX is the VERP address
        smtp_send(port, SENDER, ["alice@example.net"], simple_message("alice@example.net", "hi"))
        [stored] = mx.wait_for_messages(1)
        return_path = stored.split(b"\n", 1)[0].decode()
        assert return_path.startswith("Return-Path: <bounces+") and return_path.endswith(
            f"@{ORIGIN}>"
        )
        verp = return_path.split("<", 1)[1].rstrip(">")

        # 4. a forged bounce (bad HMAC) for alice: an event, no suppression
        forged = dsn_for("alice@example.net")
        smtp_send(inbound_port, "", [f"bounces+0abc-0-0-aaaaaaaaaa@{ORIGIN}"], forged)
        wait_events(
            tmp_path,
            lambda e: e["event_type"] == "bounced" and e["details"].get("verified") is False,
        )
        assert "alice@example.net" not in suppressions(tmp_path)

        # 5. an ARF complaint at abuse@ quoting alice's return path: complained, suppressed
        smtp_send(inbound_port, "fbl@provider.example", [f"abuse@{ORIGIN}"], arf_for(verp))
        [complaint] = wait_events(tmp_path, lambda e: e["event_type"] == "complained")
        assert complaint["recipient"] == "alice@example.net" and complaint["details"]["verified"]
        assert suppressions(tmp_path)["alice@example.net"] == "complaint"

        # 6. the next message to a suppressed address is not sent to it
        smtp_send(
            port,
            SENDER,
            ["gone@example.net", "carol@example.net"],
            simple_message("gone@example.net", "again"),
        )
        [rejected] = wait_events(tmp_path, lambda e: e["event_type"] == "rejected")
        assert (rejected["recipient"], rejected["reject_reason"]) == (
            "gone@example.net",
            "suppressed",
        )
        wait_events(
            tmp_path,
            lambda e: e["event_type"] == "delivered" and e["recipient"] == "carol@example.net",
        )
        # Postfix saw gone@ once (the first message), never again
        assert (
            len(re.findall(r"RCPT from .*to=<gone@example.net>|to=<gone@example.net>,", mx.log()))
            <= 2
        )
        assert mx.log().count("<gone@example.net>: ") <= 1


def dsn_for(recipient: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: x\r\nSubject: Undelivered Mail\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--b--\r\n"
    ).encode()


def arf_for(verp: str) -> bytes:
    return (
        "From: fbl@provider.example\r\nTo: abuse\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"\r\n\r\n'
        "--arf\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
        "--arf\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: FBL/1\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{verp}>\r\n\r\n"
        "--arf\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Return-Path: <{verp}>\r\nFrom: App <{SENDER}>\r\nTo: redacted\r\n"
        f"Message-ID: <hi@{ORIGIN}>\r\n\r\n"
        "--arf--\r\n"
    ).encode()


def readme_view_code() -> str:
    """The webhook view exactly as README.md "Sending from Django" shows it."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Sending from Django", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    [view] = [b for b in blocks if "def mailwright_events" in b]
    return view


DJANGO_SETTINGS = """
SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "hookapp.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
MAILWRIGHT_WEBHOOK_SECRET = {secret!r}
"""

DJANGO_URLS = """
from django.urls import path
from hookapp import views
urlpatterns = [path("mailwright/events", views.mailwright_events)]
"""

RECORD_EVENTS = """

def handle(event):  # the test's "your code": keep what arrived
    with open({path!r}, "a") as out:
        out.write(json.dumps(event) + "\\n")
"""


@pytest.fixture
def django_receiver(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A real Django project serving the README's view (``runserver``, loopback)."""
    import base64
    import os
    import sys

    from mailwright.testing.postfix import wait_for_port

    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    app = tmp_path / "django" / "hookapp"
    app.mkdir(parents=True)
    received = tmp_path / "received.jsonl"
    (app / "__init__.py").write_text("")
    (app / "settings.py").write_text(DJANGO_SETTINGS.format(secret=secret))
    (app / "urls.py").write_text(DJANGO_URLS)
    (app / "views.py").write_text(readme_view_code() + RECORD_EVENTS.format(path=str(received)))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "django"),
        "DJANGO_SETTINGS_MODULE": "hookapp.settings",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for_port(port, 30), "Django did not start"
        yield f"http://127.0.0.1:{port}/mailwright/events", secret, received
    finally:
        proc.terminate()
        proc.wait(20)


def test_django_view_receives_signed_webhooks(
    tmp_path: Path,
    dns_world: NsdServer,
    serve: list[subprocess.Popen[bytes]],
    django_receiver: tuple[str, str, Path],
) -> None:
    import urllib.error
    import urllib.request

    url, secret, received = django_receiver
    # the control: a request with a wrong signature is refused by the view
    bad = urllib.request.Request(
        url,
        data=b'{"data": {"events": []}}',
        headers={
            "webhook-id": "msg_x",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,AAAA",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bad, timeout=10)
    assert refused.value.code == 403
    with PostfixServer(
        domains=["example.net"], recipient_access={"bad@example.net": "550 5.1.1 no such user"}
    ) as mx:
        webhook = ["[[webhooks]]", f'url = "{url}"', f'secret = "{secret}"']
        config, port, _ = write_config(tmp_path, dns_world, mx.port)
        text = config.read_text().replace(
            "[[listeners]]", "\n".join(webhook) + "\n[[listeners]]", 1
        )
        config.write_text(text)
        publish_keys(dns_world, tmp_path)
        dns_world.set_zone("example.net", "@ MX 10 mx\nmx A 127.0.0.1\n")
        start(serve, config, port)
        django_send(
            port,
            ["alice@example.net", "bad@example.net"],
            **{"X-Mailwright-Tags": "welcome", "X-Mailwright-Metadata": '{"user": 7}'},
        )
        deadline = time.monotonic() + 40
        got: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            if received.exists():
                got = [json.loads(line) for line in received.read_text().splitlines()]
                if {e["event_type"] for e in got} >= {"queued", "delivered", "bounced"}:
                    break
            time.sleep(0.2)
        kinds = {(e["event_type"], e["recipient"]) for e in got}
        assert {
            ("queued", "alice@example.net"),
            ("queued", "bad@example.net"),
            ("delivered", "alice@example.net"),
            ("bounced", "bad@example.net"),
        } <= kinds, got
        assert all(e["tags"] == ["welcome"] and e["metadata"] == {"user": 7} for e in got)
        # in log order: each recipient's queued event comes before its outcome
        order = [(e["event_type"], e["recipient"]) for e in got]
        assert order.index(("queued", "bad@example.net")) < order.index(
            ("bounced", "bad@example.net")
        )
