"""Direct-mode routing (RFC 5321 §5.1, RFC 7505) and relay URLs."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from mailwright.config import DeliveryConfig, RelayConfig
from mailwright.delivery.routing import (
    MAX_ADDRESSES,
    Route,
    RouteFailure,
    order_mx,
    parse_relay_url,
    relay_target,
    resolve_mx,
)
from mailwright.dns import MemoryResolver, MXRecord, Outcome
from mailwright.errors import ConfigError

CONFIG = DeliveryConfig(mode="direct", outbound_port=2500)


def world() -> MemoryResolver:
    return MemoryResolver()


async def route(resolver: MemoryResolver, domain: str = "example.net") -> Route | RouteFailure:
    return await resolve_mx(resolver, domain, CONFIG, rng=random.Random(1))


async def test_mx_in_preference_order_with_addresses() -> None:
    r = world()
    r.add("example.net", "MX", (20, "backup.example.net")).add("example.net", "MX", (10, "mx"))
    r.add("mx", "A", "192.0.2.1").add("backup.example.net", "A", "192.0.2.2")
    result = await route(r)
    assert isinstance(result, Route)
    assert [(h.host, h.address, h.port, h.preference) for h in result.hops] == [
        ("mx", "192.0.2.1", 2500, 10),
        ("backup.example.net", "192.0.2.2", 2500, 20),
    ]
    assert result.hops[0].relay == "mx[192.0.2.1]:2500"
    assert result.tls == "opportunistic"
    # CNAME-free: exactly the MX query and one A/AAAA pair per host, no CNAME queries.
    assert ("example.net", "CNAME") not in r.queries
    assert Counter(t for _, t in r.queries) == {"MX": 1, "A": 2, "AAAA": 2}


def test_equal_preferences_are_shuffled_lower_first() -> None:
    records = [MXRecord(10, "a"), MXRecord(10, "b"), MXRecord(10, "c"), MXRecord(5, "z")]
    firsts = Counter()
    for seed in range(300):
        ordered = order_mx(records, random.Random(seed))
        assert ordered[0].exchange == "z"  # preference 5 always first
        firsts[ordered[1].exchange] += 1
    # RFC 5321 §5.1: random among equals; each of a, b, c comes second about 1/3 of the time.
    assert set(firsts) == {"a", "b", "c"}
    assert all(60 < n < 140 for n in firsts.values()), firsts


async def test_implicit_mx_when_the_domain_has_only_addresses() -> None:
    # RFC 5321 §5.1: no MX → the domain itself, preference 0.
    r = world().add("example.net", "A", "192.0.2.7").add("example.net", "AAAA", "2001:db8::7")
    result = await route(r)
    assert isinstance(result, Route)
    assert [(h.host, h.address, h.preference) for h in result.hops] == [
        ("example.net", "192.0.2.7", 0),
        ("example.net", "2001:db8::7", 0),
    ]


async def test_null_mx_bounces_with_5_1_10() -> None:
    r = world().add("example.net", "MX", (0, ".")).add("example.net", "A", "192.0.2.7")
    result = await route(r)
    assert isinstance(result, RouteFailure)
    assert result.status == "5.1.10" and result.permanent
    assert ("example.net", "A") not in r.queries  # RFC 7505 §4.1: no fallback to A


async def test_null_mx_next_to_real_mx_is_ignored() -> None:
    r = world().add("example.net", "MX", (0, ".")).add("example.net", "MX", (10, "mx.example.net"))
    r.add("mx.example.net", "A", "192.0.2.1")
    result = await route(r)
    assert isinstance(result, Route) and [h.host for h in result.hops] == ["mx.example.net"]


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.SERVFAIL])
async def test_dns_temporary_errors_defer_with_4_4_3(outcome: Outcome) -> None:
    r = world().fail("example.net", "MX", outcome)
    result = await route(r)
    assert isinstance(result, RouteFailure)
    assert result.status == "4.4.3" and not result.permanent


async def test_address_lookup_timeout_defers() -> None:
    r = world().add("example.net", "MX", (10, "mx.example.net"))
    r.fail("mx.example.net", "A", Outcome.TIMEOUT)
    r.fail("mx.example.net", "AAAA", Outcome.TIMEOUT)
    result = await route(r)
    assert isinstance(result, RouteFailure) and result.status == "4.4.3"


async def test_one_mx_timing_out_does_not_block_the_other() -> None:
    r = (
        world()
        .add("example.net", "MX", (10, "a.example.net"))
        .add("example.net", "MX", (20, "b.example.net"))
    )
    r.fail("a.example.net", "A", Outcome.TIMEOUT).add("b.example.net", "A", "192.0.2.2")
    result = await route(r)
    assert isinstance(result, Route) and [h.address for h in result.hops] == ["192.0.2.2"]


async def test_nxdomain_bounces() -> None:
    result = await route(world())
    assert isinstance(result, RouteFailure) and result.status == "5.1.2"


async def test_mx_hosts_without_addresses_bounce() -> None:
    r = world().add("example.net", "MX", (10, "nowhere.example.net"))
    result = await route(r)
    assert isinstance(result, RouteFailure) and result.status == "5.4.4"


async def test_domain_cname_is_followed() -> None:
    # RFC 5321 §5.1: a CNAME at the domain is processed as if it were the domain.
    r = world().add("example.net", "CNAME", "mail-host.example.org")
    r.add("mail-host.example.org", "MX", (10, "mx.example.org")).add(
        "mx.example.org", "A", "192.0.2.3"
    )
    result = await route(r)
    assert isinstance(result, Route) and result.hops[0].host == "mx.example.org"


async def test_ip_address_as_mx_exchange_is_skipped() -> None:
    r = world().add("example.net", "MX", (10, "192.0.2.1")).add("example.net", "MX", (20, "mx"))
    r.add("mx", "A", "192.0.2.9")
    result = await route(r)
    assert isinstance(result, Route) and [h.address for h in result.hops] == ["192.0.2.9"]


async def test_address_count_is_bounded() -> None:
    r = world()
    for i in range(30):
        r.add("example.net", "MX", (i, f"mx{i}.example.net")).add(
            f"mx{i}.example.net", "A", f"192.0.2.{i + 1}"
        )
    result = await route(r)
    assert isinstance(result, Route) and len(result.hops) == MAX_ADDRESSES


async def test_families_follow_configured_source_addresses() -> None:
    r = world().add("example.net", "A", "192.0.2.7").add("example.net", "AAAA", "2001:db8::7")
    result = await resolve_mx(r, "example.net", CONFIG, ipv4=["198.51.100.1"])
    assert isinstance(result, Route) and [h.address for h in result.hops] == ["192.0.2.7"]


# -- relay URLs ------------------------------------------------------------------------


def test_smtp_url_requires_starttls_by_default() -> None:
    t = parse_relay_url("smtp://user:p%40ss@smtp.example.net:2587")
    assert (t.host, t.port, t.tls, t.username, t.password) == (
        "smtp.example.net",
        2587,
        "starttls",
        "user",
        "p@ss",
    )


def test_default_ports_and_modes() -> None:
    assert parse_relay_url("smtp://relay.example").port == 587
    s = parse_relay_url("smtps://u:p@relay.example")
    assert (s.port, s.tls) == (465, "implicit")
    n = parse_relay_url("smtp://relay.example:25?tls=none")
    assert (n.port, n.tls, n.username) == (25, "none", None)


@pytest.mark.parametrize(
    "url",
    [
        "http://relay.example",
        "smtp://",
        "smtp://relay.example:99999",
        "smtp://relay.example/path",
        "smtp://relay.example?tls=maybe",
        "smtps://relay.example?tls=none",
        "smtp://relay.example?foo=1",
    ],
)
def test_bad_relay_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match=r"delivery\.relay\.url"):
        parse_relay_url(url)


def test_password_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    t = relay_target(RelayConfig("smtp://user@relay.example", password_file=secret))
    assert t.password == "s3cret"


def test_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_PW", "envpw")
    t = relay_target(RelayConfig("smtps://user@relay.example", password_env="RELAY_PW"))
    assert t.password == "envpw" and t.tls == "implicit"


def test_password_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(ConfigError, match="NOPE is not set"):
        relay_target(RelayConfig("smtp://u@relay.example", password_env="NOPE"))
    with pytest.raises(ConfigError, match="password given twice"):
        relay_target(RelayConfig("smtp://u:p@relay.example", password_env="NOPE"))
    with pytest.raises(ConfigError, match="has no password"):
        relay_target(RelayConfig("smtp://u@relay.example"))
    with pytest.raises(ConfigError, match="cannot read"):
        relay_target(RelayConfig("smtp://u@relay.example", password_file=tmp_path / "missing"))


def test_relay_route_has_one_hop_with_credentials() -> None:
    route_ = parse_relay_url("smtp://u:p@relay.example:2525").route()
    assert route_.tls == "starttls" and route_.username == "u" and route_.password == "p"
    assert route_.hops[0].relay == "relay.example[relay.example]:2525"


async def test_own_mx_and_those_behind_it_are_dropped() -> None:
    # RFC 5321 §5.1: we are MX 20 for the domain: only the better MX 10 is a next hop.
    r = world().add("example.net", "MX", (10, "primary.example.net"))
    r.add("example.net", "MX", (20, "mail.example.com")).add("example.net", "MX", (30, "tertiary"))
    r.add("primary.example.net", "A", "192.0.2.1").add("tertiary", "A", "192.0.2.3")
    result = await resolve_mx(r, "example.net", CONFIG, own_names=["Mail.Example.com."])
    assert isinstance(result, Route) and [h.host for h in result.hops] == ["primary.example.net"]


async def test_being_the_best_mx_is_a_loop() -> None:
    r = (
        world()
        .add("example.net", "MX", (10, "mail.example.com"))
        .add("example.net", "MX", (20, "b"))
    )
    result = await resolve_mx(r, "example.net", CONFIG, own_names=["mail.example.com"])
    assert isinstance(result, RouteFailure)
    assert result.status == "5.4.6" and "loops back to myself" in result.text
