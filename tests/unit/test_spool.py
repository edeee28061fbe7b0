"""The spool of big messages (mailwright.spool): header section found, body hashed a
piece at a time, files cleaned up."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from mailwright.dkim.canonicalization import canonicalize_body
from mailwright.spool import HEAD_LIMIT, Spool, clean_spool_dir

HEAD = b"From: a@example.com\r\nSubject: x\r\n\r\n"


def spooled_from(tmp_path: Path, *pieces: bytes) -> Spool:
    spool = Spool(tmp_path / "spool")
    for piece in pieces:
        spool.write(piece)
    return spool


def test_head_in_memory_body_on_disk(tmp_path: Path) -> None:
    body = b"hello \t world  \r\n\r\n" * 50_000 + b"\r\n\r\n"
    spool = spooled_from(tmp_path, HEAD + body[:7], body[7:])
    message = spool.finish()
    assert message is not None
    assert message.head == HEAD and message.body_offset == len(HEAD)
    assert message.ascii and len(message) == len(HEAD) + len(body)
    assert b"".join(message.body_chunks(4096)) == body
    hashed = message.hash_body(("simple", "relaxed"))
    for method in ("simple", "relaxed"):
        want = hashlib.sha256(canonicalize_body(body, method)).digest()  # type: ignore[arg-type]
        assert hashed.body_hashes[method] == want, base64.b64encode(want)


def test_no_header_fields(tmp_path: Path) -> None:
    message = spooled_from(tmp_path, b"\r\nbody\r\n").finish()
    assert message is not None and message.head == b"\r\n" and message.read_all() == b"\r\nbody\r\n"


def test_header_section_too_long_is_read_whole(tmp_path: Path) -> None:
    long_head = b"X-Long: " + b"a" * 900 + b"\r\n"
    spool = spooled_from(tmp_path, long_head * (HEAD_LIMIT // len(long_head) + 1) + b"\r\nb\r\n")
    assert spool.finish() is None  # the caller reads the file whole instead


def test_8bit_noticed(tmp_path: Path) -> None:
    message = spooled_from(tmp_path, HEAD, "Grüße\r\n".encode()).finish()
    assert message is not None and not message.ascii


def test_discard_and_clean(tmp_path: Path) -> None:
    spool = spooled_from(tmp_path, HEAD)
    spool.discard()
    assert not spool.path.exists()
    left = spooled_from(tmp_path, HEAD)  # a crashed worker's file
    assert clean_spool_dir(tmp_path / "spool") == 1 and not left.path.exists()
    assert clean_spool_dir(tmp_path / "nowhere") == 0


def test_a_dead_workers_files_only(tmp_path: Path) -> None:
    """The master removes the spool files of a worker that exited, and only those: the
    other workers' messages in progress keep theirs."""
    mine = spooled_from(tmp_path, HEAD)
    assert mine.path.name.startswith(f"data-{os.getpid()}-")
    other = tmp_path / "spool" / "data-999999999-x"
    other.write_bytes(b"another worker's message")
    assert clean_spool_dir(tmp_path / "spool", pid=999999999) == 1 and not other.exists()
    assert mine.path.exists()
    assert clean_spool_dir(tmp_path / "spool", pid=os.getpid()) == 1
