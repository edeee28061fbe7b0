"""The worker gives its delivery agent the DKIM keys of its current runtime: after a
reload (SIGHUP) the agent signs with the new keys, and a domain whose keys were removed
leaves unsigned with a warning."""

from __future__ import annotations

from pathlib import Path

from mailwright.dkim import generate_key, private_key_pem
from mailwright.queue import QueueMeta
from mailwright.testing.worker import idle_worker

CONFIG = """
hostname = "mail.example.com"
domains = ["example.com"]
mailboxes = ["admin@example.com"]
data_dir = "{data}"
allow_root = true  # the test may run as root

[delivery]
mode = "local"
"""
KEY = """
[[dkim]]
domain = "example.com"
selector = "s1"
private_key = "{key}"
"""
MESSAGE = b"From: app@example.com\r\nTo: x@example.net\r\nSubject: s\r\n\r\nhi\r\n"


async def test_a_reload_gives_the_agent_the_new_keys(tmp_path: Path) -> None:
    key = tmp_path / "s1.pem"
    key.write_bytes(private_key_pem(generate_key("ed25519")))
    path = tmp_path / "mailwright.toml"
    path.write_text(CONFIG.format(data=tmp_path / "data") + KEY.format(key=key))
    worker, events = await idle_worker(path)
    store, runtime, config = worker.store, worker.runtime, worker.runtime.config
    assert store is not None
    try:
        worker.agent = agent = worker._make_agent()
        assert agent.signer() is runtime.signer and agent.signer() is not None
        meta = QueueMeta(sign_domain="example.com")
        await store.enqueue("app@example.com", ["x@example.net"], MESSAGE, meta=meta)
        await agent.run_once()
        [first] = list((config.data_dir / "outbox" / "new").iterdir())
        assert first.read_bytes().startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
        # SIGHUP with the key gone from the config
        path.write_text(CONFIG.format(data=tmp_path / "data"))
        worker._reload()
        assert agent.signer() is worker.runtime.signer is None
        queue_id = await store.enqueue("app@example.com", ["x@example.net"], MESSAGE, meta=meta)
        await agent.run_once()
        [warning] = [e for e in events if e["event"] == "warning"]
        assert warning["id"] == queue_id and warning["what"] == "unsigned"
        second = [p for p in (config.data_dir / "outbox" / "new").iterdir() if p != first]
        assert [p.read_bytes() for p in second] == [MESSAGE]
    finally:
        await store.close()
