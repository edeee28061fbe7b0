"""The agent hands list mail to Mailman over LMTP (RFC 2033): one transaction for all of
a message's list recipients, each recipient with its own outcome (§4.2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from mailwright.config import MailmanConfig
from mailwright.local import LocalDirectory

from .test_agent import MESSAGE, World

LISTS = {"team@lists.example", "gone@lists.example", "busy@lists.example"}


class ScriptedLmtp:
    """An LMTP server whose RCPT and per-recipient DATA replies the test chooses."""

    def __init__(self, rcpt: dict[str, str], data: dict[str, str]) -> None:
        self.rcpt, self.data = rcpt, data
        self.transactions: list[list[str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 lmtp\r\n")
        accepted: list[str] = []
        while line := await reader.readline():
            verb = line.decode().strip()
            if verb.upper().startswith("LHLO"):
                writer.write(b"250 lmtp\r\n")
            elif verb.upper().startswith("MAIL"):
                accepted = []
                self.transactions.append([])
                writer.write(b"250 ok\r\n")
            elif verb.upper().startswith("RCPT"):
                address = verb[verb.index("<") + 1 : verb.index(">")]
                self.transactions[-1].append(address)
                reply = self.rcpt.get(address, "250 2.1.5 ok")
                accepted += [address] if reply.startswith("250") else []
                writer.write(reply.encode() + b"\r\n")
            elif verb.upper() == "DATA":
                writer.write(b"354 go\r\n")
                while await reader.readline() != b".\r\n":
                    pass
                for address in accepted:
                    writer.write(self.data.get(address, "250 2.0.0 ok").encode() + b"\r\n")
            else:
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            await writer.drain()
        writer.close()


@pytest.fixture
async def lmtp_world(tmp_path: Path) -> AsyncIterator[tuple[World, ScriptedLmtp]]:
    # gone@: a list deleted after RCPT accepted it (Mailman: 550 at RCPT);
    # busy@: Mailman could not take it now (452 after the data)
    script = ScriptedLmtp(
        {"gone@lists.example": "550 5.1.1 Requested action not taken: mailbox unavailable"},
        {"busy@lists.example": "452 4.3.1 try later"},
    )
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    world = World(tmp_path)
    mailman = MailmanConfig(lmtp_port=server.sockets[0].getsockname()[1])
    world.config = replace(world.config, domains=("lists.example",), mailman=mailman)
    world.agent = world.make_agent()
    directory = replace(
        LocalDirectory.build(["lists.example"], ["admin@lists.example"]),
        lists=lambda name: (
            True if name in LISTS else None if name == "new@lists.example" else False
        ),
    )
    world.agent.local_targets = lambda a: list(directory.resolve(a) or ()) or None
    world.agent.list_addresses = directory.is_list_address
    world.agent.unknown_addresses = directory.is_list_address_unknown
    yield world, script
    server.close()
    await server.wait_closed()


async def test_lmtp_partial_failure_is_honoured_per_recipient(
    lmtp_world: tuple[World, ScriptedLmtp],
) -> None:
    world, script = lmtp_world
    recipients = ["team@lists.example", "gone@lists.example", "busy@lists.example"]
    qid = await world.store.enqueue("bob@example.net", recipients, MESSAGE)
    await world.agent.run_once()
    await world.agent.drain()
    # one LMTP transaction for the three list addresses
    assert script.transactions == [recipients]
    assert [(e["to"], e["dsn"]) for e in world.of("delivered")] == [
        ("<team@lists.example>", "2.0.0")
    ]
    assert [(e["to"], e["dsn"]) for e in world.of("bounced")] == [("<gone@lists.example>", "5.1.1")]
    assert [(e["to"], e["dsn"]) for e in world.of("deferred")] == [
        ("<busy@lists.example>", "4.3.1")
    ]
    # only busy@ is left to retry
    assert [r.address for r in world.store.entries[qid].pending] == ["busy@lists.example"]


async def test_a_list_mailman_cannot_confirm_is_deferred_not_bounced(
    lmtp_world: tuple[World, ScriptedLmtp],
) -> None:
    """A queued message for a list address while Mailman's REST API cannot say whether
    the list exists (say, after a restart while Mailman is down): retried later."""
    world, script = lmtp_world
    await world.store.enqueue("bob@example.net", ["new@lists.example"], MESSAGE)
    await world.agent.run_once()
    await world.agent.drain()
    assert script.transactions == []
    assert world.of("bounced") == []
    ((event),) = world.of("deferred")
    assert (event["to"], event["dsn"]) == ("<new@lists.example>", "4.3.0")
