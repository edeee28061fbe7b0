"""Which MX hosts must give authenticated TLS, and how: DANE first, then MTA-STS.

Given the route :func:`.routing.resolve_mx` found, this looks up the TLSA records of
each MX host whose MX and address answers were DNSSEC-secure (RFC 7672 §2.2) and the
recipient domain's MTA-STS policy (RFC 8461), and returns the route with a
:class:`~.routing.TlsRequirement` per host:

* a host with secure TLSA records gets DANE; DANE takes precedence over MTA-STS
  (RFC 8461 §2: a domain with DANE is authenticated by it);
* a secure-MX host whose TLSA lookup failed (a validator's SERVFAIL is how bogus data
  looks) is not used (RFC 7672 §2.2.2): it is ``refused``, and a message whose every
  host is refused is deferred;
* with an ``enforce`` policy, hosts the policy's ``mx`` patterns do not match are
  refused (§4.1, §5; deferred, never bounced, §5); the rest must pass certificate
  validation against their MX name;
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
from .routing import Route, TlsRequirement


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
    policy_strings: tuple[str, ...] = ()


@dataclass(slots=True)
class SecuredRoute:
    route: Route
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
        if self.dane and route.mx_secure:
            for host in hosts:
                if host not in route.secure_hosts:
                    continue
                found = await self._tlsa(host)
                if isinstance(found, str):
                    requirements[host] = _refused(domain, found, "4.7.5")
                    notes.append(SecurityNote(domain, "tlsa", "tlsa-invalid", found, host))
                elif found:
                    requirements[host] = TlsRequirement(
                        "dane",
                        domain,
                        tlsa=found,
                        names=(host,),
                        policy_strings=tuple(str(r) for r in found),
                    )
        if self.policies is not None:
            lookup = await self.policies.lookup(domain)
            if lookup.problem and lookup.result_type:
                notes.append(SecurityNote(domain, "sts", lookup.result_type, lookup.problem))
            policy = lookup.policy
            if policy is not None and policy.mode != "none":
                enforce = policy.mode == "enforce"
                strings = tuple(line.strip() for line in policy.text.splitlines() if line.strip())
                for host in hosts:
                    if host in requirements:
                        continue
                    if not policy.allows_mx(host):
                        why = f"MX {host} does not match the MTA-STS policy of {domain}"
                        notes.append(
                            SecurityNote(domain, "sts", "validation-failure", why, host, strings)
                        )
                        if enforce:
                            requirements[host] = _refused(domain, why, "4.7.0")
                        continue
                    requirements[host] = TlsRequirement(
                        "mta-sts", domain, enforce=enforce, names=(host,), policy_strings=strings
                    )
        secured = replace(
            route,
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


def _refused(domain: str, reason: str, status: str) -> TlsRequirement:
    return TlsRequirement("refused", domain, reason=reason, status=status)


def requiretls_route(route: Route, domain: str) -> Route:
    """The route for a message sent with REQUIRETLS (RFC 8689 §4.2.1).

    Every host must be authenticated: by DANE, or by a certificate valid for its name
    when the MX name itself is trustworthy (a DNSSEC-secure MX answer, or a match with
    the domain's MTA-STS policy, in either mode); and it must offer REQUIRETLS. A host
    that cannot be is refused with 5.7.10, so the message bounces when none is left.
    """
    requirements = []
    for host in dict.fromkeys(hop.host for hop in route.hops):
        current = route.requirement(host)
        if current is not None and current.kind in ("dane", "mta-sts"):
            requirement = replace(current, enforce=True, requiretls=True)
        elif current is None and route.mx_secure:
            requirement = TlsRequirement("pkix", domain, names=(host,), requiretls=True)
        else:
            why = (
                current.reason
                if current is not None
                else (f"MX {host} is neither DNSSEC-secure nor covered by an MTA-STS policy")
            )
            requirement = _refused(domain, f"REQUIRETLS: {why}", "5.7.10")
        requirements.append((host, requirement))
    return replace(route, requirements=tuple(requirements))


def tls_optional_route(route: Route) -> Route:
    """``TLS-Required: No`` (RFC 8689 §4.2.2): recipient TLS policies are ignored;
    STARTTLS is still used when offered."""
    return replace(route, requirements=())
