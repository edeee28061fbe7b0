"""An in-memory resolver with the same interface, for unit tests and benchmarks.

It behaves like an authoritative view of a set of records: a name that owns any
record answers NODATA for other types, every other name is NXDOMAIN, CNAMEs are
followed, and individual (name, type) pairs can be made to time out or fail.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from .names import name_problem, normalize, to_ascii
from .resolver import Resolver
from .types import DnsResult, MXRecord, Outcome

_MAX_CNAME_CHAIN = 8


class MemoryResolver(Resolver):
    """Records held in a dict.

    ``add("example.com", "MX", (10, "mail.example.com"))``; TXT values may be a
    string or a sequence of character-strings (joined per RFC 7208 §3.3);
    ``fail("example.com", "TXT", Outcome.TIMEOUT)`` makes that query fail.
    ``latency`` (seconds) delays every answer, to model a slow network.
    ``queries`` records every (name, type) asked, in order.
    ``secure = True`` marks every answer DNSSEC-secure (a world behind a validator).
    """

    def __init__(self, *, latency: float = 0.0, ttl: int = 300) -> None:
        self._records: dict[tuple[str, str], list[Any]] = defaultdict(list)
        self._names: set[str] = set()
        self._failures: dict[tuple[str, str], Outcome] = {}
        self.latency = latency
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []
        self.secure = False

    def add(self, name: str, rdtype: str, value: Any) -> MemoryResolver:
        """Add one record; returns self so that calls chain.

        ``bücher.example`` and ``xn--bcher-kva.example`` are the same name, as on the wire.
        """
        key = (_key(name), rdtype.upper())
        self._records[key].append(_coerce(key[1], value))
        self._names.add(key[0])
        return self

    def add_many(self, name: str, rdtype: str, values: Iterable[Any]) -> MemoryResolver:
        for value in values:
            self.add(name, rdtype, value)
        return self

    def fail(self, name: str, rdtype: str, outcome: Outcome = Outcome.TIMEOUT) -> MemoryResolver:
        """Make ``name``/``rdtype`` answer with ``outcome`` (TIMEOUT, SERVFAIL, NXDOMAIN...)."""
        key = (_key(name), rdtype.upper())
        self._failures[key] = outcome
        if outcome not in (Outcome.NXDOMAIN, Outcome.INVALID_NAME):
            self._names.add(key[0])
        return self

    async def query(self, name: str, rdtype: str) -> DnsResult[Any]:
        name = normalize(name)
        rdtype = rdtype.upper()
        self.queries.append((name, rdtype))
        if self.latency:
            await asyncio.sleep(self.latency)
        problem = name_problem(name)
        if problem is not None:
            return DnsResult(name, rdtype, Outcome.INVALID_NAME, error=problem)
        cnames: list[str] = []
        text: list[str] = []
        current = _key(name)
        for _ in range(_MAX_CNAME_CHAIN):
            failure = self._failures.get((current, rdtype))
            if failure is not None:
                return DnsResult(name, rdtype, failure, cnames=tuple(cnames), error=str(failure))
            records = self._records.get((current, rdtype))
            if records:
                text.extend(_text_line(current, rdtype, r, self.ttl) for r in records)
                return DnsResult(
                    name,
                    rdtype,
                    Outcome.ANSWER,
                    tuple(records),
                    tuple(cnames),
                    tuple(text),
                    secure=self.secure,
                )
            alias = self._records.get((current, "CNAME"))
            if alias and rdtype != "CNAME":
                target = alias[0]
                text.append(_text_line(current, "CNAME", target, self.ttl))
                cnames.append(target)
                current = _key(target)
                continue
            if current in self._names:
                return DnsResult(name, rdtype, Outcome.NODATA, cnames=tuple(cnames))
            return DnsResult(
                name, rdtype, Outcome.NXDOMAIN, cnames=tuple(cnames), error="no such domain"
            )
        return DnsResult(name, rdtype, Outcome.SERVFAIL, tuple(cnames), error="CNAME loop")


def _key(name: str) -> str:
    """The lookup key of a name: lowercase A-labels, as DnspythonResolver sends it."""
    name = normalize(name)
    try:
        return to_ascii(name)
    except UnicodeError:
        return name  # not valid IDNA: query() reports it as INVALID_NAME anyway


def _coerce(rdtype: str, value: Any) -> Any:
    if rdtype == "MX":
        if isinstance(value, MXRecord):
            return value
        preference, exchange = value
        return MXRecord(int(preference), normalize(exchange).rstrip("."))
    if rdtype in ("TXT", "SPF"):
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        if isinstance(value, str):
            return value
        if isinstance(value, Sequence):
            return "".join(
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value
            )
    if rdtype in ("PTR", "CNAME", "NS"):
        return normalize(str(value)).rstrip(".")
    return str(value)


def _text_line(name: str, rdtype: str, value: Any, ttl: int) -> str:
    if rdtype == "MX":
        data = f"{value.preference} {value.exchange or ''}."
    elif rdtype in ("TXT", "SPF"):
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
        data = f'"{escaped}"'
    elif rdtype in ("PTR", "CNAME", "NS"):
        data = f"{value}."
    else:
        data = str(value)
    return f"{name}. {ttl} IN {rdtype} {data}"
