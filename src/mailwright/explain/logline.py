"""Parse the few log lines that matter: Postfix's and mailwright's delivery events.

Pure functions over ``str`` lines (the reader decodes only lines that passed its byte
prefilter).  Two timestamp styles occur in front of Postfix lines: the classic BSD
syslog one (``Nov 24 19:00:00``, local time, no year: RFC 3164 §4.1.2) and the RFC 3339
one newer rsyslog writes (``2026-11-24T19:00:00.123456+01:00``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}

# TIMESTAMP HOST PROGRAM[PID]: QUEUEID: rest
_POSTFIX = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) (?P<host>\S+) "
    r"(?P<prog>[^\s\[:]+)(?:\[\d+\])?: (?P<qid>[0-9A-Za-z]{5,20}): (?P<rest>.*)$"
)
_DELIVERY = re.compile(
    r"^to=<(?P<to>[^>]*)>,(?: orig_to=<[^>]*>,)? relay=(?P<relay>[^,\s]*),.*? "
    r"dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>[a-z]+)(?: \((?P<text>.*))?$"
)
_FROM = re.compile(r"^from=<(?P<from>[^>]*)>")
_MSGID = re.compile(r"^message-id=(?P<mid>\S*)")

# TIMESTAMP [HOST] mailwright[PID]: event=NAME key=value ...  (docs/log-format.md)
_MAILWRIGHT = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\S+|[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d) (?:\S+ )?"
    r"mailwright(?:\[\d+\])?: event=(?P<event>[\w-]+)(?P<rest>.*)$"
)
_KV = re.compile(r' ([\w-]+)=("(?:[^"\\]|\\.)*"?|\S*)')
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|.)")


@dataclass(slots=True)
class Delivery:
    """One delivery attempt's outcome (a Postfix status line or a mailwright event)."""

    ts: str
    qid: str
    to: str
    relay: str
    dsn: str
    status: str
    """``sent``/``delivered``, ``deferred``, ``bounced``, ``expired``."""
    text: str
    truncated: bool = False


def parse_postfix(line: str) -> tuple[str, str, str, str] | None:
    """``(timestamp, program, queue_id, rest)`` of a Postfix queue-ID line, else None."""
    m = _POSTFIX.match(line)
    if m is None:
        return None
    return m.group("ts"), m.group("prog"), m.group("qid"), m.group("rest")


def parse_postfix_delivery(ts: str, qid: str, rest: str) -> Delivery | None:
    """A ``to=<...>, relay=..., dsn=..., status=... (text)`` line, or None."""
    m = _DELIVERY.match(rest)
    if m is None:
        return None
    text = m.group("text") or ""
    truncated = False
    if text.endswith(")"):
        text = text[:-1]
    elif m.group("text") is not None:
        truncated = True  # syslog cut the line: classify what is there
    return Delivery(
        ts,
        qid,
        m.group("to"),
        m.group("relay"),
        m.group("dsn"),
        m.group("status"),
        text,
        truncated,
    )


def parse_from(rest: str) -> str | None:
    m = _FROM.match(rest)
    return m.group("from") if m else None


def parse_message_id(rest: str) -> str | None:
    m = _MSGID.match(rest)
    return m.group("mid") if m else None


def _unescape(value: str) -> str:
    if not value.startswith('"'):
        return value
    value = value[1:-1] if len(value) > 1 and value.endswith('"') else value[1:]

    def one(m: re.Match[str]) -> str:
        s = m.group(1)
        if len(s) > 1 and s[0] in "xu":  # \xNN, \uNNNN (mailwright.log escapes)
            code = int(s[1:], 16)
            # a lone surrogate cannot be printed or written as UTF-8: U+FFFD instead
            return "\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)
        return s

    return _ESCAPE.sub(one, value)


def parse_mailwright(line: str) -> tuple[str, str, dict[str, str]] | None:
    """``(timestamp, event, {key: value})`` of a mailwright log line, else None."""
    m = _MAILWRIGHT.match(line)
    if m is None:
        return None
    fields = {k: _unescape(v) for k, v in _KV.findall(m.group("rest"))}
    return m.group("ts"), m.group("event"), fields


def mailwright_delivery(ts: str, event: str, fields: dict[str, str]) -> Delivery | None:
    """A ``deferred``/``bounced``/``delivered`` event as a :class:`Delivery`."""
    qid = fields.get("id")
    if qid is None:
        return None
    to = fields.get("to", "")
    if to.startswith("<") and to.endswith(">"):
        to = to[1:-1]
    return Delivery(
        ts,
        qid,
        to,
        fields.get("relay", "none"),
        fields.get("dsn", ""),
        event,
        fields.get("reply", ""),
    )


class Clock:
    """Turns log timestamps into aware datetimes, guessing the year of classic ones.

    A classic timestamp has no year (RFC 3164): it is taken from ``reference`` (the
    file's modification time), minus one when that would put it in the future.
    """

    def __init__(self, reference: datetime) -> None:
        self.reference = reference.astimezone()
        self._cache: dict[str, datetime | None] = {}
        self._hours: dict[str, datetime | None] = {}

    def parse(self, ts: str) -> datetime | None:
        if ts in self._cache:
            return self._cache[ts]
        if len(self._cache) > 4096:
            self._cache.clear()
        value = self._parse(ts)
        self._cache[ts] = value
        return value

    def _parse(self, ts: str) -> datetime | None:
        try:
            if ts[:1].isdigit():
                return datetime.fromisoformat(ts).astimezone()
            # "Nov 24 19:00:00": the local hour is resolved once (time zone, year), the
            # minutes and seconds are added to it.
            head, _, rest = ts.rpartition(" ")
            hour_s, mi, s = rest.split(":")
            base = self._hour(f"{head} {hour_s}")
            if base is None:
                return None
            return base + timedelta(minutes=int(mi), seconds=int(s))
        except (ValueError, OverflowError):
            # OverflowError: an offset pushes a date near year 1 or 9999 out of range
            # when converted to local time; the line still counts, its time is unknown.
            return None

    def _hour(self, key: str) -> datetime | None:
        if key in self._hours:
            return self._hours[key]
        if len(self._hours) > 4096:
            self._hours.clear()
        value: datetime | None = None
        month = _MONTHS.get(key[:3])
        if month is not None:
            day_s, hour_s = key[3:].split()
            year = self.reference.year
            try:
                value = datetime(year, month, int(day_s), int(hour_s)).astimezone()
                if value > self.reference + timedelta(days=1):
                    value = value.replace(year=year - 1)
            except ValueError:
                value = None
        self._hours[key] = value
        return value
