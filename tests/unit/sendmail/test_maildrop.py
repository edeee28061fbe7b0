"""The maildrop on a real file system: durable write, format, claiming, hostile files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mailwright.sendmail import maildrop
from mailwright.sendmail.maildrop import Drop, MaildropError

DROP = Drop(("root", "alice@example.net"), b"Subject: x\r\n\r\nhi\r\n", "app@example.com", "App")


def test_round_trip() -> None:
    assert maildrop.decode(maildrop.encode(DROP)) == DROP
    bare = Drop(("root",), b"\r\n", None, None, True)
    assert maildrop.decode(maildrop.encode(bare)) == bare
    null = Drop(("root",), b"\r\n", "")
    assert maildrop.decode(maildrop.encode(null)).sender == ""


def test_write_is_one_whole_private_file(tmp_path: Path) -> None:
    path = maildrop.ensure_directory(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o3733
    drop_id = maildrop.write(path, DROP)
    assert os.listdir(path) == [drop_id]
    assert stat.S_IMODE((path / drop_id).stat().st_mode) == 0o600  # we own the directory
    assert maildrop.decode((path / drop_id).read_bytes()) == DROP
    assert maildrop.pending(path) == [drop_id]


def test_write_into_a_maildrop_that_is_not_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "maildrop"
    path.write_text("not a directory")
    with pytest.raises(MaildropError) as info:
        maildrop.write(path, DROP)
    assert info.value.errno is not None
    assert path.read_text() == "not a directory"


def test_values_with_line_breaks_cannot_be_written() -> None:
    with pytest.raises(ValueError):
        maildrop.encode(Drop(("root\nrecipient: evil@x",), b""))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"hello", "not a maildrop file (no 'mailwright-maildrop 1' line)"),
        (b"mailwright-maildrop 1\nrecipient: root\n", "no end of the envelope lines"),
        (b"mailwright-maildrop 1\nbody: 7BIT\n\nmsg", "no recipients"),
        (b"mailwright-maildrop 1\nx-evil: 1\n\nmsg", "unknown envelope line 'x-evil'"),
        (b"mailwright-maildrop 1\nrecipient root\n\nmsg", "bad envelope line b'recipient root'"),
        (b"mailwright-maildrop 1\nrecipient: \xff\n\nmsg", "envelope line is not UTF-8"),
    ],
)
def test_bad_files(data: bytes, problem: str) -> None:
    with pytest.raises(MaildropError) as info:
        maildrop.decode(data)
    assert str(info.value) == problem


def test_claim_locks_and_done_removes(tmp_path: Path) -> None:
    path = maildrop.ensure_directory(tmp_path)
    drop_id = maildrop.write(path, DROP)
    first = maildrop.claim(path, drop_id, 1 << 20)
    assert first is not None and first.uid == os.geteuid()
    assert maildrop.claim(path, drop_id, 1 << 20) is None  # another worker has it
    first.done()
    assert maildrop.pending(path) == []
    assert maildrop.claim(path, drop_id, 1 << 20) is None


def test_a_symlink_is_set_aside_not_followed(tmp_path: Path) -> None:
    path = maildrop.ensure_directory(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("root's secret")
    (path / "2KZXAAAAAAAAAA").symlink_to(secret)
    with pytest.raises(MaildropError, match="a symbolic link"):
        maildrop.claim(path, "2KZXAAAAAAAAAA", 1 << 20)
    assert maildrop.pending(path) == []
    assert os.listdir(path) == [".bad.2KZXAAAAAAAAAA"]


def test_a_hard_link_is_set_aside(tmp_path: Path) -> None:
    path = maildrop.ensure_directory(tmp_path)
    secret = tmp_path / "secret"
    secret.write_bytes(maildrop.encode(DROP))
    os.link(secret, path / "2KZXAAAAAAAAAB")
    with pytest.raises(MaildropError, match="has other hard links"):
        maildrop.claim(path, "2KZXAAAAAAAAAB", 1 << 20)
    assert maildrop.pending(path) == []


def test_too_big_and_not_regular(tmp_path: Path) -> None:
    path = maildrop.ensure_directory(tmp_path)
    drop_id = maildrop.write(path, DROP)
    with pytest.raises(MaildropError, match="over the limit of 10"):
        maildrop.claim(path, drop_id, 10)
    os.mkfifo(path / "2KZXAAAAAAAAAC")
    with pytest.raises(MaildropError, match="not a regular file"):
        maildrop.claim(path, "2KZXAAAAAAAAAC", 1 << 20)
    assert maildrop.pending(path) == []


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    path = maildrop.ensure_directory(tmp_path)
    old, fresh = path / ".tmp.2KZXAAAAAAAAAA", path / ".tmp.2KZXAAAAAAAAAB"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(old, (0, 0))
    drop_id = maildrop.write(path, DROP)
    assert maildrop.remove_stale(path) == [old.name]
    assert sorted(os.listdir(path)) == sorted([fresh.name, drop_id])
