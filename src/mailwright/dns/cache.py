"""A shared, TTL-respecting DNS cache in front of any :class:`Resolver`.

The server asks the same few names again and again (a sender domain's SPF
record, its DKIM key, its DMARC policy, the MX of a destination), so one cache
per worker serves every session. Answers live for their TTL; NXDOMAIN and
NODATA for the SOA-derived negative TTL (RFC 2308 §5; not at all without an
SOA); server failures and timeouts briefly (RFC 2308 §7, RFC 9520 §3.2: at
least 1 s, at most 5 min), so that a dead domain is not asked by every session.
The number of entries is bounded; the least recently used go first. Concurrent
lookups of the same name and type share one query. The doctor and the CLI do
not use it: they must see what the DNS says now.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .names import normalize
from .resolver import Resolver
from .types import DnsResult, Outcome

MAX_ENTRIES = 10_000
MAX_TTL = 86_400
"""Longest time an answer is kept, whatever its TTL says (RFC 8767 §4 suggests one day)."""
MAX_NEGATIVE_TTL = 10_800
"""RFC 2308 §5: negative answers are kept at most three hours."""
FAILURE_TTL = 5.0
"""Seconds a SERVFAIL or TIMEOUT is kept (RFC 9520 §3.2: at least 1 s, at most 5 min)."""


class CachingResolver(Resolver):
    """Answers from memory while their TTL lasts, else from ``upstream``."""

    def __init__(
        self,
        upstream: Resolver,
        *,
        max_entries: int = MAX_ENTRIES,
        max_ttl: int = MAX_TTL,
        max_negative_ttl: int = MAX_NEGATIVE_TTL,
        failure_ttl: float = FAILURE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.upstream = upstream
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.failure_ttl = failure_ttl
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, DnsResult[Any]]] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future[DnsResult[Any]]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    async def query(self, name: str, rdtype: str) -> DnsResult[Any]:
        key = (normalize(name), rdtype.upper())
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > self.clock():
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            del self._entries[key]
        shared = self._inflight.get(key)
        if shared is not None:
            try:
                return await asyncio.shield(shared)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # The lookup we waited for was cancelled with its caller: ask ourselves.
        self.misses += 1
        future: asyncio.Future[DnsResult[Any]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self.upstream.query(name, rdtype)
        except BaseException:
            future.cancel()
            raise
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        future.set_result(result)
        self._store(key, result)
        return result

    def _store(self, key: tuple[str, str], result: DnsResult[Any]) -> None:
        lifetime = self._lifetime(result)
        if lifetime <= 0:
            return
        self._entries[key] = (self.clock() + lifetime, result)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _lifetime(self, result: DnsResult[Any]) -> float:
        outcome = result.outcome
        if outcome is Outcome.ANSWER:
            return min(result.ttl, self.max_ttl) if result.ttl is not None else 0
        if outcome in (Outcome.NXDOMAIN, Outcome.NODATA):
            return min(result.ttl, self.max_negative_ttl) if result.ttl is not None else 0
        if outcome in (Outcome.SERVFAIL, Outcome.TIMEOUT):
            return self.failure_ttl
        return 0  # INVALID_NAME: nothing was asked, nothing to remember
