"""What every check shares: the options, and one memoizing resolver for the whole run.

Checks are independent coroutines that ask for the lookups they need; the
:class:`SharedResolver` makes the second asker of ``example.com MX`` wait for
the first asker's query instead of sending another, so ``mx`` and ``mx-cname``
(or the SPF evaluation and ``spf-record``) cost one query between them, and the
run's wall time is the longest chain of dependent lookups rather than their sum.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ..config import DEFAULT_DBLS, DEFAULT_DNSBLS, Config
from ..dkim.keys import PrivateKey
from ..dns import DnsResult, MXRecord, Resolver
from ..dns.names import normalize

T = TypeVar("T")

DEFAULT_PORTS = (25, 465, 587)
CERT_MIN_DAYS = 14


def load_key(path: Path) -> PrivateKey:
    """Read a DKIM private key for the checks.

    PEM keys skip OpenSSL's RSA consistency check (tens of milliseconds, the longest
    step of a whole run): the doctor only compares the key's public half with DNS and
    signs a test message that it then verifies, so a corrupt key still shows up, as a
    mismatch or a failed verification. Other forms go through the DKIM package.
    """
    from ..dkim import load_private_key

    data = path.read_bytes()
    if data.lstrip().startswith(b"-----"):
        try:
            key = serialization.load_pem_private_key(
                data, None, unsafe_skip_rsa_key_validation=True
            )
        except (ValueError, TypeError, UnsupportedAlgorithm):
            pass  # the DKIM loader below gives the explanation
        else:
            if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
                return key
    return load_private_key(data)


class SharedResolver(Resolver):
    """Memoizes queries (in flight and done) and measures the time spent in DNS."""

    def __init__(self, inner: Resolver) -> None:
        self.inner = inner
        self._tasks: dict[tuple[str, str], asyncio.Task[DnsResult[Any]]] = {}
        self.queries = 0
        self.busy = 0.0
        """Sum of the durations of the queries actually sent."""
        self.answered = 0
        """Queries that got an answer, even NXDOMAIN (not SERVFAIL, not a timeout)."""

    async def query(self, name: str, rdtype: str) -> DnsResult[Any]:
        key = (normalize(name), rdtype.upper())
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self._timed(*key))
            self._tasks[key] = task
        # shield: one caller timing out must not cancel the query for the others.
        return await asyncio.shield(task)

    async def _timed(self, name: str, rdtype: str) -> DnsResult[Any]:
        start = time.perf_counter()
        try:
            result = await self.inner.query(name, rdtype)
        finally:
            self.queries += 1
            self.busy += time.perf_counter() - start
        self.answered += not result.is_error
        return result


@dataclass(frozen=True)
class SelectorSpec:
    """A DKIM selector to check, with the private key file when the config names one."""

    selector: str
    private_key: Path | None = None
    domain: str | None = None


@dataclass(frozen=True)
class DoctorOptions:
    """Everything the checks need besides the domain; :meth:`from_config` builds it."""

    hostname: str | None = None
    """The HELO name; None: the lowest-preference MX target."""
    ips: tuple[str, ...] = ()
    """Sending addresses (PTR, SPF, blocklists)."""
    expected_ipv4: tuple[str, ...] = ()
    expected_ipv6: tuple[str, ...] = ()
    """What the hostname's A/AAAA should be (the config's ipv4/ipv6)."""
    selectors: tuple[SelectorSpec, ...] = ()
    relay_url: str | None = None
    dnsbls: tuple[str, ...] = DEFAULT_DNSBLS
    dbls: tuple[str, ...] = DEFAULT_DBLS
    local_host: str = "127.0.0.1"
    local_ports: tuple[int, ...] = DEFAULT_PORTS
    configured_ports: frozenset[int] = frozenset()
    """Ports the config has listeners on: closed ones fail instead of warn."""
    smtp_port: int = 25
    """Port of the hostname's SMTP service for the banner/STARTTLS/certificate check."""
    smtp_address: str | None = None
    """Connect there instead of the hostname's first address (tests)."""
    tls_ca_file: Path | None = None
    """Trust this CA bundle instead of the system's (private CAs, tests)."""
    cert_min_days: int = CERT_MIN_DAYS
    acme_data_dir: Path | None = None
    """With ``[tls] acme``: where ``serve`` keeps the certificate and its renewal status."""
    connect_timeout: float = 5.0
    check_timeout: float = 30.0
    """A check still running after this many seconds becomes an ``error`` row."""
    skip: frozenset[str] = frozenset()
    """Check groups to leave out: "host", "rdns", "spf", "dkim", "dmarc", "blocklists", "ports",
    "bulk"."""
    message: bytes | None = None
    """A message to check as receivers would (``check --message``): the "message" rows."""

    @classmethod
    def from_config(
        cls,
        config: Config,
        domain: str,
        ips: tuple[str, ...] = (),
        selectors: tuple[str, ...] = (),
        **overrides: Any,
    ) -> DoctorOptions:
        """Options for checking ``domain`` as the config describes it; ``ips``/``selectors``
        given on the command line replace the config's."""
        domain = normalize(domain)
        keys = {k.selector: k for k in config.dkim if k.domain == domain}
        if selectors:
            specs = tuple(
                SelectorSpec(s, keys[s].private_key if s in keys else None, domain)
                for s in selectors
            )
        else:
            specs = tuple(SelectorSpec(k.selector, k.private_key, domain) for k in keys.values())
        relay = config.delivery.relay
        # The config describes its own domains; another domain is checked on its own terms
        # (its MX host is the HELO name, its addresses the sending IPs), keeping the lists.
        ours = config.path is not None and (not config.domains or domain in config.domains)
        relaying = ours and relay is not None and config.delivery.mode == "relay"
        own_ips = (*config.ipv4, *config.ipv6) if ours and not relaying else ()
        values: dict[str, Any] = {
            "hostname": config.hostname if ours else None,
            # Through a relay, mail leaves from the provider's addresses, not ours.
            "ips": ips or own_ips,
            "expected_ipv4": config.ipv4 if ours else (),
            "expected_ipv6": config.ipv6 if ours else (),
            "selectors": specs,
            "relay_url": relay.url if relay is not None and relaying else None,
            "dnsbls": config.check.dnsbls,
            "dbls": config.check.dbls,
            "configured_ports": frozenset(listener.port for listener in config.listeners),
            "connect_timeout": min(config.delivery.connect_timeout, 10.0),
            "acme_data_dir": config.data_dir if ours and config.tls.acme else None,
        }
        values.update(overrides)
        return cls(**values)


@dataclass
class Context:
    """Per-run state handed to every check."""

    domain: str
    options: DoctorOptions
    resolver: SharedResolver
    extra: dict[str, asyncio.Future[Any]] = field(default_factory=dict)

    async def once(self, key: str, factory: Callable[[], Awaitable[T]]) -> T:
        """Compute ``factory()`` once per run for every check that asks for ``key``."""
        task = self.extra.get(key)
        if task is None:
            task = asyncio.ensure_future(factory())
            self.extra[key] = task
        result: T = await asyncio.shield(task)
        return result

    async def private_key(self, path: Path) -> PrivateKey:
        """A DKIM key file, loaded once per run and off the event loop."""
        return await self.once(f"key:{path}", lambda: asyncio.to_thread(load_key, path))

    async def sending_ips(self) -> tuple[str, ...]:
        """The configured or given sending IPs; without any (and without a relay), the
        addresses of the HELO host, which is where a single-host server sends from."""
        if self.options.ips or self.options.relay_url:
            return self.options.ips

        async def derive() -> tuple[str, ...]:
            host = await self.helo_name()
            if host is None:
                return ()
            a, aaaa = await self.resolver.addresses(host)
            return tuple(str(r) for r in (*a.records, *aaaa.records))

        return await self.once("sending-ips", derive)

    async def mx(self) -> DnsResult[MXRecord]:
        return await self.resolver.mx(self.domain)

    async def mx_points_here(self) -> bool:
        """True when an MX target (or the canonical name an alias target leads to) is
        our hostname, or resolves to one of our addresses: then port 25 must be open."""

        async def find() -> bool:
            own = normalize(self.options.hostname) if self.options.hostname else None
            ours = {*self.options.ips, *self.options.expected_ipv4, *self.options.expected_ipv6}
            mx = await self.mx()
            for target in {r.exchange for r in mx.records if r.exchange}:
                if own is not None and normalize(target) == own:
                    return True
                a, aaaa = await self.resolver.addresses(target)
                names = {normalize(c) for c in (*a.cnames, *aaaa.cnames)}
                if own is not None and own in names:
                    return True
                if ours & {str(r) for r in (*a.records, *aaaa.records)}:
                    return True
            return False

        return await self.once("mx-points-here", find)

    async def helo_name(self) -> str | None:
        """The configured hostname, else the most preferred MX target."""
        if self.options.hostname:
            return normalize(self.options.hostname)
        mx = await self.mx()
        targets = sorted((r for r in mx.records if r.exchange), key=lambda r: r.preference)
        return targets[0].exchange if targets else None
