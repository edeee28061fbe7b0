"""DKIM signing at the delivery attempt: intake decides which domain's keys sign and
queues the message unsigned; the agent signs what it sends, with the keys current then.
Real keys, the real intake and the real verifier (DNS answers from a MemoryResolver)."""

from __future__ import annotations

import asyncio
import types
from dataclasses import replace
from pathlib import Path

import pytest

from mailwright import message as rfc5322
from mailwright.arc import ArcStatus, seal_message, verify_chain
from mailwright.config import MailmanConfig, RelayConfig
from mailwright.dkim import DkimStatus, SigningKey, generate_key, verify_message
from mailwright.dkim.keys import dns_record_value
from mailwright.dns import MemoryResolver
from mailwright.queue.store import StoredMessage
from mailwright.server import KeySigner
from mailwright.smtp.address import Mailbox
from mailwright.smtp.intake import Accepted, Arrival, IntakePolicy, Signed, prepare
from mailwright.smtp.protocol import Envelope
from mailwright.spool import HEAD_LIMIT, SPOOL_THRESHOLD, Spool

from .fakes import ok
from .test_agent import World

RSA = SigningKey.from_key("example.com", "r1", generate_key("rsa", 2048))
ED = SigningKey.from_key("example.com", "e1", generate_key("ed25519"))
LIST = SigningKey.from_key("lists.example", "l1", generate_key("ed25519"))
KEYS = {"example.com": [RSA, ED], "lists.example": [LIST]}
SUBMISSION = Arrival(client_ip="192.0.2.1", listener="submission", helo="app", user="app")
MESSAGE = (
    b"From: App <app@example.com>\r\nTo: x@example.net\r\nSubject: hi\r\n"
    b"Message-ID: <1@example.com>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n\r\nhello\r\n"
)
QUEUED_AT = 1_800_000_000
LEFT_AT = QUEUED_AT + 3 * 86400  # retried for three days


class CountingSigner(KeySigner):
    """The server's signer, counting the signatures it makes."""

    def __init__(self, keys: dict[str, list[SigningKey]]) -> None:
        super().__init__(lambda domain: keys.get(domain, []))
        self.signed = 0

    def __call__(self, *args: object) -> tuple[bytes, list[str]] | None:
        self.signed += 1
        return super().__call__(*args)  # type: ignore[arg-type]


def resolver() -> MemoryResolver:
    r = MemoryResolver()
    for key in (RSA, ED, LIST):
        r.add(f"{key.selector}._domainkey.{key.domain}", "TXT", dns_record_value(key.private_key))
    return r


def envelope(sender: str, *recipients: str) -> Envelope:
    env = Envelope(Mailbox(*sender.split("@")))
    env.recipients = [Mailbox(*r.split("@")) for r in recipients]
    return env


async def verified(message: bytes) -> list[tuple[DkimStatus, str | None, str | None]]:
    results = await verify_message(message, resolver(), now=LEFT_AT + 60)
    return [(r.status, r.domain, r.selector) for r in results]


def timestamps(message: bytes) -> list[int]:
    return [
        int(value.split("t=", 1)[1].split(";", 1)[0])
        for value in rfc5322.field_values(message, "DKIM-Signature")
    ]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    w = World(tmp_path)
    w.mx("example.net", (10, "mx1.example.net"))
    w.mx("example.org", (10, "mx1.example.org"))
    w.network.servers["mx1.example.net"] = ok()
    w.network.servers["mx1.example.org"] = ok()
    w.agent.local_targets = lambda a: [a]
    with_keys(w)
    # the clock the signer reads for t=: the moment the message leaves
    monkeypatch.setattr("mailwright.dkim.signer.time", types.SimpleNamespace(time=lambda: LEFT_AT))
    return w


def with_keys(world: World) -> CountingSigner:
    """The agent (and its intake policy) get the test keys; the signer, to count."""
    signer = CountingSigner(KEYS)
    world.agent.signer = lambda: signer
    world.agent.intake = lambda: IntakePolicy("mail.example.com", signer=signer)
    return signer


async def enqueue(world: World, accepted: Accepted) -> str:
    """Queue what intake accepted, as the server does: unsigned, with its metadata."""
    assert isinstance(accepted.message, bytes)
    return await world.store.enqueue(
        accepted.sender, list(accepted.recipients), accepted.message, meta=accepted.meta
    )


def queued(world: World, *recipients: str, data: bytes = MESSAGE) -> Accepted:
    signer = world.agent.signer()
    policy = IntakePolicy("mail.example.com", signer=signer)
    result = prepare(
        envelope("app@example.com", *recipients), data, SUBMISSION, policy, queue_id="Q"
    )
    assert isinstance(result, Accepted)
    return result


async def test_a_submission_is_queued_unsigned_and_leaves_signed(world: World) -> None:
    accepted = queued(world, "x@example.net")
    # intake decided (the "signed" log line is made from this) but did not sign
    assert accepted.signing == Signed("example.com", ("r1", "e1"))
    assert accepted.meta.sign_domain == "example.com"
    assert isinstance(accepted.message, bytes) and b"DKIM-Signature" not in accepted.message
    qid = await enqueue(world, accepted)
    await world.agent.run_once()
    [(_, _, _, sent)] = world.network.sends
    assert isinstance(sent, bytes) and sent.endswith(accepted.message)
    assert await verified(sent) == [
        (DkimStatus.PASS, "example.com", "r1"),
        (DkimStatus.PASS, "example.com", "e1"),
    ]
    # t= is when it left, not when it was queued
    assert timestamps(sent) == [LEFT_AT, LEFT_AT]
    # the queue keeps the message as intake stored it
    assert b"DKIM-Signature" not in world.store.data[qid]


async def test_signed_once_per_attempt_for_every_destination(world: World, tmp_path: Path) -> None:
    accepted = queued(world, "x@example.net", "y@example.org", "bob@example.com")
    await enqueue(world, accepted)
    await world.agent.run_once()
    signer = world.agent.signer()
    assert isinstance(signer, CountingSigner) and signer.signed == 1
    sent = [data for _, _, _, data in world.network.sends]
    assert len(sent) == 2 and sent[0] == sent[1]
    [maildir] = list((tmp_path / "mail/example.com/bob/new").iterdir())
    for message in (sent[0], maildir.read_bytes()):
        assert isinstance(message, bytes)
        assert [s for s, _, _ in await verified(message)] == [DkimStatus.PASS] * 2


async def test_a_big_spooled_message_is_signed_from_its_head_and_stored_hashes(
    world: World, tmp_path: Path
) -> None:
    body = b"".join(b"line %07d of a big body\r\n" % i for i in range(SPOOL_THRESHOLD // 20))
    spool = Spool(tmp_path / "spool")
    spool.write(MESSAGE.replace(b"hello\r\n", b"") + body)
    spooled = spool.finish()
    assert spooled is not None
    spooled = spooled.hash_body()  # as the SMTP server does for a submission it streams
    accepted = queued(world, "x@example.net", "bob@example.com", data=spooled)  # type: ignore[arg-type]
    assert accepted.meta.sign_domain == "example.com" and accepted.meta.body_hashes
    whole = accepted.message.read_all()  # type: ignore[union-attr]
    assert b"DKIM-Signature" not in whole
    spool.discard()
    read: list[int] = []

    async def part(queue_id: str, offset: int, length: int) -> bytes:
        piece = world.store.data[queue_id][offset : offset + length]
        read.append(len(piece))
        return piece

    world.store.read_message_part = part  # type: ignore[method-assign]
    await world.store.enqueue(
        "app@example.com", ["x@example.net", "bob@example.com"], whole, meta=accepted.meta
    )
    await world.agent.run_once()
    [(_, _, _, sent)] = world.network.sends
    assert isinstance(sent, StoredMessage) and sent.prefix.startswith(b"DKIM-Signature:")
    remote = await sent.read_all()
    assert remote.endswith(whole)
    [maildir] = list((tmp_path / "mail/example.com/bob/new").iterdir())
    assert maildir.read_bytes() == remote
    assert [s for s, _, _ in await verified(remote)] == [DkimStatus.PASS] * 2
    # the body was not read to sign it: the header section, then one read per delivery
    # (the remote send and the Maildir) and the agent's existence check
    assert sum(read) <= HEAD_LIMIT + 2 * len(whole) + 1


async def test_a_big_message_read_whole_at_intake_is_signed_from_its_stored_body(
    world: World,
) -> None:
    # an 8-bit big submission is converted in memory and queued without body hashes:
    # the agent hashes the stored body in one pass
    body = b"".join(b"line %07d of a big body\r\n" % i for i in range(SPOOL_THRESHOLD // 20))
    accepted = queued(world, "x@example.net", data=MESSAGE + body)
    assert accepted.meta.body_hashes is None and isinstance(accepted.message, bytes)

    async def part(queue_id: str, offset: int, length: int) -> bytes:
        return world.store.data[queue_id][offset : offset + length]

    world.store.read_message_part = part  # type: ignore[method-assign]
    await enqueue(world, accepted)
    await world.agent.run_once()
    [(_, _, _, sent)] = world.network.sends
    assert isinstance(sent, StoredMessage)
    remote = await sent.read_all()
    assert [s for s, _, _ in await verified(remote)] == [DkimStatus.PASS] * 2


async def test_a_list_post_copy_is_signed_and_sealed_at_intake_only(world: World) -> None:
    # RFC 8617 §5.1: the seal comes after DKIM signing and covers the signature, so the
    # per-member copies of a list post are signed at intake, never again at delivery
    post = (
        b"From: Bob <bob@example.net>\r\nTo: team@lists.example\r\nSubject: [Team] lunch\r\n"
        b"Message-ID: <p1@example.net>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n"
        b"List-Id: <team.lists.example>\r\nList-Post: <mailto:team@lists.example>\r\n\r\n"
        b"Shall we?\r\n"
    )
    signer = world.agent.signer()
    policy = IntakePolicy(
        "mail.example.com",
        signer=signer,
        sealer=lambda message, domain: seal_message(message, LIST, "mail.example.com"),
    )
    mailman = Arrival(client_ip="127.0.0.1", listener="mailman", helo="lists", trusted=True)
    env = envelope("team-bounces@lists.example", "x@example.net")
    result = prepare(env, post, mailman, policy, queue_id="Q")
    assert isinstance(result, Accepted) and isinstance(result.message, bytes)
    assert result.signing == Signed("lists.example", ("l1",))
    assert result.meta.sign_domain is None
    assert result.message.startswith(b"ARC-Seal:")
    assert len(rfc5322.field_values(result.message, "DKIM-Signature")) == 1
    await world.store.enqueue(
        "team-bounces@lists.example", ["x@example.net"], result.message, meta=result.meta
    )
    await world.agent.run_once()
    [(_, _, _, sent)] = world.network.sends
    assert sent == result.message  # nothing added on the way out
    assert await verified(sent) == [(DkimStatus.PASS, "lists.example", "l1")]
    assert (await verify_chain(sent, resolver())).status is ArcStatus.PASS


async def test_keys_gone_at_delivery_send_unsigned_with_a_warning(world: World) -> None:
    accepted = queued(world, "x@example.net")
    qid = await enqueue(world, accepted)
    reloaded = CountingSigner({"lists.example": [LIST]})  # SIGHUP: example.com's keys gone
    world.agent.signer = lambda: reloaded
    await world.agent.run_once()
    [warning] = world.of("warning")
    assert warning["id"] == qid and warning["what"] == "unsigned"
    assert warning["reason"] == "no DKIM key for example.com any more"
    [(_, _, _, sent)] = world.network.sends
    assert sent == accepted.message and world.of("delivered")


async def test_keys_gone_with_require_dkim_defer_rather_than_send_unsigned(
    world: World,
) -> None:
    accepted = queued(world, "x@example.net", "bob@example.com")
    qid = await enqueue(world, accepted)

    class Broken(CountingSigner):
        def __call__(self, *args: object) -> tuple[bytes, list[str]] | None:
            raise RuntimeError("key file unreadable")

    broken = Broken(KEYS)
    world.agent.signer = lambda: broken
    world.agent.intake = lambda: IntakePolicy("mail.example.com", signer=broken, require_dkim=True)
    await world.agent.run_once()
    [warning] = world.of("warning")
    assert warning["id"] == qid and warning["reason"] == "signing failed: key file unreadable"
    assert world.network.sends == [] and world.of("delivered") == []
    deferred = world.of("deferred")
    assert sorted(d["to"] for d in deferred) == ["<bob@example.com>", "<x@example.net>"]
    assert all(d["dsn"] == "4.3.0" and "require_dkim" in d["reply"] for d in deferred)
    entry = world.store.entries[qid]
    assert [r.status for r in entry.recipients] == ["pending", "pending"]
    # the keys are back at the next attempt: it leaves signed
    world.agent.signer = lambda: CountingSigner(KEYS)
    world.clock.now += 3600
    await world.agent.run_once()
    [(_, _, _, sent)] = world.network.sends
    assert (
        isinstance(sent, bytes) and [s for s, _, _ in await verified(sent)] == [DkimStatus.PASS] * 2
    )


@pytest.mark.parametrize("mode", ["relay", "local"])
async def test_relay_and_outbox_get_it_signed(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mailwright.dkim.signer.time", types.SimpleNamespace(time=lambda: LEFT_AT))
    relay = RelayConfig("smtp://user:pw@relay.example:2587") if mode == "relay" else None
    w = World(tmp_path, mode=mode, relay=relay)
    w.network.servers["relay.example"] = ok()
    with_keys(w)
    accepted = queued(w, "x@example.net")
    await enqueue(w, accepted)
    await w.agent.run_once()
    if mode == "relay":
        [(host, _, _, sent)] = w.network.sends
        assert host == "relay.example"
    else:
        [saved] = list((tmp_path / "outbox" / "new").iterdir())
        sent = saved.read_bytes()
    assert isinstance(sent, bytes)
    assert [s for s, _, _ in await verified(sent)] == [DkimStatus.PASS] * 2


async def test_lmtp_gets_it_signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mail of ours to a list address goes to Mailman over LMTP, signed like any."""
    monkeypatch.setattr("mailwright.dkim.signer.time", types.SimpleNamespace(time=lambda: LEFT_AT))
    received: list[bytes] = []

    async def lmtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 lmtp\r\n")
        rcpts = 0
        while line := await reader.readline():
            verb = line.decode().strip().upper()
            if verb == "DATA":
                writer.write(b"354 go\r\n")
                lines = []
                while (data := await reader.readline()) != b".\r\n":
                    lines.append(data[1:] if data.startswith(b"..") else data)
                received.append(b"".join(lines))
                writer.write(b"250 2.0.0 ok\r\n" * rcpts)
            elif verb.startswith("QUIT"):
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                rcpts += verb.startswith("RCPT")
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(lmtp, "127.0.0.1", 0)
    try:
        w = World(tmp_path)
        mailman = MailmanConfig(lmtp_port=server.sockets[0].getsockname()[1])
        w.config = replace(w.config, domains=("lists.example",), mailman=mailman)
        w.agent = w.make_agent()
        w.agent.list_addresses = lambda a: a == "team@lists.example"
        w.agent.local_targets = lambda a: [a]
        with_keys(w)
        accepted = queued(w, "team@lists.example")
        await enqueue(w, accepted)
        await w.agent.run_once()
    finally:
        server.close()
        await server.wait_closed()
    assert [e["to"] for e in w.of("delivered")] == ["<team@lists.example>"]
    [message] = received
    assert [s for s, _, _ in await verified(message)] == [DkimStatus.PASS] * 2
