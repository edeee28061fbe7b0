"""Where the log lines come from: files (plain or gzip), rotated siblings, stdin.

A damaged input never ends the run: a gzip member corrupt in the middle is reported
with the position where decompression failed, what was read before it stays counted,
and the next file is read.
"""

from __future__ import annotations

import gzip
import re
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from ..errors import UsageError
from .engine import Explainer, SourceStats

DEFAULT_LOG = Path("/var/log/mail.log")
_ROTATED = re.compile(r"\.(\d+)(\.gz)?$")


@dataclass(frozen=True)
class Source:
    name: str
    path: Path | None
    """None for stdin."""

    @property
    def is_gzip(self) -> bool:
        return self.path is not None and self.path.suffix == ".gz"

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
    if m is not None:
        n = int(m.group(1))
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        return now - timedelta(**{unit: n})
    try:
        return datetime.fromisoformat(text.strip()).astimezone()
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


class _Counting:
    """Wraps the compressed file to know how far decompression got when it fails."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw

    def position(self) -> int:
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return -1


def read_source(
    explainer: Explainer,
    source: Source,
    progress: Callable[[int], None] | None = None,
    stdin: BinaryIO | None = None,
) -> SourceStats:
    """Feed one source to ``explainer``; errors are recorded, never raised."""
    stats = SourceStats(source.name)
    explainer.sources.append(stats)
    reference = _reference_time(source)
    if source.path is None:
        stream = stdin if stdin is not None else sys.stdin.buffer
        explainer.consume(stream, stats, reference, None)
        return stats
    raw: BinaryIO
    try:
        raw = open(source.path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        _fail(explainer, stats, f"{source.name}: cannot open: {exc.strerror or exc}")
        return stats
    try:
        counter = _Counting(raw)
        cb: Callable[[], None] | None = None
        if progress is not None:
            report = progress

            def cb() -> None:
                report(counter.position())

        if source.is_gzip:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                try:
                    explainer.consume(gz, stats, reference, cb)  # type: ignore[arg-type]
                except (OSError, EOFError, zlib.error) as exc:
                    _fail(
                        explainer,
                        stats,
                        f"{source.name}: gzip data corrupt or truncated at compressed byte "
                        f"{counter.position()} (after {stats.bytes} bytes, {stats.lines} lines "
                        f"read; those are counted): {exc}",
                    )
        else:
            try:
                explainer.consume(raw, stats, reference, cb)
            except OSError as exc:
                _fail(
                    explainer, stats, f"{source.name}: read error after {stats.bytes} bytes: {exc}"
                )
    finally:
        raw.close()
    return stats


def _fail(explainer: Explainer, stats: SourceStats, message: str) -> None:
    stats.error = message
    explainer.errors.append(message)
