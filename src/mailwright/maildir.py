"""Maildir writing: one Maildir per address, messages made visible atomically.

The Maildir convention (D. J. Bernstein's specification, as Dovecot and Courier
read it): write the message into ``tmp/`` under a name no other delivery can use,
flush it to disk, then rename it into ``new/``. A reader never sees a partial
message, and a crash leaves at most a stray file in ``tmp/``. Names are
``SECONDS.M<usec>P<pid>Q<n>.<host>``: the time, the process and a per-process
counter make them unique even for several deliveries in the same microsecond.

Used for mail to our own domains and for the development outbox
(``delivery.mode = "local"``); :meth:`Maildir.folder` gives the ``.Junk``
subfolder (Maildir++) that DMARC quarantine delivers into.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from collections.abc import Iterable
from pathlib import Path

_counter = itertools.count(1)
_SAFE = re.compile(r"[^a-z0-9._+=-]")


def unique_name(host: str | None = None) -> str:
    """``time.M<usec>P<pid>Q<n>.<host>``; ``/`` and ``:`` in the host are escaped (they
    separate path components and the info suffix)."""
    now = time.time()
    seconds = int(now)
    usec = int((now - seconds) * 1_000_000)
    host = (host or socket.gethostname()).replace("/", r"\057").replace(":", r"\072")
    return f"{seconds}.M{usec}P{os.getpid()}Q{next(_counter)}.{host}"


def mailbox_path(root: Path, address: str) -> Path:
    """``root/DOMAIN/LOCAL`` for an address, with anything unsafe in a path escaped.

    Local parts are untrusted: ``../x``, ``a/b`` or a leading dot must not leave
    ``root`` or collide with a Maildir++ folder, so every byte outside a small safe
    set becomes ``%XX`` and a leading dot does too.
    """
    local, _, domain = address.rpartition("@")
    if not local:
        local, domain = domain, "_"
    return root / _escape(domain.lower()) / _escape(local.lower())


def _escape(part: str) -> str:
    escaped = _SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8")), part)
    if escaped.startswith(".") or not escaped:
        escaped = "%2E" + escaped[1:] if escaped else "%00"
    return escaped


class Maildir:
    """A Maildir directory (created on first delivery)."""

    def __init__(self, path: Path, *, host: str | None = None) -> None:
        self.path = Path(path)
        self.host = host

    def create(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    def folder(self, name: str) -> Maildir:
        """A Maildir++ subfolder such as ``.Junk`` (marked with a ``maildirfolder`` file)."""
        if not name.startswith(".") or "/" in name or name in (".", ".."):
            raise ValueError(f"not a Maildir++ folder name: {name!r}")
        sub = Maildir(self.path / name, host=self.host)
        sub.create()
        (sub.path / "maildirfolder").touch()
        return sub

    def deliver(self, data: bytes | Iterable[bytes]) -> Path:
        """Write ``data`` (or its pieces, for a big message) durably and return its path
        in ``new/``.

        ``fsync`` of the file, then of ``new/`` after the rename: only then has the
        message survived a power cut, which is when we may tell the queue it is done.
        """
        if not (self.path / "new").is_dir():
            self.create()
        while True:
            name = unique_name(self.host)
            tmp = self.path / "tmp" / name
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process with our pid? a stale tmp file
                continue
            break
        try:
            for piece in (data,) if isinstance(data, bytes) else data:
                view = memoryview(piece)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        final = self.path / "new" / name
        os.rename(tmp, final)
        _fsync_dir(self.path / "new")
        return final

    def messages(self) -> list[Path]:
        """Files in ``new/`` and ``cur/``, oldest name first (for tests and the CLI)."""
        found: list[Path] = []
        for sub in ("new", "cur"):
            folder = self.path / sub
            if folder.is_dir():
                found.extend(p for p in folder.iterdir() if p.is_file())
        return sorted(found, key=lambda p: p.name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
