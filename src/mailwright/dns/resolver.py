"""The async resolver interface and its dnspython implementation.

Every DNS query mailwright makes goes through a :class:`Resolver`. The CLI's
``--nameserver HOST[:PORT]`` (or ``MAILWRIGHT_NAMESERVER``, or ``[dns]
nameserver`` in the config) builds one :class:`DnspythonResolver` aimed at that
server, so a whole run talks to one place, which is how the tests point
everything at a local NSD.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from ..errors import UsageError
from .names import name_problem, normalize, reverse_name, to_ascii
from .types import DnsResult, MXRecord, Outcome

T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
"""Seconds for one whole lookup (all retries); RFC 7208 §4.6.4 suggests at least 20 s for a
complete SPF evaluation, which a few concurrent 5 s lookups stay well inside."""


class Resolver(ABC):
    """Async DNS lookups returning :class:`DnsResult` values, never raising for DNS outcomes."""

    @abstractmethod
    async def query(self, name: str, rdtype: str) -> DnsResult[Any]:
        """Look up ``name``/``rdtype``; see :class:`DnsResult` for the record types."""

    async def a(self, name: str) -> DnsResult[str]:
        return await self.query(name, "A")

    async def aaaa(self, name: str) -> DnsResult[str]:
        return await self.query(name, "AAAA")

    async def mx(self, name: str) -> DnsResult[MXRecord]:
        return await self.query(name, "MX")

    async def txt(self, name: str) -> DnsResult[str]:
        return await self.query(name, "TXT")

    async def ptr(self, name: str) -> DnsResult[str]:
        return await self.query(name, "PTR")

    async def cname(self, name: str) -> DnsResult[str]:
        return await self.query(name, "CNAME")

    async def reverse(
        self, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> DnsResult[str]:
        """PTR lookup for an address."""
        return await self.query(reverse_name(ip), "PTR")

    async def addresses(self, name: str) -> tuple[DnsResult[str], DnsResult[str]]:
        """A and AAAA for ``name``, looked up concurrently."""
        a, aaaa = await asyncio.gather(self.a(name), self.aaaa(name))
        return a, aaaa


async def gather_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Run independent lookups concurrently and return their results in order."""
    return list(await asyncio.gather(*aws))


def parse_nameserver(spec: str) -> tuple[str, int]:
    """Parse ``HOST[:PORT]``, ``[V6]:PORT`` or a bare IPv6 address; the host must be an IP.

    Raises :class:`UsageError` with the accepted forms when ``spec`` is none of them.
    """
    text = spec.strip()
    hint = "use an IP address with an optional port, e.g. 127.0.0.1:5353 or [::1]:5353"
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"nameserver {spec!r}: missing ']'", hint)
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"nameserver {spec!r}: unexpected text after ']'", hint)
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"nameserver {spec!r}: {host!r} is not an IP address", hint) from None
    port = 53
    if port_text is not None:  # "HOST:" with nothing after the colon is a mistake too
        # isascii(): str.isdigit() is also true for '²' and other non-ASCII digits.
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise UsageError(f"nameserver {spec!r}: port must be 1-65535", hint)
        port = int(port_text)
    return host, port


def parse_rdtype(text: str) -> str:
    """Validate a record type name (``MX``, ``txt``, ``TYPE65``) and return it upper-case.

    Meta types (ANY, AXFR, IXFR, OPT) are refused: they are not lookups a mail
    check makes, and many servers answer them minimally (RFC 8482).
    Raises :class:`UsageError` for anything else.
    """
    hint = "use a record type such as A, AAAA, MX, TXT, PTR, CNAME, NS, SOA, TLSA"
    try:
        value = dns.rdatatype.from_text(text.strip().upper())
    except dns.exception.DNSException:
        raise UsageError(f"unknown DNS record type {text!r}", hint) from None
    if dns.rdatatype.is_metatype(value) or value == dns.rdatatype.OPT:
        raise UsageError(f"record type {text!r} is not a lookup type", hint)
    return dns.rdatatype.to_text(value)


class DnspythonResolver(Resolver):
    """A resolver over ``dns.asyncresolver``.

    With ``nameserver`` set, every query goes to that one server (no search list,
    no /etc/resolv.conf); otherwise the system configuration is used.
    """

    def __init__(
        self,
        nameserver: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cache: bool = False,
        dnssec: bool = False,
    ) -> None:
        self.timeout = timeout
        self.dnssec = dnssec
        if nameserver is not None:
            host, port = parse_nameserver(nameserver)
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)]
        else:
            try:
                self._resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise UsageError(
                    "no system DNS resolver configured (/etc/resolv.conf names no nameserver)",
                    "pass --nameserver HOST[:PORT] or set [dns] nameserver",
                ) from None
        self._resolver.search = []
        self._resolver.use_search_by_default = False
        self._resolver.lifetime = timeout
        self._resolver.timeout = min(timeout, 2.0)
        # EDNS0 with a large buffer so 2048-bit DKIM keys and long SPF records fit in UDP.
        self._resolver.use_edns(0, 0, 1232)
        if dnssec:
            # The server is a validating resolver we trust (on loopback): ask for the AD
            # flag (RFC 6840 §5.7) and DNSSEC records (DO), and believe the AD we get.
            self._resolver.use_edns(0, dns.flags.DO, 1232)
            self._resolver.flags = dns.flags.RD | dns.flags.AD
        if cache:
            self._resolver.cache = dns.resolver.LRUCache(10_000)
        self.nameserver = nameserver

    async def query(self, name: str, rdtype: str) -> DnsResult[Any]:
        name = normalize(name)
        rdtype = rdtype.upper()
        problem = name_problem(name)
        if problem is not None:
            return DnsResult(name, rdtype, Outcome.INVALID_NAME, error=problem)
        try:
            qname = dns.name.from_text(to_ascii(name))
        except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
            return DnsResult(name, rdtype, Outcome.INVALID_NAME, error=str(exc))
        try:
            rdtype_value = dns.rdatatype.from_text(rdtype)
        except dns.exception.DNSException:
            return DnsResult(name, rdtype, Outcome.SERVFAIL, error=f"unknown record type {rdtype}")
        try:
            # dnspython sleeps a back-off between tries and may overshoot its lifetime by
            # that much; the outer bound keeps "timeout" a promise.
            answer = await asyncio.wait_for(
                self._resolver.resolve(qname, rdtype_value, raise_on_no_answer=False, search=False),
                self.timeout,
            )
        except dns.resolver.NXDOMAIN as exc:
            # RFC 1034 §3.6.2 / RFC 2308 §2.1: after a CNAME the RCODE describes the last
            # name in the chain, so keep the chain to show which name does not exist.
            responses: dict[dns.name.Name, dns.message.Message] = exc.kwargs.get("responses", {})
            response = responses.get(qname)
            cnames, chain_text = _cname_chain(response, qname) if response else ([], [])
            # dnspython's text form escapes control characters from the input.
            missing = cnames[-1] if cnames else qname.to_text(omit_final_dot=True)
            return DnsResult(
                name,
                rdtype,
                Outcome.NXDOMAIN,
                cnames=tuple(cnames),
                text=tuple(chain_text),
                error=f"no such domain: {missing} (NXDOMAIN)",
            )
        except (dns.resolver.LifetimeTimeout, TimeoutError):
            return DnsResult(
                name, rdtype, Outcome.TIMEOUT, error=f"no answer within {self.timeout:g} s"
            )
        except dns.exception.Timeout:
            return DnsResult(
                name, rdtype, Outcome.TIMEOUT, error=f"no answer within {self.timeout:g} s"
            )
        except dns.resolver.NoNameservers as exc:
            return DnsResult(name, rdtype, Outcome.SERVFAIL, error=_servfail_text(exc))
        except dns.resolver.YXDOMAIN:
            return DnsResult(name, rdtype, Outcome.SERVFAIL, error="name too long after DNAME")
        except dns.exception.DNSException as exc:
            return DnsResult(name, rdtype, Outcome.SERVFAIL, error=str(exc) or type(exc).__name__)
        result = _result_from_answer(name, rdtype, answer)
        if self.dnssec and answer.response.flags & dns.flags.AD:
            result = dataclasses.replace(result, secure=True)
        return result


def _servfail_text(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    details = "; ".join(f"{server}: {answer}" for server, _tcp, _port, answer, *_ in errors)
    return f"server failure ({details})" if details else "server failure"


def _cname_chain(
    response: dns.message.Message, qname: dns.name.Name
) -> tuple[list[str], list[str]]:
    """The CNAME targets from ``qname`` on, in order, and their lines as dig shows them.

    Follows the chain by owner name (RFC 1034 §3.6.2) rather than taking every CNAME in
    the answer section, so unrelated or out-of-order records do not end up in it.
    """
    targets: list[str] = []
    lines: list[str] = []
    current = qname
    for _ in range(len(response.answer) + 1):
        rrset = next(
            (
                rr
                for rr in response.answer
                if rr.rdtype == dns.rdatatype.CNAME and rr.name == current and len(rr) > 0
            ),
            None,
        )
        if rrset is None:
            break
        lines.extend(rrset.to_text().splitlines())
        current = rrset[0].target
        targets.append(normalize(current.to_text()).rstrip("."))
    return targets, lines


def _result_from_answer(name: str, rdtype: str, answer: dns.resolver.Answer) -> DnsResult[Any]:
    cnames: list[str] = []
    chain_text: list[str] = []
    if rdtype != "CNAME":
        cnames, chain_text = _cname_chain(answer.response, answer.qname)
    rrset = answer.rrset
    if rrset is None or len(rrset) == 0:
        return DnsResult(name, rdtype, Outcome.NODATA, cnames=tuple(cnames), text=tuple(chain_text))
    records = tuple(_convert(rdtype, rdata) for rdata in rrset)
    text = (*chain_text, *rrset.to_text().splitlines())
    return DnsResult(name, rdtype, Outcome.ANSWER, records, tuple(cnames), text)


def _convert(rdtype: str, rdata: Any) -> Any:
    if rdtype in ("A", "AAAA"):
        return str(rdata.address)
    if rdtype == "MX":
        return MXRecord(int(rdata.preference), normalize(rdata.exchange.to_text()).rstrip("."))
    if rdtype in ("TXT", "SPF"):
        # RFC 7208 §3.3: the character-strings of one record are concatenated without spaces.
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    if rdtype in ("PTR", "CNAME", "NS"):
        return normalize(rdata.target.to_text()).rstrip(".")
    return str(rdata.to_text())
