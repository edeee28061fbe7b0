"""A list post for several members becomes one queue entry per member, each with its own
one-click link; a queue write that fails midway leaves nothing queued (then ``451``)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mailwright import message as rfc5322
from mailwright.config import parse_config
from mailwright.dkim import generate_key, private_key_pem
from mailwright.log import EventLogger
from mailwright.queue import QueueError, SqliteQueueStore
from mailwright.queue.store import Handoff
from mailwright.queue.tracking import Tracking
from mailwright.server import build_runtime, list_cache
from mailwright.smtp import intake
from mailwright.smtp.address import Mailbox
from mailwright.smtp.intake import Arrival
from mailwright.smtp.protocol import Envelope
from mailwright.smtp.server import SmtpServer, intake_policy

KEY = b"k" * 32
MEMBERS = ("alice@example.net", "bob@example.net", "carol@example.org")
MAILMAN = Arrival(client_ip="127.0.0.1", listener="mailman", helo="lists", trusted=True)
POST = (
    b"From: Bob <bob@example.net>\r\nTo: team@lists.example\r\nSubject: [Team] lunch\r\n"
    b"Message-ID: <p1@example.net>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n"
    b"List-Id: <team.lists.example>\r\nList-Post: <mailto:team@lists.example>\r\n"
    b"List-Unsubscribe: <mailto:team-leave@lists.example>\r\n\r\nShall we?\r\n"
)


class FailingStore(SqliteQueueStore):
    """Fails the second copy's insert, like a full disk would (inside the transaction
    that already holds the first)."""

    calls = 0

    def _insert(self, *args: Any, **kwargs: Any) -> str:
        type(self).calls += 1
        if type(self).calls == 2:
            raise QueueError("disk full")
        return super()._insert(*args, **kwargs)


async def _server(tmp_path: Path, store_class: type[SqliteQueueStore]) -> SmtpServer:
    key_file = tmp_path / "list.key"
    key_file.write_bytes(private_key_pem(generate_key("rsa", 1024)))
    config = parse_config(
        {
            "hostname": "mx.lists.example",
            "domains": ["lists.example"],
            "mailboxes": ["postmaster@lists.example"],
            "data_dir": str(tmp_path / "data"),
            "dkim": [{"domain": "lists.example", "selector": "s", "private_key": str(key_file)}],
            "mailman": {
                "rest_url": "http://127.0.0.1:9/3.1",
                "cache_seconds": 3600,
                "unsubscribe_url": "https://lists.example/unsubscribe",
            },
        },
        tmp_path / "mailwright.toml",
    )
    cache = list_cache(config)
    assert cache is not None
    cache.names, cache.fetched_at = frozenset({"team@lists.example"}), time.monotonic()
    runtime, _ = build_runtime(config, dev_mode=False)
    store = await store_class.open(config.data_dir)
    smtp = SmtpServer(runtime, store, EventLogger(stderr=False))
    smtp.unsubscribe_key = KEY
    return smtp


def _split(smtp: SmtpServer) -> tuple[list[Envelope], intake.IntakePolicy]:
    envelope = Envelope(Mailbox("team-bounces", "lists.example"))
    envelope.recipients = [Mailbox(*m.split("@")) for m in MEMBERS]
    policy = intake_policy(smtp.state, unsubscribe_key=smtp.unsubscribe_key)
    return intake.per_member(envelope, POST, MAILMAN, policy), policy


CONN: Any = SimpleNamespace(
    client_ip="127.0.0.1",
    listener=SimpleNamespace(config=SimpleNamespace(name="mailman")),
    session=SimpleNamespace(user=None),
)


async def test_one_signed_queue_entry_per_member(tmp_path: Path) -> None:
    smtp = await _server(tmp_path, SqliteQueueStore)
    try:
        envelopes, policy = _split(smtp)
        assert len(envelopes) == 3
        reply = await smtp._accept_per_member(CONN, envelopes, POST, MAILMAN, policy, {})
        assert reply.code == 250 and "and 2 more (one per member)" in reply.text
        entries = await smtp.store.list_entries()
        assert sorted(r.address for e in entries for r in e.recipients) == sorted(MEMBERS)
        links = set()
        for entry in entries:
            message = await smtp.store.read_message(entry.id)
            assert entry.sender == "team-bounces@lists.example" and len(entry.recipients) == 1
            names = [f.name for f in rfc5322.fields(message)]
            assert names[:4] == [
                "arc-seal",
                "arc-message-signature",
                "arc-authentication-results",
                "dkim-signature",
            ]
            (value,) = rfc5322.field_values(message, "List-Unsubscribe")
            links.add(value.split(">")[0])
            assert f"for <{entry.recipients[0].address}>" in (
                rfc5322.field_value(message, "Received") or ""
            )
        assert len(links) == 3
    finally:
        await smtp.store.close()


async def test_a_failed_write_midway_queues_nothing(tmp_path: Path) -> None:
    smtp = await _server(tmp_path, FailingStore)
    try:
        envelopes, policy = _split(smtp)
        reply = await smtp._accept_per_member(CONN, envelopes, POST, MAILMAN, policy, {})
        assert reply.code == 451  # Mailman retries the whole post
        assert await smtp.store.list_entries() == []  # the first copy went with the transaction
        assert await Tracking(smtp.store).read() == []  # and so did its events
    finally:
        await smtp.store.close()


async def test_a_notice_stays_one_entry(tmp_path: Path) -> None:
    data = POST.replace(b"List-Post: <mailto:team@lists.example>\r\n", b"")
    smtp = await _server(tmp_path, SqliteQueueStore)
    try:
        envelope = Envelope(Mailbox("team-bounces", "lists.example"))
        envelope.recipients = [Mailbox(*m.split("@")) for m in MEMBERS]
        policy = intake_policy(smtp.state, unsubscribe_key=KEY)
        assert intake.per_member(envelope, data, MAILMAN, policy) == [envelope]
    finally:
        await smtp.store.close()


async def test_no_copy_is_handed_to_the_agent_before_every_copy_is_queued(
    tmp_path: Path,
) -> None:
    """Claim at enqueue would start delivering the first copy at once: when a later copy
    then failed, deleting the first would not stop its delivery, and Mailman's retry
    after the 451 would send that member a second copy. The copies are written in one
    transaction, never handed over: a failure leaves none."""
    FailingStore.calls = 0
    smtp = await _server(tmp_path, FailingStore)
    taken: list[str] = []
    smtp.store.handoff = Handoff(
        "w1", 900.0, lambda size: True, lambda entry, data: taken.append(entry.id)
    )
    try:
        envelopes, policy = _split(smtp)
        reply = await smtp._accept_per_member(CONN, envelopes, POST, MAILMAN, policy, {})
        assert reply.code == 451
        assert taken == []  # nothing went out: the retry duplicates nobody's copy
        assert await smtp.store.list_entries() == []
    finally:
        await smtp.store.close()


async def test_copies_are_queued_unleased_and_the_agent_woken_after_the_last(
    tmp_path: Path,
) -> None:
    smtp = await _server(tmp_path, SqliteQueueStore)
    taken: list[str] = []
    smtp.store.handoff = Handoff(
        "w1", 900.0, lambda size: True, lambda entry, data: taken.append(entry.id)
    )
    try:
        envelopes, policy = _split(smtp)
        reply = await smtp._accept_per_member(CONN, envelopes, POST, MAILMAN, policy, {})
        assert reply.code == 250
        assert taken == []
        entries = await smtp.store.list_entries()
        assert len(entries) == 3 and all(e.claimed_by is None for e in entries)
        assert await smtp.store.wait_for_work(0.01)  # the agent claims them now
    finally:
        await smtp.store.close()
