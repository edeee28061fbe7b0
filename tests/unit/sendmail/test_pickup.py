"""The server's pickup: maildrop files into the real SQLite queue, exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwright import maildrop
from mailwright.config import parse_config
from mailwright.local import LocalDirectory
from mailwright.log import EventLogger
from mailwright.pickup import LocalSubmission, Pickup, cleanup
from mailwright.qualify import LocalNames
from mailwright.queue import QueueError, QueueStore, open_store

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


async def _pickup(tmp_path: Path, store: QueueStore, fail: bool = False) -> Pickup:
    async def submit(submission: LocalSubmission, queue_id: str) -> str:
        if fail:
            raise QueueError("disk full")
        return await store.enqueue(
            submission.sender, list(submission.recipients), submission.message, queue_id=queue_id
        )

    logger = EventLogger()
    logger.set_stderr(False)
    return Pickup(tmp_path, lambda: (CONFIG, DIRECTORY), store, submit, logger)


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
        assert (await store.read_message(ids[0])).startswith(b"From: ")
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


@pytest.mark.parametrize("content", [b"garbage", b"mailwright-maildrop 1\nbody: 7BIT\n\nno rcpt"])
async def test_a_bad_file_is_set_aside(tmp_path: Path, content: bytes) -> None:
    store = await open_store(tmp_path)
    try:
        path = maildrop.ensure_directory(tmp_path)
        (path / "2KZXAAAAAAAAAA").write_bytes(content)
        pickup = await _pickup(tmp_path, store)
        assert await pickup.scan() == 0
        assert sorted(p.name for p in path.iterdir()) == [".bad.2KZXAAAAAAAAAA"]
    finally:
        await store.close()
