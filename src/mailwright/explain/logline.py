"""Parse the few log lines that matter: Postfix's, Exim's and mailwright's delivery events.

Pure functions over ``str`` lines (the reader decodes only lines that passed its byte
prefilter).  Two timestamp styles occur in front of Postfix lines: the classic BSD
syslog one (``Nov 24 19:00:00``, local time, no year: RFC 3164 §4.1.2) and the RFC 3339
one newer rsyslog writes (``2026-11-24T19:00:00.123456+01:00``).  Lines copied without
the syslog prefix (``postfix/smtp[9]: QUEUEID: ...``, ``QUEUEID: to=<...>``,
``event=bounced ...``) are read too; their time is unknown.

Besides the ``status=`` lines, Postfix logs a failed *attempt* (the remote reply of one
MX host, which the final status line may repeat or not) as ``QUEUEID: host H[IP] said:
...``, ``... refused to talk to me: ...``, ``lost connection with H[IP] while ...``,
``conversation with H[IP] timed out while ...`` and ``connect to H[IP]:25: ...``
(the last without a queue ID).  Exim's main log marks failures with ``**`` (bounced)
and ``==`` (deferred).
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

_TS = r"[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+"
# [TIMESTAMP HOST] [PROGRAM[PID]:] QUEUEID: rest   (the prefix is optional: pasted lines)
_POSTFIX = re.compile(
    rf"^(?:(?P<ts>{_TS}) (?P<host>\S+) )?(?:(?P<prog>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: )?"
    r"(?P<qid>[0-9A-Za-z]{5,20}): (?P<rest>.*)$"
)
# [TIMESTAMP HOST] PROGRAM[PID]: connect to H[IP]:PORT: ...   (no queue ID)
_POSTFIX_CONNECT = re.compile(
    rf"^(?:(?:{_TS}) \S+ )?(?P<prog>[^\s\[:]*smtp)\[(?P<pid>\d+)\]: (?P<rest>connect to .*)$"
)
_ATTEMPT_STARTS = ("host ", "lost connection with ", "conversation with ")
# Exim main log: DATE TIME [+ZONE] [[PID]] MSGID ** | == ADDRESS ... : REPLY
_EXIM = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [+-]\d{4})?) (?:\[\d+\] )?"
    r"(?P<id>[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}) (?P<flag>\*\*|==) "
    r"(?P<to>[^\s:]+):? ?(?P<rest>.*)$"
)
_EXIM_HOST = re.compile(r"\bH=(?P<name>\S+) \[(?P<ip>[^\]]+)\]")
_EXIM_SMTP = "SMTP error from remote mail server after "
_EXIM_REPLY = re.compile(r": (?=[2-5]\d\d\b)")
"""Where the reply starts after the stage (one linear search, never a lazy scan from
each occurrence of the marker)."""
_EXIM_DEFER = re.compile(r"\bdefer \(-?\d+\)(?:: | H=\S+ \[[^\]]*\]: )(?P<text>.*)$")
_DELIVERY = re.compile(
    r"^to=<(?P<to>[^>]*)>,(?: orig_to=<[^>]*>,)? relay=(?P<relay>[^,\s]*),.*? "
    r"dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>[a-z]+)(?: \((?P<text>.*))?$"
)
_FROM = re.compile(r"^from=<(?P<from>[^>]*)>")
_MSGID = re.compile(r"^message-id=(?P<mid>\S*)")

# [TIMESTAMP [HOST]] [mailwright[PID]:] event=NAME key=value ...  (docs/log-format.md)
_MAILWRIGHT = re.compile(
    r"^(?:(?P<ts>\d{4}-\d\d-\d\dT\S+|[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d) (?:\S+ )?"
    r"mailwright(?:\[\d+\])?: |mailwright(?:\[\d+\])?: )?event=(?P<event>[\w-]+)(?P<rest>.*)$"
)
_KV = re.compile(r' ([\w-]+)=("(?:[^"\\]|\\.)*"?|\S*)')
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|.)")


@dataclass(slots=True)
class Delivery:
    """One delivery attempt's outcome (a Postfix status line or a mailwright event)."""

    ts: str | None
    qid: str
    to: str
    relay: str
    dsn: str
    status: str
    """``sent``/``delivered``, ``deferred``, ``bounced``, ``expired``."""
    text: str
    truncated: bool = False
    attempt: str | None = None
    """For a failed attempt without a status (``host ... said``, ``connect to``): the
    key that a later status line of the same message clears (queue ID or ``prog[pid]``)."""


def parse_postfix(line: str) -> tuple[str | None, str, str, str] | None:
    """``(timestamp, program[pid], queue_id, rest)`` of a Postfix queue-ID line, else None."""
    m = _POSTFIX.match(line)
    if m is None:
        return None
    prog = f"{m.group('prog') or ''}[{m.group('pid') or ''}]"
    return m.group("ts"), prog, m.group("qid"), m.group("rest")


def reply_status(text: str) -> str:
    """``bounced`` for a 5xx reply, else ``deferred``: the status of a failure that no
    status line reports (an attempt, a pasted reply)."""
    reply = text
    for marker in (" said: ", " refused to talk to me: "):
        if marker in reply:
            reply = reply.split(marker, 1)[1]
            break
    return "bounced" if reply[:1] == "5" else "deferred"


def parse_postfix_attempt(ts: str | None, prog: str, qid: str, rest: str) -> Delivery | None:
    """A failed attempt with one MX host (``host H[IP] said: ...`` and kin), or None."""
    if not rest.startswith(_ATTEMPT_STARTS):
        return None
    if rest.startswith("host ") and " said: " not in rest and " refused to talk" not in rest:
        return None
    return Delivery(ts, qid, "", "", "", reply_status(rest), rest, attempt=qid)


def parse_postfix_connect(line: str) -> Delivery | None:
    """``smtp[PID]: connect to H[IP]:25: Connection refused`` (no queue ID: the status
    line of the same process that follows reports the message)."""
    m = _POSTFIX_CONNECT.match(line)
    if m is None:
        return None
    key = f"{m.group('prog')}[{m.group('pid')}]"
    ts = line[: line.index(m.group("prog"))].strip() or None
    if ts is not None:
        ts = ts.rpartition(" ")[0] or None  # drop the host name
    return Delivery(ts, "", "", "", "", "deferred", m.group("rest"), attempt=key)


def parse_postfix_expired(ts: str | None, qid: str, rest: str) -> Delivery | None:
    """``from=<...>, status=expired, returned to sender``."""
    if not rest.startswith("from=<") or "status=expired" not in rest:
        return None
    return Delivery(ts, qid, "", "", "", "expired", "")


def parse_exim(line: str) -> Delivery | None:
    """An Exim ``**`` (bounced) or ``==`` (deferred) main-log line, or None.

    ``retry time not reached`` lines are no attempt: None.  Exim writes the lines of a
    multi-line reply with a literal ``\\n`` between them: joined with spaces."""
    m = _EXIM.match(line)
    if m is None:
        return None
    rest = m.group("rest").replace("\\n", " ")
    if "retry time not reached" in rest:
        return None
    host = _EXIM_HOST.search(rest)
    relay = f"{host.group('name')}[{host.group('ip')}]:25" if host else "none"
    at = rest.find(_EXIM_SMTP)
    after = rest[at + len(_EXIM_SMTP) :] if at >= 0 else ""
    smtp = _EXIM_REPLY.search(after) if at >= 0 else None
    if smtp is not None:
        remote = f"{host.group('name')}[{host.group('ip')}]" if host else "unknown[]"
        stage, reply = after[: smtp.start()], after[smtp.end() :]
        text = f"host {remote} said: {reply} (in reply to {stage})"
    elif (defer := _EXIM_DEFER.search(rest)) is not None:
        text = defer.group("text")
    else:
        # "R=router T=transport: reason" or just ": reason"
        text = re.sub(r"^(?:[A-Z]{1,3}=\S+ )*(?:H=\S+ \[[^\]]*\]\S* )?", "", rest).lstrip(": ")
    status = "bounced" if m.group("flag") == "**" else "deferred"
    dsn = ""
    code = re.search(r"\b([245]\.\d{1,3}\.\d{1,3})\b", text)
    if code is not None:
        dsn = code.group(1)
    return Delivery(m.group("ts"), m.group("id"), m.group("to"), relay, dsn, status, text)


def parse_postfix_delivery(ts: str | None, qid: str, rest: str) -> Delivery | None:
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


def parse_mailwright(line: str) -> tuple[str | None, str, dict[str, str]] | None:
    """``(timestamp, event, {key: value})`` of a mailwright log line, else None."""
    m = _MAILWRIGHT.match(line)
    if m is None:
        return None
    fields = {k: _unescape(v) for k, v in _KV.findall(m.group("rest"))}
    return m.group("ts"), m.group("event"), fields


def mailwright_delivery(ts: str | None, event: str, fields: dict[str, str]) -> Delivery | None:
    """A ``deferred``/``bounced``/``delivered``/``expired`` event as a :class:`Delivery`."""
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

    def parse(self, ts: str | None) -> datetime | None:
        if ts is None:
            return None
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
                return datetime.fromisoformat(ts.replace(" +", "+").replace(" -", "-")).astimezone()
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


_REPLY_LINE = re.compile(r"^([245]\d\d)([ -])")
_PASTED_STATUS = re.compile(
    r"^(?:host \S+\[[^\]]*\]|connect to \S+\[|lost connection with |conversation with )"
)


def looks_like_reply(text: str) -> bool:
    """True when ``text`` starts like a reply a person pasted: ``550 5.7.26 ...``,
    ``550-...``, or a Postfix status text (``host H[IP] said: ...``)."""
    first = text.lstrip().split("\n", 1)[0]
    return bool(_REPLY_LINE.match(first) or _PASTED_STATUS.match(first))


def split_replies(text: str) -> list[str]:
    """Replies in pasted text, each joined to one line.

    The lines of a multi-line reply (``550-...`` up to ``550 ...``, RFC 5321 §4.2.1)
    make one reply, and so do lines that wrap its text; a final ``NNN `` line or a blank
    line ends a reply."""
    replies: list[str] = []
    current: list[str] = []
    closed = False
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            closed = True
        m = _REPLY_LINE.match(line)
        if closed and current and line:
            replies.append(" ".join(current))
            current = []
        if line:
            closed = False
            current.append(line)
        if m is not None and m.group(2) == " ":
            closed = True
    if current:
        replies.append(" ".join(current))
    return replies
