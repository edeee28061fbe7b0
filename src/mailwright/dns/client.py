"""The lean asyncio stub resolver: our own UDP/TCP transport, answers decoded by :mod:`.wire`.

Why not ``dns.asyncresolver``: it opens a socket per query and runs its general
machinery on every answer, which made one loopback TXT lookup cost about twice
dnspython's blocking client. Here each event loop has one UDP socket per
address family and answers are demultiplexed by query ID.

Spoofing resistance (RFC 5452 §9): query IDs come from the OS's CSPRNG, the
socket's source port is chosen at random by the kernel and the socket is
replaced after :data:`ROTATE_AFTER` queries, and an answer is taken only when
it comes from the server asked, carries a pending ID, repeats our question
exactly and decodes; anything else is dropped and the query keeps waiting. A truncated
answer is asked again over TCP (RFC 7766 §5).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any, cast

import dns.resolver

from ..errors import UsageError
from ..metrics import observe_dns
from . import wire
from .names import name_problem, normalize, to_ascii
from .resolver import DEFAULT_TIMEOUT, Resolver, parse_nameserver
from .types import DnsResult, MXRecord, Outcome

ATTEMPT_TIMEOUT = 2.0
"""Seconds to wait for one UDP answer before asking again (the next server, or the same)."""

ROTATE_AFTER = 2000
"""Queries sent from one source port before the socket is replaced by a new random one."""

MAX_PENDING = 128
"""Queries in flight on one socket; beyond this a spare socket takes the overflow, so that a
burst does not overrun the socket's receive buffer (answers would be dropped silently)."""

MAX_CNAME_CHAIN = 16


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[wire.Response]
    question: bytes
    server: tuple[str, int]


class _UdpChannel(asyncio.DatagramProtocol):
    """One UDP socket and the queries waiting on it, keyed by ID."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, _Pending] = {}
        self.sent = 0
        self.retired = False
        """Rotated out: takes no new queries, closes when the last answer is in."""
        self.spare = False
        """Opened because the others had :data:`MAX_PENDING` queries: closes when idle."""
        self.closed = False
        self.send_error: Exception | None = None
        self.dropped = 0
        """Datagrams ignored: unknown ID, wrong source, wrong question (spoofing attempts)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) < 12:
            self.dropped += 1
            return
        pending = self.pending.get((data[0] << 8) | data[1])
        if (
            pending is None
            or (addr[0], addr[1]) != pending.server
            or not wire.answers_question(data, pending.question)
        ):
            self.dropped += 1
            return
        try:
            response = wire.parse_response(data, len(pending.question))
        except wire.WireError:
            # Not taken as the answer: anyone who can guess an ID could send garbage.
            self.dropped += 1
            return
        if not pending.future.done():
            pending.future.set_result(response)

    def error_received(self, exc: Exception) -> None:
        # asyncio reports a failed sendto() here, at once: _udp() checks for it. ICMP
        # errors (port unreachable) cannot be tied to one query on an unconnected
        # socket; those queries time out instead.
        self.send_error = exc

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(ConnectionError("DNS socket closed"))

    def new_id(self) -> int:
        while True:
            query_id = secrets.randbits(16)
            if query_id not in self.pending:
                return query_id

    def release(self, query_id: int) -> None:
        self.pending.pop(query_id, None)
        if (self.retired or self.spare) and not self.pending and self.transport is not None:
            self.transport.close()

    def retire(self) -> None:
        self.retired = True
        if not self.pending and self.transport is not None:
            self.transport.close()


class _ServerError(Exception):
    """A server answered, but not usefully (SERVFAIL, REFUSED, malformed)."""


class StubResolver(Resolver):
    """Queries one or more recursive servers (or the one test server) directly.

    With ``nameserver`` set, every query goes to that server; otherwise the
    servers of /etc/resolv.conf are asked in turn. ``timeout`` bounds a whole
    lookup, all retries and a TCP retry included.
    """

    def __init__(
        self,
        nameserver: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
        dnssec: bool = False,
    ) -> None:
        self.dnssec = dnssec
        """Trust the AD bit of the answers: ``nameserver`` is a validating resolver we run
        (``[dns] dnssec``); the path to it must be trusted too (loopback)."""
        self.timeout = timeout
        self.attempt_timeout = min(attempt_timeout, timeout)
        self.nameserver = nameserver
        servers = [parse_nameserver(nameserver)] if nameserver is not None else _system_servers()
        # The form the kernel reports a datagram's source in, so that answers match.
        self.servers = [(_canonical_ip(host), port) for host, port in servers]
        self._channels: dict[int, list[_UdpChannel]] = {}
        self._opening: dict[int, asyncio.Future[_UdpChannel]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def dropped(self) -> int:
        """Datagrams ignored on the current sockets (wrong ID, source or question)."""
        return sum(c.dropped for channels in self._channels.values() for c in channels)

    async def query(self, name: str, rdtype: str) -> DnsResult[Any]:
        started = time.perf_counter()
        try:
            return await self._query(name, rdtype)
        finally:
            observe_dns(time.perf_counter() - started)

    async def _query(self, name: str, rdtype: str) -> DnsResult[Any]:
        name = normalize(name)
        rdtype = rdtype.upper()
        problem = name_problem(name)
        if problem is not None:
            return DnsResult(name, rdtype, Outcome.INVALID_NAME, error=problem)
        qtype = wire.rdtype_number(rdtype)
        if qtype is None:
            return DnsResult(name, rdtype, Outcome.SERVFAIL, error=f"unknown record type {rdtype}")
        try:
            ascii_name = to_ascii(name)
            question = wire.question(wire.encode_name(ascii_name), qtype)
        except (wire.WireError, UnicodeError, ValueError) as exc:
            return DnsResult(name, rdtype, Outcome.INVALID_NAME, error=str(exc))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        errors: list[str] = []
        for server in self._attempt_order():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                response = await self._ask(
                    loop, server, question, min(remaining, self.attempt_timeout), deadline
                )
            except TimeoutError:
                continue
            except (_ServerError, OSError) as exc:
                # OSError: no socket of that family, or the kernel refused the send.
                what = (
                    f"answered {exc}"
                    if isinstance(exc, _ServerError)
                    else f"unreachable ({exc.strerror or exc})"
                )
                errors.append(f"{_server_text(server)} {what}")
                if len(errors) >= len(self.servers):
                    break
                continue
            result = _result(name, rdtype, qtype, question, response)
            if self.dnssec and response.flags & wire.FLAG_AD:
                result = dataclasses.replace(result, secure=True)
            return result
        if errors:
            return DnsResult(
                name, rdtype, Outcome.SERVFAIL, error=f"server failure ({'; '.join(errors)})"
            )
        return DnsResult(
            name, rdtype, Outcome.TIMEOUT, error=f"no answer within {self.timeout:g} s"
        )

    def _attempt_order(self) -> list[tuple[str, int]]:
        """Every server in turn, as many rounds as attempts fit in the lifetime."""
        rounds = max(1, int(self.timeout / self.attempt_timeout + 0.999))
        return self.servers * rounds

    async def _ask(
        self,
        loop: asyncio.AbstractEventLoop,
        server: tuple[str, int],
        question: bytes,
        wait: float,
        deadline: float,
    ) -> wire.Response:
        response = await self._udp(loop, server, question, wait)
        if response.truncated:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            response = await asyncio.wait_for(_tcp(server, question), remaining)
        if response.rcode == wire.RCODE_FORMERR:
            # RFC 6891 §7: a server without EDNS answers FORMERR; ask it once without.
            response = await self._udp(loop, server, question, wait, edns=False)
        if response.rcode not in (wire.RCODE_NOERROR, wire.RCODE_NXDOMAIN):
            raise _ServerError(wire.RCODE_TEXT.get(response.rcode, f"RCODE {response.rcode}"))
        return response

    async def _udp(
        self,
        loop: asyncio.AbstractEventLoop,
        server: tuple[str, int],
        question: bytes,
        wait: float,
        *,
        edns: bool = True,
    ) -> wire.Response:
        channel = await self._channel(loop, server)
        query_id = channel.new_id()
        future: asyncio.Future[wire.Response] = loop.create_future()
        channel.pending[query_id] = _Pending(future, question, server)
        timer = loop.call_later(wait, _expire, future)
        try:
            assert channel.transport is not None
            channel.send_error = None
            channel.transport.sendto(wire.build_query(query_id, question, edns=edns), server)
            channel.sent += 1
            if isinstance(channel.send_error, OSError):
                raise channel.send_error
            return await future
        except ConnectionError:
            raise TimeoutError from None
        finally:
            timer.cancel()
            channel.release(query_id)

    async def _channel(
        self, loop: asyncio.AbstractEventLoop, server: tuple[str, int]
    ) -> _UdpChannel:
        """The socket to send from: the worker's one, or a spare while that one is full."""
        if loop is not self._loop:
            # A new event loop (a CLI command runs one per call): the old sockets belong
            # to a loop that is gone.
            self.close()
            self._opening, self._loop = {}, loop
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        while True:
            channels = self._channels.setdefault(family, [])
            for channel in channels:
                if channel.closed or channel.retired:
                    continue
                if channel.sent >= ROTATE_AFTER:
                    channel.retire()
                    continue
                if len(channel.pending) < MAX_PENDING:
                    return channel
            opening = self._opening.get(family)
            if opening is None:
                break
            await opening  # then choose again: the new socket may be full already
        opening = loop.create_future()
        self._opening[family] = opening
        try:
            _transport, fresh = await loop.create_datagram_endpoint(
                _UdpChannel,
                family=family,
                local_addr=("::" if family == socket.AF_INET6 else "0.0.0.0", 0),
            )
        except BaseException as exc:
            del self._opening[family]
            opening.set_exception(exc)
            opening.exception()  # retrieved: the waiters, if any, re-raise it
            raise
        live = [c for c in channels if not c.closed]
        # A socket opened because the others are full is a spare: closed once idle.
        fresh.spare = any(not c.retired for c in live)
        self._channels[family] = [*live, fresh]
        del self._opening[family]
        opening.set_result(fresh)
        return fresh

    def close(self) -> None:
        """Close the sockets (they are also closed with their event loop)."""
        for channels in self._channels.values():
            for channel in channels:
                if channel.transport is not None and not channel.closed:
                    with contextlib.suppress(RuntimeError):  # its event loop is already closed
                        channel.transport.close()
        self._channels = {}


def _expire(future: asyncio.Future[wire.Response]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


async def _tcp(server: tuple[str, int], question: bytes) -> wire.Response:
    """One query over TCP with a 2-octet length prefix (RFC 1035 §4.2.2, RFC 7766)."""
    try:
        reader, writer = await asyncio.open_connection(server[0], server[1])
    except OSError as exc:
        raise _ServerError(f"no TCP connection ({exc.strerror or exc})") from None
    try:
        query_id = secrets.randbits(16)
        query = wire.build_query(query_id, question)
        writer.write(len(query).to_bytes(2, "big") + query)
        while True:
            size = int.from_bytes(await reader.readexactly(2), "big")
            data = await reader.readexactly(size)
            if len(data) >= 2 and int.from_bytes(data[:2], "big") == query_id:
                if not wire.answers_question(data, question):
                    raise _ServerError("with another question over TCP")
                try:
                    return wire.parse_response(data, len(question))
                except wire.WireError as exc:
                    raise _ServerError(f"a malformed message over TCP ({exc})") from None
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise _ServerError(f"nothing usable over TCP ({exc or type(exc).__name__})") from None
    finally:
        writer.close()


def _system_servers() -> list[tuple[str, int]]:
    try:
        system = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        system = None
    servers = [(str(ns), 53) for ns in (system.nameservers if system else [])]
    if not servers:
        raise UsageError(
            "no system DNS resolver configured (/etc/resolv.conf names no nameserver)",
            "pass --nameserver HOST[:PORT] or set [dns] nameserver",
        )
    return servers


def _canonical_ip(host: str) -> str:
    address, _, zone = host.partition("%")
    try:
        text = ipaddress.ip_address(address).compressed
    except ValueError:
        return host
    return f"{text}%{zone}" if zone else text


def _server_text(server: tuple[str, int]) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _result(
    name: str, rdtype: str, qtype: int, question: bytes, response: wire.Response
) -> DnsResult[Any]:
    """The answer, NXDOMAIN or NODATA for the question, following CNAMEs (RFC 1034 §3.6.2).

    ``ttl`` is how long the result may be cached: the smallest TTL of the records
    used; for NXDOMAIN and NODATA the SOA's TTL capped by its MINIMUM (RFC 2308
    §5), or None without an SOA (not cached, RFC 2308 §5).
    """
    asked = wire.name_text(wire.read_name(question, 0)[0]).lower()  # escaped as owners are
    current = asked
    cnames: list[str] = []
    text: list[str] = []
    ttl: int | None = None
    answer = response.answer
    follow = qtype != wire.CNAME
    for _ in range(MAX_CNAME_CHAIN):
        found = [r for r in answer if r.rtype == qtype and r.owner.lower() == current]
        if found:
            rrset_ttl = min(r.ttl for r in found)
            records: list[Any] = []
            for record in found:
                value = _convert(qtype, record.value)
                if value not in records:
                    records.append(value)
                    data = wire.rdata_text(qtype, record.value)
                    text.append(f"{record.owner}. {rrset_ttl} IN {rdtype} {data}")
            ttl = rrset_ttl if ttl is None else min(ttl, rrset_ttl)
            return DnsResult(
                name, rdtype, Outcome.ANSWER, tuple(records), tuple(cnames), tuple(text), ttl=ttl
            )
        alias = next(
            (r for r in answer if follow and r.rtype == wire.CNAME and r.owner.lower() == current),
            None,
        )
        if alias is None:
            break
        target = alias.value.lower()
        text.append(f"{alias.owner}. {alias.ttl} IN CNAME {alias.value}.")
        ttl = alias.ttl if ttl is None else min(ttl, alias.ttl)
        if target == asked or target in cnames:
            return DnsResult(
                name,
                rdtype,
                Outcome.SERVFAIL,
                cnames=tuple(cnames),
                text=tuple(text),
                error=f"CNAME loop at {target}",
            )
        cnames.append(target)
        current = target
    else:
        return DnsResult(
            name,
            rdtype,
            Outcome.SERVFAIL,
            cnames=tuple(cnames),
            text=tuple(text),
            error=f"CNAME chain longer than {MAX_CNAME_CHAIN}",
        )
    negative_ttl = None
    if response.soa is not None:
        negative_ttl = min(response.soa.ttl, response.soa.value[6])
        if ttl is not None:
            negative_ttl = min(negative_ttl, ttl)
    if response.rcode == wire.RCODE_NXDOMAIN:
        # dnspython's text form, which escapes control characters from the input
        missing = cnames[-1] if cnames else asked
        return DnsResult(
            name,
            rdtype,
            Outcome.NXDOMAIN,
            cnames=tuple(cnames),
            text=tuple(text),
            error=f"no such domain: {missing} (NXDOMAIN)",
            ttl=negative_ttl,
        )
    return DnsResult(
        name, rdtype, Outcome.NODATA, cnames=tuple(cnames), text=tuple(text), ttl=negative_ttl
    )


def _convert(qtype: int, value: Any) -> Any:
    """The record values :class:`DnsResult` documents, as ``DnspythonResolver`` gives them."""
    if qtype in (wire.A, wire.AAAA):
        return value
    if qtype == wire.MX:
        return MXRecord(value[0], value[1].lower())
    if qtype in (wire.TXT, wire.SPF):
        # RFC 7208 §3.3: the character-strings of one record are concatenated without spaces.
        return b"".join(value).decode("utf-8", errors="replace")
    if qtype in (wire.PTR, wire.CNAME, wire.NS):
        return value.lower()
    return wire.rdata_text(qtype, value)
