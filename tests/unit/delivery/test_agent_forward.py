"""Aliases pointing outside: the agent queues an SRS-rewritten, ARC-sealed copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwright.local import LocalDirectory
from mailwright.smtp.intake import IntakePolicy
from mailwright.srs import Srs

from .fakes import ok
from .test_agent import MESSAGE, World

SRS = Srs((b"a-secret-of-sixteen-bytes",))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _setup(world: World) -> LocalDirectory:
    directory = LocalDirectory.build(
        ["example.com"],
        ["admin@example.com"],
        {"info@example.com": ["someone@gmail.example", "admin@example.com"]},
        SRS,
    )
    world.agent.local_targets = lambda a: list(directory.resolve(a) or ()) or None
    world.agent.intake = lambda: IntakePolicy(
        "mail.example.com", sealer=lambda m, d: f"X-Sealed-By: {d}\r\n".encode(), srs=SRS
    )
    world.mx("gmail.example", (10, "mx.gmail.example"))
    world.mx("origin.example", (10, "mx.origin.example"))
    return directory


async def test_alias_to_outside_is_forwarded_with_srs(world: World, tmp_path: Path) -> None:
    _setup(world)

    world.network.servers["mx.gmail.example"] = ok()
    qid = await world.store.enqueue("alice@origin.example", ["info@example.com"], MESSAGE)
    await world.agent.run_once()
    await world.agent.run_once()
    # the local target got its copy, the outside one a new queue entry
    assert len(list((tmp_path / "mail/example.com/admin/new").iterdir())) == 1
    (event,) = world.of("forwarded")
    assert (event["original"], event["alias"], event["to"]) == (
        qid,
        "<info@example.com>",
        "<someone@gmail.example>",
    )
    ((host, sender, recipients, data),) = world.network.sends
    assert host == "mx.gmail.example" and recipients == ["someone@gmail.example"]
    assert sender.startswith("SRS0=") and sender.endswith("@example.com")
    assert SRS.reverse(sender, now=world.clock()) == "alice@origin.example"
    assert data.startswith(b"X-Sealed-By: example.com\r\n")
    assert qid in world.store.done


async def test_bounce_to_an_srs_address_goes_back_to_the_sender(world: World) -> None:
    _setup(world)

    world.network.servers["mx.origin.example"] = ok()
    srs_address = SRS.forward("alice@origin.example", "example.com")
    await world.store.enqueue("", [srs_address], b"Subject: bounce\r\n\r\nfailed\r\n")
    await world.agent.run_once()
    await world.agent.run_once()
    ((host, sender, recipients, _),) = world.network.sends
    assert (host, sender, recipients) == ("mx.origin.example", "", ["alice@origin.example"])


async def test_forged_srs_address_bounces_as_unknown(world: World) -> None:
    _setup(world)
    forged = SRS.forward("alice@origin.example", "example.com").replace("alice", "victim")
    await world.store.enqueue("", [forged], b"Subject: x\r\n\r\nx\r\n")
    await world.agent.run_once()
    assert world.network.sends == []
    assert [e["dsn"] for e in world.of("bounced")] == ["5.1.1"]
