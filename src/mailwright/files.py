"""Replacing a file so that a crash leaves the old content or the new, never a mix.

The data goes into a temporary file beside the target, is fsync'd, and is renamed over
the target (``rename(2)`` is atomic within a filesystem); then the directory is fsync'd
so that the new name itself survives a crash. Keys, certificates and state files are
written this way; the queue and the maildrop have durability rules of their own.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """``path`` holds ``data`` with exactly ``mode`` (not widened by the umask), or, after
    a failure or a crash, what it held before."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(path: Path) -> None:
    """Make the entries of directory ``path`` durable; best effort (a filesystem that
    cannot open or sync a directory has nothing more to offer)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
