"""A list domain behind mailwright, for the Mailman integration tests.

``lists.example`` is served by an in-process mailwright (SMTP server, delivery agent, and
with ``https`` the one-click unsubscribe listener) in front of a private Mailman core
(:class:`~mailwright.testing.mailman.MailmanCore`) with the list ``team``; the members'
domain ``example.net`` is the Postfix MX the tests read the delivered copies from. The
test NSD publishes both zones and the list domain's DKIM key.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import Config, parse_config
from ..delivery.agent import DeliveryAgent
from ..dkim import generate_key, private_key_pem, txt_strings
from ..dkim.keys import dns_record_value
from ..log import EventLogger
from ..queue import SqliteQueueStore
from ..queue.tracking import Tracking
from ..server import build_runtime, list_cache
from ..smtp.server import SmtpServer
from .mailman import MailmanCore, MailmanError
from .nsd import NsdServer
from .ports import free_port
from .postfix import PostfixServer
from .tls import CertificateFiles

LIST = "team@lists.example"
LIST_ID = "team.lists.example"
LIST_KEY = generate_key("rsa", 2048)
"""The list domain's DKIM key (selector ``list``), published by :func:`publish_zones`."""


def zone_txt(value: str) -> str:
    """A TXT record's value as zone-file strings (each at most 255 octets)."""
    return " ".join(f'"{s}"' for s in txt_strings(value))


def publish_zones(dns: NsdServer) -> NsdServer:
    """``lists.example`` (MX, SPF, DKIM key, DMARC ``p=none``) and ``example.net``."""
    dns.set_zone("example", "")
    dns.set_zone(
        "lists.example",
        '@ MX 10 mx\nmx A 127.0.0.1\n@ TXT "v=spf1 ip4:127.0.0.1 -all"\n'
        f"list._domainkey TXT {zone_txt(dns_record_value(LIST_KEY))}\n"
        '_dmarc TXT "v=DMARC1; p=none"',
    )
    dns.set_zone("example.net", "@ MX 10 mx\nmx A 127.0.0.1\n")
    return dns


@dataclass
class ListSite:
    smtp: SmtpServer
    store: SqliteQueueStore
    events: list[dict[str, Any]]
    agent: DeliveryAgent
    mailman: MailmanCore
    submission_port: int
    config: Config
    tracking: Tracking | None = None
    http_port: int | None = None
    """The one-click unsubscribe listener (``https`` given)."""

    async def run_agent(self) -> None:
        await self.agent.run_once()
        await self.agent.drain()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Deliver what is queued until ``predicate()`` (run in a thread) is true; on
        timeout the assertion shows our events and the tails of Mailman's logs.

        A REST call in the predicate that fails counts as "not yet": Mailman's REST server
        answers 500 now and then while its runners hold its own SQLite database."""
        deadline = time.monotonic() + timeout
        failed: MailmanError | None = None
        while time.monotonic() < deadline:
            await self.run_agent()
            try:
                found = await asyncio.to_thread(predicate)
            except MailmanError as exc:
                failed, found = exc, None
            if found:
                return found
            await asyncio.sleep(0.5)
        logs = self.mailman.var / "logs"
        tail = "".join(
            f"--- {p.name}\n"
            + "".join(
                line
                for line in p.read_text(errors="replace").splitlines(True)
                if "/3.1/" not in line
            )[-1500:]
            for p in sorted(logs.glob("*.log"))
        )
        queues = sorted(
            str(q.relative_to(self.mailman.var)) for q in self.mailman.var.glob("queue/*/*")
        )
        tail += f"\nqueued: {queues}"
        if failed is not None:
            tail += f"\nlast REST failure: {failed}"
        seen = [(e["event"], e.get("to"), e.get("reply") or e.get("reason")) for e in self.events]
        raise AssertionError(f"timed out; events {seen}\n{tail}")


@contextlib.asynccontextmanager
async def running_list_site(
    dns: NsdServer,
    mx: PostfixServer,
    mailman_core: Callable[..., MailmanCore],
    tmp_path: Path,
    *,
    start_mailman: bool = True,
    mta_settings: dict[str, str] | None = None,
    https: CertificateFiles | None = None,
) -> AsyncIterator[ListSite]:
    """mailwright for lists.example in front of a private Mailman with the list ``team``
    (``start_mailman=False``: Mailman configured, not started), delivering to ``mx``.
    With ``https``: an ``http`` listener with that certificate serves RFC 8058 one-click
    links, and ``[mailman] unsubscribe_url`` points at it."""
    from ..certificates.store import CertificateStore
    from ..http import HttpServer, Services, make_app
    from ..rfc8058 import load_or_create_key

    submission_port = free_port()
    http_port = free_port() if https is not None else None
    core = mailman_core(
        smtp_port=submission_port,
        nameserver=dns.nameserver,
        mta_settings=mta_settings,
        start=False,
    )
    key_file = tmp_path / "list.key"
    key_file.write_bytes(private_key_pem(LIST_KEY))
    listeners: list[dict[str, Any]] = [
        {"name": "mx", "address": "127.0.0.1", "port": 25, "role": "inbound"},
        {"name": "mailman", "address": "127.0.0.1", "port": submission_port},
    ]
    raw: dict[str, Any] = {
        "hostname": "mx.lists.example",
        "domains": ["lists.example"],
        "mailboxes": ["postmaster@lists.example"],
        "data_dir": str(tmp_path / "data"),
        "dns": {"nameserver": dns.nameserver},
        "trusted_networks": ["127.0.0.1/32"],
        "dkim": [{"domain": "lists.example", "selector": "list", "private_key": str(key_file)}],
        "mailman": {
            "lmtp_port": core.lmtp_port,
            "rest_url": core.rest_url,
            "rest_password_file": str(core.password_file),
            "cache_seconds": 0,
        },
        "delivery": {"mode": "direct", "outbound_port": mx.port},
        "listeners": listeners,
    }
    if https is not None:
        raw["tls"] = {"certificate": str(https.certificate), "private_key": str(https.private_key)}
        raw["mailman"]["unsubscribe_url"] = f"https://127.0.0.1:{http_port}/unsubscribe"
        listeners.append(
            {
                "name": "https",
                "address": "127.0.0.1",
                "port": http_port,
                "role": "http",
                "tls": "implicit",
            }
        )
    config = parse_config(raw, tmp_path / "mailwright.toml")
    config = replace(  # the MX listener on a free port the kernel picks
        config,
        listeners=tuple(replace(li, port=0) if li.name == "mx" else li for li in config.listeners),
    )
    state, _ = build_runtime(config, dev_mode=False)
    store = await SqliteQueueStore.open(config.data_dir)
    logger = EventLogger(stderr=False)
    events: list[dict[str, Any]] = []
    logger.subscribe(events.append)
    smtp = SmtpServer(state, store, logger, resolver=dns.resolver())
    tracking = None
    http = None
    if https is not None:
        key = load_or_create_key(config.data_dir)
        smtp.unsubscribe_key = key
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
            https.server_context,
        )
    await smtp.start()
    agent = DeliveryAgent(
        config,
        store,
        dns.resolver(),
        logger,
        local_targets=lambda a: list(state.directory.resolve(a) or ()) or None,
        intake=lambda: state.intake,
        commit=smtp.commit,
        list_addresses=state.directory.is_list_address,
        unknown_addresses=state.directory.is_list_address_unknown,
    )
    agent.idle_seconds = 0.05
    site = ListSite(smtp, store, events, agent, core, submission_port, config, tracking, http_port)
    try:
        if http is not None:
            await http.start()
        if start_mailman:
            await start_list_mailman(site)
        yield site
    finally:
        if http is not None:
            await http.stop()
        await smtp.stop()
        await store.close()


async def start_list_mailman(site: ListSite) -> None:
    """Start the site's Mailman, make the list, and let mailwright ask for its lists."""
    await asyncio.to_thread(site.mailman.start)
    await asyncio.to_thread(site.mailman.create_list, LIST)
    cache = list_cache(site.config)
    assert cache is not None
    await cache.refresh()


async def smtp_transaction(
    port: int,
    mail_from: str,
    rcpts: list[str],
    message: bytes | None,
    *,
    helo: str = "mail.example.net",
) -> list[str]:
    """One SMTP transaction from 127.0.0.2 (not a trusted client): the RCPT replies and,
    with ``message`` and a recipient accepted, the final reply to its DATA (no DATA when
    every recipient was refused, as a client does)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))

    async def reply() -> str:
        while True:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode()
            if line[3:4] != "-":
                return line.strip()

    async def cmd(line: bytes, expect: str = "") -> str:
        writer.write(line + b"\r\n")
        await writer.drain()
        answer = await reply()
        if not answer.startswith(expect):
            raise AssertionError(f"{line[:40]!r}: {answer}")
        return answer

    out = []
    try:
        greeting = await reply()
        if not greeting.startswith("220"):
            raise AssertionError(f"greeting: {greeting}")
        await cmd(f"EHLO {helo}".encode(), "250")
        await cmd(f"MAIL FROM:<{mail_from}>".encode(), "250")
        for rcpt in rcpts:
            out.append(await cmd(f"RCPT TO:<{rcpt}>".encode()))
        if message is not None and any(r.startswith("250") for r in out):
            await cmd(b"DATA", "354")
            out.append(await cmd(message + b"."))
        return out
    finally:
        writer.close()
