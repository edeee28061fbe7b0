"""Maildir delivery: atomic via tmp/, standard unique names, safe paths."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mailwright.maildir import Maildir, mailbox_path, unique_name

NAME = re.compile(r"^\d+\.M\d+P\d+Q\d+\.[^/:]+$")


def test_unique_name_format_and_uniqueness() -> None:
    names = {unique_name("mail.example.com") for _ in range(1000)}
    assert len(names) == 1000
    assert all(NAME.match(n) for n in names)
    assert f"P{os.getpid()}Q" in next(iter(names))


def test_unique_name_escapes_slash_and_colon() -> None:
    name = unique_name("a/b:c")
    assert "/" not in name and ":" not in name
    assert name.endswith(r".a\057b\072c")


def test_deliver_writes_into_new_and_leaves_tmp_empty(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "box", host="h")
    path = box.deliver(b"Subject: x\r\n\r\nhi\r\n")
    assert path.parent == tmp_path / "box" / "new"
    assert path.read_bytes() == b"Subject: x\r\n\r\nhi\r\n"
    assert list((tmp_path / "box" / "tmp").iterdir()) == []
    assert (tmp_path / "box" / "cur").is_dir()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert box.messages() == [path]


def test_many_deliveries_do_not_collide(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "box")
    paths = {box.deliver(b"x") for _ in range(200)}
    assert len(paths) == 200 and len(box.messages()) == 200


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = Maildir(tmp_path / "box")
    box.create()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        box.deliver(b"x")
    assert list((tmp_path / "box" / "tmp").iterdir()) == []
    assert list((tmp_path / "box" / "new").iterdir()) == []


def test_junk_folder(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "box")
    junk = box.folder(".Junk")
    path = junk.deliver(b"spam")
    assert path.parent == tmp_path / "box" / ".Junk" / "new"
    assert (tmp_path / "box" / ".Junk" / "maildirfolder").exists()
    for bad in ("Junk", "../x", ".", ".a/b"):
        with pytest.raises(ValueError):
            box.folder(bad)


@pytest.mark.parametrize(
    ("address", "relative"),
    [
        ("Alice@Example.COM", "example.com/alice"),
        ("a.b+tag@example.com", "example.com/a.b+tag"),
        ("../../etc@example.com", "example.com/%2E.%2F..%2Fetc"),
        ("a/b@example.com", "example.com/a%2Fb"),
        (".Junk@example.com", "example.com/%2Ejunk"),
        ("jörg@example.com", "example.com/j%C3%B6rg"),
        ('"x y"@example.com', "example.com/%22x%20y%22"),
    ],
)
def test_mailbox_path_is_safe(tmp_path: Path, address: str, relative: str) -> None:
    path = mailbox_path(tmp_path, address)
    assert path == tmp_path / relative
    assert path.resolve().is_relative_to(tmp_path.resolve())
