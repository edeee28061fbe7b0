"""MTA-STS policies for delivery: discovery, HTTPS fetch, a cache that survives restarts.

RFC 8461 §3.3 and §5.1 in I/O: the ``_mta-sts`` TXT record says which policy ``id`` is
current; the policy is fetched from ``https://mta-sts.DOMAIN/.well-known/mta-sts.txt``
with a verified certificate, no redirects, a size limit and a timeout; it is cached by
domain with its ``id`` and fetch time in the queue database (table ``mta_sts_policies``)
and used until ``max_age`` after that fetch, even when the TXT record or the HTTPS host
cannot be reached (that is the point: an attacker who blocks them must not switch
the policy off). :meth:`PolicySource.refresh_due` re-fetches policies older than a day
(§3.3: refresh before they expire) and is run in the background by the agent.

Host names are resolved with our :class:`~mailwright.dns.Resolver`, never the system's.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ..dns import Resolver
from ..errors import MailwrightError
from ..mtasts import (
    MAX_POLICY_BYTES,
    WELL_KNOWN_PATH,
    MtaStsError,
    Policy,
    fresh,
    is_text_plain,
    parse_policy,
    policy_host,
    record_name,
    select_record,
)

FETCH_TIMEOUT = 60.0
"""§3.3: the suggested timeout for the HTTPS GET."""
REFRESH_SECONDS = 86_400.0
"""§3.3: refresh cached policies about once a day."""
RETRY_FETCH_SECONDS = 300.0
"""§3.3: after a failed fetch, wait at least five minutes per policy id."""
TABLE = """
CREATE TABLE IF NOT EXISTS mta_sts_policies (
    domain TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    body TEXT NOT NULL,
    fetched REAL NOT NULL
)
"""


class PolicyFetchError(MailwrightError):
    """The policy could not be fetched or is invalid; the text says why (for logs, TLSRPT)."""

    def __init__(self, message: str, result_type: str = "sts-webpki-invalid") -> None:
        super().__init__(message)
        self.result_type = result_type
        """RFC 8460 §4.3.2 result type: sts-policy-fetch-error, sts-policy-invalid,
        sts-webpki-invalid."""


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    domain: str
    policy_id: str
    policy: Policy
    fetched: float


class PolicyCache:
    """The ``mta_sts_policies`` table, in the queue database (one file to back up).

    A connection of its own, used from worker threads under a lock: the queue's writer
    keeps its group commit, and the few policy writes a day do not need to share it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a lost policy is fetched again
            conn.execute(TABLE)
            conn.commit()
            self._conn = conn
        return self._conn

    def _get(self, domain: str) -> CachedPolicy | None:
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT policy_id, body, fetched FROM mta_sts_policies WHERE domain = ?",
                    (domain,),
                )
                .fetchone()
            )
        if row is None:
            return None
        try:
            policy = parse_policy(row[1])
        except MtaStsError:
            return None
        return CachedPolicy(domain, row[0], policy, float(row[2]))

    def _put(self, entry: CachedPolicy) -> None:
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT OR REPLACE INTO mta_sts_policies (domain, policy_id, body, fetched)"
                " VALUES (?, ?, ?, ?)",
                (entry.domain, entry.policy_id, entry.policy.text, entry.fetched),
            )
            db.commit()

    def _all(self) -> list[CachedPolicy]:
        with self._lock:
            domains = [
                r[0] for r in self._db().execute("SELECT domain FROM mta_sts_policies").fetchall()
            ]
        return [c for d in domains if (c := self._get(d)) is not None]

    async def get(self, domain: str) -> CachedPolicy | None:
        return await asyncio.to_thread(self._get, domain)

    async def put(self, entry: CachedPolicy) -> None:
        await asyncio.to_thread(self._put, entry)

    async def all(self) -> list[CachedPolicy]:
        return await asyncio.to_thread(self._all)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _OurResolver(AbstractResolver):
    """aiohttp's host lookups through our resolver (the system's is never asked)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        a, aaaa = await self.resolver.addresses(host)
        results: list[ResolveResult] = []
        for result, fam in ((a, socket.AF_INET), (aaaa, socket.AF_INET6)):
            if family not in (socket.AF_UNSPEC, fam):
                continue
            for address in result.records:
                results.append(
                    {
                        "hostname": host,
                        "host": address,
                        "port": port,
                        "family": fam,
                        "proto": 0,
                        "flags": socket.AI_NUMERICHOST,
                    }
                )
        if not results:
            why = a.error or aaaa.error or "no address records"
            raise OSError(f"{host}: {why}")
        return results

    async def close(self) -> None:
        return None


def https_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate verified against the system CAs or ``ca_file`` (RFC 8461 §3.3)."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


async def fetch_policy(
    domain: str,
    resolver: Resolver,
    context: ssl.SSLContext,
    *,
    port: int = 443,
    timeout: float = FETCH_TIMEOUT,
) -> Policy:
    """GET the policy of ``domain``; raises :class:`PolicyFetchError` saying why not.

    §3.3: only a 200 counts, redirects are not followed, nothing is cached by HTTP,
    the body is at most 64 KB; §3.2: the media type must be text/plain.
    """
    host = policy_host(domain)
    url = f"https://{host}{'' if port == 443 else f':{port}'}{WELL_KNOWN_PATH}"
    connector = aiohttp.TCPConnector(resolver=_OurResolver(resolver), ssl=context, force_close=True)
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=timeout),
                trust_env=False,
                auto_decompress=False,
            ) as session,
            session.get(
                url, allow_redirects=False, headers={"Accept-Encoding": "identity"}
            ) as response,
        ):
            if response.status != 200:
                raise PolicyFetchError(
                    f"{url}: HTTP {response.status} (only 200 counts, RFC 8461 §3.3)",
                    "sts-policy-fetch-error",
                )
            if not is_text_plain(response.headers.get("Content-Type")):
                raise PolicyFetchError(
                    f"{url}: media type {response.headers.get('Content-Type')!r}"
                    " is not text/plain (RFC 8461 §3.2)",
                    "sts-policy-invalid",
                )
            body = bytearray()
            async for chunk in response.content.iter_chunked(16384):
                body += chunk
                if len(body) > MAX_POLICY_BYTES:
                    raise PolicyFetchError(
                        f"{url}: the policy is larger than {MAX_POLICY_BYTES} bytes",
                        "sts-policy-invalid",
                    )
    except aiohttp.ClientConnectorCertificateError as exc:
        raise PolicyFetchError(
            f"{url}: certificate not valid: {exc.certificate_error}", "sts-webpki-invalid"
        ) from None
    except aiohttp.ClientSSLError as exc:
        raise PolicyFetchError(f"{url}: TLS failed: {exc}", "sts-webpki-invalid") from None
    except TimeoutError:
        raise PolicyFetchError(
            f"{url}: no complete answer within {timeout:g} s", "sts-policy-fetch-error"
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise PolicyFetchError(f"{url}: {exc}", "sts-policy-fetch-error") from None
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyFetchError(f"{url}: the policy is not UTF-8", "sts-policy-invalid") from None
    try:
        return parse_policy(text)
    except MtaStsError as exc:
        raise PolicyFetchError(f"{url}: {exc}", "sts-policy-invalid") from None


@dataclass(frozen=True, slots=True)
class PolicyLookup:
    """The policy to apply (None: none applies) and what went wrong on the way."""

    policy: Policy | None
    problem: str | None = None
    result_type: str | None = None


class PolicySource:
    """The policy of a recipient domain, by §5.1's control flow."""

    def __init__(
        self,
        resolver: Resolver,
        cache: PolicyCache,
        *,
        ca_file: Path | None = None,
        port: int = 443,
        timeout: float = FETCH_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resolver = resolver
        self.cache = cache
        self.context = https_context(ca_file)
        self.port = port
        """443; tests point it at a policy server on a free port."""
        self.timeout = timeout
        self.clock = clock
        self._failed: dict[tuple[str, str], float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def lookup(self, domain: str, *, refresh: bool = False) -> PolicyLookup:
        """The policy for ``domain`` now; ``refresh`` fetches even when the id is unchanged."""
        domain = domain.lower().rstrip(".")
        lock = self._locks.setdefault(domain, asyncio.Lock())
        async with lock:
            return await self._lookup(domain, refresh)

    async def _lookup(self, domain: str, refresh: bool) -> PolicyLookup:
        now = self.clock()
        cached = await self.cache.get(domain)
        if cached is not None and not fresh(cached.fetched, cached.policy.max_age, now):
            cached = None
        txt = await self.resolver.txt(record_name(domain))
        try:
            if not txt.ok:
                raise MtaStsError(txt.error or str(txt.outcome))
            record = select_record(txt.records)
        except MtaStsError as exc:
            # §3.1/§3.3: no usable record does not remove a cached policy.
            if cached is not None:
                return PolicyLookup(cached.policy)
            return PolicyLookup(None, None if txt.is_void else f"_mta-sts record: {exc}")
        if cached is not None and cached.policy_id == record.id and not refresh:
            return PolicyLookup(cached.policy)
        failed_at = self._failed.get((domain, record.id))
        if failed_at is not None and now - failed_at < RETRY_FETCH_SECONDS:
            return PolicyLookup(cached.policy if cached else None, "policy fetch failed recently")
        try:
            policy = await fetch_policy(
                domain, self.resolver, self.context, port=self.port, timeout=self.timeout
            )
        except PolicyFetchError as exc:
            self._failed[(domain, record.id)] = now
            # §3.3: a cached policy that has not expired still applies.
            return PolicyLookup(cached.policy if cached else None, str(exc), exc.result_type)
        self._failed.pop((domain, record.id), None)
        await self.cache.put(CachedPolicy(domain, record.id, policy, now))
        return PolicyLookup(policy)

    async def refresh_due(self) -> list[tuple[str, str | None]]:
        """Re-fetch every cached policy fetched more than a day ago (§3.3); returns
        ``(domain, problem)`` per refreshed domain for the log."""
        now = self.clock()
        done = []
        for entry in await self.cache.all():
            if now - entry.fetched >= REFRESH_SECONDS and entry.policy.mode != "none":
                result = await self.lookup(entry.domain, refresh=True)
                done.append((entry.domain, result.problem))
        return done

    async def refresh_loop(
        self,
        interval: float = 3600.0,
        report: Callable[[str, str | None], None] | None = None,
    ) -> None:
        """Run :meth:`refresh_due` every ``interval`` seconds until cancelled;
        ``report(domain, problem)`` for each refresh (§3.3: alert on failures)."""
        while True:
            await asyncio.sleep(interval)
            try:
                done = await self.refresh_due()
            except Exception as exc:  # a broken cache must not end the loop
                done = [("-", repr(exc))]
            for domain, problem in done:
                if report is not None:
                    report(domain, problem)
