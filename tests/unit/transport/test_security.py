"""Which MX hosts need DANE or MTA-STS (RFC 7672 §2.2, RFC 8461 §4-5), over a memory DNS."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailwright.config import DeliveryConfig
from mailwright.delivery.policies import PolicyLookup, PolicySource
from mailwright.delivery.routing import Route, RouteFailure, resolve_mx
from mailwright.delivery.security import (
    TransportSecurity,
    requiretls_route,
    tls_optional_route,
)
from mailwright.dns import MemoryResolver, Outcome
from mailwright.mtasts import parse_policy

CONFIG = DeliveryConfig(mode="direct", outbound_port=2500)
TLSA = "3 1 1 " + "ab" * 32


class FixedPolicies(PolicySource):
    def __init__(self, text: str | None) -> None:
        self.text = text

    async def lookup(self, domain: str, *, refresh: bool = False) -> PolicyLookup:
        return PolicyLookup(parse_policy(self.text) if self.text else None)


def world(secure: bool = True) -> MemoryResolver:
    dns = MemoryResolver()
    dns.add("example.net", "MX", (10, "mx1.example.net")).add(
        "example.net", "MX", (20, "mx2.example.net")
    )
    dns.add("mx1.example.net", "A", "127.0.0.1").add("mx2.example.net", "A", "127.0.0.2")
    dns.secure = secure
    return dns


def secure(
    dns: MemoryResolver, policy: str | None = None
) -> tuple[Route | RouteFailure, list[str]]:
    async def run() -> tuple[Route | RouteFailure, list[str]]:
        route = await resolve_mx(dns, "example.net", CONFIG, ipv4=["192.0.2.1"])
        assert isinstance(route, Route)
        security = TransportSecurity(
            dns, FixedPolicies(policy) if policy else None, ca_file=Path("/ca.pem")
        )
        result = await security.secure("example.net", route)
        return result.route, [n.result_type for n in result.notes]

    return asyncio.run(run())


ENFORCE = "version: STSv1\nmode: enforce\nmx: mx2.example.net\nmax_age: 86400\n"
TESTING = ENFORCE.replace("enforce", "testing")


def test_secure_tlsa_gives_dane() -> None:
    dns = world().add("_25._tcp.mx1.example.net", "TLSA", TLSA)
    route, _ = secure(dns)
    assert isinstance(route, Route) and route.mx_secure
    requirement = route.requirement("mx1.example.net")
    assert requirement is not None and requirement.kind == "dane"
    assert str(requirement.tlsa[0]) == TLSA.replace(" " + "ab" * 32, " " + "ab" * 32)
    assert route.requirement("mx2.example.net") is None  # no TLSA: opportunistic


def test_insecure_world_never_looks_up_tlsa() -> None:
    dns = world(secure=False).add("_25._tcp.mx1.example.net", "TLSA", TLSA)
    route, _ = secure(dns)
    assert isinstance(route, Route) and route.requirements == ()
    assert ("_25._tcp.mx1.example.net", "TLSA") not in dns.queries


def kinds(route: Route | RouteFailure) -> dict[str, str]:
    assert isinstance(route, Route)
    return {h.host: getattr(route.requirement(h.host), "kind", "-") for h in route.hops}


def test_failed_tlsa_lookup_makes_the_host_unusable() -> None:
    dns = world().fail("_25._tcp.mx1.example.net", "TLSA", Outcome.SERVFAIL)
    route, notes = secure(dns)
    assert kinds(route) == {"mx1.example.net": "refused", "mx2.example.net": "-"}
    assert isinstance(route, Route)
    refused = route.requirement("mx1.example.net")
    assert refused is not None and refused.status == "4.7.5"  # deferred, not bounced
    assert notes == ["tlsa-invalid"]


def test_enforce_refuses_hosts_outside_the_policy() -> None:
    route, notes = secure(world(secure=False), ENFORCE)
    assert kinds(route) == {"mx1.example.net": "refused", "mx2.example.net": "mta-sts"}
    assert isinstance(route, Route)
    requirement = route.requirement("mx2.example.net")
    assert requirement is not None and requirement.kind == "mta-sts" and requirement.enforce
    assert route.ca_file == Path("/ca.pem")
    assert notes == ["validation-failure"]


def test_enforce_with_no_matching_host_defers() -> None:
    route, _ = secure(world(secure=False), ENFORCE.replace("mx2", "mx9"))
    assert isinstance(route, Route)
    refused = route.requirement("mx2.example.net")
    assert refused is not None and refused.kind == "refused" and refused.status == "4.7.0"
    assert "does not match the MTA-STS policy" in refused.reason


def test_testing_keeps_every_host() -> None:
    route, notes = secure(world(secure=False), TESTING)
    assert isinstance(route, Route)
    assert kinds(route) == {"mx1.example.net": "-", "mx2.example.net": "mta-sts"}
    requirement = route.requirement("mx2.example.net")
    assert requirement is not None and not requirement.enforce
    assert notes == ["validation-failure"]


def test_none_mode_is_no_policy() -> None:
    route, _ = secure(world(secure=False), "version: STSv1\nmode: none\nmax_age: 5\n")
    assert isinstance(route, Route) and route.requirements == ()


def test_dane_takes_precedence_over_mta_sts() -> None:
    dns = world().add("_25._tcp.mx1.example.net", "TLSA", TLSA)
    route, _ = secure(dns, ENFORCE)
    assert isinstance(route, Route)
    # mx1 is outside the policy's mx list, yet DANE authenticates it (RFC 8461 §2).
    assert kinds(route) == {"mx1.example.net": "dane", "mx2.example.net": "mta-sts"}


# -- RFC 8689 -----------------------------------------------------------------


def test_requiretls_with_secure_mx_needs_a_valid_certificate() -> None:
    dns = world().add("_25._tcp.mx1.example.net", "TLSA", TLSA)
    route, _ = secure(dns)
    assert isinstance(route, Route)
    strict = requiretls_route(route, "example.net")
    assert kinds(strict) == {"mx1.example.net": "dane", "mx2.example.net": "pkix"}
    assert all(r.requiretls and r.enforce for _, r in strict.requirements)


def test_requiretls_with_insecure_mx_and_no_policy_bounces() -> None:
    route, _ = secure(world(secure=False))
    assert isinstance(route, Route)
    strict = requiretls_route(route, "example.net")
    assert set(kinds(strict).values()) == {"refused"}
    refused = strict.requirement("mx1.example.net")
    assert refused is not None and refused.status == "5.7.10"


def test_requiretls_uses_a_testing_policy_for_the_mx_name() -> None:
    route, _ = secure(world(secure=False), TESTING)
    assert isinstance(route, Route)
    strict = requiretls_route(route, "example.net")
    assert kinds(strict) == {"mx1.example.net": "refused", "mx2.example.net": "mta-sts"}
    second = strict.requirement("mx2.example.net")
    assert second is not None and second.enforce and second.requiretls


def test_tls_required_no_ignores_every_policy() -> None:
    dns = world().fail("_25._tcp.mx1.example.net", "TLSA", Outcome.SERVFAIL)
    route, _ = secure(dns, ENFORCE)
    assert isinstance(route, Route)
    assert kinds(tls_optional_route(route)) == {"mx1.example.net": "-", "mx2.example.net": "-"}
