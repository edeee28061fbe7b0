"""Relay-host mode: STARTTLS or implicit TLS, certificate checked, AUTH PLAIN/LOGIN.

The relay that demands TLS and AUTH is aiosmtpd (Postfix's smtpd needs a SASL
server for AUTH, which these machines do not run) with a certificate from a
throw-away CA; ``?tls=none`` relaying goes through the real Postfix, and a relay
that does not offer STARTTLS is Postfix's ``smtp-sink``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailwright.config import Config, DeliveryConfig, RelayConfig
from mailwright.delivery.agent import DeliveryAgent
from mailwright.dns import MemoryResolver
from mailwright.log import EventLogger
from mailwright.queue import SqliteQueueStore
from mailwright.testing.ports import free_port
from mailwright.testing.postfix import PostfixServer, SmtpSink
from mailwright.testing.tls import CertificateFiles

pytestmark = pytest.mark.integration

USER, PASSWORD = "app-user", "s3cr3t:with@odd/chars"
PASSWORD_URL = "s3cr3t%3Awith%40odd%2Fchars"  # the same, percent-encoded for the URL
MESSAGE = (
    b"From: App <app@example.com>\r\nTo: someone@example.net\r\nSubject: via relay\r\n"
    b"Message-ID: <relay-1@example.com>\r\n\r\nHello through the relay.\r\n.dot\r\n"
)


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool
    user: str | None


@dataclass
class RelayHandler:
    messages: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(
            Received(
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                envelope.content,
                server.transport.get_extra_info("ssl_object") is not None,
                session.auth_data.decode()
                if session.authenticated and isinstance(session.auth_data, bytes)
                else None,
            )
        )
        return "250 2.0.0 Ok: queued as RELAY1"

    def authenticator(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((mechanism, data.login.decode()))
        ok = data.login.decode() == USER and data.password.decode() == PASSWORD
        # handled=False: aiosmtpd then sends "535 5.7.8" itself (its default is True)
        return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)


@pytest.fixture
def relay(tls_files: CertificateFiles) -> Iterator[Callable[..., tuple[RelayHandler, int]]]:
    """Factory: ``relay(implicit=False, exclude=())`` → (handler, port) of a running relay."""
    controllers: list[Controller] = []

    def start(*, implicit: bool = False, exclude: tuple[str, ...] = ()) -> tuple[RelayHandler, int]:
        handler = RelayHandler()
        port = free_port()
        context = tls_files.server_context()
        options: dict[str, Any] = dict(
            auth_required=True,
            auth_require_tls=True,
            authenticator=handler.authenticator,
            auth_exclude_mechanism=list(exclude),
            server_hostname="relay.test",
        )
        if implicit:
            # aiosmtpd does not count implicit TLS as TLS for auth_require_tls; the
            # whole connection is TLS here, which the test checks from the session.
            options.update(ssl_context=context, auth_require_tls=False)
        else:
            options.update(tls_context=context, require_starttls=True)
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


def config_for(tmp_path: Path, relay: RelayConfig) -> Config:
    return Config(
        hostname="mail.example.com",
        domains=("example.com",),
        data_dir=tmp_path / "data",
        delivery=DeliveryConfig(
            mode="relay", relay=relay, connect_timeout=5.0, command_timeout=10.0
        ),
    )


async def deliver(
    config: Config, recipients: list[str]
) -> tuple[list[dict[str, str]], SqliteQueueStore]:
    events: list[dict[str, str]] = []
    logger = EventLogger(stderr=False)
    logger.subscribe(events.append)
    store = await SqliteQueueStore.open(config.data_dir)
    agent = DeliveryAgent(config, store, MemoryResolver(), logger, worker="test")
    agent.idle_seconds = 0.05
    await store.enqueue("app@example.com", recipients, MESSAGE)
    await agent.run_once()
    return events, store


async def test_starttls_required_and_auth_plain(
    tmp_path: Path, relay: Callable[..., tuple[RelayHandler, int]], tls_files: CertificateFiles
) -> None:
    handler, port = relay()
    config = config_for(
        tmp_path,
        RelayConfig(f"smtp://{USER}:{PASSWORD_URL}@localhost:{port}", ca_file=tls_files.ca),
    )
    events, store = await deliver(config, ["a@example.net", "b@example.org"])
    assert [e["event"] for e in events] == ["delivered", "delivered"]
    assert events[0]["relay"] in (f"localhost[127.0.0.1]:{port}", f"localhost[::1]:{port}")
    assert events[0]["reply"] == "250 2.0.0 Ok: queued as RELAY1"
    [got] = handler.messages
    assert got.tls and got.user == USER
    assert got.sender == "app@example.com"
    assert got.recipients == ["a@example.net", "b@example.org"]  # one transaction for both
    assert got.data == MESSAGE
    assert handler.logins == [("PLAIN", USER)]
    assert await store.list_entries() == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_implicit_tls_with_password_file(
    tmp_path: Path, relay: Callable[..., tuple[RelayHandler, int]], tls_files: CertificateFiles
) -> None:
    handler, port = relay(implicit=True)
    secret = tmp_path / "relay-password"
    secret.write_text(PASSWORD + "\n")
    config = config_for(
        tmp_path,
        RelayConfig(f"smtps://{USER}@localhost:{port}", password_file=secret, ca_file=tls_files.ca),
    )
    events, _ = await deliver(config, ["a@example.net"])
    assert [e["event"] for e in events] == ["delivered"], events[0]["reply"]
    [got] = handler.messages
    assert got.tls and got.user == USER and got.data == MESSAGE


async def test_auth_login_when_plain_is_not_offered(
    tmp_path: Path,
    relay: Callable[..., tuple[RelayHandler, int]],
    tls_files: CertificateFiles,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, port = relay(exclude=("PLAIN",))
    monkeypatch.setenv("RELAY_PASSWORD", PASSWORD)
    config = config_for(
        tmp_path,
        RelayConfig(
            f"smtp://{USER}@localhost:{port}", password_env="RELAY_PASSWORD", ca_file=tls_files.ca
        ),
    )
    events, _ = await deliver(config, ["a@example.net"])
    assert [e["event"] for e in events] == ["delivered"], events[0]["reply"]
    assert handler.logins == [("LOGIN", USER)]


async def test_wrong_password_defers_and_sends_nothing(
    tmp_path: Path, relay: Callable[..., tuple[RelayHandler, int]], tls_files: CertificateFiles
) -> None:
    handler, port = relay()
    config = config_for(
        tmp_path, RelayConfig(f"smtp://{USER}:wrong@localhost:{port}", ca_file=tls_files.ca)
    )
    events, store = await deliver(config, ["a@example.net"])
    [event] = events
    assert event["event"] == "deferred"
    assert event["dsn"] == "4.7.8", event["reply"]
    assert "535" in event["reply"]
    assert handler.messages == []
    [entry] = await store.list_entries()
    assert entry.recipients[0].status == "pending"


async def test_untrusted_relay_certificate_defers_without_plain_text_fallback(
    tmp_path: Path, relay: Callable[..., tuple[RelayHandler, int]]
) -> None:
    handler, port = relay()
    config = config_for(tmp_path, RelayConfig(f"smtp://{USER}:{PASSWORD_URL}@localhost:{port}"))
    events, _ = await deliver(config, ["a@example.net"])
    [event] = events
    assert event["event"] == "deferred"
    assert event["dsn"] == "4.7.5"
    assert "CERTIFICATE_VERIFY_FAILED" in event["reply"]
    assert handler.messages == [] and handler.logins == []


async def test_relay_without_starttls_is_refused(
    tmp_path: Path, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink()
    config = config_for(
        tmp_path, RelayConfig(f"smtp://{USER}:{PASSWORD_URL}@127.0.0.1:{sink.port}")
    )
    events, _ = await deliver(config, ["a@example.net"])
    [event] = events
    assert event["event"] == "deferred" and event["dsn"] == "4.7.4"
    time.sleep(0.2)
    assert sink.count == 0


async def test_plain_relay_through_postfix(tmp_path: Path, postfix_mx: PostfixServer) -> None:
    """``?tls=none`` without credentials: Postfix (our MX here) takes the message."""
    config = config_for(tmp_path, RelayConfig(f"smtp://127.0.0.1:{postfix_mx.port}?tls=none"))
    events, _ = await deliver(config, ["a@example.net", "b@example.org"])
    assert [e["event"] for e in events] == ["delivered", "delivered"]
    stored = postfix_mx.wait_for_messages(2)
    assert len(stored) == 2
    assert all(b"Hello through the relay.\n.dot\n" in m for m in stored)
    assert all(b"with ESMTP id" in m for m in stored)  # no TLS: tls=none was asked for
