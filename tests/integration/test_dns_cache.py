"""The server's DNS path against a real NSD: StubResolver behind CachingResolver."""

from __future__ import annotations

import pytest

from mailwright.dns import CachingResolver, Outcome, StubResolver, server_resolver
from mailwright.testing import NsdServer

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(dns_world: NsdServer) -> NsdServer:
    dns_world.set_zone(
        "cache.example", '@ 120 TXT "v=spf1 -all"\n@ 30 MX 10 mx\nmx 300 A 192.0.2.1'
    )
    return dns_world


async def test_answers_live_for_their_ttl(world: NsdServer) -> None:
    clock = Clock()
    cache = CachingResolver(StubResolver(world.nameserver, timeout=2.0), clock=clock)
    first = await cache.txt("cache.example")
    assert (first.outcome, first.records, first.ttl) == (Outcome.ANSWER, ("v=spf1 -all",), 120)
    clock.now = 119
    assert await cache.txt("cache.example") is first
    assert (cache.hits, cache.misses) == (1, 1)
    clock.now = 121
    await cache.txt("cache.example")
    assert cache.misses == 2
    mx = await cache.mx("cache.example")
    assert mx.ttl == 30


async def test_nxdomain_and_nodata_live_for_the_soa_minimum(world: NsdServer) -> None:
    # The fixture's SOA says MINIMUM 60 (RFC 2308 §5: min(SOA TTL, MINIMUM)).
    clock = Clock()
    cache = CachingResolver(StubResolver(world.nameserver, timeout=2.0), clock=clock)
    nx = await cache.a("nowhere.cache.example")
    nodata = await cache.aaaa("mx.cache.example")
    assert (nx.outcome, nx.ttl) == (Outcome.NXDOMAIN, 60)
    assert (nodata.outcome, nodata.ttl) == (Outcome.NODATA, 60)
    clock.now = 59
    await cache.a("nowhere.cache.example")
    await cache.aaaa("mx.cache.example")
    assert cache.misses == 2
    clock.now = 61
    await cache.a("nowhere.cache.example")
    assert cache.misses == 3


async def test_a_changed_record_is_seen_once_the_ttl_is_over(world: NsdServer) -> None:
    clock = Clock()
    cache = CachingResolver(StubResolver(world.nameserver, timeout=2.0), clock=clock)
    assert (await cache.a("mx.cache.example")).records == ("192.0.2.1",)
    world.set_zone("cache.example", "mx 300 A 192.0.2.2")
    assert (await cache.a("mx.cache.example")).records == ("192.0.2.1",)
    clock.now = 301
    assert (await cache.a("mx.cache.example")).records == ("192.0.2.2",)


def test_one_shared_resolver_per_worker_and_server() -> None:
    assert server_resolver("127.0.0.1:5353", 5.0) is server_resolver("127.0.0.1:5353", 5.0)
    assert server_resolver("127.0.0.1:5353", 5.0) is not server_resolver("127.0.0.1:5354", 5.0)
