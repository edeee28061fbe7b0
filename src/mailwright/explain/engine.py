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

from ..causes.classify import StatusText, Verdict, cache_key, classify, mask
from ..causes.vocabulary import CAUSE_ORDER, CAUSES
from .logline import (
    Clock,
    Delivery,
    mailwright_delivery,
    parse_exim,
    parse_mailwright,
    parse_postfix,
    parse_postfix_attempt,
    parse_postfix_connect,
    parse_postfix_delivery,
    parse_postfix_expired,
    reply_status,
)
from .refusals import explain_refusal

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


# Lines worth parsing.  Successful deliveries are only counted (and parsed only while
# failed attempts wait for their message's status line).
_NEEDLES = (
    b"status=deferred",
    b"status=bounced",
    b"status=expired",
    b" said: ",
    b" refused to talk to me: ",
    b": lost connection with ",
    b": conversation with ",
    b": connect to ",
    b" ** ",  # Exim: bounced
    b" == ",  # Exim: deferred
)
_MW_NEEDLES = (b"event=deferred", b"event=bounced", b"event=expired", b"event=rejected")
_SUCCESS_NEEDLES = (b"status=sent", b"event=delivered")
_MW_FROM = re.compile(rb"(?:^| )from=<([^>]*)>")
MAX_PENDING = 10_000
"""Failed attempts waiting for their status line; the oldest is counted when full."""


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
    expired: int = 0
    first: datetime | None = None
    last: datetime | None = None
    sample: str = ""
    domains: Counter[str] = field(default_factory=Counter)
    lists: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    sender_domains: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    """``direct`` (to the recipient's MX, port 25) or ``relay`` (a relay host's port)."""
    advice: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    """(provider, code) → [count, advice text]"""

    def to_json(self, own_domain: str | None = None, relay_mode: bool = False) -> dict[str, Any]:
        info = CAUSES[self.cause]
        # the specific ids first (dnsbl:zen.spamhaus.org before dnsbl:*), then by count
        checks = sorted(self.checks, key=lambda c: (c.endswith(":*"), -self.checks[c], c))
        check = checks[0] if checks else info.check
        recipient_domain = next(
            iter(d for d, _ in self.domains.most_common() if d != "(none)"), None
        )
        sender_domain = own_domain or next(
            iter(d for d, _ in self.sender_domains.most_common()), None
        )
        whose = recipient_domain if self.cause == "recipient-domain-dns" else sender_domain
        fix = info.fix
        if info.fix_relay is not None and (
            relay_mode or (self.routes["relay"] and not self.routes["direct"])
        ):
            fix = info.fix_relay  # "your provider blocks port 25" is no answer through a relay
        if recipient_domain is not None:
            fix = fix.replace("RECIPIENT-DOMAIN", recipient_domain)
        return {
            "cause": self.cause,
            "title": info.title,
            "count": self.count,
            "bounced": self.bounced,
            "deferred": self.deferred,
            "expired": self.expired,
            "recipient_domains": [d for d, _ in self.domains.most_common(50)],
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "sample": self.sample,
            "fix": fix,
            "advice": [
                {"provider": provider, "code": code, "count": n, "fix": text}
                for (provider, code), (n, text) in sorted(
                    self.advice.items(), key=lambda kv: -int(kv[1][0])
                )
            ],
            "check": check,
            "checks": checks,
            "confirm": (
                f"mailwright check {whose}" if check is not None and whose is not None else None
            ),
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
class Refusal:
    """One of our own refusals (``event=rejected``), grouped by stage and masked reply."""

    stage: str
    reply: str
    count: int = 0
    sample: str = ""
    clients: Counter[str] = field(default_factory=Counter)


@dataclass
class _Event:
    """A failure ready to be counted (an attempt waits in ``pending`` for its status)."""

    d: Delivery
    line: str
    when: datetime | None
    verdict: Verdict
    st: StatusText
    example: dict[str, Any] | None = None
    age: int = 0
    offset: int = 0


@dataclass
class SourceStats:
    name: str
    bytes: int = 0
    lines: int = 0
    error: str | None = None


class Explainer:
    """Feed it log streams with :meth:`consume`; read the result with :meth:`to_json`."""

    def __init__(
        self,
        since: datetime | None = None,
        now: datetime | None = None,
        own_domain: str | None = None,
        relay_mode: bool = False,
    ) -> None:
        self.since = since
        self.own_domain = own_domain
        """Fills the DOMAIN of ``mailwright check DOMAIN`` (else the senders' domain)."""
        self.relay_mode = relay_mode
        """Mail leaves through a relay host (config ``mode = "relay"``)."""
        self.pending: OrderedDict[str, list[_Event]] = OrderedDict()
        self.last_failure: OrderedDict[str, _Event] = OrderedDict()
        self.refusals: dict[tuple[str, str], Refusal] = {}
        self.refused = 0
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
        self.finish()

    def finish(self) -> None:
        """Count the failed attempts no status line followed (a pasted line, a log cut
        right after it).  Idempotent; :meth:`to_json` calls it."""
        while self.pending:
            _, events = self.pending.popitem(last=False)
            for event in events:
                self._record(event)

    def _chunk(self, buf: bytes, lo: int, hi: int, window: bool = True) -> None:
        """Handle the complete lines in ``buf[lo:hi]``.  Only lines holding a needle are
        looked at, found with ``bytes.find`` (C speed); successes are only counted."""
        if lo >= hi:
            return
        self.delivered += buf.count(b"status=sent", lo, hi)
        self.expired += buf.count(b"status=expired", lo, hi)
        needles: tuple[bytes, ...] = _NEEDLES
        if buf.find(b"event=", lo, hi) >= 0:
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
        if self.pending:
            self._resolve_pending(buf, lo, hi, window)
        if window:  # the lines before the next chunk's events: where their from= lines are
            self._window = (buf, lo, hi)

    def _resolve_pending(self, buf: bytes, lo: int, hi: int, window: bool) -> None:
        """Drop the attempts whose message was then delivered (a backup MX took it);
        count those that saw no status line within this and the next read (Postfix logs
        the status right after the last MX was tried)."""
        for key in list(self.pending):
            events = self.pending[key]
            start = max(lo, max(e.offset for e in events) if events[0].age == 0 else lo)
            if key.endswith("]"):  # prog[pid]: that process's next delivery line
                needle = b" " + key.encode("utf-8", "replace") + b": "
                pos = buf.find(needle, start, hi)
                while pos >= 0:
                    end = buf.find(b"\n", pos, hi)
                    line = buf[pos : end if end >= 0 else hi]
                    if b"status=sent" in line:
                        del self.pending[key]
                        break
                    pos = buf.find(needle, pos + 1, hi)
            else:
                qid = key.encode("utf-8", "replace")
                for needle in (b" " + qid + b": to=<", b"event=delivered id=" + qid + b" "):
                    if buf.find(needle, start, hi) >= 0:
                        self.pending.pop(key, None)
                        break
            if key in self.pending and window:
                for e in events:
                    e.age += 1
                if events[0].age >= 2:
                    del self.pending[key]
                    for e in events:
                        self._record(e)

    def _line(self, raw: bytes, offset: int) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        d: Delivery | None
        if "event=" in line and (mw := parse_mailwright(line)) is not None:
            if mw[1] == "rejected":
                self._refusal(mw[0], mw[2], line)
                return
            d = mailwright_delivery(*mw)
            if d is not None:
                self.pending.pop(d.qid, None)
        elif (parsed := parse_postfix(line)) is not None:
            ts, prog, qid, rest = parsed
            if rest.startswith("to="):
                d = parse_postfix_delivery(ts, qid, rest)
                if d is not None:  # the status line reports the message: attempts are moot
                    self.pending.pop(qid, None)
                    self.pending.pop(prog, None)
            elif rest.startswith("from="):
                d = parse_postfix_expired(ts, qid, rest)
                if d is None:
                    return
            else:
                d = parse_postfix_attempt(ts, prog, qid, rest)
                if d is None:
                    return  # some other line quoting a reply
        elif (d := parse_postfix_connect(line)) is not None or (d := parse_exim(line)) is not None:
            pass
        elif "postfix" in line or "mailwright" in line:
            d = None  # looked like a delivery event of ours
        else:
            return  # another program's line that happens to hold a needle
        if d is None:
            self._skip(line)
        else:
            self._delivery(d, line, offset)

    def _refusal(self, ts: str | None, fields: dict[str, str], line: str) -> None:
        """One of our own refusals: counted per stage and reply, not a delivery failure."""
        when = self._clock.parse(ts)
        if self.since is not None and (when is None or when < self.since):
            return
        self.refused += 1
        stage = fields.get("stage", "")
        reply = fields.get("reply", "")
        key = (stage, mask(reply))
        entry = self.refusals.get(key)
        if entry is None:
            if len(self.refusals) >= MAX_UNKNOWN_LINES:
                return
            entry = self.refusals[key] = Refusal(stage, reply, sample=_clip(line))
        entry.count += 1
        client = fields.get("client")
        if client and (client in entry.clients or len(entry.clients) < MAX_LISTS):
            entry.clients[client] += 1

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
        if d.status not in ("deferred", "bounced", "expired"):
            return  # successes are counted in _chunk
        when = self._clock.parse(d.ts)
        if self.since is not None and (when is None or when < self.since):
            return
        if d.status == "expired":
            # No reply of its own: the cause is that of the message's last failure.
            prior = self.last_failure.get(d.qid) if d.qid else None
            if prior is not None:
                p = prior.d
                d = Delivery(d.ts, d.qid, d.to or p.to, p.relay, p.dsn, "expired", p.text)
                verdict, st = prior.verdict, prior.st
            else:
                d.text = "expired: no earlier failure of this message in the logs read"
                verdict, st = classify(d.text, "")
        else:
            verdict, st = classify(d.text, d.dsn)
        event = _Event(d, line, when, verdict, st, offset=offset)
        if d.qid and d.status != "expired":
            self.last_failure[d.qid] = event
            self.last_failure.move_to_end(d.qid)
            if len(self.last_failure) > MAX_QUEUE_IDS:
                self.last_failure.popitem(last=False)
        if d.attempt is not None:
            event.example = self._example(event)
            self.pending.setdefault(d.attempt, []).append(event)
            self.pending.move_to_end(d.attempt)
            if len(self.pending) > MAX_PENDING:
                for old in self.pending.popitem(last=False)[1]:
                    self._record(old)
            return
        self._record(event)

    def _record(self, event: _Event) -> None:
        d, line, when, verdict, st = event.d, event.line, event.when, event.verdict, event.st
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
        elif d.status == "expired":
            stats.expired += 1
        else:
            stats.deferred += 1
        if verdict.advice is not None:
            provider, code, text = verdict.advice
            slot = stats.advice.get((provider, code))
            if slot is not None:
                slot[0] += 1
            elif len(stats.advice) < MAX_LISTS:
                stats.advice[(provider, code)] = [1, text]
        if verdict.cause == "connection-failed":
            stats.routes[_route(d.relay, st.reply)] += 1
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
            example = event.example or self._example(event)
            stats.examples.append(example)
            sender = example["from"]
            if sender and "@" in sender and len(stats.sender_domains) < MAX_LISTS:
                stats.sender_domains[sender.rpartition("@")[2].lower()] += 1
        if verdict.cause == "unknown":
            self._unknown(remote or "(no remote host)", st.reply, line)

    def _example(self, event: _Event) -> dict[str, Any]:
        d, when, v = event.d, event.when, event.verdict
        remote = event.st.host or _relay_host(d.relay)
        sender, message_id = self._follow(d, event.offset)[:2] if d.qid else (None, None)
        return {
            "time": when.isoformat() if when else d.ts,
            "provider": v.advice[0] if v.advice else None,
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

    # --- replies and bounces that are not log lines ----------------------------------

    def add_reply(
        self,
        text: str,
        *,
        to: str = "",
        remote: str | None = None,
        status: str | None = None,
        dsn: str = "",
        sender: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """Count one reply a person has in hand (pasted, or read from a bounce)."""
        if not dsn:
            m = _ENHANCED.search(text[:200])
            dsn = m.group(1) if m else ""
        if status is None:
            status = reply_status(text)
        d = Delivery(None, "", to, remote or "none", dsn, status, text)
        verdict, st = classify(text, dsn)
        event = _Event(d, text, None, verdict, st)
        event.example = self._example(event)
        event.example["from"] = sender
        event.example["message_id"] = message_id
        self._record(event)

    # --- output --------------------------------------------------------------------

    def sorted_causes(self) -> list[CauseStats]:
        return sorted(self.causes.values(), key=lambda s: (-s.count, CAUSE_ORDER[s.cause]))

    @property
    def failed(self) -> int:
        """Events classified as failing: bounces, deferrals, expiries, our refusals."""
        return sum(s.count for s in self.causes.values()) + self.refused

    def to_json(self) -> dict[str, Any]:
        """The documented ``--json`` schema (README.md, section "explain")."""
        self.finish()
        return {
            "causes": [s.to_json(self.own_domain, self.relay_mode) for s in self.sorted_causes()],
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
                "refused": self.refused,
                "truncated_lines": self.truncated,
                "lines": sum(s.lines for s in self.sources),
                "bytes": sum(s.bytes for s in self.sources),
            },
            "since": self.since.isoformat() if self.since else None,
            "files": [
                {"name": s.name, "bytes": s.bytes, "lines": s.lines, "error": s.error}
                for s in self.sources
            ],
            "refused": [
                {
                    "stage": r.stage,
                    "reply": r.reply,
                    "count": r.count,
                    "clients": [c for c, _ in r.clients.most_common(10)],
                    "sample": r.sample,
                    **explain_refusal(r.reply),
                }
                for r in sorted(self.refusals.values(), key=lambda r: -r.count)
            ],
            "skipped_lines": self.skipped_lines,
            "skipped_samples": list(self.skipped_samples),
            "errors": list(self.errors),
        }


_PORT = re.compile(r"\]:(\d+)")
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


def _route(relay: str, text: str) -> str:
    """``relay`` when the failed connection went to a port other than 25 (a relay host's
    submission port), else ``direct``."""
    m = _PORT.search(relay) or _PORT.search(text)
    return "relay" if m is not None and m.group(1) != "25" else "direct"


def _relay_host(relay: str) -> str | None:
    """``mx.example.net[203.0.113.5]:25`` → ``mx.example.net[203.0.113.5]``."""
    if not relay or relay == "none":
        return None
    if "]" in relay:
        return relay[: relay.rindex("]") + 1]
    return relay
