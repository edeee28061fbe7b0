"""The server's pickup: maildrop files into the real SQLite queue, exactly once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailwright.config import parse_config
from mailwright.delivery.signing import sign_in_memory
from mailwright.dkim import SigningKey, generate_key
from mailwright.local import LocalDirectory
from mailwright.log import EventLogger
from mailwright.queue import QueueError, QueueStore, open_store
from mailwright.sendmail import maildrop
from mailwright.sendmail.pickup import Pickup, cleanup
from mailwright.sendmail.qualify import LocalNames
from mailwright.smtp.intake import Accepted, IntakePolicy, Signed, Signer, local

CONFIG = parse_config(
    {
        "hostname": "mail.example.com",
        "domains": ["example.com"],
        "mailboxes": ["admin@example.com"],
        "aliases": {"root@example.com": "admin@example.com"},
    }
)
DIRECTORY = LocalDirectory.from_config(CONFIG)
NAMES = LocalNames.build(["example.com"], "mail.example.com", ["web1"], ["www-data"])


def test_cleanup_qualifies_and_adds_from() -> None:
    drop = maildrop.Drop(
        ("root", "www-data", "x@example.net"), b"Subject: s\r\n\r\nb\r\n", None, "Cron"
    )
    result = cleanup(drop, "www-data", 33, NAMES, DIRECTORY)
    assert result.sender == "www-data@example.com"
    assert result.recipients == ("admin@example.com", "x@example.net")
    assert result.message == b"From: Cron <www-data@example.com>\r\nSubject: s\r\n\r\nb\r\n"
    assert (result.user, result.uid) == ("www-data", 33)


def test_cleanup_expands_aliases_and_keeps_unknown_local_addresses() -> None:
    drop = maildrop.Drop(("root", "postmaster", "nobody-here", "admin"), b"\r\n")
    result = cleanup(drop, "root", 0, NAMES, DIRECTORY)
    assert result.recipients == ("admin@example.com", "nobody-here@example.com")


def test_cleanup_keeps_an_explicit_sender_and_rewrites_from() -> None:
    drop = maildrop.Drop(
        ("a@example.net",), b"From: webmaster@localhost\r\n\r\n", "webmaster@localhost"
    )
    result = cleanup(drop, "root", 0, NAMES, DIRECTORY)
    assert result.sender == "webmaster@example.com"
    assert result.message == b"From: webmaster@example.com\r\n\r\n"


def test_cleanup_null_sender_gets_a_from_of_the_user() -> None:
    drop = maildrop.Drop(("a@example.net",), b"\r\nbody\r\n", "")
    result = cleanup(drop, "root", 0, NAMES, DIRECTORY)
    assert result.sender == ""
    assert result.message.startswith(b"From: root@example.com\r\n")


def _signer() -> Signer:
    from mailwright.server import KeySigner

    key = SigningKey.from_key("example.com", "sel", generate_key("ed25519"))
    return KeySigner(lambda domain: [key] if domain == "example.com" else [])


POLICY = IntakePolicy("mail.example.com", _signer(), max_hops=3)


async def _pickup(tmp_path: Path, store: QueueStore, fail: bool = False) -> Pickup:
    async def commit(accepted: Accepted) -> str:
        if fail:
            raise QueueError("disk full")
        return await store.enqueue(
            accepted.sender,
            accepted.recipients,
            accepted.message,
            meta=accepted.meta,
            queue_id=accepted.queue_id,
        )

    logger = EventLogger()
    logger.set_stderr(False)
    return Pickup(tmp_path, lambda: (CONFIG, DIRECTORY), store, lambda: POLICY, commit, logger)


async def test_scan_queues_and_removes(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        path = maildrop.ensure_directory(tmp_path)
        ids = [
            maildrop.write(path, maildrop.Drop(("root",), b"Subject: one\r\n\r\n")),
            maildrop.write(
                path, maildrop.Drop(("x@example.net",), b"Subject: two\r\n\r\n", "app@example.com")
            ),
        ]
        pickup = await _pickup(tmp_path, store)
        assert await pickup.scan() == 2
        assert maildrop.pending(path) == []
        first, second = [await store.get(i) for i in ids]
        assert first is not None and second is not None
        assert [r.address for r in first.recipients] == ["admin@example.com"]
        assert second.sender == "app@example.com"
        stored = await store.read_message(ids[0])
        # signed by the delivery agent when it leaves, with the domain intake chose
        assert b"DKIM-Signature" not in stored and first.meta.sign_domain == "example.com"
        sent = sign_in_memory(POLICY.signer, first.meta.sign_domain, stored)
        assert isinstance(sent, bytes) and sent.startswith(
            b"DKIM-Signature: v=1; a=ed25519-sha256;"
        )
        assert b"\r\nFrom: root@example.com\r\nSubject: one\r\n" in stored
        assert first.meta.origin == "local" and first.meta.user == "root"
        assert await pickup.scan() == 0
    finally:
        await store.close()


async def test_a_file_already_queued_before_a_crash_is_not_queued_twice(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        path = maildrop.ensure_directory(tmp_path)
        drop_id = maildrop.write(path, maildrop.Drop(("root",), b"\r\n"))
        await store.enqueue("root@example.com", ["root@example.com"], b"\r\n", queue_id=drop_id)
        pickup = await _pickup(tmp_path, store)
        assert await pickup.scan() == 0
        assert maildrop.pending(path) == []
        assert len(await store.list_entries()) == 1
    finally:
        await store.close()


async def test_a_failed_enqueue_leaves_the_file(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        path = maildrop.ensure_directory(tmp_path)
        drop_id = maildrop.write(path, maildrop.Drop(("root",), b"\r\n"))
        pickup = await _pickup(tmp_path, store, fail=True)
        assert await pickup.scan() == 0
        assert maildrop.pending(path) == [drop_id]
        assert await store.list_entries() == []
    finally:
        await store.close()


GOOD = maildrop.encode(maildrop.Drop(("root",), b"\r\n"))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("2KZXAAAAAAAAAA", b"garbage"),
        ("2KZXAAAAAAAAAA", b"mailwright-maildrop 1\nbody: 7BIT\n\nno rcpt"),
        ("not-an-id", GOOD),
    ],
)
async def test_a_bad_file_is_set_aside(tmp_path: Path, name: str, content: bytes) -> None:
    store = await open_store(tmp_path)
    try:
        path = maildrop.ensure_directory(tmp_path)
        (path / name).write_bytes(content)
        pickup = await _pickup(tmp_path, store)
        assert await pickup.scan() == 0
        assert sorted(p.name for p in path.iterdir()) == [f".bad.{name}"]
        assert await store.list_entries() == []
    finally:
        await store.close()


def test_local_intake_completes_and_signs() -> None:
    result = local(
        "root@example.com",
        ["admin@example.com"],
        b"From: root@example.com\r\nSubject: s\r\n\r\nbody\r\n",
        POLICY,
        queue_id="2KZXAAAAAAAAAA",
        user="root",
        uid=0,
        now=0,
    )
    assert isinstance(result, Accepted)
    assert result.signing == Signed("example.com", ("sel",))
    assert (result.meta.origin, result.meta.user) == ("local", "root")
    assert result.meta.sign_domain == "example.com"  # signed when it leaves
    assert result.message.startswith(
        b"Received: by mail.example.com (mailwright, from userid 0)\r\n"
        b"\tid 2KZXAAAAAAAAAA\r\n\tfor <admin@example.com>; Thu, 01 Jan 1970 00:00:00 +0000\r\n"
        b"Message-ID: <"
    )
    assert b"\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\nFrom: root@example.com\r\n" in (
        result.message
    )


async def test_a_mail_loop_is_set_aside_not_queued(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    try:
        path = maildrop.ensure_directory(tmp_path)
        looped = b"Received: x\r\n" * 4 + b"Subject: loop\r\n\r\n"
        drop_id = maildrop.write(path, maildrop.Drop(("root",), looped))
        pickup = await _pickup(tmp_path, store)
        assert await pickup.scan() == 0
        assert os.listdir(path) == [f".bad.{drop_id}"]
        assert await store.list_entries() == []
    finally:
        await store.close()
