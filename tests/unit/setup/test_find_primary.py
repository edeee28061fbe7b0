"""``records apply`` without ``--server``: the primary is the zone's SOA MNAME (RFC 2136
§4), its address through the resolver, port 53; found per zone."""

from __future__ import annotations

import asyncio

import pytest

from mailwright.dns.memory import MemoryResolver
from mailwright.dns.types import Outcome
from mailwright.setup.apply import Primary, PrimaryNotFound, find_primary

SOA = "{} hostmaster.example.com. 2026120501 3600 600 86400 300"


def world() -> MemoryResolver:
    resolver = MemoryResolver()
    resolver.add("example.com", "SOA", SOA.format("ns1.dnshost.example."))
    resolver.add("ns1.dnshost.example", "A", "192.0.2.53")
    resolver.add("ns1.dnshost.example", "AAAA", "2001:db8::53")
    resolver.add("example.org", "SOA", SOA.format("Primary.Example.ORG."))
    resolver.add("primary.example.org", "AAAA", "2001:db8::35")
    return resolver


def find(zone: str, resolver: MemoryResolver) -> Primary:
    return asyncio.run(find_primary(zone, resolver))


def test_the_mname_and_its_ipv4_address_on_port_53() -> None:
    primary = find("Example.COM.", world())
    assert primary == Primary(("192.0.2.53", 53), "ns1.dnshost.example")
    assert primary.text == "192.0.2.53:53"


def test_each_zone_has_its_own_primary_and_ipv6_when_there_is_no_ipv4() -> None:
    resolver = world()
    assert find("example.com", resolver).address == ("192.0.2.53", 53)
    primary = find("example.org", resolver)
    assert primary == Primary(("2001:db8::35", 53), "primary.example.org")
    assert primary.text == "[2001:db8::35]:53"
    assert ("example.org", "SOA") in resolver.queries


def test_the_port_can_be_chosen() -> None:
    assert asyncio.run(find_primary("example.com", world(), port=5353)).address[1] == 5353


@pytest.mark.parametrize(
    ("zone", "setup", "message"),
    [
        (
            "nowhere.example",
            lambda r: None,
            "zone nowhere.example: no SOA record to find its primary (no such domain); "
            "pass --server HOST[:PORT], the primary of nowhere.example",
        ),
        (
            "www.example.com",  # a name inside the zone, not its apex
            lambda r: r.add("www.example.com", "A", "192.0.2.80"),
            "zone www.example.com: no SOA record to find its primary (the name has none: "
            "is it the zone's apex?); pass --server HOST[:PORT], the primary of www.example.com",
        ),
        (
            "slow.example",
            lambda r: r.fail("slow.example", "SOA", Outcome.TIMEOUT),
            "zone slow.example: no SOA record to find its primary (timeout); "
            "pass --server HOST[:PORT], the primary of slow.example",
        ),
        (
            "hidden.example",
            lambda r: r.add("hidden.example", "SOA", SOA.format("ns.hidden.example.")),
            "zone hidden.example: its primary ns.hidden.example (the SOA MNAME) has no address "
            "(no such domain); pass --server HOST[:PORT], the primary of hidden.example",
        ),
        (
            "root.example",
            lambda r: r.add("root.example", "SOA", SOA.format(".")),
            "zone root.example: the SOA names no primary (MNAME is '.'); "
            "pass --server HOST[:PORT], the primary of root.example",
        ),
    ],
)
def test_no_primary_is_one_line_naming_the_zone_and_server(
    zone: str, setup: object, message: str
) -> None:
    resolver = world()
    setup(resolver)  # type: ignore[operator]
    with pytest.raises(PrimaryNotFound) as info:
        find(zone, resolver)
    assert str(info.value) == message
