"""StubResolver's transport against a scripted DNS server on loopback.

The server is a few lines of asyncio here (not NSD) because these tests need
answers no real server sends: wrong IDs, wrong questions, answers from another
port, truncation, silence. Correct answers are built with dnspython.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from mailwright.dns import Outcome, StubResolver

Handler = Callable[[dns.message.Message, str], list[bytes]]
"""(query, "udp" | "tcp") -> the messages to send back, in order."""


class ScriptedServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.queries: list[tuple[str, dns.message.Message]] = []
        self.port = 0
        self.udp: Any = None
        self.tcp: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                server.udp = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                query = dns.message.from_wire(data)
                server.queries.append(("udp", query))
                for reply in server.handler(query, "udp"):
                    server.udp.sendto(reply, addr)

        async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            size = int.from_bytes(await reader.readexactly(2), "big")
            query = dns.message.from_wire(await reader.readexactly(size))
            self.queries.append(("tcp", query))
            for reply in self.handler(query, "tcp"):
                writer.write(len(reply).to_bytes(2, "big") + reply)
            await writer.drain()
            writer.close()

        # UDP and TCP on one port: the kernel picks the UDP port, and that port number may
        # be taken for TCP (another process's connection); then pick again
        for _ in range(20):
            await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
            self.port = self.udp.get_extra_info("sockname")[1]
            try:
                self.tcp = await asyncio.start_server(on_tcp, "127.0.0.1", self.port)
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                self.udp.close()
        raise RuntimeError("no port free for both UDP and TCP")

    def close(self) -> None:
        self.udp.close()
        assert self.tcp is not None
        self.tcp.close()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"


def answer(query: dns.message.Message, *records: str, ttl: int = 300) -> dns.message.Message:
    response = dns.message.make_response(query)
    qname = query.question[0].name
    for text in records:
        rdtype, _, data = text.partition(" ")
        response.answer.append(dns.rrset.from_text(qname, ttl, "IN", rdtype, data))
    return response


def wire_of(message: dns.message.Message) -> bytes:
    return message.to_wire()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Any]]:
    servers: list[ScriptedServer] = []

    async def start(handler: Handler) -> ScriptedServer:
        server = ScriptedServer(handler)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


async def test_answer_is_decoded(serve: Any) -> None:
    server = await serve(lambda q, via: [wire_of(answer(q, "A 192.0.2.1", ttl=120))])
    result = await StubResolver(server.nameserver, timeout=2).a("mail.example.com")
    assert (result.outcome, result.records, result.ttl) == (Outcome.ANSWER, ("192.0.2.1",), 120)
    assert result.text == ("mail.example.com. 120 IN A 192.0.2.1",)


async def test_answer_with_a_wrong_id_is_ignored(serve: Any) -> None:
    def spoof_first(query: dns.message.Message, via: str) -> list[bytes]:
        forged = answer(query, "A 6.6.6.6")
        forged.id = (query.id + 1) % 65536
        return [wire_of(forged), wire_of(answer(query, "A 192.0.2.1"))]

    server = await serve(spoof_first)
    resolver = StubResolver(server.nameserver, timeout=2)
    result = await resolver.a("mail.example.com")
    assert result.records == ("192.0.2.1",)
    assert resolver.dropped == 1


async def test_answer_to_another_question_is_ignored(serve: Any) -> None:
    def spoof_first(query: dns.message.Message, via: str) -> list[bytes]:
        other = dns.message.make_query("evil.example.com", "A")
        other.id = query.id
        forged = answer(other, "A 6.6.6.6")
        same_name_other_type = dns.message.make_query(query.question[0].name, "TXT")
        same_name_other_type.id = query.id
        return [
            wire_of(forged),
            wire_of(answer(same_name_other_type, 'TXT "x"')),
            wire_of(answer(query, "A 192.0.2.1")),
        ]

    server = await serve(spoof_first)
    resolver = StubResolver(server.nameserver, timeout=2)
    result = await resolver.a("mail.example.com")
    assert result.records == ("192.0.2.1",)
    assert resolver.dropped == 2


async def test_answer_from_another_port_is_ignored(serve: Any) -> None:
    sent: list[tuple[dns.message.Message, tuple[str, int]]] = []

    def remember(query: dns.message.Message, via: str) -> list[bytes]:
        sent.append((query, ("127.0.0.1", 0)))
        return []  # the real server stays silent until the forgery has been tried

    server = await serve(remember)
    resolver = StubResolver(server.nameserver, timeout=1.0, attempt_timeout=1.0)
    task = asyncio.create_task(resolver.a("mail.example.com"))
    while not sent:
        await asyncio.sleep(0.01)
    query = sent[0][0]
    channel = next(iter(resolver._channels[socket.AF_INET]))
    assert channel.transport is not None
    client_port = channel.transport.get_extra_info("sockname")[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        attacker.sendto(wire_of(answer(query, "A 6.6.6.6")), ("127.0.0.1", client_port))
    await asyncio.sleep(0.05)
    server.udp.sendto(wire_of(answer(query, "A 192.0.2.1")), ("127.0.0.1", client_port))
    result = await task
    assert result.records == ("192.0.2.1",)
    assert resolver.dropped == 1


async def test_ids_and_ports_are_random(serve: Any) -> None:
    server = await serve(lambda q, via: [wire_of(answer(q, "A 192.0.2.1"))])
    ports = set()
    ids = set()
    for _ in range(8):
        resolver = StubResolver(server.nameserver, timeout=2)
        await asyncio.gather(*(resolver.a(f"h{i}.example.com") for i in range(4)))
        channel = resolver._channels[socket.AF_INET][0]
        assert channel.transport is not None
        ports.add(channel.transport.get_extra_info("sockname")[1])
        resolver.close()
    ids = {query.id for _via, query in server.queries}
    assert len(ports) >= 6  # 8 sockets; the kernel picks each port at random
    assert len(ids) >= 28


async def test_many_queries_share_one_socket(serve: Any) -> None:
    server = await serve(lambda q, via: [wire_of(answer(q, "A 192.0.2.1"))])
    resolver = StubResolver(server.nameserver, timeout=2)
    results = await asyncio.gather(*(resolver.a(f"h{i}.example.com") for i in range(50)))
    assert {r.outcome for r in results} == {Outcome.ANSWER}
    assert len(resolver._channels[socket.AF_INET]) == 1


async def test_truncated_answer_is_asked_again_over_tcp(serve: Any) -> None:
    def truncate_udp(query: dns.message.Message, via: str) -> list[bytes]:
        if via == "udp":
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC
            return [wire_of(response)]
        return [wire_of(answer(query, 'TXT "over tcp"'))]

    server = await serve(truncate_udp)
    result = await StubResolver(server.nameserver, timeout=2).txt("big.example.com")
    assert (result.outcome, result.records) == (Outcome.ANSWER, ("over tcp",))
    assert [via for via, _query in server.queries] == ["udp", "tcp"]


async def test_silence_is_a_timeout_within_the_bound(serve: Any) -> None:
    server = await serve(lambda q, via: [])
    began = time.monotonic()
    result = await StubResolver(server.nameserver, timeout=0.3).a("mail.example.com")
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "no answer within 0.3 s"
    assert 0.25 <= time.monotonic() - began < 1.5  # slack for a loaded machine


async def test_a_lost_answer_is_asked_again(serve: Any) -> None:
    seen: list[int] = []

    def drop_first(query: dns.message.Message, via: str) -> list[bytes]:
        seen.append(query.id)
        return [] if len(seen) == 1 else [wire_of(answer(query, "A 192.0.2.1"))]

    server = await serve(drop_first)
    resolver = StubResolver(server.nameserver, timeout=1.0, attempt_timeout=0.2)
    result = await resolver.a("mail.example.com")
    assert result.records == ("192.0.2.1",)
    assert len(seen) == 2 and seen[0] != seen[1]


@pytest.mark.parametrize(("rcode", "text"), [(dns.rcode.REFUSED, "REFUSED"), (2, "SERVFAIL")])
async def test_server_failure(serve: Any, rcode: int, text: str) -> None:
    def fail(query: dns.message.Message, via: str) -> list[bytes]:
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        return [wire_of(response)]

    server = await serve(fail)
    result = await StubResolver(server.nameserver, timeout=2).a("mail.example.com")
    assert result.outcome is Outcome.SERVFAIL
    assert result.error is not None and text in result.error


async def test_malformed_answer_is_ignored(serve: Any) -> None:
    def loop_pointer(query: dns.message.Message, via: str) -> list[bytes]:
        good = wire_of(answer(query, "A 192.0.2.1"))
        # The answer's owner name is a pointer to offset 12; make it point to itself.
        question_end = good.index(b"\x00\x01\x00\x01") + 4
        return [good[:question_end] + bytes([0xC0, question_end]) + good[question_end + 2 :]]

    server = await serve(loop_pointer)
    resolver = StubResolver(server.nameserver, timeout=0.3)
    result = await resolver.a("mail.example.com")
    # Garbage with a guessed ID must not decide the lookup (nor fail it early).
    assert result.outcome is Outcome.TIMEOUT
    assert resolver.dropped == 1


async def test_negative_answers_carry_the_soa_ttl(serve: Any) -> None:
    def nxdomain(query: dns.message.Message, via: str) -> list[bytes]:
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(
            dns.rrset.from_text(
                "example.com.", 3600, "IN", "SOA", "ns.example.com. h.example.com. 1 2 3 4 60"
            )
        )
        if query.question[0].name.to_text().startswith("nodata"):
            response.set_rcode(dns.rcode.NOERROR)
        return [wire_of(response)]

    server = await serve(nxdomain)
    resolver = StubResolver(server.nameserver, timeout=2)
    nx = await resolver.a("nowhere.example.com")
    assert (nx.outcome, nx.ttl) == (Outcome.NXDOMAIN, 60)  # RFC 2308 §5: min(TTL, MINIMUM)
    nodata = await resolver.a("nodata.example.com")
    assert (nodata.outcome, nodata.ttl) == (Outcome.NODATA, 60)


def test_server_addresses_are_kept_in_the_form_answers_come_from() -> None:
    # A datagram's source is reported compressed; "0:0:...:1" must still match "::1".
    assert StubResolver("[0:0:0:0:0:0:0:1]:5353").servers == [("::1", 5353)]
    assert StubResolver("127.0.0.1").servers == [("127.0.0.1", 53)]


async def test_a_send_the_kernel_refuses_is_a_server_failure_not_an_exception() -> None:
    resolver = StubResolver("127.0.0.1:53", timeout=1.0)
    resolver.servers = [("127.0.0.1", 0)]  # no datagram can go to port 0
    result = await resolver.a("mail.example.com")
    assert result.outcome is Outcome.SERVFAIL
    assert result.error is not None and "unreachable" in result.error
