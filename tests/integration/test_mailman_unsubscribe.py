"""RFC 8058 one-click unsubscribe end to end: a private Mailman core, NSD, the Postfix MX
and mailwright's HTTPS listener on loopback.

Two members get a post; each copy at the Postfix MX carries its own HTTPS link next to
Mailman's mailto URI and ``List-Unsubscribe-Post``, under the list domain's DKIM
signature (dkimpy verifies, ``h=`` names both) and a valid ARC Set. A GET of the link
changes nothing; the POST a mail provider sends removes that member from Mailman's
roster and no one else.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import dkim
import pytest

from mailwright import message as rfc5322
from mailwright.certificates.store import CertificateStore
from mailwright.config import parse_config
from mailwright.delivery.agent import DeliveryAgent
from mailwright.dkim import generate_key, private_key_pem, txt_strings
from mailwright.dkim.keys import dns_record_value
from mailwright.http import HttpServer, Services, make_app
from mailwright.log import EventLogger
from mailwright.queue import SqliteQueueStore
from mailwright.queue.tracking import Tracking
from mailwright.rfc8058 import load_or_create_key
from mailwright.server import build_runtime, list_cache
from mailwright.smtp.server import SmtpServer
from mailwright.testing.mailman import MailmanCore
from mailwright.testing.nsd import NsdServer
from mailwright.testing.ports import free_port
from mailwright.testing.postfix import PostfixServer
from mailwright.testing.tls import CertificateFiles

pytestmark = pytest.mark.integration

LIST = "team@lists.example"
LIST_ID = "team.lists.example"
ALICE, BOB = "alice@example.net", "bob@example.net"
LIST_KEY = generate_key("rsa", 2048)


def _txt(value: str) -> str:
    return " ".join(f'"{s}"' for s in txt_strings(value))


@dataclass
class Site:
    smtp: SmtpServer
    agent: DeliveryAgent
    mailman: MailmanCore
    tracking: Tracking
    events: list[dict[str, Any]]
    http_port: int
    tls: CertificateFiles

    async def run_agent(self) -> None:
        await self.agent.run_once()
        await self.agent.drain()


@pytest.fixture
async def site(
    dns_world: NsdServer,
    postfix_mx: PostfixServer,
    mailman_core: Callable[..., MailmanCore],
    tls_files: CertificateFiles,
    tmp_path: Path,
) -> AsyncIterator[Site]:
    dns_world.set_zone("example", "")
    dns_world.set_zone(
        "lists.example",
        '@ MX 10 mx\nmx A 127.0.0.1\n@ TXT "v=spf1 ip4:127.0.0.1 -all"\n'
        f"list._domainkey TXT {_txt(dns_record_value(LIST_KEY))}\n"
        '_dmarc TXT "v=DMARC1; p=none"',
    )
    dns_world.set_zone("example.net", "@ MX 10 mx\nmx A 127.0.0.1\n")
    submission_port, http_port = free_port(), free_port()
    core = mailman_core(smtp_port=submission_port, start=False)
    key_file = tmp_path / "list.key"
    key_file.write_bytes(private_key_pem(LIST_KEY))
    config = parse_config(
        {
            "hostname": "mx.lists.example",
            "domains": ["lists.example"],
            "mailboxes": ["postmaster@lists.example"],
            "data_dir": str(tmp_path / "data"),
            "dns": {"nameserver": dns_world.nameserver},
            "trusted_networks": ["127.0.0.1/32"],
            "dkim": [{"domain": "lists.example", "selector": "list", "private_key": str(key_file)}],
            "tls": {
                "certificate": str(tls_files.certificate),
                "private_key": str(tls_files.private_key),
            },
            "mailman": {
                "lmtp_port": core.lmtp_port,
                "rest_url": core.rest_url,
                "rest_password_file": str(core.password_file),
                "cache_seconds": 0,
                "unsubscribe_url": f"https://127.0.0.1:{http_port}/unsubscribe",
            },
            "delivery": {"mode": "direct", "outbound_port": postfix_mx.port},
            "listeners": [
                {"name": "mx", "address": "127.0.0.1", "port": 25, "role": "inbound"},
                {"name": "mailman", "address": "127.0.0.1", "port": submission_port},
                {
                    "name": "https",
                    "address": "127.0.0.1",
                    "port": http_port,
                    "role": "http",
                    "tls": "implicit",
                },
            ],
        },
        tmp_path / "mailwright.toml",
    )
    config = replace(
        config,
        listeners=tuple(replace(li, port=0) if li.name == "mx" else li for li in config.listeners),
    )
    state, _ = build_runtime(config, dev_mode=False)
    store = await SqliteQueueStore.open(config.data_dir)
    logger = EventLogger(stderr=False)
    events: list[dict[str, Any]] = []
    logger.subscribe(events.append)
    smtp = SmtpServer(state, store, logger, resolver=dns_world.resolver())
    key = load_or_create_key(config.data_dir)
    smtp.unsubscribe_key = key
    await smtp.start()
    tracking = Tracking(store)
    services = Services(
        config=lambda: config,
        store=store,
        tracking=tracking,
        smtp=smtp,
        logger=logger,
        unsubscribe_key=key,
        mailman=lambda: list_cache(config),
    )
    http = HttpServer(
        make_app(CertificateStore(config.data_dir), services),
        config.listeners,
        tls_files.server_context,
    )
    await http.start()
    agent = DeliveryAgent(
        config,
        store,
        dns_world.resolver(),
        logger,
        local_targets=lambda a: list(state.directory.resolve(a) or ()) or None,
        intake=lambda: state.intake,
        commit=smtp.commit,
        list_addresses=state.directory.is_list_address,
    )
    agent.idle_seconds = 0.05
    try:
        await asyncio.to_thread(core.start)
        await asyncio.to_thread(core.create_list, LIST)
        cache = list_cache(config)
        assert cache is not None
        await cache.refresh()
        yield Site(smtp, agent, core, tracking, events, http_port, tls_files)
    finally:
        await http.stop()
        await smtp.stop()
        await store.close()


async def _post(port: int, mail_from: str, rcpt: str, message: bytes) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))

    async def reply() -> str:
        while True:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode()
            if line[3:4] != "-":
                return line.strip()

    async def cmd(line: bytes) -> str:
        writer.write(line + b"\r\n")
        await writer.drain()
        return await reply()

    try:
        await reply()
        await cmd(b"EHLO mail.example.net")
        await cmd(f"MAIL FROM:<{mail_from}>".encode())
        assert (await cmd(f"RCPT TO:<{rcpt}>".encode())).startswith("250")
        assert (await cmd(b"DATA")).startswith("354")
        return await cmd(message + b".")
    finally:
        writer.close()


async def _wait(predicate: Callable[[], Any], site: Site, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await site.run_agent()
        found = await asyncio.to_thread(predicate)
        if found:
            return found
        await asyncio.sleep(0.5)
    seen = [(e["event"], e.get("to"), e.get("reply") or e.get("reason")) for e in site.events]
    log = (site.mailman.var / "logs" / "mailman.log").read_text(errors="replace")[-1500:]
    raise AssertionError(f"timed out; events {seen}\n{log}")


def _crlf(message: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _copies(postfix: PostfixServer, subject: bytes) -> dict[str, bytes]:
    """The stored copies of the post, by the member Postfix delivered each to."""
    out: dict[str, bytes] = {}
    for message in postfix.messages():
        if subject in message:
            stored = _crlf(message)
            out[(rfc5322.field_value(stored, "Delivered-To") or "").lower()] = stored
    return out


def _signed_names(message: bytes) -> list[str]:
    for value in rfc5322.field_values(message, "DKIM-Signature"):
        if re.search(r"\bd=lists\.example;", value):
            found = re.search(r"\bh=([^;]+);", value)
            assert found is not None
            return [n.strip().lower() for n in found.group(1).split(":")]
    raise AssertionError("no DKIM-Signature of lists.example")


async def test_each_member_gets_a_signed_link_and_the_post_unsubscribes_only_them(
    site: Site, postfix_mx: PostfixServer
) -> None:
    flags = {"pre_verified": "true", "pre_confirmed": "true", "pre_approved": "true"}
    for member in (ALICE, BOB):
        await asyncio.to_thread(
            site.mailman.rest,
            "POST",
            "members",
            {"list_id": LIST_ID, "subscriber": member, **flags},
        )
    post = (
        f"From: Bob <{BOB}>\r\nTo: {LIST}\r\nSubject: picnic on sunday\r\n"
        "Message-ID: <picnic-1@example.net>\r\nDate: Tue, 24 Nov 2026 19:00:00 +0000\r\n\r\n"
        "Bring a blanket.\r\n"
    ).encode()
    assert (await _post(site.smtp.ports()["mx"], BOB, LIST, post)).startswith("250 ")

    copies = await _wait(
        lambda: (c := _copies(postfix_mx, b"picnic on sunday")) and len(c) == 2 and c, site
    )
    assert set(copies) == {ALICE, BOB}
    # Mailman sent one transaction for both members; we queued a copy for each
    from_list = [
        e
        for e in site.events
        if e["event"] == "accepted" and e.get("from") == "<team-bounces@lists.example>"
    ]
    assert sum(1 for e in from_list if e.get("nrcpt") == "1") >= 2, from_list

    def txt(name: bytes | str, timeout: float = 5) -> bytes:
        qname = name.decode() if isinstance(name, bytes) else name
        result = asyncio.run(site.agent.resolver.txt(qname.rstrip(".")))
        return result.records[0].encode() if result.ok else b""

    links: dict[str, str] = {}
    for member, stored in copies.items():
        [unsubscribe] = rfc5322.field_values(stored, "List-Unsubscribe")
        found = re.fullmatch(r"<(https://[^>]+)>, <mailto:team-leave@lists\.example>", unsubscribe)
        assert found is not None, unsubscribe  # ours first, Mailman's mailto kept
        links[member] = found.group(1)
        assert links[member].startswith(f"https://127.0.0.1:{site.http_port}/unsubscribe/")
        assert rfc5322.field_values(stored, "List-Unsubscribe-Post") == [
            "List-Unsubscribe=One-Click"
        ]
        assert re.search(rb"(?m)^List-Id: <team\.lists\.example>", stored)  # Mailman's
        # RFC 8058 §4: a valid DKIM signature covering both fields; the ARC Set holds too
        names = _signed_names(stored)  # both, and oversigned (none can be added above)
        assert names.count("list-unsubscribe") == names.count("list-unsubscribe-post") == 2
        assert await asyncio.to_thread(dkim.verify, stored, dnsfunc=txt)
        cv, _, reason = await asyncio.to_thread(dkim.arc_verify, stored, dnsfunc=txt)
        assert (cv, reason) == (dkim.CV_Pass, "success")
    assert links[ALICE] != links[BOB]  # one link per member

    # Mailman's welcome notices: no List-Post, so no one-click
    welcome = await _wait(lambda: [m for m in postfix_mx.messages() if b"Welcome to" in m], site)
    assert all(b"List-Unsubscribe-Post" not in m for m in welcome)
    assert all(b"List-Id: <team.lists.example>" in m for m in welcome)

    members = {m["email"] for m in await asyncio.to_thread(site.mailman.members, LIST)}
    assert members == {ALICE, BOB}
    client_tls = site.tls.client_context()
    async with aiohttp.ClientSession() as http:
        # a link scanner's GET: a page with a button, nobody unsubscribed
        async with http.get(links[ALICE], ssl=client_tls) as page:
            assert page.status == 200
            assert 'name="List-Unsubscribe" value="One-Click"' in await page.text()
        members = {m["email"] for m in await asyncio.to_thread(site.mailman.members, LIST)}
        assert members == {ALICE, BOB}
        # the provider's one-click POST (RFC 8058 §3.2), no cookie nor credential
        async with http.post(
            links[ALICE], data={"List-Unsubscribe": "One-Click"}, ssl=client_tls
        ) as done:
            assert done.status == 200, await done.text()
            assert "no longer subscribed" in await done.text()
    members = {m["email"] for m in await asyncio.to_thread(site.mailman.members, LIST)}
    assert members == {BOB}
    [event] = await site.tracking.latest(10, ["unsubscribed"])
    assert event.recipient == ALICE and event.details["list"] == LIST
