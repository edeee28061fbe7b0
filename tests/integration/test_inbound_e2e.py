"""Inbound mail end to end: a real SMTP session from loopback addresses that pass or fail
SPF on the real NSD, messages signed by dkimpy and by mailwright, DMARC enforced.

Client addresses: 127.0.0.2 is authorized by the sender's SPF record, 127.0.0.3 is not
(every 127/8 address is local, so the server sees them as the peer address).
"""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import dkim
import pytest

from mailwright import authres
from mailwright.config import parse_config
from mailwright.dkim import (
    SigningKey,
    dns_record_value,
    generate_key,
    private_key_pem,
    sign_message,
    txt_strings,
)
from mailwright.log import EventLogger
from mailwright.queue import SqliteQueueStore
from mailwright.server import build_runtime
from mailwright.smtp.server import SmtpServer
from mailwright.testing.nsd import NsdServer
from mailwright.testing.opendkim import libopendkim_sign

pytestmark = pytest.mark.integration

HOSTNAME = "mx.example.com"
PASS_IP = "127.0.0.2"
FAIL_IP = "127.0.0.3"
RSA = generate_key("rsa", 2048)
ED = generate_key("ed25519")


def _txt(value: str) -> str:
    return " ".join(f'"{s}"' for s in txt_strings(value))


@pytest.fixture
def world(dns_world: NsdServer) -> NsdServer:
    # Empty parent zones, so that the DMARC tree walk gets NXDOMAIN, not REFUSED, above.
    dns_world.set_zone("example", "")
    dns_world.set_zone("com", "")
    spf = f'@ TXT "v=spf1 ip4:{PASS_IP} -all"\nmail TXT "v=spf1 ip4:{PASS_IP} -all"'
    keys = f"rsa._domainkey TXT {_txt(dns_record_value(RSA))}\n" + (
        f"ed._domainkey TXT {_txt(dns_record_value(ED))}"
    )
    dns_world.set_zone(
        "sender.example",
        f'{spf}\n{keys}\n_dmarc TXT "v=DMARC1; p=reject; rua=mailto:d@sender.example"',
    )
    dns_world.set_zone("lax.example", f'{spf}\n_dmarc TXT "v=DMARC1; p=quarantine"')
    dns_world.set_zone("example.com", "@ MX 10 mx\nmx A 127.0.0.1")
    return dns_world


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 10)).decode().rstrip()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    async def cmd(self, line: bytes) -> str:
        self.writer.write(line + b"\r\n")
        await self.writer.drain()
        return await self.reply()


@pytest.fixture
async def server(
    world: NsdServer, tmp_path: Path
) -> AsyncIterator[tuple[SmtpServer, Any, list[Any]]]:
    config = parse_config(
        {
            "hostname": HOSTNAME,
            "domains": ["example.com"],
            "mailboxes": ["bob@example.com", "postmaster@example.com"],
            "data_dir": str(tmp_path / "data"),
            "dns": {"nameserver": world.nameserver},
            # 127.0.0.2 and .3 play the Internet: only .1 (the app) is trusted.
            "trusted_networks": ["127.0.0.1/32"],
            "listeners": [{"name": "mx", "address": "127.0.0.1", "port": 2525, "role": "inbound"}],
        },
        tmp_path / "mailwright.toml",
    )
    config = replace(config, listeners=tuple(replace(li, port=0) for li in config.listeners))
    state, _ = build_runtime(config, dev_mode=False)
    store = await SqliteQueueStore.open(config.data_dir)
    logger = EventLogger(stderr=False)
    events: list[dict[str, str]] = []
    logger.subscribe(events.append)
    smtp = SmtpServer(state, store, logger, resolver=world.resolver())
    await smtp.start()
    yield smtp, store, events
    await smtp.stop()
    await store.close()


def _message(sender_domain: str, forged: bytes = b"") -> bytes:
    return (
        forged
        + (
            f"From: Alice <alice@{sender_domain}>\r\nTo: bob@example.com\r\nSubject: hi\r\n"
            f"Date: Tue, 24 Nov 2026 19:00:00 +0000\r\nMessage-ID: <x@{sender_domain}>\r\n\r\n"
            "Hello Bob.\r\n"
        ).encode()
    )


def _dkimpy_signed(message: bytes) -> bytes:
    signature = dkim.sign(
        message,
        b"rsa",
        b"sender.example",
        private_key_pem(RSA),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return bytes(signature) + message


def _mailwright_signed(message: bytes) -> bytes:
    return (
        sign_message(message, [SigningKey("sender.example", "ed", "ed25519-sha256", ED)]) + message
    )


async def _send(smtp: SmtpServer, source_ip: str, mail_from: str, message: bytes) -> str:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", smtp.ports()["mx"], local_addr=(source_ip, 0)
    )
    s = Session(reader, writer)
    try:
        assert (await s.reply()).startswith("220")
        assert (await s.cmd(b"EHLO mail.sender.example")).startswith("250")
        assert (await s.cmd(f"MAIL FROM:<{mail_from}>".encode())).startswith("250")
        assert (await s.cmd(b"RCPT TO:<bob@example.com>")).startswith("250")
        assert (await s.cmd(b"DATA")).startswith("354")
        return await s.cmd(message + b".")
    finally:
        writer.close()


async def _stored(store: Any, reply: str) -> tuple[bytes, dict[str, Any]]:
    queue_id = reply.rsplit(" ", 1)[1]
    entry = await store.get(queue_id)
    return await store.read_message(queue_id), entry.meta


def _results(message: bytes) -> dict[str, str]:
    """Method → result of our Authentication-Results field (the MAIL FROM SPF, not HELO)."""
    value = email.message_from_bytes(message)["Authentication-Results"]
    parsed = authres.parse(" ".join(str(value).split()))
    assert parsed.authserv_id == HOSTNAME
    return {
        r.method: r.result
        for r in parsed.results
        if not any(p.name == "helo" for p in r.properties)
    }


async def test_dkimpy_signed_mail_from_an_spf_authorized_ip_passes_everything(server: Any) -> None:
    smtp, store, _ = server
    reply = await _send(
        smtp, PASS_IP, "alice@sender.example", _dkimpy_signed(_message("sender.example"))
    )
    assert reply.startswith("250 2.0.0 Ok: queued as ")
    data, meta = await _stored(store, reply)
    assert data.startswith(b"Received: ")
    assert _results(data) == {"spf": "pass", "dkim": "pass", "dmarc": "pass", "arc": "none"}
    assert meta.folder is None


async def test_mailwright_signed_mail_from_an_unauthorized_ip_passes_dmarc_by_dkim(
    server: Any,
) -> None:
    smtp, store, _ = server
    reply = await _send(
        smtp, FAIL_IP, "alice@sender.example", _mailwright_signed(_message("sender.example"))
    )
    assert reply.startswith("250 ")
    data, _ = await _stored(store, reply)
    assert _results(data) == {"spf": "fail", "dkim": "pass", "dmarc": "pass", "arc": "none"}


@pytest.mark.parametrize(("selector", "key"), [("rsa", RSA), ("ed", ED)])
async def test_opendkim_signed_mail_from_an_unauthorized_ip_passes_dmarc_by_dkim(
    server: Any, selector: str, key: Any
) -> None:
    smtp, store, _ = server
    algorithm = "rsa-sha256" if selector == "rsa" else "ed25519-sha256"
    message = _message("sender.example")
    signed = libopendkim_sign(SigningKey("sender.example", selector, algorithm, key), message)
    reply = await _send(smtp, FAIL_IP, "alice@sender.example", signed + message)
    assert reply.startswith("250 ")
    data, meta = await _stored(store, reply)
    assert _results(data) == {"spf": "fail", "dkim": "pass", "dmarc": "pass", "arc": "none"}
    assert meta.folder is None


async def test_forgery_is_rejected_at_end_of_data_naming_the_policy(server: Any) -> None:
    smtp, store, events = server
    reply = await _send(smtp, FAIL_IP, "alice@sender.example", _message("sender.example"))
    assert reply.startswith("550 5.7.1 Rejected by DMARC policy of sender.example (p=reject)")
    assert await store.list_entries() == []
    inbound = next(e for e in events if e["event"] == "inbound")
    assert (inbound["spf"], inbound["dmarc"], inbound["action"]) == ("fail", "fail", "reject")


async def test_quarantine_policy_is_queued_for_the_junk_folder(server: Any) -> None:
    smtp, store, _ = server
    reply = await _send(smtp, FAIL_IP, "alice@lax.example", _message("lax.example"))
    assert reply.startswith("250 ")
    data, meta = await _stored(store, reply)
    assert meta.folder == ".Junk"
    assert _results(data)["dmarc"] == "fail"


async def test_forged_results_claiming_our_name_are_removed(server: Any) -> None:
    smtp, store, _ = server
    forged = f"Authentication-Results: {HOSTNAME}; dmarc=pass header.from=sender.example\r\n"
    message = _dkimpy_signed(_message("sender.example", forged.encode()))
    reply = await _send(smtp, PASS_IP, "alice@sender.example", message)
    data, _ = await _stored(store, reply)
    assert data.count(b"Authentication-Results:") == 1
    assert _results(data)["dkim"] == "pass"
