"""The streaming core: bytes in, per-cause aggregates out, in bounded memory.

Speed comes from not looking at most lines: a mail log is mostly connects,
disconnects, successful deliveries and other daemons' chatter.  Each 1 MiB read is
searched in place with ``bytes.find``/``bytes.count`` (C speed) for the few needles that
mark a failure (``status=deferred``, ``status=bounced``, mailwright's ``event=...``);
only those lines are decoded and parsed, successes are only counted.  No Python code
runs per ordinary line.

A failed message is followed back by its queue ID to its sender (qmgr's ``from=``) and
Message-ID (cleanup's ``message-id=``), searched backwards in the current and previous
read; what is found is remembered per queue ID for later retries, in an LRU of at most
``MAX_QUEUE_IDS`` entries.  Every other container that grows with the log is bounded
too: examples per cause, recipient domains per cause, unrecognised texts per host and
in all, the reply-classification cache.  Counts stay exact; only the lists are capped.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .causes import CAUSE_ORDER, CAUSES
from .classify import Verdict, cache_key, classify
from .logline import (
    Clock,
    Delivery,
    mailwright_delivery,
    parse_mailwright,
    parse_postfix,
    parse_postfix_delivery,
)

CHUNK_SIZE = 1 << 20
MAX_LINE = 64 * 1024
"""Longer lines are not log lines (syslog truncates far earlier): skipped."""
MAX_QUEUE_IDS = 50_000
MAX_EXAMPLES = 20
MAX_DOMAINS = 10_000
MAX_LISTS = 100
MAX_UNKNOWN_HOSTS = 1_000
MAX_UNKNOWN_TEXTS = 50
MAX_UNKNOWN_LINES = 2_000
"""Verbatim unrecognised lines kept in all (each distinct text once; all are counted)."""
WINDOW = 1 << 20
"""How far back (besides the current chunk) a failed message's from= line is searched."""
MAX_SKIPPED_SAMPLES = 20
MAX_SAMPLE = 4096
"""Verbatim lines kept in the report are cut here (a syslog line is at most a few KB)."""


# Lines worth parsing.  Successful deliveries and expiries are only counted.
_NEEDLES = (b"status=deferred", b"status=bounced")
_MW_NEEDLES = (b"event=deferred", b"event=bounced")
_MW_FROM = re.compile(rb"(?:^| )from=<([^>]*)>")


class Readable(Protocol):
    """What :meth:`Explainer.consume` needs: a file, a GzipFile, stdin's buffer."""

    def read(self, size: int, /) -> bytes: ...


def _clip(line: str) -> str:
    return line if len(line) <= MAX_SAMPLE else line[:MAX_SAMPLE] + "…"


@dataclass
class CauseStats:
    cause: str
    count: int = 0
    bounced: int = 0
    deferred: int = 0
    first: datetime | None = None
    last: datetime | None = None
    sample: str = ""
    domains: Counter[str] = field(default_factory=Counter)
    lists: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        info = CAUSES[self.cause]
        # the specific ids first (dnsbl:zen.spamhaus.org before dnsbl:*), then by count
        checks = sorted(self.checks, key=lambda c: (c.endswith(":*"), -self.checks[c], c))
        check = checks[0] if checks else info.check
        return {
            "cause": self.cause,
            "title": info.title,
            "count": self.count,
            "bounced": self.bounced,
            "deferred": self.deferred,
            "recipient_domains": [d for d, _ in self.domains.most_common(50)],
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "sample": self.sample,
            "fix": info.fix,
            "check": check,
            "checks": checks,
            "lists": [name for name, _ in self.lists.most_common()],
            "examples": list(self.examples),
        }


@dataclass
class UnknownHost:
    """Unrecognised replies of one remote host: each distinct (masked) text once."""

    host: str
    count: int = 0
    texts: dict[str, list[Any]] = field(default_factory=dict)
    """masked reply → [count, first verbatim line]"""
    other_texts: int = 0


@dataclass
class SourceStats:
    name: str
    bytes: int = 0
    lines: int = 0
    error: str | None = None


class Explainer:
    """Feed it log streams with :meth:`consume`; read the result with :meth:`to_json`."""

    def __init__(self, since: datetime | None = None, now: datetime | None = None) -> None:
        self.since = since
        self.now = (now or datetime.now()).astimezone()
        self.causes: dict[str, CauseStats] = {}
        self.unknown_hosts: dict[str, UnknownHost] = {}
        self.other_unknown_hosts = 0
        self.queue: OrderedDict[str, list[str | None]] = OrderedDict()
        self.sources: list[SourceStats] = []
        self.errors: list[str] = []
        self.skipped_lines = 0
        self.skipped_samples: list[str] = []
        self.delivered = 0
        self.expired = 0
        self.truncated = 0
        self._clock = Clock(self.now)
        self._window: tuple[bytes, int, int] = (b"", 0, 0)
        self._current: tuple[bytes, int, int] = (b"", 0, 0)
        self._head = b""
        """The line that straddled the last two reads (between window and current)."""
        self._unknown_lines = 0

    # --- input ---------------------------------------------------------------------

    def consume(
        self,
        stream: Readable,
        source: SourceStats,
        reference: datetime | None = None,
        progress: Callable[[], None] | None = None,
    ) -> None:
        """Read ``stream`` to the end; an exception from the stream propagates, with
        everything read before it already counted (the caller records the error)."""
        self._clock = Clock(reference or self.now)
        if not any(s is source for s in self.sources):
            self.sources.append(source)
        read = stream.read
        tail = b""
        discarding = False
        self._window = (b"", 0, 0)
        while True:
            data = read(CHUNK_SIZE)
            if not data:
                break
            source.bytes += len(data)
            first = data.find(b"\n")
            if first < 0:  # no line ends in this chunk
                if not discarding:
                    tail += data
                    if len(tail) > MAX_LINE:
                        tail = b""
                        discarding = True
                        self.skipped_lines += 1
                continue
            # The line that straddles the previous chunk is handled on its own; the rest
            # of ``data`` is scanned in place (ranges, no copy of the megabyte).
            if discarding:
                discarding = False
                source.lines += 1
            else:
                head = tail + data[: first + 1]
                source.lines += 1
                self._chunk(head, 0, len(head), window=False)
                self._head = head
            last = data.rfind(b"\n")
            source.lines += data.count(b"\n", first + 1, last + 1)
            self._chunk(data, first + 1, last + 1)
            tail = data[last + 1 :]
            if len(tail) > MAX_LINE:
                tail = b""
                discarding = True
                self.skipped_lines += 1
            if progress is not None:
                progress()
        if tail and not discarding:
            source.lines += 1
            tail += b"\n"
            self._chunk(tail, 0, len(tail))
        self._window = (b"", 0, 0)

    def _chunk(self, buf: bytes, lo: int, hi: int, window: bool = True) -> None:
        """Handle the complete lines in ``buf[lo:hi]``.  Only lines holding a needle are
        looked at, found with ``bytes.find`` (C speed); successes are only counted."""
        if lo >= hi:
            return
        self.delivered += buf.count(b"status=sent", lo, hi)
        self.expired += buf.count(b"status=expired", lo, hi)
        needles: tuple[bytes, ...] = _NEEDLES
        if buf.find(b"mailwright[", lo, hi) >= 0:
            self.delivered += buf.count(b"event=delivered", lo, hi)
            self.expired += buf.count(b"event=expired", lo, hi)
            needles = _NEEDLES + _MW_NEEDLES
        starts: list[int] = []
        find = buf.find
        for needle in needles:
            pos = find(needle, lo, hi)
            while pos >= 0:
                nl = buf.rfind(b"\n", lo, pos)
                starts.append(nl + 1 if nl >= 0 else lo)
                pos = find(needle, find(b"\n", pos, hi), hi)
        if starts:
            self._current = (buf, lo, hi)
            for start in sorted(set(starts)):
                self._line(buf[start : find(b"\n", start, hi)], start)
            self._current = (b"", 0, 0)
        if window:  # the lines before the next chunk's events: where their from= lines are
            self._window = (buf, lo, hi)

    def _line(self, raw: bytes, offset: int) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        parsed = parse_postfix(line)
        if parsed is not None:
            ts, _prog, qid, rest = parsed
            d = parse_postfix_delivery(ts, qid, rest) if rest.startswith("to=") else None
        elif "mailwright" in line and (mw := parse_mailwright(line)) is not None:
            d = mailwright_delivery(*mw)
        elif "postfix" in line or "mailwright" in line:
            d = None  # looked like a delivery event of ours
        else:
            return  # another program's line that happens to hold a needle
        if d is None:
            self._skip(line)
        else:
            self._delivery(d, line, offset)

    def _skip(self, line: str) -> None:
        """A line that looked like a delivery event but did not parse: counted, and the
        first ones kept verbatim so that nothing is hidden."""
        self.skipped_lines += 1
        if len(self.skipped_samples) < MAX_SKIPPED_SAMPLES:
            self.skipped_samples.append(_clip(line))

    def _follow(self, d: Delivery, offset: int) -> list[str | None]:
        """Sender and Message-ID of a failed message, found by its queue ID.

        Postfix's qmgr logs ``QUEUEID: from=<...>`` each time the message enters the
        active queue, just before the delivery attempt; cleanup logs the message-id once
        at receipt (mailwright: ``event=accepted id=QUEUEID from=<...>``).  They are
        searched backwards in the current and previous chunk, and remembered (bounded,
        oldest evicted) for the message's later retries.
        """
        entry = self.queue.get(d.qid)
        if entry is not None:
            self.queue.move_to_end(d.qid)
            if entry[0] is not None and entry[1] is not None:
                return entry
        else:
            entry = [None, None]
            self.queue[d.qid] = entry
            if len(self.queue) > MAX_QUEUE_IDS:
                self.queue.popitem(last=False)
        qid = d.qid.encode("ascii", "replace")
        for needle, slot, stop in (
            (b" " + qid + b": from=<", 0, b">"),
            (b" " + qid + b": message-id=", 1, b"\n"),
            (b"event=accepted id=" + qid + b" ", 0, b"\n"),
        ):
            if entry[slot] is not None:
                continue
            cur, cur_lo, _ = self._current
            win, win_lo, win_hi = self._window
            head = self._head if cur is not self._head else b""
            for hay, lo, limit in (
                (cur, cur_lo, offset),
                (head, 0, len(head)),
                (win, max(win_lo, win_hi - WINDOW), win_hi),
            ):
                pos = hay.rfind(needle, lo, limit)
                if pos < 0:
                    continue
                begin = pos + len(needle)
                value = hay[begin : hay.find(stop, begin)]
                if slot == 0 and stop == b"\n":  # mailwright: from=<...> among the keys
                    m = _MW_FROM.search(value)
                    if m is None:
                        continue
                    value = m.group(1)
                entry[slot] = value.decode("utf-8", "replace").strip()
                break
        return entry

    # --- one deferral or bounce ----------------------------------------------------

    def _delivery(self, d: Delivery, line: str, offset: int) -> None:
        if d.status not in ("deferred", "bounced"):
            return  # successes and expiries are counted in _chunk
        when = self._clock.parse(d.ts)
        if self.since is not None and (when is None or when < self.since):
            return
        if d.truncated:
            self.truncated += 1
        verdict, st = classify(d.text, d.dsn)
        remote = st.host or _relay_host(d.relay)
        stats = self.causes.get(verdict.cause)
        if stats is None:
            stats = self.causes[verdict.cause] = CauseStats(verdict.cause)
        stats.count += 1
        if d.status == "bounced":
            stats.bounced += 1
        else:
            stats.deferred += 1
        if when is not None:
            if stats.first is None or when < stats.first:
                stats.first = when
            if stats.last is None or when > stats.last:
                stats.last = when
        if not stats.sample:
            stats.sample = _clip(line)
        domain = d.to.rpartition("@")[2].lower() or "(none)"
        if domain in stats.domains or len(stats.domains) < MAX_DOMAINS:
            stats.domains[domain] += 1
        # list names and their check ids come from replies: bounded like the domains
        if verdict.listname and (verdict.listname in stats.lists or len(stats.lists) < MAX_LISTS):
            stats.lists[verdict.listname] += 1
        if verdict.check and (verdict.check in stats.checks or len(stats.checks) < MAX_LISTS):
            stats.checks[verdict.check] += 1
        if len(stats.examples) < MAX_EXAMPLES:  # the first ones: each is followed by queue ID
            stats.examples.append(self._example(d, when, verdict, remote, offset))
        if verdict.cause == "unknown":
            self._unknown(remote or "(no remote host)", st.reply, line)

    def _example(
        self, d: Delivery, when: datetime | None, v: Verdict, remote: str | None, offset: int
    ) -> dict[str, Any]:
        sender, message_id = self._follow(d, offset)
        return {
            "time": when.isoformat() if when else d.ts,
            "queue_id": d.qid,
            "from": sender,
            "message_id": message_id,
            "to": d.to,
            "status": d.status,
            "dsn": d.dsn,
            "remote_host": remote,
            "rule": v.rule,
            "list": v.listname,
            "text": _clip(d.text),
            "truncated": d.truncated,
        }

    def _unknown(self, host: str, reply: str, line: str) -> None:
        group = self.unknown_hosts.get(host)
        if group is None:
            if len(self.unknown_hosts) >= MAX_UNKNOWN_HOSTS:
                self.other_unknown_hosts += 1
                return
            group = self.unknown_hosts[host] = UnknownHost(host)
        group.count += 1
        key = cache_key(reply)
        entry = group.texts.get(key)
        if entry is not None:
            entry[0] += 1
        elif len(group.texts) < MAX_UNKNOWN_TEXTS and self._unknown_lines < MAX_UNKNOWN_LINES:
            group.texts[key] = [1, _clip(line)]
            self._unknown_lines += 1
        else:
            group.other_texts += 1

    # --- output --------------------------------------------------------------------

    def sorted_causes(self) -> list[CauseStats]:
        return sorted(self.causes.values(), key=lambda s: (-s.count, CAUSE_ORDER[s.cause]))

    def to_json(self) -> dict[str, Any]:
        """The documented ``--json`` schema (README.md, section "explain")."""
        return {
            "causes": [s.to_json() for s in self.sorted_causes()],
            "unrecognised": [
                {
                    "remote_host": g.host,
                    "count": g.count,
                    "lines": [{"count": c, "line": ln} for c, ln in g.texts.values()],
                    "more_distinct_texts": g.other_texts,
                }
                for g in sorted(self.unknown_hosts.values(), key=lambda g: -g.count)
            ],
            "totals": {
                "deferred": sum(s.deferred for s in self.causes.values()),
                "bounced": sum(s.bounced for s in self.causes.values()),
                "delivered": self.delivered,
                "expired": self.expired,
                "truncated_lines": self.truncated,
                "lines": sum(s.lines for s in self.sources),
                "bytes": sum(s.bytes for s in self.sources),
            },
            "since": self.since.isoformat() if self.since else None,
            "files": [
                {"name": s.name, "bytes": s.bytes, "lines": s.lines, "error": s.error}
                for s in self.sources
            ],
            "skipped_lines": self.skipped_lines,
            "skipped_samples": list(self.skipped_samples),
            "errors": list(self.errors),
        }


def _relay_host(relay: str) -> str | None:
    """``mx.example.net[203.0.113.5]:25`` → ``mx.example.net[203.0.113.5]``."""
    if not relay or relay == "none":
        return None
    if "]" in relay:
        return relay[: relay.rindex("]") + 1]
    return relay
