"""Forwarding through an alias, end to end on loopback with the real NSD.

alice@sender.example (SPF: 127.0.0.2 only, DMARC p=reject) writes to info@fwd.example,
an alias for someone@dest.example. The forwarder (a mailwright) accepts it on its
inbound listener, checks it, and its delivery agent sends a copy on with an SRS sender
and an ARC Set, from 127.0.0.5 (which fwd.example's SPF authorizes), to the receiver (a
second mailwright, inbound listener on 127.0.0.4) that checks SPF, DKIM, ARC and DMARC
as any receiver would.
"""

from __future__ import annotations

import email
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from mailwright import authres
from mailwright.config import parse_config
from mailwright.delivery.agent import DeliveryAgent
from mailwright.dkim import SigningKey, generate_key, private_key_pem, sign_message, txt_strings
from mailwright.dkim.keys import dns_record_value
from mailwright.log import EventLogger
from mailwright.queue import SqliteQueueStore
from mailwright.server import build_runtime
from mailwright.smtp.server import SmtpServer
from mailwright.testing.listsite import smtp_transaction
from mailwright.testing.nsd import NsdServer

pytestmark = pytest.mark.integration

SENDER_IP = "127.0.0.2"  # where smtp_transaction sends from
RECEIVER_IP = "127.0.0.4"
FORWARDER_OUT_IP = "127.0.0.5"
SENDER_KEY = generate_key("rsa", 2048)
FORWARDER_KEY = generate_key("rsa", 2048)


def _txt(value: str) -> str:
    return " ".join(f'"{s}"' for s in txt_strings(value))


@pytest.fixture
def world(dns_world: NsdServer) -> NsdServer:
    dns_world.set_zone("example", "")
    dns_world.set_zone(
        "sender.example",
        f'@ TXT "v=spf1 ip4:{SENDER_IP} -all"\nmail TXT "v=spf1 ip4:{SENDER_IP} -all"\n'
        f"s1._domainkey TXT {_txt(dns_record_value(SENDER_KEY))}\n"
        '_dmarc TXT "v=DMARC1; p=reject"',
    )
    dns_world.set_zone(
        "fwd.example",
        f'@ MX 10 mx\nmx A 127.0.0.1\n@ TXT "v=spf1 ip4:{FORWARDER_OUT_IP} -all"\n'
        f'mx TXT "v=spf1 ip4:{FORWARDER_OUT_IP} -all"\n'
        f"arc._domainkey TXT {_txt(dns_record_value(FORWARDER_KEY))}",
    )
    dns_world.set_zone("dest.example", f"@ MX 10 mx\nmx A {RECEIVER_IP}")
    return dns_world


@dataclass
class Mta:
    smtp: SmtpServer
    store: Any
    events: list[dict[str, Any]]
    state: Any


async def _mta(world: NsdServer, path: Path, settings: dict[str, Any]) -> Mta:
    config = parse_config(
        {"dns": {"nameserver": world.nameserver}, "trusted_networks": ["127.0.0.1/32"]} | settings,
        path / "mailwright.toml",
    )
    config = replace(config, listeners=tuple(replace(li, port=0) for li in config.listeners))
    state, _ = build_runtime(config, dev_mode=False)
    store = await SqliteQueueStore.open(config.data_dir)
    logger = EventLogger(stderr=False)
    events: list[dict[str, Any]] = []
    logger.subscribe(events.append)
    smtp = SmtpServer(state, store, logger, resolver=world.resolver())
    await smtp.start()
    return Mta(smtp, store, events, state)


@pytest.fixture
async def pair(world: NsdServer, tmp_path: Path) -> AsyncIterator[tuple[Mta, Mta, DeliveryAgent]]:
    key_file = tmp_path / "fwd.key"
    key_file.write_bytes(private_key_pem(FORWARDER_KEY))
    receiver = await _mta(
        world,
        tmp_path,
        {
            "hostname": "mx.dest.example",
            "domains": ["dest.example"],
            "mailboxes": ["someone@dest.example"],
            "data_dir": str(tmp_path / "receiver"),
            "inbound": {"trusted_arc_sealers": ["fwd.example"]},
            "listeners": [{"name": "mx", "address": RECEIVER_IP, "port": 25, "role": "inbound"}],
        },
    )
    forwarder = await _mta(
        world,
        tmp_path,
        {
            "hostname": "mx.fwd.example",
            "domains": ["fwd.example"],
            "mailboxes": ["postmaster@fwd.example"],
            "aliases": {"info@fwd.example": ["someone@dest.example"]},
            "data_dir": str(tmp_path / "forwarder"),
            "dkim": [{"domain": "fwd.example", "selector": "arc", "private_key": str(key_file)}],
            "delivery": {
                "mode": "direct",
                "outbound_port": receiver.smtp.ports()["mx"],
                "source_ipv4": FORWARDER_OUT_IP,
            },
            "listeners": [{"name": "mx", "address": "127.0.0.1", "port": 25, "role": "inbound"}],
        },
    )
    agent = DeliveryAgent(
        forwarder.state.config,
        forwarder.store,
        world.resolver(),
        EventLogger(stderr=False),
        local_targets=lambda a: list(forwarder.state.directory.resolve(a) or ()) or None,
        intake=lambda: forwarder.state.intake,
        commit=forwarder.smtp.commit,
    )
    yield forwarder, receiver, agent
    for mta in (forwarder, receiver):
        await mta.smtp.stop()
        await mta.store.close()


async def _send(port: int, mail_from: str, rcpt: str, message: bytes) -> str:
    """One message from SENDER_IP: the reply to its RCPT if refused, else to its DATA."""
    return (await smtp_transaction(port, mail_from, [rcpt], message, helo="mail.sender.example"))[
        -1
    ]


MESSAGE = (
    b"From: Alice <alice@sender.example>\r\nTo: info@fwd.example\r\nSubject: hello\r\n"
    b"Date: Tue, 24 Nov 2026 19:00:00 +0000\r\nMessage-ID: <f1@sender.example>\r\n\r\n"
    b"Hello via the alias.\r\n"
)


async def _forward(pair: tuple[Mta, Mta, DeliveryAgent], message: bytes) -> bytes:
    forwarder, receiver, agent = pair
    reply = await _send(
        forwarder.smtp.ports()["mx"], "alice@sender.example", "info@fwd.example", message
    )
    assert reply.startswith("250 2.0.0 Ok: queued as"), reply
    await agent.run_once()  # the alias: a forwarded copy is queued
    await agent.run_once()  # the copy goes to dest.example
    await agent.drain()
    (received,) = [e for e in receiver.events if e["event"] == "accepted"]
    return bytes(await receiver.store.read_message(received["id"]))


def _results(message: bytes, authserv_id: str = "mx.dest.example") -> dict[str, Any]:
    parsed = email.message_from_bytes(message)
    for value in parsed.get_all("Authentication-Results") or []:
        results = authres.parse(" ".join(str(value).split()))
        if results.authserv_id == authserv_id:
            return {
                r.method: r
                for r in results.results
                if not any(p.name == "helo" for p in r.properties)
            }
    raise AssertionError("no Authentication-Results of the receiver")


async def test_forwarded_mail_passes_spf_and_dmarc_by_dkim(pair: Any) -> None:
    signed = (
        sign_message(MESSAGE, [SigningKey.from_key("sender.example", "s1", SENDER_KEY)]) + MESSAGE
    )
    data = await _forward(pair, signed)
    results = _results(data)
    spf = results["spf"]
    # SPF is checked for the SRS sender of fwd.example, which authorizes the forwarder
    assert spf.result == "pass"
    assert spf.get("smtp", "mailfrom") == "fwd.example"
    (inbound,) = [e for e in pair[1].events if e["event"] == "inbound"]
    assert inbound["from"].startswith("<SRS0=") and inbound["from"].endswith("@fwd.example>")
    assert results["dkim"].result == "pass"
    assert results["dmarc"].result == "pass"
    # our seal verified at the receiver
    assert results["arc"].result == "pass"
    assert results["arc"].get("header", "oldest-pass") == "0"
    assert b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=fwd.example; s=arc;" in data


async def test_unsigned_forwarded_mail_passes_by_trusted_arc(pair: Any) -> None:
    receiver = pair[1]
    data = await _forward(pair, MESSAGE)
    results = _results(data)
    # DMARC fails at the receiver (SPF is the forwarder's, nothing signed)...
    assert (results["spf"].result, results["dkim"].result) == ("pass", "none")
    assert results["dmarc"].result == "fail"
    # ...but the forwarder's ARC-Authentication-Results says SPF and DMARC passed there
    assert results["arc"].result == "pass"
    aar = email.message_from_bytes(data)["ARC-Authentication-Results"]
    assert "dmarc=pass" in " ".join(str(aar).split())
    (inbound,) = [e for e in receiver.events if e["event"] == "inbound"]
    assert inbound["action"] == "deliver"
    assert "trusted sealer" in inbound["reason"]


async def test_bounce_to_the_srs_sender_reaches_the_original_sender(pair: Any) -> None:
    forwarder, _, _ = pair
    srs = forwarder.state.directory.srs
    address = srs.forward("alice@sender.example", "fwd.example")
    bounce = b"From: MAILER-DAEMON@dest.example\r\nSubject: failure\r\n\r\nIt failed.\r\n"
    reply = await _send(forwarder.smtp.ports()["mx"], "", address, bounce)
    assert reply.startswith("250 ")
    forged = address.replace("=alice@", "=victim@")
    reply = await _send(forwarder.smtp.ports()["mx"], "", forged, bounce)
    assert reply.startswith("550 5.1.1")
