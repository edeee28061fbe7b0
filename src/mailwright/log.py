"""The event log: one ``key=value`` line per event, as docs/log-format.md defines.

Usage on the hot path::

    from mailwright.log import log_event
    log_event("accepted", queue_id, from_="<app@example.com>", size=5120, nrcpt=2)

The first positional argument after the event name is the queue ID (``None`` when the
event concerns no message); keyword arguments become the other keys in the order given.
A trailing underscore is dropped from a key (``from_`` → ``from``), other underscores
are kept (``next_retry``). ``None`` values are left out; lists and tuples are joined
with commas; floats are written with at most three decimals.

Each line is written with a single ``write(2)`` to stderr and to the log file (opened
``O_APPEND``), so the lines of several worker processes never interleave. Subscribers
(:meth:`EventLogger.subscribe`) see every event as a dict, in-process: the development
console and tests use that instead of parsing the file.

:func:`parse_line` is the exact inverse of the formatting, for readers of the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

Subscriber = Callable[[dict[str, str]], None]

# A value needs quotes when it has a space, '"', '=', a backslash or anything that must be
# escaped; a backslash is quoted too so that "\x41" written by us is never ambiguous.
_NEEDS_QUOTING = re.compile(r'[\s"=\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]|^$')
_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]')


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in '"\\':
        return "\\" + char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape): the byte
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"  # U+2028/2029 and lone surrogates: some readers split lines there


def value_text(value: object) -> str:
    """A value as text, before quoting: what a reader gets back from :func:`parse_line`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(v) for v in value)
    return str(value)


def format_value(value: object) -> str:
    """One value as the log writes it (quoted and escaped only when it must be)."""
    text = value_text(value)
    if _NEEDS_QUOTING.search(text) is None:
        return text
    return '"' + _ESCAPE.sub(_escape_char, text) + '"'


def format_line(
    event: str,
    queue_id: str | None,
    fields: Iterable[tuple[str, object]],
    *,
    timestamp: datetime | None = None,
    pid: int | None = None,
) -> str:
    """The full log line for one event, without the trailing newline."""
    when = (timestamp or datetime.now(UTC)).isoformat(timespec="microseconds")
    parts = [f"{when} mailwright[{pid if pid is not None else os.getpid()}]: event={event}"]
    if queue_id is not None:
        parts.append(f"id={format_value(queue_id)}")
    for key, value in fields:
        if value is None:
            continue
        parts.append(f"{key.rstrip('_')}={format_value(value)}")
    return " ".join(parts)


def format_json(
    event: str,
    queue_id: str | None,
    fields: Iterable[tuple[str, object]],
    *,
    timestamp: datetime | None = None,
    pid: int | None = None,
    with_time: bool = True,
) -> str:
    """The event as one JSON object (``[log] format = "json"``): the same keys as the text
    line, every value a string, ``timestamp`` and ``pid`` first."""
    record: dict[str, str] = {}
    if with_time:
        record["timestamp"] = (timestamp or datetime.now(UTC)).isoformat(timespec="microseconds")
    record["pid"] = str(pid if pid is not None else os.getpid())
    record["event"] = event
    if queue_id is not None:
        record["id"] = queue_id
    for key, value in fields:
        if value is not None:
            record[key.rstrip("_")] = value_text(value)
    # ensure_ascii: lone surrogates and U+2028 cannot break a line or a reader
    return json.dumps(record, ensure_ascii=True, separators=(", ", ": "))


def format_untimed(event: str, queue_id: str | None, fields: Iterable[tuple[str, object]]) -> str:
    """The text line without the timestamp and ``mailwright[PID]:`` (journald adds both)."""
    return format_line(event, queue_id, fields, timestamp=_EPOCH, pid=0).split(": ", 1)[1]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def under_journal(fd: int = 2) -> bool:
    """Whether ``fd`` is the journal stream systemd gave us (``$JOURNAL_STREAM`` is
    ``DEVICE:INODE`` of it, systemd.exec(5)); then journald timestamps each line itself."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return st.st_dev == int(device) and st.st_ino == int(inode)


LOG_FORMATS = ("text", "json")

_LINE = re.compile(r"^(?P<ts>\S+) (?P<prog>[^\[\s]+)\[(?P<pid>\d+)\]: (?P<rest>.*)$")
_PAIR = re.compile(r'\s*([^=\s]+)=("(?:[^"\\]|\\.)*"|\S*)')
_UNESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)")


def _unescape(match: re.Match[str]) -> str:
    token = match.group(1)
    if token[0] in "xu" and len(token) > 1:
        return chr(int(token[1:], 16))
    return token


def parse_line(line: str) -> dict[str, str] | None:
    """A log line back into its keys (plus ``timestamp`` and ``pid``); None if it is not one.

    Both formats: the text line and the JSON object of ``[log] format = "json"``."""
    if line.startswith("{"):
        return _parse_json(line)
    match = _LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    result = {"timestamp": match["ts"], "pid": match["pid"]}
    rest = match["rest"]
    pos = 0
    while pos < len(rest):
        pair = _PAIR.match(rest, pos)
        if pair is None or pair.end() == pos:
            return None
        key, raw = pair.group(1), pair.group(2)
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = _UNESCAPE.sub(_unescape, raw[1:-1])
        result[key] = raw
        pos = pair.end()
    return result if "event" in result else None


def _parse_json(line: str) -> dict[str, str] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        return None
    return {str(k): v if isinstance(v, str) else str(v) for k, v in record.items()}


class EventLogger:
    """Writes event lines to stderr and a file and hands them to in-process subscribers."""

    def __init__(self, *, stderr: bool = True, path: Path | None = None) -> None:
        self._stderr = stderr
        self._fd: int | None = None
        self._path: Path | None = None
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._format = "text"
        self._journal = under_journal()
        if path is not None:
            self.open(path)

    @property
    def path(self) -> Path | None:
        return self._path

    def open(self, path: Path) -> None:
        """(Re)open the log file: on start and on SIGHUP, so logrotate can move the file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        with self._lock:
            old, self._fd, self._path = self._fd, fd, path
        if old is not None:
            os.close(old)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def set_stderr(self, enabled: bool) -> None:
        self._stderr = enabled

    def set_format(self, fmt: str) -> None:
        """``text`` or ``json`` (``[log] format``); also looks again whether stderr is
        the journal, where lines go without a timestamp of ours."""
        if fmt not in LOG_FORMATS:
            raise ValueError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
        self._format = fmt
        self._journal = under_journal()

    @property
    def format(self) -> str:
        return self._format

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(fields)`` for every event; returns the function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def event(self, event: str, queue_id: str | None = None, /, **fields: object) -> str:
        """Write one event line and return it (without the newline)."""
        now = datetime.now(UTC)
        if self._format == "json":
            line = format_json(event, queue_id, fields.items(), timestamp=now)
        else:
            line = format_line(event, queue_id, fields.items(), timestamp=now)
        data = (line + "\n").encode("utf-8", "backslashreplace")
        if self._stderr:
            console = data
            if self._journal:  # journald stamps time and mailwright[PID] itself
                if self._format == "json":
                    untimed = format_json(event, queue_id, fields.items(), with_time=False)
                else:
                    untimed = format_untimed(event, queue_id, fields.items())
                console = (untimed + "\n").encode("utf-8", "backslashreplace")
            # stderr closed, or replaced by something without a descriptor: carry on
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.write(sys.stderr.fileno(), console)
        fd = self._fd
        if fd is not None:
            # a full disk must not stop mail here; the queue's own writes fail loudly
            with contextlib.suppress(OSError):
                os.write(fd, data)
        if self._subscribers:
            record: dict[str, str] = {"event": event}
            if queue_id is not None:
                record["id"] = queue_id
            for key, value in fields.items():
                if value is not None:
                    record[key.rstrip("_")] = value_text(value)
            for callback in list(self._subscribers):
                with contextlib.suppress(Exception):  # a broken subscriber must not break us
                    callback(record)
        return line


logger = EventLogger()
"""The process-wide logger; :func:`mailwright.server` opens its file at start."""


def log_event(event: str, queue_id: str | None = None, /, **fields: object) -> str:
    """Write one event with the process-wide :data:`logger`."""
    return logger.event(event, queue_id, **fields)


def angle(address: str | None) -> str:
    """An address as the log writes it: ``<a@b>``, ``<>`` for the null reverse path."""
    return f"<{address or ''}>"


@contextmanager
def captured_events() -> Iterator[list[dict[str, str]]]:
    """Collect the events logged inside the block (for tests)."""
    events: list[dict[str, str]] = []
    unsubscribe = logger.subscribe(events.append)
    try:
        yield events
    finally:
        unsubscribe()
