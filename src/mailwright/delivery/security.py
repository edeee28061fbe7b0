"""Which MX hosts must give authenticated TLS, and how: DANE first, then MTA-STS.

Given the route :func:`.routing.resolve_mx` found, this looks up the TLSA records of
each MX host whose MX and address answers were DNSSEC-secure (RFC 7672 §2.2) and the
recipient domain's MTA-STS policy (RFC 8461), and returns the route with a
:class:`~.routing.TlsRequirement` per host:

* a host with secure TLSA records gets DANE; DANE takes precedence over MTA-STS
  (RFC 8461 §2: a domain with DANE is authenticated by it);
* a secure-MX host whose TLSA lookup failed (a validator's SERVFAIL is how bogus data
  looks) is not used (RFC 7672 §2.2.2); with no host left the message is deferred;
* with an ``enforce`` policy, hosts the policy's ``mx`` patterns do not match are
  dropped (§4.1, §5); with none left the message is deferred (never bounced, §5);
  the rest must pass certificate validation against their MX name;
* with ``testing``, nothing is dropped: failures are recorded and mail goes anyway.

Trust in "secure" is the configured validating resolver's AD flag (``[dns] dnssec``).
We do not validate in process: that needs the whole chain from the root (DS/DNSKEY per
zone cut), NSEC/NSEC3 denial proofs and RFC 5011 trust-anchor rollover — a validator —
and a local Unbound does it with a cache shared by every lookup, as RFC 7672 §8 and
Postfix's DANE support assume.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..dane import TlsaError, TlsaRecord, tlsa_name
from ..dns import Outcome, Resolver
from .policies import PolicySource
from .routing import Route, RouteFailure, TlsRequirement


@dataclass(frozen=True, slots=True)
class SecurityNote:
    """A policy failure seen while routing (for the log and TLS reports, RFC 8460)."""

    policy_domain: str
    policy_type: str
    """``sts``, ``tlsa`` or ``no-policy-found``."""
    result_type: str
    """RFC 8460 §4.3 result type, e.g. ``validation-failure``, ``tlsa-invalid``."""
    detail: str
    host: str | None = None


@dataclass(slots=True)
class SecuredRoute:
    route: Route | RouteFailure
    notes: list[SecurityNote]


class TransportSecurity:
    """DANE and MTA-STS for direct delivery; either may be switched off."""

    def __init__(
        self,
        resolver: Resolver,
        policies: PolicySource | None,
        *,
        dane: bool = True,
        ca_file: Path | None = None,
    ) -> None:
        self.resolver = resolver
        self.policies = policies
        self.dane = dane
        self.ca_file = ca_file
        """CAs for MX certificates under MTA-STS (None: the system store)."""

    async def secure(self, domain: str, route: Route) -> SecuredRoute:
        notes: list[SecurityNote] = []
        hosts = list(dict.fromkeys(hop.host for hop in route.hops))
        requirements: dict[str, TlsRequirement] = {}
        unusable: dict[str, str] = {}
        if self.dane and route.mx_secure:
            for host in hosts:
                if host not in route.secure_hosts:
                    continue
                found = await self._tlsa(host)
                if isinstance(found, str):
                    unusable[host] = found
                    notes.append(SecurityNote(domain, "tlsa", "tlsa-invalid", found, host))
                elif found:
                    requirements[host] = TlsRequirement("dane", domain, tlsa=found, names=(host,))
        if self.policies is not None:
            lookup = await self.policies.lookup(domain)
            if lookup.problem and lookup.result_type:
                notes.append(SecurityNote(domain, "sts", lookup.result_type, lookup.problem))
            policy = lookup.policy
            if policy is not None and policy.mode != "none":
                enforce = policy.mode == "enforce"
                for host in hosts:
                    if host in requirements or host in unusable:
                        continue
                    if not policy.allows_mx(host):
                        why = f"MX {host} does not match the MTA-STS policy of {domain}"
                        notes.append(SecurityNote(domain, "sts", "validation-failure", why, host))
                        if enforce:
                            unusable[host] = why
                        continue
                    requirements[host] = TlsRequirement(
                        "mta-sts", domain, enforce=enforce, names=(host,)
                    )
        hops = tuple(h for h in route.hops if h.host not in unusable)
        if not hops:
            text = "; ".join(dict.fromkeys(unusable.values()))
            status = "4.7.5" if any("TLSA" in v for v in unusable.values()) else "4.7.0"
            return SecuredRoute(RouteFailure(status, f"no usable MX host: {text}"), notes)
        secured = replace(
            route,
            hops=hops,
            ca_file=self.ca_file,
            requirements=tuple((h, r) for h, r in requirements.items()),
        )
        return SecuredRoute(secured, notes)

    async def _tlsa(self, host: str) -> tuple[TlsaRecord, ...] | str:
        """Secure TLSA records, ``()`` when there are none to use, or why the host is unusable."""
        result = await self.resolver.query(tlsa_name(host), "TLSA")
        if result.outcome in (Outcome.NXDOMAIN, Outcome.NODATA):
            return ()  # RFC 7672 §2.2.2: no TLSA records (or insecure): no DANE
        if result.is_error:
            # A validating resolver answers SERVFAIL for bogus data: the host is unusable.
            return f"TLSA lookup for {tlsa_name(host)} failed ({result.error or result.outcome})"
        if not result.ok or not result.secure:
            return ()  # an insecure TLSA answer is ignored (RFC 7672 §2.2)
        records = []
        for text in result.records:
            try:
                records.append(TlsaRecord.parse(str(text)))
            except TlsaError:
                continue  # unparsable is unusable (RFC 7672 §2.2)
        if not records:
            # Non-empty but unreadable: TLS stays mandatory, unauthenticated (§2.2).
            return (TlsaRecord(255, 255, 255, b""),)
        return tuple(records)
