"""Direct delivery into a real Postfix MX found through real DNS (NSD).

mailwright's delivery agent, its SQLite queue and its SMTP client against Postfix
3.x acting as the MX of example.net (``postfix_mx``), with MX records served by
NSD (``dns_world``): delivery with STARTTLS and DKIM signatures that OpenDKIM
verifies afterwards, per-recipient 5xx → one DSN, 4xx → retry → delivered,
null MX, and the next MX when the first is down or answers 4xx.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from test_dkim_interop import ORIGIN, opendkim_testmsg_verify  # same directory

from mailwright.config import Config, DeliveryConfig
from mailwright.delivery.agent import DeliveryAgent
from mailwright.dkim import SigningKey, dns_record_value, generate_key, sign_message, txt_strings
from mailwright.log import EventLogger
from mailwright.queue import DsnRecipient, QueueMeta, SqliteQueueStore
from mailwright.testing.nsd import NsdServer
from mailwright.testing.postfix import PostfixServer, SmtpSink

pytestmark = pytest.mark.integration

SENDER = f"app@{ORIGIN}"
MESSAGE = (
    f"From: App <{SENDER}>\r\n"
    "To: Alice <alice@example.net>, Bob <bob@example.net>\r\n"
    "Subject: Delivery test\r\n"
    "Date: Tue, 24 Nov 2026 19:00:00 +0000\r\n"
    f"Message-ID: <delivery-1@{ORIGIN}>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Hello Alice and Bob,\r\n"
    ".a line that starts with a dot (dot-stuffed on the wire)\r\n"
    "..and one with two\r\n"
    "Grüße, and a long line " + "x" * 900 + "\r\n"
).encode()


class Harness:
    """Store, agent and captured events for one test; the clock can be moved forward."""

    def __init__(self, tmp_path: Path, world: NsdServer, postfix: PostfixServer) -> None:
        self.now_offset = 0.0
        self.tmp = tmp_path
        self.world = world
        self.postfix = postfix
        self.events: list[dict[str, str]] = []
        self.logger = EventLogger(stderr=False)
        self.logger.subscribe(self.events.append)
        self.config = Config(
            hostname=f"mail.{ORIGIN}",
            domains=(ORIGIN,),
            data_dir=tmp_path / "data",
            delivery=DeliveryConfig(
                mode="direct",
                outbound_port=postfix.port,
                connect_timeout=5.0,
                command_timeout=20.0,
            ),
        )
        self.store: SqliteQueueStore | None = None

    def clock(self) -> float:
        import time

        return time.time() + self.now_offset

    async def open(self) -> DeliveryAgent:
        self.store = await SqliteQueueStore.open(self.config.data_dir)
        agent = DeliveryAgent(
            self.config,
            self.store,
            self.world.resolver(timeout=2.0),
            self.logger,
            worker="test",
            clock=self.clock,
        )
        agent.idle_seconds = 0.05
        return agent

    def of(self, event: str) -> list[dict[str, str]]:
        return [e for e in self.events if e["event"] == event]


@pytest.fixture(scope="module")
def dkim_keys() -> list[SigningKey]:
    return [
        SigningKey.from_key(ORIGIN, "rsa2048", generate_key("rsa", 2048)),
        SigningKey.from_key(ORIGIN, "ed1", generate_key("ed25519")),
    ]


@pytest.fixture
def world(dns_world: NsdServer, dkim_keys: list[SigningKey]) -> NsdServer:
    lines = [
        f"{k.selector}._domainkey TXT "
        + " ".join(f'"{s}"' for s in txt_strings(dns_record_value(k.private_key)))
        for k in dkim_keys
    ]
    dns_world.set_zone(ORIGIN, "\n".join(lines) + "\n@ MX 10 mx.example.net.\n")
    dns_world.set_zone("example.net", "@ MX 10 mx\nmx A 127.0.0.1\n")
    return dns_world


@pytest.fixture
async def harness(tmp_path: Path, world: NsdServer, postfix_mx: PostfixServer) -> Harness:
    return Harness(tmp_path, world, postfix_mx)


def strip_postfix_headers(stored: bytes) -> bytes:
    """Postfix's Maildir copy: its own trace fields prepended, LF line ends."""
    trace = (b"Return-Path", b"X-Original-To", b"Delivered-To", b"Received")
    lines = stored.split(b"\n")
    while lines and (lines[0].split(b":")[0] in trace or lines[0][:1] in (b" ", b"\t")):
        lines.pop(0)
    return b"\r\n".join(lines)


async def test_direct_delivery_with_starttls_and_dkim_that_opendkim_verifies(
    harness: Harness, dkim_keys: list[SigningKey], tmp_path: Path
) -> None:
    signed = sign_message(MESSAGE, dkim_keys) + MESSAGE
    agent = await harness.open()
    assert harness.store is not None
    qid = await harness.store.enqueue(SENDER, ["alice@example.net", "bob@example.net"], signed)
    assert await agent.run_once() == 1
    delivered = harness.of("delivered")
    assert [e["to"] for e in delivered] == ["<alice@example.net>", "<bob@example.net>"]
    assert delivered[0]["relay"] == f"mx.example.net[127.0.0.1]:{harness.postfix.port}"
    assert delivered[0]["dsn"] == "2.0.0"
    assert re.fullmatch(r"250 2\.0\.0 Ok: \d+ bytes queued as \w+", delivered[0]["reply"])
    assert await harness.store.get(qid) is None  # done: removed from the queue

    stored = harness.postfix.wait_for_messages(2)
    assert len(stored) == 2  # Postfix's virtual agent writes one copy per recipient
    # one connection, STARTTLS, one transaction with both recipients, QUIT
    assert harness.postfix.wait_for_log(r"disconnect from localhost\S* .*mail=")
    log = harness.postfix.log()
    # Sessions that sent mail (the fixture's port probe connects too, with no commands).
    assert len(re.findall(r"\]: disconnect from localhost\S* .*\bmail=", log)) == 1
    # RFC 3030: Postfix offers CHUNKING, so the message went as one BDAT (no DATA)
    assert "ehlo=2 starttls=1 mail=1 rcpt=2 bdat=1 quit=1" in log
    assert "nrcpt=2" in log
    message = email.message_from_bytes(stored[0], policy=email.policy.compat32)
    received = " ".join(message["Received"].split())
    assert "with ESMTPS" in received and "(using TLSv1.3" in received  # STARTTLS was used
    assert received.startswith(f"from mail.{ORIGIN} (localhost [127.0.0.1])")  # our EHLO name
    original = strip_postfix_headers(stored[0])
    assert original == signed
    rc, stderr = opendkim_testmsg_verify(harness.world, original, tmp_path)
    assert (rc, stderr) == (0, "")


async def test_opendkim_harness_detects_damage(
    harness: Harness, dkim_keys: list[SigningKey], tmp_path: Path
) -> None:
    """The control for the test above: a changed body does not verify."""
    signed = sign_message(MESSAGE, dkim_keys) + MESSAGE
    rc, _ = opendkim_testmsg_verify(
        harness.world, signed.replace(b"Alice and", b"Eve and"), tmp_path
    )
    assert rc != 0


async def test_5xx_bounces_one_dsn_which_is_delivered_too(harness: Harness) -> None:
    harness.postfix.set_recipient_access(
        {"bad@example.net": "550 5.1.1 no such user", "worse@example.net": "554 5.7.1 go away"}
    )
    # the sender's domain is not ours, so its DSN leaves by SMTP too (to the same Postfix)
    harness.world.set_zone("example.org", "@ MX 10 mx.example.net.\n")
    sender = "app@example.org"
    agent = await harness.open()
    assert harness.store is not None
    qid = await harness.store.enqueue(
        sender, ["good@example.net", "bad@example.net", "worse@example.net"], MESSAGE
    )
    await agent.run_once()
    assert [e["to"] for e in harness.of("delivered")] == ["<good@example.net>"]
    bounced = {e["to"]: e for e in harness.of("bounced")}
    assert bounced["<bad@example.net>"]["dsn"] == "5.1.1"
    assert bounced["<bad@example.net>"]["reply"] == (
        "550 5.1.1 <bad@example.net>: Recipient address rejected: no such user"
    )
    assert bounced["<worse@example.net>"]["dsn"] == "5.7.1"
    [dsn_event] = harness.of("dsn")
    assert dsn_event["original"] == qid and dsn_event["to"] == f"<{sender}>"
    dsn_id = dsn_event["id"]
    entry = await harness.store.get(dsn_id)
    assert entry is not None and entry.sender == ""
    report = email.message_from_bytes(
        await harness.store.read_message(dsn_id), policy=email.policy.compat32
    )
    blocks = report.get_payload()[1].get_payload()
    assert blocks[0]["Reporting-MTA"] == f"dns; mail.{ORIGIN}"
    assert [b["Final-Recipient"] for b in blocks[1:]] == [
        "rfc822; bad@example.net",
        "rfc822; worse@example.net",
    ]
    assert [b["Remote-MTA"] for b in blocks[1:]] == ["dns; mx.example.net"] * 2
    assert " ".join(blocks[1]["Diagnostic-Code"].split()) == (
        "smtp; 550 5.1.1 <bad@example.net>: Recipient address rejected: no such user"
    )
    # The DSN itself goes out (to the sender's MX, the same Postfix) with MAIL FROM:<>.
    harness.postfix.set_recipient_access({})
    await agent.run_once()
    arrived = [m for m in harness.postfix.wait_for_messages(2) if b"multipart/report" in m]
    assert len(arrived) == 1
    assert arrived[0].startswith(b"Return-Path: <>\nX-Original-To: app@example.org\n")
    assert len(harness.of("dsn")) == 1


async def test_null_sender_bounce_gets_no_dsn(harness: Harness) -> None:
    harness.postfix.set_recipient_access({"bad@example.net": "550 5.1.1 no such user"})
    agent = await harness.open()
    assert harness.store is not None
    await harness.store.enqueue("", ["bad@example.net"], MESSAGE)
    await agent.run_once()
    assert len(harness.of("bounced")) == 1
    assert harness.of("dsn") == []
    assert await harness.store.list_entries() == []


async def test_4xx_is_deferred_then_delivered_on_retry(harness: Harness) -> None:
    harness.postfix.set_recipient_access({"later@example.net": "450 4.2.0 try again later"})
    agent = await harness.open()
    assert harness.store is not None
    qid = await harness.store.enqueue(SENDER, ["later@example.net"], MESSAGE)
    await agent.run_once()
    [deferred] = harness.of("deferred")
    assert deferred["dsn"] == "4.2.0"
    assert deferred["reply"] == (
        "450 4.2.0 <later@example.net>: Recipient address rejected: try again later"
    )
    entry = await harness.store.get(qid)
    assert entry is not None
    assert entry.recipients[0].next_attempt == pytest.approx(harness.clock() + 300, abs=5)
    assert await agent.run_once() == 0  # not due yet
    harness.postfix.set_recipient_access({})
    harness.now_offset = 301
    assert await agent.run_once() == 1
    assert [e["to"] for e in harness.of("delivered")] == ["<later@example.net>"]
    assert len(harness.postfix.wait_for_messages(1)) == 1
    assert await harness.store.get(qid) is None
    assert harness.of("dsn") == []


async def test_null_mx_bounces_without_connecting(harness: Harness) -> None:
    harness.world.set_zone("nomail.example", "@ MX 0 .\n@ A 127.0.0.1\n")
    agent = await harness.open()
    assert harness.store is not None
    await harness.store.enqueue(SENDER, ["x@nomail.example"], MESSAGE)
    await agent.run_once()
    [bounced] = harness.of("bounced")
    assert bounced["dsn"] == "5.1.10" and bounced["relay"] == "none"
    assert "]: connect from" not in harness.postfix.log()
    assert len(harness.of("dsn")) == 1


async def test_next_mx_when_the_first_refuses_connections(harness: Harness) -> None:
    # 127.0.0.2 has nothing listening on Postfix's port: connection refused.
    harness.world.set_zone(
        "example.net", "@ MX 10 dead\n@ MX 20 mx\ndead A 127.0.0.2\nmx A 127.0.0.1\n"
    )
    agent = await harness.open()
    assert harness.store is not None
    await harness.store.enqueue(SENDER, ["alice@example.net"], MESSAGE)
    await agent.run_once()
    [delivered] = harness.of("delivered")
    assert delivered["relay"] == f"mx.example.net[127.0.0.1]:{harness.postfix.port}"
    assert len(harness.postfix.wait_for_messages(1)) == 1


async def test_next_mx_when_the_first_answers_4xx(
    harness: Harness, smtp_sink: Callable[..., SmtpSink]
) -> None:
    # smtp-sink on 127.0.0.2 (same port) answers every RCPT with 450; Postfix is MX 20.
    busy = smtp_sink(soft=["RCPT"], port=harness.postfix.port, host="127.0.0.2")
    harness.world.set_zone(
        "example.net", "@ MX 10 busy\n@ MX 20 mx\nbusy A 127.0.0.2\nmx A 127.0.0.1\n"
    )
    agent = await harness.open()
    assert harness.store is not None
    await harness.store.enqueue(SENDER, ["alice@example.net"], MESSAGE)
    await agent.run_once()
    assert busy.count == 0
    [delivered] = harness.of("delivered")
    assert delivered["relay"] == f"mx.example.net[127.0.0.1]:{harness.postfix.port}"
    assert len(harness.postfix.wait_for_messages(1)) == 1


async def test_all_mx_4xx_defers_with_the_last_reply(
    harness: Harness, smtp_sink: Callable[..., SmtpSink]
) -> None:
    smtp_sink(soft=["RCPT"], port=harness.postfix.port, host="127.0.0.2")
    harness.world.set_zone("example.net", "@ MX 10 busy\nbusy A 127.0.0.2\n")
    agent = await harness.open()
    assert harness.store is not None
    await harness.store.enqueue(SENDER, ["alice@example.net"], MESSAGE)
    await agent.run_once()
    [deferred] = harness.of("deferred")
    assert deferred["relay"] == f"busy.example.net[127.0.0.2]:{harness.postfix.port}"
    assert deferred["reply"] == "450 4.3.0 Error: command failed"
    assert deferred["dsn"] == "4.3.0"


async def test_dsn_request_passes_on_to_postfix_which_reports_success(harness: Harness) -> None:
    # RFC 3461 §5.2: Postfix offers DSN, so NOTIFY/ORCPT/ENVID/RET go on with the message
    # and Postfix — the final MTA — sends the success DSN (to app@example.org, a domain it
    # hosts too), not us.
    agent = await harness.open()
    assert harness.store is not None
    meta = QueueMeta(
        envid="order-7",
        ret="HDRS",
        dsn={"good@example.net": DsnRecipient(("SUCCESS",), "rfc822;Good@example.net")},
    )
    await harness.store.enqueue("app@example.org", ["good@example.net"], MESSAGE, meta=meta)
    await agent.run_once()
    assert [e["to"] for e in harness.of("delivered")] == ["<good@example.net>"]
    assert harness.of("dsn") == []
    arrived = harness.postfix.wait_for_messages(2)
    [report] = [m for m in arrived if b"multipart/report" in m]
    assert b"Original-Envelope-Id: order-7" in report
    assert b"Action: delivered" in report
    assert b"Original-Recipient: rfc822;Good@example.net" in report.replace(b"; ", b";")
