"""The maildrop: where ``sendmail`` leaves messages for the server, durably.

``sendmail`` runs as whoever calls it (cron, www-data, a person), not as the server's
user, and must not lose a message when the server is down. So it never talks to the
server: like Postfix's ``postdrop``, it writes one file per message into
``DATA_DIR/maildrop/`` and exits 0 only once that file is on stable storage; the
server's pickup (:mod:`mailwright.sendmail.pickup`) queues it at start and while running and
removes it only after the queue has committed it.

Durability: written to ``.tmp.ID``, ``fsync``, renamed to ``ID`` (atomic: the pickup
sees a whole file or none), then the directory entry is synced (the directory's own
fsync when we may read it, else ``syncfs`` of its filesystem).

Permissions: the server creates the directory ``drwx-wx-wT`` (sticky, setgid, no read
for others): anyone may add a file, nobody but the server may list, read or remove
other people's files. A file is ``-rw-r-----`` with the directory's group (setgid), so
the submitting user and the server's group can read it and nobody else (``-rw-------``
when the submitter owns the directory, i.e. is the server's user).

File format: the line ``mailwright-maildrop 1``, ``key: value`` lines (``sender``,
``full-name``, ``body``, one ``recipient`` each), an empty line, then the message with
CRLF line ends. Values never contain CR or LF (:mod:`mailwright.sendmail.command` checks).
The submitting user is not written down: the server takes it from the file's owner.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import MailwrightError
from ..queue.store import new_queue_id

MAGIC = b"mailwright-maildrop 1\n"
DIRECTORY_NAME = "maildrop"
DIRECTORY_MODE = 0o3733
"""setgid (files get the server's group), sticky (only owners remove), ``-wx`` for others."""
TMP_PREFIX = ".tmp."
BAD_PREFIX = ".bad."
MAX_ENVELOPE = 32 << 20
"""Bytes of envelope lines a file may carry besides the message (100,000 recipients)."""


class MaildropError(MailwrightError):
    """The maildrop could not be written or a file in it is not one of ours."""

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno_


@dataclass(frozen=True)
class Drop:
    """One message left by ``sendmail``."""

    recipients: tuple[str, ...]
    message: bytes
    sender: str | None = None
    """``-f``; ``""`` is the null sender; None: the submitting user."""
    full_name: str | None = None
    eight_bit: bool = False


def encode(drop: Drop) -> bytes:
    lines = [MAGIC]
    if drop.sender is not None:
        lines.append(_line("sender", drop.sender))
    if drop.full_name:
        lines.append(_line("full-name", drop.full_name))
    lines.append(_line("body", "8BITMIME" if drop.eight_bit else "7BIT"))
    lines.extend(_line("recipient", r) for r in drop.recipients)
    lines.append(b"\n")
    return b"".join(lines) + drop.message


def _line(key: str, value: str) -> bytes:
    if "\n" in value or "\r" in value:
        raise ValueError(f"maildrop {key} contains a line break")
    return f"{key}: {value}\n".encode()


def decode(data: bytes) -> Drop:
    """Parse a maildrop file; :class:`MaildropError` for anything else (any local user
    can put a file there)."""
    if not data.startswith(MAGIC):
        raise MaildropError("not a maildrop file (no 'mailwright-maildrop 1' line)")
    end = data.find(b"\n\n", len(MAGIC) - 1)
    if end < 0 or end > MAX_ENVELOPE:
        raise MaildropError("no end of the envelope lines")
    sender: str | None = None
    full_name: str | None = None
    eight_bit = False
    recipients: list[str] = []
    for raw in data[len(MAGIC) : end].split(b"\n"):
        try:
            key, sep, value = raw.decode("utf-8").partition(": ")
        except UnicodeDecodeError:
            raise MaildropError("envelope line is not UTF-8") from None
        if not sep:
            raise MaildropError(f"bad envelope line {raw[:80]!r}")
        if key == "sender":
            sender = value
        elif key == "full-name":
            full_name = value
        elif key == "body":
            eight_bit = value == "8BITMIME"
        elif key == "recipient" and value:
            recipients.append(value)
        else:
            raise MaildropError(f"unknown envelope line {key!r}")
    if not recipients:
        raise MaildropError("no recipients")
    return Drop(tuple(recipients), data[end + 2 :], sender, full_name, eight_bit)


def directory(data_dir: Path) -> Path:
    return data_dir / DIRECTORY_NAME


def ensure_directory(data_dir: Path) -> Path:
    """The server's side: create the maildrop (or fix its mode) so others can drop into
    it. The data directory itself must let them through (``o+x``) for that."""
    path = directory(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != DIRECTORY_MODE:
        os.chmod(path, DIRECTORY_MODE)
    return path


def write(path: Path, drop: Drop) -> str:
    """Write ``drop`` into the maildrop ``path`` durably; returns its ID (the queue ID the
    server will give it). Nothing stays behind when this fails."""
    data = encode(drop)
    drop_id = new_queue_id()
    final = path / drop_id
    tmp = path / f"{TMP_PREFIX}{drop_id}"
    try:
        owner = path.stat().st_uid
    except OSError as exc:
        raise MaildropError(f"{path}: {exc.strerror}", exc.errno) from None
    mode = 0o600 if owner == os.geteuid() else 0o640
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise MaildropError(f"{path}: {exc.strerror}", exc.errno) from None
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.rename(tmp, final)
    except OSError as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise MaildropError(f"{tmp}: {exc.strerror}", exc.errno) from None
    try:
        sync_directory(path, fd)
    except OSError as exc:
        # The file is complete but its name may not survive a crash: not yet durable.
        with contextlib.suppress(OSError):
            os.unlink(final)
        raise MaildropError(f"{path}: cannot sync: {exc.strerror}", exc.errno) from None
    finally:
        os.close(fd)
    return drop_id


def sync_directory(path: Path, file_fd: int) -> None:
    """Make a new directory entry durable. Others may not read the maildrop, so opening
    it for ``fsync`` fails for them; then ``syncfs`` on the file we just wrote (a
    descriptor we hold) flushes its whole file system, the new entry included."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:
        _syncfs(file_fd)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(fd: int) -> None:
    libc_name = ctypes.util.find_library("c")
    syncfs = getattr(ctypes.CDLL(libc_name, use_errno=True), "syncfs", None) if libc_name else None
    if syncfs is None:
        os.sync()
        return
    if syncfs(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


# -- the server's side --------------------------------------------------------------------------


def pending(path: Path) -> list[str]:
    """IDs waiting in the maildrop, oldest first (IDs sort by time)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if not n.startswith("."))


STALE_TMP_SECONDS = 3600.0
"""A ``.tmp.`` file this old belongs to a sendmail that died while writing (a message it
did not report as queued): removed."""


def remove_stale(path: Path, now: float | None = None) -> list[str]:
    """Remove temporary files of sendmail calls that died; their names."""
    limit = (time.time() if now is None else now) - STALE_TMP_SECONDS
    removed = []
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return []
    for name in names:
        if not name.startswith(TMP_PREFIX):
            continue
        with contextlib.suppress(FileNotFoundError):
            if os.lstat(path / name).st_mtime < limit:
                os.unlink(path / name)
                removed.append(name)
    return removed


@dataclass
class Claimed:
    """An open, locked maildrop file; :meth:`done` removes it, :meth:`close` leaves it."""

    drop_id: str
    path: Path
    fd: int
    uid: int
    data: bytes

    def done(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.close()

    def set_aside(self) -> None:
        """Keep a file the server cannot take as ``.bad.ID`` for a person to look at."""
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.path, self.path.with_name(BAD_PREFIX + self.drop_id))
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # also releases the lock
            self.fd = -1


def claim(path: Path, drop_id: str, max_size: int) -> Claimed | None:
    """Open and lock one file (several workers scan the same maildrop); None when it is
    gone or another worker has it. Refuses (:class:`MaildropError`, file set aside) what
    a local user could use to make the server read something else: symbolic links, hard
    links, anything but a regular file, and files over ``max_size``."""
    file = path / drop_id
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _set_aside(file)
            raise MaildropError(f"{file}: a symbolic link") from None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    st = os.fstat(fd)
    if st.st_nlink == 0:  # removed by the worker that had it before us
        os.close(fd)
        return None
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = "not a regular file"
    elif st.st_nlink != 1:
        problem = "has other hard links"
    elif st.st_size > max_size:
        problem = f"{st.st_size} octets, over the limit of {max_size}"
    if problem is not None:
        _set_aside(file)
        os.close(fd)
        raise MaildropError(f"{file}: {problem}")
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return Claimed(drop_id, file, fd, st.st_uid, b"".join(chunks))


def _set_aside(file: Path) -> None:
    with contextlib.suppress(OSError):
        os.rename(file, file.with_name(BAD_PREFIX + file.name))
