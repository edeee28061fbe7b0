"""CachingResolver: TTLs, negative caching (RFC 2308), failures, the size bound, sharing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mailwright.dns import CachingResolver, DnsResult, Outcome, Resolver


class Upstream(Resolver):
    """Answers from a table; counts what reaches it."""

    def __init__(self, delay: float = 0.0) -> None:
        self.results: dict[tuple[str, str], DnsResult[Any]] = {}
        self.asked: list[tuple[str, str]] = []
        self.delay = delay

    def set(self, name: str, rdtype: str, outcome: Outcome, ttl: int | None, *records: str) -> None:
        self.results[(name, rdtype)] = DnsResult(name, rdtype, outcome, records, ttl=ttl)

    async def query(self, name: str, rdtype: str) -> DnsResult[Any]:
        self.asked.append((name, rdtype))
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.results.get((name, rdtype), DnsResult(name, rdtype, Outcome.NXDOMAIN, ttl=None))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_answer_is_kept_for_its_ttl(clock: Clock) -> None:
    upstream = Upstream()
    upstream.set("example.com", "TXT", Outcome.ANSWER, 60, "v=spf1 -all")
    cache = CachingResolver(upstream, clock=clock)
    first = await cache.txt("example.com")
    assert await cache.txt("EXAMPLE.com.") is first
    clock.now += 59.9
    await cache.txt("example.com")
    assert len(upstream.asked) == 1
    clock.now += 0.2
    await cache.txt("example.com")
    assert len(upstream.asked) == 2


async def test_ttl_is_capped(clock: Clock) -> None:
    upstream = Upstream()
    upstream.set("example.com", "MX", Outcome.ANSWER, 7 * 86400, "x")
    cache = CachingResolver(upstream, clock=clock, max_ttl=3600)
    await cache.mx("example.com")
    clock.now += 3601
    await cache.mx("example.com")
    assert len(upstream.asked) == 2


@pytest.mark.parametrize("outcome", [Outcome.NXDOMAIN, Outcome.NODATA])
async def test_negative_answers_are_kept_for_the_soa_ttl(clock: Clock, outcome: Outcome) -> None:
    upstream = Upstream()
    upstream.set("_dmarc.example.com", "TXT", outcome, 300)
    cache = CachingResolver(upstream, clock=clock)
    assert (await cache.txt("_dmarc.example.com")).outcome is outcome
    clock.now += 299
    assert (await cache.txt("_dmarc.example.com")).outcome is outcome
    assert len(upstream.asked) == 1
    clock.now += 2
    await cache.txt("_dmarc.example.com")
    assert len(upstream.asked) == 2


async def test_negative_answer_without_soa_is_not_cached(clock: Clock) -> None:
    # RFC 2308 §5: no SOA in the authority section, no negative caching.
    upstream = Upstream()
    cache = CachingResolver(upstream, clock=clock)
    await cache.a("nowhere.example.com")
    await cache.a("nowhere.example.com")
    assert len(upstream.asked) == 2


async def test_negative_ttl_is_capped_at_three_hours(clock: Clock) -> None:
    upstream = Upstream()
    upstream.set("x.example.com", "A", Outcome.NXDOMAIN, 86400)
    cache = CachingResolver(upstream, clock=clock)
    await cache.a("x.example.com")
    clock.now += 3 * 3600 + 1
    await cache.a("x.example.com")
    assert len(upstream.asked) == 2


@pytest.mark.parametrize("outcome", [Outcome.SERVFAIL, Outcome.TIMEOUT])
async def test_failures_are_kept_briefly(clock: Clock, outcome: Outcome) -> None:
    upstream = Upstream()
    upstream.set("example.com", "TXT", outcome, None)
    cache = CachingResolver(upstream, clock=clock, failure_ttl=5)
    await cache.txt("example.com")
    clock.now += 4
    await cache.txt("example.com")
    assert len(upstream.asked) == 1
    clock.now += 2
    await cache.txt("example.com")
    assert len(upstream.asked) == 2


async def test_zero_ttl_is_not_cached(clock: Clock) -> None:
    upstream = Upstream()
    upstream.set("example.com", "A", Outcome.ANSWER, 0, "192.0.2.1")
    cache = CachingResolver(upstream, clock=clock)
    await cache.a("example.com")
    await cache.a("example.com")
    assert len(upstream.asked) == 2


async def test_size_bound_drops_the_least_recently_used(clock: Clock) -> None:
    upstream = Upstream()
    for i in range(5):
        upstream.set(f"h{i}.example.com", "A", Outcome.ANSWER, 300, f"192.0.2.{i}")
    cache = CachingResolver(upstream, clock=clock, max_entries=3)
    for i in range(3):
        await cache.a(f"h{i}.example.com")
    await cache.a("h0.example.com")  # now the most recently used
    await cache.a("h3.example.com")  # evicts h1
    assert len(cache) == 3
    upstream.asked.clear()
    await cache.a("h0.example.com")
    await cache.a("h3.example.com")
    assert upstream.asked == []
    await cache.a("h1.example.com")
    assert upstream.asked == [("h1.example.com", "A")]
    for i in range(100):
        await cache.a(f"n{i}.example.com")
    assert len(cache) <= 3


async def test_concurrent_lookups_share_one_query() -> None:
    upstream = Upstream(delay=0.05)
    upstream.set("example.com", "TXT", Outcome.ANSWER, 300, "v=spf1 -all")
    cache = CachingResolver(upstream)
    results = await asyncio.gather(*(cache.txt("example.com") for _ in range(20)))
    assert len(upstream.asked) == 1
    assert {r.records for r in results} == {("v=spf1 -all",)}


async def test_a_cancelled_first_lookup_does_not_fail_the_others() -> None:
    upstream = Upstream(delay=0.05)
    upstream.set("example.com", "TXT", Outcome.ANSWER, 300, "v=spf1 -all")
    cache = CachingResolver(upstream)
    first = asyncio.create_task(cache.txt("example.com"))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.txt("example.com"))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second).records == ("v=spf1 -all",)
    with pytest.raises(asyncio.CancelledError):
        await first
