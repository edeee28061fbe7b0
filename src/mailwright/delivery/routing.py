"""Where a recipient's mail goes: the MX hosts of its domain, or the relay host.

Direct mode follows RFC 5321 §5.1: MX records in preference order (random among
equal preferences, to spread load as the RFC asks), the domain itself as an
implicit MX when it has no MX records, and no delivery at all for a null MX
(RFC 7505). DNS outcomes never raise: a temporary DNS failure defers (``4.4.3``),
a non-existent domain or null MX bounces. The result is data (:class:`Route` or
:class:`RouteFailure`), so the agent and the tests decide nothing by catching.

Relay mode parses ``smtp://user:pass@host:587`` (STARTTLS required unless
``?tls=none``) and ``smtps://user:pass@host:465`` (implicit TLS, RFC 8314).
"""

from __future__ import annotations

import ipaddress
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from ..config import DeliveryConfig, RelayConfig
from ..dane import TlsaRecord
from ..dns import DnsResult, MXRecord, Outcome, Resolver
from ..errors import ConfigError

MAX_ADDRESSES = 10
"""Addresses tried per delivery attempt, over all MX hosts (Postfix: smtp_mx_address_limit 5;
we allow both families of the first few hosts). Bounds the work a hostile zone can cause."""
MAX_MX_HOSTS = 10
"""MX hosts considered, lowest preference first; the rest are never looked up."""

TlsMode = Literal["opportunistic", "starttls", "implicit", "none"]


@dataclass(frozen=True, slots=True)
class Hop:
    """One address to connect to."""

    host: str
    """The name we connect to (MX exchange or relay host); for logs and TLS SNI."""
    address: str
    port: int
    preference: int = 0

    @property
    def relay(self) -> str:
        """``host[ip]:port`` as Postfix logs it."""
        return f"{self.host}[{self.address}]:{self.port}"


@dataclass(frozen=True, slots=True)
class TlsRequirement:
    """What TLS an MX host must give (RFC 7672 DANE, RFC 8461 MTA-STS, RFC 8689 REQUIRETLS).

    There is no plain-text fallback for a host with a requirement: STARTTLS missing or
    an authentication failure fails the attempt, except with MTA-STS ``testing``
    (``enforce=False``), which only records the failure (RFC 8461 §5) and then delivers
    opportunistically. ``refused``: the host may not be used at all (``reason``).
    """

    kind: Literal["dane", "mta-sts", "pkix", "refused"]
    """``pkix``: a certificate valid for the MX name (REQUIRETLS with a DNSSEC-secure MX)."""
    policy_domain: str
    enforce: bool = True
    tlsa: tuple[TlsaRecord, ...] = ()
    """DANE: the secure TLSA records of ``_25._tcp.HOST``."""
    names: tuple[str, ...] = ()
    """The names the certificate must carry (the MX host name)."""
    requiretls: bool = False
    """RFC 8689 §4.2.1: the server must offer REQUIRETLS after STARTTLS; failures bounce."""
    reason: str = ""
    status: str = "4.7.0"
    """``refused``: the RFC 3463 status of the failure."""
    policy_strings: tuple[str, ...] = ()
    """The policy as RFC 8460 §4.4 reports it (policy lines, or TLSA records)."""


@dataclass(frozen=True, slots=True)
class Route:
    """Addresses in the order to try them, and how to talk to them."""

    hops: tuple[Hop, ...]
    tls: TlsMode = "opportunistic"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    mx_secure: bool = False
    """The MX answer was DNSSEC-secure (RFC 7672 §2.2.1)."""
    secure_hosts: frozenset[str] = frozenset()
    """MX hosts whose address records were DNSSEC-secure (RFC 7672 §2.2.2)."""
    requirements: tuple[tuple[str, TlsRequirement], ...] = ()
    """Per MX host, the TLS authentication it must pass (see :mod:`.security`)."""

    def requirement(self, host: str) -> TlsRequirement | None:
        return next((r for h, r in self.requirements if h == host), None)


@dataclass(frozen=True, slots=True)
class RouteFailure:
    """No address to try: ``status`` is the RFC 3463 code, ``permanent`` bounces."""

    status: str
    text: str

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


# -- direct mode ---------------------------------------------------------------


def order_mx(records: Sequence[MXRecord], rng: random.Random) -> list[MXRecord]:
    """Lowest preference first; equal preferences shuffled (RFC 5321 §5.1)."""
    shuffled = list(records)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=lambda r: r.preference)  # sort is stable: keeps the shuffle


def _families(config: DeliveryConfig, ipv4: Sequence[str], ipv6: Sequence[str]) -> set[str]:
    """Address families we send from: those we have configured addresses for, else both.

    SPF and PTR are published for the configured addresses only; mail leaving from an
    unconfigured IPv6 address would fail SPF at the receiver.
    """
    families = set()
    if ipv4 or config.source_ipv4:
        families.add("A")
    if ipv6 or config.source_ipv6:
        families.add("AAAA")
    return families or {"A", "AAAA"}


async def resolve_mx(
    resolver: Resolver,
    domain: str,
    config: DeliveryConfig,
    *,
    ipv4: Sequence[str] = (),
    ipv6: Sequence[str] = (),
    own_names: Sequence[str] = (),
    rng: random.Random | None = None,
) -> Route | RouteFailure:
    """The hops for mail to ``domain`` in direct mode.

    ``own_names`` are our host names: RFC 5321 §5.1 says to drop our own MX record and
    every one of equal or higher preference (they would send the mail back to us).
    """
    rng = rng or random.Random()
    port = config.outbound_port
    if _is_address_literal(domain):
        return RouteFailure("5.1.2", f"address literal {domain} is not a deliverable domain")
    mx = await resolver.mx(domain)
    hosts: list[MXRecord]
    if mx.ok:
        real = [r for r in mx.records if not r.is_null]
        if not real:
            # RFC 7505 §3: the domain accepts no mail; bounce without trying (§4.1).
            return RouteFailure("5.1.10", f"{domain} does not accept mail (null MX, RFC 7505)")
        ours = {n.lower().rstrip(".") for n in own_names}
        mine = [r.preference for r in real if r.exchange in ours]
        if mine:
            real = [r for r in real if r.preference < min(mine)]
            if not real:
                return RouteFailure("5.4.6", f"mail for {domain} loops back to myself")
        hosts = order_mx(real, rng)[:MAX_MX_HOSTS]
    elif mx.outcome is Outcome.NODATA:
        # RFC 5321 §5.1: no MX records: the domain itself is the implicit MX.
        hosts = [MXRecord(0, domain)]
    elif mx.outcome is Outcome.NXDOMAIN:
        return RouteFailure("5.1.2", f"{domain}: domain not found (NXDOMAIN)")
    elif mx.outcome is Outcome.INVALID_NAME:
        return RouteFailure("5.1.2", f"{domain}: not a valid domain name ({mx.error})")
    else:
        return RouteFailure("4.4.3", f"{domain}: MX lookup failed: {_why(mx)}")

    families = _families(config, ipv4, ipv6)
    hops: list[Hop] = []
    secure_hosts: set[str] = set()
    temporary: list[str] = []
    for record in hosts:
        if len(hops) >= MAX_ADDRESSES:
            break
        if _is_address_literal(record.exchange):
            # RFC 5321 §5.1: an MX exchange must be a name; an IP there is a broken zone.
            continue
        a, aaaa = await resolver.addresses(record.exchange)
        wanted = [r for r in (a, aaaa) if r.rdtype in families and r.ok]
        if wanted and all(r.secure for r in wanted):
            secure_hosts.add(record.exchange)
        for result in (a, aaaa):
            if result.rdtype not in families:
                continue
            if result.is_error:
                temporary.append(f"{record.exchange}/{result.rdtype}: {_why(result)}")
            for address in result.records:
                hops.append(Hop(record.exchange, str(address), port, record.preference))
    if hops:
        return Route(
            tuple(hops[:MAX_ADDRESSES]),
            mx_secure=mx.ok and mx.secure,
            secure_hosts=frozenset(secure_hosts),
        )
    if temporary:
        return RouteFailure("4.4.3", "address lookup failed: " + "; ".join(temporary))
    if mx.ok:
        return RouteFailure("5.4.4", f"{domain}: no MX host has an address")
    return RouteFailure("5.1.2", f"{domain}: no MX and no address records")


def _why(result: DnsResult[object]) -> str:
    return result.error or str(result.outcome)


def _is_address_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


# -- relay mode ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayTarget:
    host: str
    port: int
    tls: TlsMode
    username: str | None
    password: str | None = field(repr=False)

    def route(self, ca_file: Path | None = None) -> Route:
        """A one-hop route; the host name is resolved by the OS at connect time."""
        return Route(
            (Hop(self.host, self.host, self.port),),
            tls=self.tls,
            username=self.username,
            password=self.password,
            ca_file=ca_file,
        )


def parse_relay_url(
    url: str, *, file: str = "<config>", key: str = "delivery.relay.url"
) -> RelayTarget:
    """Parse a relay URL; raises :class:`ConfigError` naming ``key`` for every problem."""
    try:
        parts = urlsplit(url)
        port_value = parts.port
    except ValueError as exc:
        raise ConfigError(file, key, f"{url!r}: {exc}", "write e.g. smtp://user@host:587") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ConfigError(file, key, f"scheme {scheme!r} is not smtp or smtps")
    if not parts.hostname:
        raise ConfigError(file, key, "no host name", "write e.g. smtp://user@host:587")
    if parts.path not in ("", "/"):
        raise ConfigError(file, key, f"unexpected path {parts.path!r}", "remove it")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"tls"}
    if unknown:
        raise ConfigError(file, key, f"unknown parameter {sorted(unknown)[0]!r}", "only ?tls=none")
    tls: TlsMode = "implicit" if scheme == "smtps" else "starttls"
    if "tls" in query:
        value = query["tls"][-1].lower()
        if scheme == "smtps" or value != "none":
            raise ConfigError(
                file, key, f"tls={value!r} is not supported here", "only smtp://...?tls=none"
            )
        tls = "none"
    port = port_value or (465 if scheme == "smtps" else 587)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return RelayTarget(parts.hostname, port, tls, username, password)


def relay_target(relay: RelayConfig, *, file: str = "<config>") -> RelayTarget:
    """The relay with its password from the URL, ``password_file`` or ``password_env``.

    Exactly one source may give the password: two would leave the reader guessing
    which one is used.
    """
    target = parse_relay_url(relay.url, file=file)
    sources = [
        name
        for name, given in (
            ("url", target.password is not None),
            ("password_file", relay.password_file is not None),
            ("password_env", relay.password_env is not None),
        )
        if given
    ]
    if len(sources) > 1:
        raise ConfigError(
            file, "delivery.relay", f"password given twice ({' and '.join(sources)})", "keep one"
        )
    password = target.password
    if relay.password_file is not None:
        try:
            password = relay.password_file.read_text("utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                file, "delivery.relay.password_file", f"cannot read: {exc.strerror}"
            ) from None
    elif relay.password_env is not None:
        password = os.environ.get(relay.password_env)
        if password is None:
            raise ConfigError(
                file,
                "delivery.relay.password_env",
                f"environment variable {relay.password_env} is not set",
                f"export {relay.password_env}=...",
            )
    if password is not None and target.username is None:
        raise ConfigError(file, "delivery.relay.url", "a password but no user name", "add user@")
    if target.username is not None and password is None:
        raise ConfigError(
            file,
            "delivery.relay",
            f"user {target.username!r} has no password",
            "set password_file or password_env, or put it in the URL",
        )
    return RelayTarget(target.host, target.port, target.tls, target.username, password)
