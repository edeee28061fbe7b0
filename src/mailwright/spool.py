"""Big messages on disk: what keeps a worker's memory bounded whatever the message size.

A message up to :data:`SPOOL_THRESHOLD` octets is held in memory as one ``bytes`` (the
common case, and the fastest). Past it, the SMTP session hands the data out in pieces
(:class:`mailwright.smtp.protocol.DataChunk`) and the I/O layer writes them to a
:class:`Spool` file in ``DATA_DIR/spool/``. What comes out is a :class:`SpooledMessage`:
the header section in memory (intake reads and changes it: trace fields, the
DKIM-Signature), the body left in the file. The queue store copies it into its own
storage a chunk at a time, in the same transaction that makes the entry durable, so the
spool file itself needs no fsync and is deleted once the message is queued (or refused).

Everything here is blocking file I/O: the server calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .dkim.body import SigningBodyHashes
from .dkim.canonicalization import Canonicalization

__all__ = [
    "CHUNK_SIZE",
    "HEAD_LIMIT",
    "SPOOL_DIR",
    "SPOOL_THRESHOLD",
    "MessageData",
    "Spool",
    "SpooledMessage",
    "clean_spool_dir",
]

SPOOL_THRESHOLD = 512 * 1024
"""Message data beyond this many octets goes to a spool file instead of memory."""

CHUNK_SIZE = 256 * 1024
"""The piece size for writing, hashing, storing and reading back big messages."""

HEAD_LIMIT = 256 * 1024
"""The header section of a spooled message is read into memory up to this size (Postfix's
``header_size_limit`` is 100 KiB); a message with a longer one is handled whole."""

SPOOL_DIR = "spool"


@dataclass(frozen=True)
class SpooledMessage:
    """A message whose body lives in a file: ``head + file[body_offset:size]``.

    ``head`` starts as the file's header section (with its empty line) and is what
    intake changes (fields added on top, fields removed); the body is never touched.
    """

    path: Path
    head: bytes
    body_offset: int
    size: int
    """The size of the file."""
    ascii: bool = True
    """Every octet of the file is 7-bit."""
    body_hashes: dict[str, bytes] = field(default_factory=dict, compare=False)
    """SHA-256 of the canonicalized body per DKIM body canonicalization (RFC 6376 §3.7),
    filled in by :meth:`hash_body` for the signer."""

    def __len__(self) -> int:
        return len(self.head) + self.size - self.body_offset

    def with_head(self, head: bytes) -> SpooledMessage:
        return replace(self, head=head)

    def chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The whole message, ``head`` first, then the body a piece at a time."""
        yield self.head
        yield from self.body_chunks(size)

    def body_chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        with open(self.path, "rb") as file:
            file.seek(self.body_offset)
            while piece := file.read(size):
                yield piece

    def read_all(self) -> bytes:
        """The message in memory: for the rare paths that need it whole (see README)."""
        return b"".join(self.chunks())

    def hash_body(self, methods: tuple[Canonicalization, ...] = ("relaxed",)) -> SpooledMessage:
        """Compute :attr:`body_hashes` for ``methods`` in one read (our signer signs
        relaxed/relaxed: one canonicalization and one SHA-256 pass by default)."""
        hashes = SigningBodyHashes(methods)
        for piece in self.body_chunks():
            hashes.update(piece)
        return replace(self, body_hashes=hashes.finish())

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


MessageData = bytes | SpooledMessage
"""A message as intake and the queue store take it."""


class Spool:
    """One message's data being written to a file in ``directory`` (blocking calls)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # the writer's PID in the name: a dead worker's files can be found (clean_spool_dir)
        fd, name = tempfile.mkstemp(prefix=f"data-{os.getpid()}-", dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self.size = 0
        self.ascii = True

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)
        if self.ascii and not data.isascii():
            self.ascii = False

    def finish(self) -> SpooledMessage | None:
        """Close the file; the message with its header section in memory, or None when
        that section is longer than :data:`HEAD_LIMIT` (the caller reads it whole)."""
        self._file.close()
        with open(self.path, "rb") as file:
            start = file.read(HEAD_LIMIT)
        if start.startswith(b"\r\n"):
            end = 2  # no header fields at all: the body starts after the empty line
        else:
            found = start.find(b"\r\n\r\n")
            if found < 0:
                return None
            end = found + 4
        return SpooledMessage(self.path, start[:end], end, self.size, self.ascii)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def clean_spool_dir(directory: Path, pid: int | None = None) -> int:
    """Remove spool files a crashed worker left (nothing was acknowledged for them): all
    of them (at start), or those of the worker ``pid`` (that exited)."""
    removed = 0
    if not directory.is_dir():
        return 0
    for path in directory.glob("data-*" if pid is None else f"data-{pid}-*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed
