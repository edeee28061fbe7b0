"""Where the log lines come from: files (plain or gzip), rotated siblings, stdin.

A damaged input never ends the run: a gzip member corrupt in the middle is reported
with the position where decompression failed, what was read before it stays counted,
and the next file is read.
"""

from __future__ import annotations

import gzip
import io
import re
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from ..errors import UsageError
from .bounces import MAX_BOUNCE, looks_like_message, parse_bounce
from .engine import Explainer, SourceStats
from .logline import looks_like_reply, split_replies

DEFAULT_LOG = Path("/var/log/mail.log")
_ROTATED = re.compile(r"\.(\d+)(\.gz)?$")


@dataclass(frozen=True)
class Source:
    name: str
    path: Path | None
    """None for stdin."""

    def size(self) -> int | None:
        if self.path is None:
            return None
        try:
            return self.path.stat().st_size
        except OSError:
            return None


def rotated_family(log: Path) -> list[Path]:
    """``mail.log`` and its rotations, oldest first: ``mail.log.3.gz``, ``.2.gz``, ``.1``,
    then ``mail.log`` itself (logrotate's numbering, with or without compression)."""
    found: list[tuple[int, Path]] = []
    if log.parent.is_dir():
        for p in log.parent.iterdir():
            if not p.name.startswith(log.name + "."):
                continue
            m = _ROTATED.fullmatch(p.name[len(log.name) :])
            if m is not None and p.is_file():
                found.append((int(m.group(1)), p))
    paths = [p for _, p in sorted(found, key=lambda t: -t[0])]
    if log.is_file():
        paths.append(log)
    return paths


def resolve_sources(
    files: tuple[str, ...], extra_default: list[Path] | None = None
) -> list[Source]:
    """The inputs to read.  No FILE: ``/var/log/mail.log`` with its rotations (plus
    mailwright's own log when one exists); ``-``: stdin.  A missing FILE is a usage error."""
    if not files:
        paths = rotated_family(DEFAULT_LOG)
        for extra in extra_default or []:
            paths.extend(rotated_family(extra))
        if not paths:
            raise UsageError(
                f"no log found at {DEFAULT_LOG}",
                "name the log file(s), or pipe the journal in: "
                "journalctl -u postfix -o short | mailwright explain -",
            )
        return [Source(str(p), p) for p in paths]
    sources: list[Source] = []
    for f in files:
        if f == "-":
            sources.append(Source("-", None))
            continue
        p = Path(f)
        if not p.exists():
            raise UsageError(f"{f}: no such file", "check the path")
        if p.is_dir():
            raise UsageError(f"{f}: is a directory", "name the log file inside it")
        sources.append(Source(f, p))
    return sources


_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``2h``, ``30m``, ``3d``, ``1w`` ago, or an ISO date/time (local time if no offset)."""
    now = (now or datetime.now()).astimezone()
    m = _RELATIVE.match(text.lower())
    try:
        if m is not None:
            n = int(m.group(1))
            unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
            return now - timedelta(**{unit: n})
        return datetime.fromisoformat(text.strip()).astimezone()
    except OverflowError:
        # a duration past timedelta's range, or a date that local time puts before
        # year 1 or after 9999
        raise UsageError(
            f"--since {text!r} is out of range",
            "write a duration or a date between years 1 and 9999, e.g. 3d or 2026-11-24",
        ) from None
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a duration nor a date",
            "write e.g. 2h, 3d, 2026-11-24 or 2026-11-24T18:00",
        ) from None


def _reference_time(source: Source) -> datetime | None:
    """The file's modification time: the year classic syslog timestamps belong to."""
    if source.path is None:
        return None
    try:
        return datetime.fromtimestamp(source.path.stat().st_mtime).astimezone()
    except OSError:
        return None


GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952 §2.3.1: ID1, ID2


SNIFF = 64 * 1024
"""Bytes read first to tell a log from a bounce message or a pasted reply."""
_LOG_LINE = re.compile(
    rb"(?m)^(?:[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d|\d{4}-\d\d-\d\d[T ]\d\d:"
    rb"|[\w/.-]+\[\d+\]: |[0-9A-Za-z]{5,20}: [a-z-]+=|event=[a-z-]+ )"
)
"""A line of a log, also without its timestamp (``journalctl -o cat``)."""


class _Counted:
    """A byte stream that counts what was read from it (the position reported when
    decompression fails), with its first bytes already taken for the sniff."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.head = raw.read(2)
        if self.head and self.head != GZIP_MAGIC:
            self.head += raw.read(SNIFF - 2)
        self.position = 0

    @property
    def is_gzip(self) -> bool:
        return self.head == GZIP_MAGIC

    def read(self, size: int = -1) -> bytes:
        if self.head:
            head, self.head = self.head, b""
            rest = self.raw.read(size - len(head)) if size < 0 or size > len(head) else b""
            data = head + rest
        else:
            data = self.raw.read(size)
        self.position += len(data)
        return data

    def seek(self, offset: int, /) -> int:
        raise io.UnsupportedOperation("a log stream is read once, front to back")


def read_source(
    explainer: Explainer,
    source: Source,
    progress: Callable[[int], None] | None = None,
    stdin: BinaryIO | None = None,
) -> SourceStats:
    """Feed one source to ``explainer``; errors are recorded, never raised.

    Gzip is recognised by its magic bytes, not by the name, so ``zcat``-less pipes
    (``cat mail.log.2.gz | mailwright explain -``) and misnamed files work too."""
    stats = SourceStats(source.name)
    explainer.sources.append(stats)
    reference = _reference_time(source)
    if source.path is None:
        _feed(
            explainer,
            source,
            stdin if stdin is not None else sys.stdin.buffer,
            stats,
            reference,
            progress,
        )
        return stats
    try:
        raw = open(source.path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        _fail(explainer, stats, f"{source.name}: cannot open: {exc.strerror or exc}")
        return stats
    with raw:
        _feed(explainer, source, raw, stats, reference, progress)
    return stats


def _feed(
    explainer: Explainer,
    source: Source,
    raw: BinaryIO,
    stats: SourceStats,
    reference: datetime | None,
    progress: Callable[[int], None] | None,
) -> None:
    try:
        stream = _Counted(raw)
    except OSError as exc:
        _fail(explainer, stats, f"{source.name}: read error: {exc}")
        return
    cb: Callable[[], None] | None = None
    if progress is not None:
        report = progress

        def cb() -> None:
            report(stream.position)

    if not stream.is_gzip and _read_as_text(explainer, stream, stats):
        return
    if stream.is_gzip:
        try:
            with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
                explainer.consume(gz, stats, reference, cb)
        except (OSError, EOFError, zlib.error) as exc:
            _fail(
                explainer,
                stats,
                f"{source.name}: gzip data corrupt or truncated at compressed byte "
                f"{stream.position} (after {stats.bytes} bytes, {stats.lines} lines read; "
                f"those are counted): {exc}",
            )
    else:
        try:
            explainer.consume(stream, stats, reference, cb)
        except OSError as exc:
            _fail(explainer, stats, f"{source.name}: read error after {stats.bytes} bytes: {exc}")


def _read_as_text(explainer: Explainer, stream: _Counted, stats: SourceStats) -> bool:
    """A bounce message or pasted replies instead of a log: read them, return True.

    A small input in which no line is a log line and nothing was found as a log is read
    as replies too (a reply pasted without its code)."""
    head = stream.head
    if looks_like_message(head):
        data = stream.read(MAX_BOUNCE)
        stats.bytes += len(data)
        stats.lines += data.count(b"\n")
        add_bounce(explainer, data)
        return True
    text = head.decode("utf-8", "replace")
    if looks_like_reply(text):
        data = stream.read(SNIFF)  # what the head holds, and as much again at most
        stats.bytes += len(data)
        stats.lines += data.count(b"\n")
        for reply in split_replies(data.decode("utf-8", "replace")):
            explainer.add_reply(reply)
        return True
    if len(head) < SNIFF and head.strip() and _LOG_LINE.search(head) is None:
        probe = Explainer(now=explainer.now)
        probe.consume(io.BytesIO(head), SourceStats("probe"))
        if probe.failed or probe.delivered or probe.skipped_lines:
            return False  # log lines without a timestamp: the log reader takes them
        data = stream.read(SNIFF)
        stats.bytes += len(data)
        stats.lines += data.count(b"\n")
        for reply in split_replies(text):
            explainer.add_reply(reply)
        return True
    return False


def add_bounce(explainer: Explainer, data: bytes) -> int:
    """Count each failed recipient of a bounce message; the number found."""

    failed = parse_bounce(data)
    for r in failed:
        explainer.add_reply(
            r.diagnostic or f"{r.status} (the bounce gives no reply text)",
            to=r.recipient,
            remote=r.remote_mta,
            status="bounced" if r.action == "failed" else "deferred",
            dsn=r.status,
            sender=r.original_sender,
            message_id=r.original_message_id,
        )
    if not failed:
        explainer.errors.append(
            "the message is not a bounce: no failed recipient found "
            "(neither an RFC 3464 delivery-status part nor a known bounce text)"
        )
    return len(failed)


def _fail(explainer: Explainer, stats: SourceStats, message: str) -> None:
    stats.error = message
    explainer.errors.append(message)
