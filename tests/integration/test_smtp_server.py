"""The SMTP server over real sockets on 127.0.0.1: every bad-input class of issue 5.

Each test starts the listeners in-process (port 0), talks to them with raw asyncio
streams (exact bytes, exact replies) or smtplib, and checks what reached the queue.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import dkim
import pytest

from mailwright.config import parse_config
from mailwright.delivery.agent import DeliveryAgent
from mailwright.dkim import dns_record_value, generate_key, private_key_pem
from mailwright.dns import MemoryResolver
from mailwright.log import EventLogger
from mailwright.queue import SqliteQueueStore
from mailwright.queue.store import ClientTurn, Handoff, client_turn
from mailwright.server import build_runtime
from mailwright.smtp.auth import hash_password
from mailwright.smtp.server import ServerSettings, SmtpServer
from mailwright.testing.tls import make_certificate

pytestmark = pytest.mark.integration

PASSWORD = "s3cret pass"


class Harness:
    def __init__(self, server: SmtpServer, store: SqliteQueueStore, events: list[dict[str, str]]):
        self.server = server
        self.store = store
        self.events = events
        self.ports = server.ports()

    async def entries(self) -> list[Any]:
        return await self.store.list_entries()


class Client:
    """A raw SMTP client: send exact bytes, read whole replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, tls: bool = False) -> Client:
        context = None
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        return cls(reader, writer)

    async def reply(self, timeout: float = 10) -> str:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise ConnectionError("closed: " + " | ".join(lines))
            text = line.decode().rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return "\n".join(lines)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def cmd(self, line: str) -> str:
        await self.send(line.encode() + b"\r\n")
        return await self.reply()

    async def starttls(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        await self.writer.start_tls(context)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


@pytest.fixture
async def harness_factory(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[tuple[SmtpServer, SqliteQueueStore]] = []
    files = make_certificate(tmp_path / "tls")
    cert, key = files.certificate, files.private_key

    async def start(
        settings: ServerSettings | None = None, trusted: list[str] | None = None, **extra: Any
    ) -> Harness:
        data: dict[str, Any] = {
            "hostname": "mx.example.com",
            "domains": ["example.com"],
            "mailboxes": ["admin@example.com", "bob@example.com"],
            "data_dir": str(tmp_path / "data"),
            "message_size_limit": 20_000,
            "trusted_networks": trusted if trusted is not None else ["192.0.2.0/24"],
            "tls": {"certificate": str(cert), "private_key": str(key)},
            "users": [{"name": "bob", "password_hash": hash_password(PASSWORD, ln=10)}],
            "listeners": [
                {"name": "inbound", "port": 2525, "role": "inbound"},
                {"name": "submission", "port": 2587, "tls": "starttls", "auth": "optional"},
                {"name": "smtps", "port": 2465, "tls": "implicit", "auth": "required"},
            ],
        }
        data.update(extra)
        config = parse_config(data, tmp_path / "mailwright.toml")
        config = replace(config, listeners=tuple(replace(li, port=0) for li in config.listeners))
        state, _ = build_runtime(config, dev_mode=False)
        store = await SqliteQueueStore.open(config.data_dir)
        logger = EventLogger(stderr=False)
        events: list[dict[str, str]] = []
        logger.subscribe(events.append)
        server = SmtpServer(
            state,
            store,
            logger,
            settings or ServerSettings(auth_failure_delay=0.05),
            resolver=MemoryResolver(),  # inbound checks: never the system resolver in tests
        )
        await server.start()
        started.append((server, store))
        return Harness(server, store, events)

    yield start
    for server, store in started:
        await server.stop()
        await store.close()


async def open_session(h: Harness, listener: str = "inbound", ehlo: bool = True) -> Client:
    c = await Client.connect(h.ports[listener], tls=listener == "smtps")
    assert (await c.reply()).startswith("220 mx.example.com ESMTP")
    if ehlo:
        assert (await c.cmd("EHLO client.example")).startswith("250-mx.example.com")
    return c


MESSAGE = b"From: Alice <alice@example.org>\r\nSubject: test\r\n\r\nHello.\r\n"


async def test_pipelined_transaction_is_queued_with_trace_header(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h)
    await c.send(
        b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\n"
        b"RCPT TO:<victim@example.net>\r\nDATA\r\n"
    )
    assert await c.reply() == "250 2.1.0 Ok"
    assert await c.reply() == "250 2.1.5 Ok"
    assert await c.reply() == "554 5.7.1 <victim@example.net>: Relay access denied"
    assert (await c.reply()).startswith("354")
    await c.send(MESSAGE + b".\r\n")
    reply = await c.reply()
    assert reply.startswith("250 2.0.0 Ok: queued as ")
    queue_id = reply.rsplit(" ", 1)[1]
    assert await c.cmd("QUIT") == "221 2.0.0 Bye"
    [entry] = await h.entries()
    assert entry.id == queue_id
    assert [r.address for r in entry.recipients] == ["bob@example.com"]
    data = await h.store.read_message(queue_id)
    assert data.startswith(b"Received: from client.example (unknown [127.0.0.1])\r\n")
    assert f"with ESMTP id {queue_id}".encode() in data
    assert b"for <bob@example.com>;" in data
    assert data.endswith(MESSAGE)
    assert b"Message-ID:" not in data  # untrusted client: only the trace field is added
    kinds = [e["event"] for e in h.events]
    assert kinds[:1] == ["connect"] and "rejected" in kinds and "accepted" in kinds
    accepted = next(e for e in h.events if e["event"] == "accepted")
    assert accepted["id"] == queue_id and accepted["from"] == "<alice@example.org>"
    rejected = next(e for e in h.events if e["event"] == "rejected")
    assert rejected["stage"] == "rcpt" and rejected["to"] == "<victim@example.net>"
    await c.close()


async def test_a_message_handed_over_waits_for_its_session_to_end(harness_factory: Any) -> None:
    """Claim at enqueue hands the message to the agent inside the session, before the
    250; the session's ClientTurn tells the agent when the client has had its last
    reply (the connection closed), so signing and sending wait until then."""
    h = await harness_factory()
    turns: list[ClientTurn | None] = []
    h.store.handoff = Handoff(
        "w1", 900.0, lambda size: True, lambda entry, data: turns.append(client_turn.get())
    )
    c = await open_session(h)
    await c.cmd("MAIL FROM:<alice@example.org>")
    await c.cmd("RCPT TO:<bob@example.com>")
    assert (await c.cmd("DATA")).startswith("354")
    await c.send(MESSAGE + b".\r\n")
    assert (await c.reply()).startswith("250 2.0.0 Ok: queued as ")
    [turn] = turns
    assert turn is not None and not turn.ended  # the client may send more
    assert await c.cmd("QUIT") == "221 2.0.0 Bye"
    for _ in range(500):  # the session ends once its connection is closed
        if turn.ended:
            break
        await asyncio.sleep(0.01)
    assert turn.ended
    await c.close()


async def test_unknown_local_user_gets_550_511(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h)
    await c.cmd("MAIL FROM:<alice@example.org>")
    assert (await c.cmd("RCPT TO:<nobody@example.com>")).startswith(
        "550 5.1.1 <nobody@example.com>"
    )
    assert await c.cmd("RCPT TO:<postmaster@example.com>") == "250 2.1.5 Ok"
    await c.close()


async def test_trusted_submission_gets_message_id_and_date(harness_factory: Any) -> None:
    h = await harness_factory(trusted=["127.0.0.0/8"])
    c = await open_session(h)
    await c.cmd("MAIL FROM:<app@example.com>")
    assert await c.cmd("RCPT TO:<someone@example.net>") == "250 2.1.5 Ok"  # relay: trusted
    await c.cmd("DATA")
    reply = await c.cmd("From: app@example.com\r\nSubject: x\r\n\r\nbody\r\n.")
    queue_id = reply.rsplit(" ", 1)[1]
    data = await h.store.read_message(queue_id)
    assert b"\r\nMessage-ID: <" in data and b"@mx.example.com>\r\n" in data
    assert b"\r\nDate: " in data
    assert any(e["event"] == "unsigned" and e["domain"] == "example.com" for e in h.events)
    await c.close()


async def test_message_over_size_limit_and_the_session_goes_on(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h)
    assert (await c.cmd("MAIL FROM:<a@example.org> SIZE=20001")).startswith("552 5.3.4")
    assert await c.cmd("MAIL FROM:<a@example.org> SIZE=100") == "250 2.1.0 Ok"
    await c.cmd("RCPT TO:<bob@example.com>")
    await c.cmd("DATA")
    await c.send((b"x" * 998 + b"\r\n") * 30 + b".\r\n")
    assert await c.reply() == "552 5.3.4 Error: message exceeds size limit"
    assert await c.cmd("NOOP") == "250 2.0.0 Ok"
    assert await h.entries() == []
    await c.close()


async def test_disconnect_in_the_middle_of_data_queues_nothing(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h)
    await c.cmd("MAIL FROM:<a@example.org>")
    await c.cmd("RCPT TO:<bob@example.com>")
    await c.cmd("DATA")
    await c.send(b"Subject: half\r\n\r\nthe first half\r\n")
    await c.close()
    other = await open_session(h)  # the server keeps serving
    assert await other.cmd("NOOP") == "250 2.0.0 Ok"
    await other.close()
    await asyncio.sleep(0.2)
    assert await h.entries() == []
    assert any(e["event"] == "disconnect" for e in h.events)


async def test_slow_client_times_out_and_others_are_served(harness_factory: Any) -> None:
    h = await harness_factory(ServerSettings(command_timeout=0.5, data_timeout=0.5))
    slow = await open_session(h)
    fast = await open_session(h)
    await fast.cmd("MAIL FROM:<a@example.org>")
    await fast.cmd("RCPT TO:<bob@example.com>")
    await fast.cmd("DATA")
    assert (await fast.cmd("Subject: x\r\n\r\nhi\r\n.")).startswith("250 2.0.0 Ok: queued")
    assert await slow.reply(timeout=5) == "421 4.4.2 mx.example.com Error: timeout exceeded"
    # a stalled DATA gets the same
    stalled = await open_session(h)
    await stalled.cmd("MAIL FROM:<a@example.org>")
    await stalled.cmd("RCPT TO:<bob@example.com>")
    await stalled.cmd("DATA")
    await stalled.send(b"Subject: never finished\r\n")
    assert (await stalled.reply(timeout=5)).startswith("421 4.4.2")
    assert len(await h.entries()) == 1
    for c in (slow, fast, stalled):
        await c.close()


async def test_each_reply_starts_the_command_timeout_again(harness_factory: Any) -> None:
    # RFC 5321 §4.5.3.2.7: the timeout is for the next command. Commands answered where
    # they arrive (without waking the session task) restart it just the same.
    h = await harness_factory(ServerSettings(command_timeout=0.6, data_timeout=60))
    c = await open_session(h)
    loop = asyncio.get_running_loop()
    for line in ("MAIL FROM:<a@example.org>", "RCPT TO:<bob@example.com>", "NOOP", "NOOP"):
        await asyncio.sleep(0.4)  # 1.6 s in all: longer than the timeout, each gap shorter
        assert (await c.cmd(line)).startswith("250")
    answered = loop.time()
    assert await c.reply(timeout=5) == "421 4.4.2 mx.example.com Error: timeout exceeded"
    assert 0.5 < loop.time() - answered < 2.0
    await c.close()


async def test_a_pipelined_group_is_answered_in_one_write(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RFC 2920 §3.2: a server may answer a group as it likes; one write is one packet and
    # one wake-up of the client instead of four
    from mailwright.smtp.server import SmtpConnection

    writes: list[list[str]] = []
    real_flush = SmtpConnection._flush

    def flush(self: SmtpConnection, out: list[bytes]) -> None:
        if out:
            writes.append([reply[:3].decode() for reply in out])
        real_flush(self, out)

    monkeypatch.setattr(SmtpConnection, "_flush", flush)
    h = await harness_factory()
    c = await open_session(h)
    writes.clear()
    await c.send(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.com>\r\n"
        b"RCPT TO:<admin@example.com>\r\nDATA\r\n"
    )
    assert [(await c.reply())[:3] for _ in range(4)] == ["250", "250", "250", "354"]
    assert writes == [["250", "250", "250", "354"]]
    await c.close()


async def test_after_354_the_data_timeout_applies(harness_factory: Any) -> None:
    # RFC 5321 §4.5.3.2.5: waiting for data is timed by the data timeout, not the
    # command timeout, also when the 354 went out without the session task
    h = await harness_factory(ServerSettings(command_timeout=60, data_timeout=0.5))
    c = await open_session(h)
    await c.cmd("MAIL FROM:<a@example.org>")
    await c.cmd("RCPT TO:<bob@example.com>")
    assert (await c.cmd("DATA")).startswith("354")
    assert (await c.reply(timeout=5)).startswith("421 4.4.2")
    assert await h.entries() == []
    await c.close()


async def test_a_failure_answering_a_command_is_a_421(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the protocol code while a command is answered where it arrives ends that
    session with 421 and an error line, as it would in the session task; the server and
    the other sessions go on."""
    from mailwright.smtp import protocol

    def broken(self: protocol.Session, arg: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(protocol._HANDLERS, "NOOP", broken)
    h = await harness_factory()
    errors: list[dict[str, str]] = []
    h.server.logger.subscribe(lambda e: errors.append(e) if e["event"] == "error" else None)
    c = await open_session(h)
    assert await c.cmd("NOOP") == "421 4.3.0 Error: internal error"
    with pytest.raises(ConnectionError):
        await c.reply(timeout=5)
    assert [(e["what"], e["reason"]) for e in errors] == [("session", "RuntimeError: boom")]
    other = await open_session(h)
    assert (await other.cmd("MAIL FROM:<a@example.org>")).startswith("250")
    await other.close()


async def test_1000_recipients_then_452(harness_factory: Any) -> None:
    h = await harness_factory(trusted=["127.0.0.0/8"])
    c = await open_session(h)
    await c.cmd("MAIL FROM:<a@example.com>")
    await c.send(b"".join(b"RCPT TO:<user%d@example.net>\r\n" % i for i in range(1001)))
    replies = [await c.reply() for _ in range(1001)]
    assert replies[:1000] == ["250 2.1.5 Ok"] * 1000
    assert replies[1000] == "452 4.5.3 Error: too many recipients"
    await c.cmd("DATA")
    assert (await c.cmd("Subject: many\r\n\r\nhi\r\n.")).startswith("250 2.0.0 Ok: queued")
    [entry] = await h.entries()
    assert len(entry.recipients) == 1000
    await c.close()


async def test_nul_bytes(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h)
    assert await c.cmd("NOOP\x00") == "500 5.5.2 Error: NUL character in command"
    await c.cmd("MAIL FROM:<a@example.org>")
    await c.cmd("RCPT TO:<bob@example.com>")
    await c.cmd("DATA")
    assert await c.cmd("Subject: x\r\n\r\nnul\x00here\r\n.") == (
        "554 5.6.0 Error: NUL character in message"
    )
    assert await h.entries() == []
    await c.close()


async def test_eight_bit_without_8bitmime_and_long_lines(harness_factory: Any) -> None:
    h = await harness_factory(strict_8bitmime=True)
    c = await open_session(h)
    await c.cmd("MAIL FROM:<a@example.org>")
    await c.cmd("RCPT TO:<bob@example.com>")
    await c.cmd("DATA")
    await c.send("Subject: caf\u00e9\r\n\r\nx\r\n.\r\n".encode())
    assert await c.reply() == "554 5.6.1 Error: 8-bit data needs BODY=8BITMIME"
    assert (await c.cmd("NOOP " + "x" * 1200)) == "500 5.5.2 Error: line too long"
    assert await c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME") == "250 2.1.0 Ok"
    await c.cmd("RCPT TO:<bob@example.com>")
    await c.cmd("DATA")
    await c.send("Subject: caf\u00e9\r\n\r\nx\r\n.\r\n".encode())
    assert (await c.reply()).startswith("250 2.0.0 Ok: queued")
    await c.close()


async def test_commands_before_ehlo_and_unknown_commands(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h, ehlo=False)
    assert await c.cmd("MAIL FROM:<a@example.org>") == "503 5.5.1 Error: send HELO/EHLO first"
    assert await c.cmd("XYZZY") == "500 5.5.2 Error: command not recognized"
    assert (await c.cmd("EHLO c")).startswith("250-")
    await c.close()


async def test_starttls_command_injection_is_discarded(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h, "submission")
    # the injected MAIL FROM arrives in the same packet as STARTTLS
    await c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
    assert await c.reply() == "220 2.0.0 Ready to start TLS"
    await c.starttls()
    ehlo = await c.cmd("EHLO client.example")
    assert ehlo.startswith("250-mx.example.com") and "AUTH PLAIN LOGIN" in ehlo
    assert "STARTTLS" not in ehlo
    # had the injected MAIL been executed, this would be "nested MAIL"
    assert await c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
    await c.close()


async def test_auth_before_tls_then_after(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h, "submission")
    token = base64.b64encode(f"\0bob\0{PASSWORD}".encode()).decode()
    ehlo = await c.cmd("EHLO c")
    assert "AUTH" not in ehlo and "STARTTLS" in ehlo
    assert await c.cmd(f"AUTH PLAIN {token}") == (
        "538 5.7.11 Encryption required for requested authentication mechanism"
    )
    assert await c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    await c.starttls()
    await c.cmd("EHLO c")
    assert await c.cmd(f"AUTH PLAIN {token}") == "235 2.7.0 Authentication successful"
    await c.cmd("MAIL FROM:<bob@example.com>")
    assert await c.cmd("RCPT TO:<anyone@example.net>") == "250 2.1.5 Ok"  # authenticated relay
    await c.cmd("DATA")
    reply = await c.cmd("From: bob@example.com\r\n\r\nhi\r\n.")
    data = await h.store.read_message(reply.rsplit(" ", 1)[1])
    assert b"with ESMTPSA id" in data and b"(authenticated sender: bob)" in data
    assert any(e["event"] == "auth" and e["user"] == "bob" for e in h.events)
    await c.close()


async def test_failed_auth_is_slowed_and_limited(harness_factory: Any) -> None:
    h = await harness_factory()
    h.server.limiter.max_failures = 3
    c = await open_session(h, "smtps")
    bad = base64.b64encode(b"\0bob\0wrong").decode()
    for _ in range(3):
        assert await c.cmd(f"AUTH PLAIN {bad}") == "535 5.7.8 Authentication credentials invalid"
    good = base64.b64encode(f"\0bob\0{PASSWORD}".encode()).decode()
    assert (await c.cmd(f"AUTH PLAIN {good}")).startswith("454 4.7.0")  # even the right one
    assert sum(e["event"] == "auth-failed" for e in h.events) == 3
    await c.close()


async def test_implicit_tls_listener_requires_auth(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h, "smtps")
    assert await c.cmd("MAIL FROM:<a@example.org>") == "530 5.7.0 Authentication required"
    user = base64.b64encode(b"bob").decode()
    assert await c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert await c.cmd(user) == "334 UGFzc3dvcmQ6"
    assert await c.cmd(base64.b64encode(PASSWORD.encode()).decode()) == (
        "235 2.7.0 Authentication successful"
    )
    assert await c.cmd("MAIL FROM:<bob@example.com>") == "250 2.1.0 Ok"
    await c.close()


async def test_dkim_signature_verifies(harness_factory: Any, tmp_path: Path) -> None:
    rsa = generate_key("rsa", 2048)
    ed = generate_key("ed25519")
    (tmp_path / "rsa.pem").write_bytes(private_key_pem(rsa))
    (tmp_path / "ed.pem").write_bytes(private_key_pem(ed))
    h = await harness_factory(
        trusted=["127.0.0.0/8"],
        dkim=[
            {"domain": "example.com", "selector": "r1", "private_key": str(tmp_path / "rsa.pem")},
            {
                "domain": "example.com",
                "selector": "e1",
                "private_key": str(tmp_path / "ed.pem"),
                "algorithm": "ed25519",
            },
        ],
    )
    records = {
        b"r1._domainkey.example.com.": dns_record_value(rsa).encode(),
        b"e1._domainkey.example.com.": dns_record_value(ed).encode(),
    }
    c = await open_session(h)
    await c.cmd("MAIL FROM:<app@example.com>")
    await c.cmd("RCPT TO:<user@example.net>")
    await c.cmd("DATA")
    reply = await c.cmd(
        "From: App <app@example.com>\r\nTo: user@example.net\r\nSubject: s\r\n\r\nhi\r\n."
    )
    queue_id = reply.rsplit(" ", 1)[1]
    signed = next(e for e in h.events if e["event"] == "signed")
    assert signed["domain"] == "example.com" and signed["selectors"] == "r1,e1"
    # intake decided the keys; the message is signed when it leaves (here: the outbox)
    assert b"DKIM-Signature:" not in await h.store.read_message(queue_id)
    entry = await h.store.get(queue_id)
    assert entry is not None and entry.meta.sign_domain == "example.com"
    state = h.server.state
    agent = DeliveryAgent(
        state.config,
        h.store,
        MemoryResolver(),
        EventLogger(stderr=False),
        announce=lambda line: None,
        intake=lambda: state.intake,
        signer=lambda: state.signer,
    )
    assert await agent.run_once() == 1
    [saved] = list((tmp_path / "data" / "outbox" / "new").iterdir())
    data = saved.read_bytes()
    assert data.count(b"DKIM-Signature:") == 2
    verifier = dkim.DKIM(data)
    for index in range(2):
        assert verifier.verify(idx=index, dnsfunc=lambda name, timeout=5: records[name])
    await c.close()


async def test_shutdown_lets_the_transaction_in_flight_finish(harness_factory: Any) -> None:
    h = await harness_factory()
    busy = await open_session(h)
    idle = await open_session(h)
    await busy.cmd("MAIL FROM:<a@example.org>")
    await busy.cmd("RCPT TO:<bob@example.com>")
    stopping = asyncio.create_task(h.server.stop())
    assert (await idle.reply()).startswith("421 4.3.2")
    await busy.cmd("DATA")
    assert (await busy.cmd("Subject: x\r\n\r\nhi\r\n.")).startswith("250 2.0.0 Ok: queued")
    assert (await busy.reply()).startswith("421 4.3.2")  # then it is told to go
    await stopping
    with pytest.raises(OSError):
        await Client.connect(h.ports["inbound"])
    assert len(await h.entries()) == 1


async def test_connection_limit_gets_421_and_others_go_on(harness_factory: Any) -> None:
    h = await harness_factory(ServerSettings(max_connections=2, auth_failure_delay=0.05))
    first = await open_session(h)
    second = await open_session(h)
    third = await Client.connect(h.ports["inbound"])
    assert await third.reply() == "421 4.7.0 Too many connections, try again later"
    await third.close()
    assert await first.cmd("NOOP") == "250 2.0.0 Ok"
    await first.close()
    await second.close()


async def test_pipelined_quit_with_half_close_is_answered(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await Client.connect(h.ports["inbound"])
    await c.reply()
    await c.send(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    for _ in range(4):
        await c.reply()
    await c.send(b"Subject: x\r\n\r\nbye\r\n.\r\nQUIT\r\n")
    c.writer.write_eof()  # the client is done sending
    assert (await c.reply()).startswith("250 2.0.0 Ok: queued as")
    assert await c.reply() == "221 2.0.0 Bye"
    assert len(await h.entries()) == 1
    await c.close()


async def test_plain_with_another_authorization_identity_fails(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h, "smtps")
    token = base64.b64encode(f"admin\0bob\0{PASSWORD}".encode()).decode()
    assert await c.cmd(f"AUTH PLAIN {token}") == "535 5.7.8 Authentication credentials invalid"
    token = base64.b64encode(f"bob\0bob\0{PASSWORD}".encode()).decode()
    assert await c.cmd(f"AUTH PLAIN {token}") == "235 2.7.0 Authentication successful"
    await c.close()


async def test_smtputf8_message_gets_utf8smtp_trace(harness_factory: Any) -> None:
    h = await harness_factory(trusted=["127.0.0.0/8"])
    c = await open_session(h)
    assert await c.cmd("MAIL FROM:<jos\u00e9@example.org> SMTPUTF8") == "250 2.1.0 Ok"
    assert await c.cmd("RCPT TO:<b\u00fccher@b\u00fccher.example>") == "250 2.1.5 Ok"
    await c.cmd("DATA")
    await c.send("Subject: gr\u00fc\u00dfe\r\n\r\nhallo\r\n.\r\n".encode())
    reply = await c.reply()
    assert reply.startswith("250 2.0.0 Ok: queued as")
    queue_id = reply.rsplit(" ", 1)[1]
    data = await h.store.read_message(queue_id)
    assert f"with UTF8SMTP id {queue_id}".encode() in data
    entry = await h.store.get(queue_id)
    assert entry is not None and entry.sender == "jos\u00e9@example.org"
    assert entry.recipients[0].address == "b\u00fccher@b\u00fccher.example"
    assert entry.meta.smtputf8 is True
    await c.close()


async def test_ipv6_loopback_listener(harness_factory: Any) -> None:
    h = await harness_factory(
        listeners=[{"name": "v6", "address": "::1", "port": 2525, "role": "inbound"}]
    )
    reader, writer = await asyncio.open_connection("::1", h.ports["v6"])
    assert (await reader.readline()).startswith(b"220 ")
    writer.write(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<victim@example.net>\r\n")
    lines = [await reader.readline() for _ in range(9)]
    assert lines[-2] == b"250 2.1.0 Ok\r\n"
    assert lines[-1].startswith(b"554 5.7.1")  # ::1 is not in trusted_networks here
    writer.close()


async def test_connections_per_client_address_are_limited(harness_factory: Any) -> None:
    h = await harness_factory(ServerSettings(max_connections_per_ip=2))
    first = await open_session(h)
    second = await open_session(h)
    third = await Client.connect(h.ports["inbound"])
    assert await third.reply() == "421 4.7.0 Too many connections from your address"
    await third.close()
    await first.cmd("QUIT")
    await first.close()
    await asyncio.sleep(0.1)
    fourth = await open_session(h)  # a slot is free again
    assert await fourth.cmd("NOOP") == "250 2.0.0 Ok"
    for c in (second, fourth):
        await c.close()


async def test_trusted_clients_have_no_per_address_limit(harness_factory: Any) -> None:
    h = await harness_factory(ServerSettings(max_connections_per_ip=1), trusted=["127.0.0.0/8"])
    clients = [await open_session(h) for _ in range(3)]
    for c in clients:
        assert await c.cmd("NOOP") == "250 2.0.0 Ok"
        await c.close()


async def test_dsn_parameters_over_the_wire_are_stored(harness_factory: Any) -> None:
    # RFC 3461: EHLO offers DSN; RET/ENVID on MAIL, NOTIFY/ORCPT on RCPT reach the queue.
    h = await harness_factory(trusted=["127.0.0.0/8"])
    c = await open_session(h)
    assert await c.cmd("MAIL FROM:<app@example.com> RET=HDRS ENVID=inv+2B7") == "250 2.1.0 Ok"
    assert (
        await c.cmd("RCPT TO:<x@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x@example.net")
        == "250 2.1.5 Ok"
    )
    assert await c.cmd("RCPT TO:<y@example.net> NOTIFY=NEVER") == "250 2.1.5 Ok"
    await c.cmd("DATA")
    await c.send(MESSAGE + b".\r\n")
    reply = await c.reply()
    assert reply.startswith("250 2.0.0 Ok: queued as")
    entry = await h.store.get(reply.rsplit(" ", 1)[1])
    assert entry is not None
    assert entry.meta.ret == "HDRS" and entry.meta.envid == "inv+7"
    assert entry.meta.recipient_dsn("x@example.net").notify == ("SUCCESS", "DELAY")
    assert entry.meta.recipient_dsn("x@example.net").orcpt == "rfc822;x@example.net"
    assert entry.meta.recipient_dsn("y@example.net").notify == ()


def spool_files(h: Harness) -> list[Path]:
    spool = h.server.state.config.data_dir / "spool"
    return list(spool.iterdir()) if spool.is_dir() else []


BIG_BODY = b"".join(b"line %06d of a big message\r\n" % i for i in range(60_000))  # 1.7 MB


@pytest.mark.parametrize("listener", ["submission", "inbound"])
async def test_big_messages_are_spooled_and_queued_whole(
    harness_factory: Any, listener: str
) -> None:
    """Past the spool threshold: a trusted submission stays on disk through intake (its
    header section changed, body hashed a piece at a time), and so does inbound mail from
    the world (its checks take the body's digests). Stored intact, spool files gone."""
    trusted = ["127.0.0.0/8"] if listener == "submission" else None
    h = await harness_factory(trusted=trusted, message_size_limit=5_000_000)
    c = await open_session(h, listener)
    await c.cmd("MAIL FROM:<app@example.org>")
    assert await c.cmd("RCPT TO:<bob@example.com>") == "250 2.1.5 Ok"
    assert (await c.cmd("DATA")).startswith("354")
    await c.send(b"From: app@example.org\r\nSubject: big\r\n\r\n" + BIG_BODY + b".\r\n")
    reply = await c.reply()
    assert reply.startswith("250 2.0.0 Ok: queued as "), reply
    data = await h.store.read_message(reply.rsplit(" ", 1)[1])
    assert data.startswith(b"Received: from client.example")
    assert data.endswith(b"Subject: big\r\n\r\n" + BIG_BODY)
    if listener == "inbound":
        assert b"\r\nAuthentication-Results: mx.example.com;" in data
    else:
        assert b"\r\nMessage-ID: <" in data  # a submission is completed
    await c.close()
    assert spool_files(h) == []


async def test_big_message_over_the_limit_or_cut_off_leaves_no_spool_file(
    harness_factory: Any,
) -> None:
    h = await harness_factory(message_size_limit=1_000_000)
    c = await open_session(h)
    await c.cmd("MAIL FROM:<alice@example.org>")
    await c.cmd("RCPT TO:<bob@example.com>")
    await c.cmd("DATA")
    await c.send(MESSAGE + BIG_BODY + b".\r\n")
    assert await c.reply() == "552 5.3.4 Error: message exceeds size limit"
    assert await c.cmd("NOOP") == "250 2.0.0 Ok"  # the session goes on
    assert spool_files(h) == [] and await h.entries() == []
    await c.cmd("MAIL FROM:<alice@example.org>")
    await c.cmd("RCPT TO:<bob@example.com>")
    await c.cmd("DATA")
    await c.send(MESSAGE + BIG_BODY[:900_000])  # then the client goes away
    for _ in range(100):
        if spool_files(h):
            break
        await asyncio.sleep(0.02)
    assert len(spool_files(h)) == 1  # past the threshold: on disk
    await c.close()
    for _ in range(100):
        if not spool_files(h):
            break
        await asyncio.sleep(0.02)
    assert spool_files(h) == [] and await h.entries() == []


@pytest.mark.parametrize("fails_at", ["middle", "end"])
async def test_a_full_disk_while_spooling_is_451_and_the_session_goes_on(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch, fails_at: str
) -> None:
    """ENOSPC writing a big message's spool file (a piece in the middle, or the last one
    at the end of DATA): 451 4.3.0, the sender retries; the session goes on, nothing is
    queued, no spool file stays (not a 421 "internal error" that drops the connection)."""
    import errno

    from mailwright import spool as spool_module

    real_write = spool_module.Spool.write
    writes = [0]

    def full_disk(self: spool_module.Spool, data: bytes) -> None:
        writes[0] += 1
        if writes[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)

    def full_at_close(self: spool_module.Spool) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # the last flush

    if fails_at == "middle":
        monkeypatch.setattr(spool_module.Spool, "write", full_disk)
    else:
        monkeypatch.setattr(spool_module.Spool, "finish", full_at_close)
    h = await harness_factory(message_size_limit=5_000_000)
    c = await open_session(h)
    await c.cmd("MAIL FROM:<alice@example.org>")
    await c.cmd("RCPT TO:<bob@example.com>")
    await c.cmd("DATA")
    await c.send(MESSAGE + BIG_BODY + b".\r\n")
    reply = await c.reply()
    assert reply == "451 4.3.0 Error: queue file write error, try again later"
    assert await c.cmd("NOOP") == "250 2.0.0 Ok"  # the session goes on
    assert spool_files(h) == [] and await h.entries() == []
    await c.close()


async def test_big_8bit_submission_is_read_whole_and_made_7bit(harness_factory: Any) -> None:
    """A big submission with 8-bit data takes the whole-message path (RFC 6152 §3: made
    7-bit before signing): stored as 7-bit, spool file gone."""
    h = await harness_factory(trusted=["127.0.0.0/8"], message_size_limit=5_000_000)
    c = await open_session(h, "submission")
    await c.cmd("MAIL FROM:<app@example.org> BODY=8BITMIME")
    assert await c.cmd("RCPT TO:<bob@example.com>") == "250 2.1.5 Ok"
    assert (await c.cmd("DATA")).startswith("354")
    body = "Grüße aus dem Spool, Zeile für Zeile.\r\n".encode() * 20_000  # 0.8 MB
    await c.send(
        b"From: app@example.org\r\nSubject: umlauts\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + body
        + b".\r\n"
    )
    reply = await c.reply()
    assert reply.startswith("250 2.0.0 Ok: queued as "), reply
    data = await h.store.read_message(reply.rsplit(" ", 1)[1])
    assert data.isascii() and len(data) > len(body)
    assert b"Content-Transfer-Encoding: quoted-printable" in data
    await c.close()
    assert spool_files(h) == []


async def test_suppressed_recipients_are_dropped_at_submission(harness_factory: Any) -> None:
    """The suppression check runs inside the enqueue transaction (SQLite): a message to
    a suppressed and a live address is queued for the live one only (a ``rejected``
    event for the other); one to suppressed addresses alone is not queued at all."""
    from mailwright.queue.tracking import Tracking

    h = await harness_factory(trusted=["127.0.0.0/8"])
    tracking = Tracking(h.store)
    h.server.tracking = tracking
    await tracking.suppress("gone@example.net")
    c = await open_session(h, "submission")
    message = "From: app@example.com\r\nSubject: x\r\n\r\nbody\r\n."
    await c.cmd("MAIL FROM:<app@example.com>")
    await c.cmd("RCPT TO:<ok@example.net>")
    await c.cmd("RCPT TO:<gone@example.net>")
    await c.cmd("DATA")
    reply = await c.cmd(message)
    assert reply.startswith("250 2.0.0 Ok: queued as ")
    [entry] = await h.entries()
    assert [r.address for r in entry.recipients] == ["ok@example.net"]
    rejected = await tracking.read(types=["rejected"])
    assert [(e.recipient, e.reject_reason) for e in rejected] == [
        ("gone@example.net", "suppressed")
    ]
    assert [e.recipient for e in await tracking.read(types=["queued"])] == ["ok@example.net"]
    await c.cmd("MAIL FROM:<app@example.com>")
    await c.cmd("RCPT TO:<gone@example.net>")
    await c.cmd("DATA")
    assert "not queued, every recipient suppressed" in await c.cmd(message)
    assert len(await h.entries()) == 1
    await c.close()


async def test_log_lines_follow_the_reply_they_belong_to(
    harness_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client does not wait for the log: ``connect`` is written after the greeting
    went out, ``accepted`` after its ``250``; still before anything else of the
    session (the next command's lines, ``disconnect``)."""
    from mailwright.smtp.server import SmtpConnection

    order: list[str] = []
    real_flush = SmtpConnection._flush

    def flush(self: SmtpConnection, out: list[bytes]) -> None:
        order.extend("reply " + reply[:3].decode() for reply in out)
        real_flush(self, out)

    monkeypatch.setattr(SmtpConnection, "_flush", flush)
    h = await harness_factory()
    h.server.logger.subscribe(lambda event: order.append("log " + event["event"]))
    c = await open_session(h, ehlo=False)
    await c.cmd("HELO client.example")
    await c.cmd("MAIL FROM:<alice@example.org>")
    await c.cmd("RCPT TO:<bob@example.com>")
    await c.cmd("RCPT TO:<victim@example.net>")
    assert (await c.cmd("DATA")).startswith("354")
    assert (await c.cmd(MESSAGE.decode() + ".")).startswith("250 2.0.0 Ok: queued as ")
    assert await c.cmd("QUIT") == "221 2.0.0 Bye"
    await c.close()
    for _ in range(500):
        if "log disconnect" in order:
            break
        await asyncio.sleep(0.01)
    assert order == [
        "reply 220",
        "log connect",
        "reply 250",
        "reply 250",
        "reply 250",
        "log rejected",
        "reply 554",
        "reply 354",
        "log inbound",  # the verdict of the inbound checks, which the 250 follows
        "reply 250",
        "log accepted",
        "reply 221",
        "log disconnect",
    ]
