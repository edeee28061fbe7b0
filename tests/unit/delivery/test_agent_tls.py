"""The agent's TLS decisions with fake sessions: connection reuse under policies."""

from __future__ import annotations

from pathlib import Path

from mailwright.config import RelayConfig
from mailwright.queue import QueueMeta

from .fakes import ok
from .test_agent import MESSAGE, World


async def test_relay_session_carries_several_messages(tmp_path: Path) -> None:
    w = World(tmp_path, mode="relay", relay=RelayConfig("smtp://user:pw@relay.example:2587"))
    w.network.servers["relay.example"] = ok()
    w.agent.idle_seconds = 0.5
    for _ in range(3):
        await w.store.enqueue("app@example.com", ["a@x.example"], MESSAGE)
    await w.agent.run_once()
    assert len(w.of("delivered")) == 3
    assert len(w.network.connects) == 1  # verified relay TLS: the cached session is reused


async def test_requiretls_over_a_verified_relay_uses_the_session(tmp_path: Path) -> None:
    w = World(tmp_path, mode="relay", relay=RelayConfig("smtp://user:pw@relay.example:2587"))
    w.network.servers["relay.example"] = ok()
    await w.store.enqueue(
        "app@example.com", ["a@x.example"], MESSAGE, meta=QueueMeta(requiretls=True)
    )
    await w.agent.run_once()
    assert w.of("delivered")
    assert w.network.metas[0] is not None and w.network.metas[0].requiretls
