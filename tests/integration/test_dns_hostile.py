"""Broken or hostile DNS servers: every reply gives a defined outcome within the timeout.

A scripted UDP server on loopback answers each query in one bad way; the resolver
must return a DnsResult (never raise) and never wait past its lifetime.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from mailwright.dns import DnspythonResolver, Outcome, StubResolver

pytestmark = pytest.mark.integration

Reply = Callable[[dns.message.Message], bytes | None]


def _rcode(code: dns.rcode.Rcode) -> Reply:
    def reply(q: dns.message.Message) -> bytes:
        r = dns.message.make_response(q)
        r.set_rcode(code)
        return r.to_wire()

    return reply


def _truncated(q: dns.message.Message) -> bytes:
    # TC=1 sends the client to TCP, where nothing listens.
    r = dns.message.make_response(q)
    r.flags |= dns.flags.TC
    return r.to_wire()


def _other_question(q: dns.message.Message) -> bytes:
    # Right ID, wrong question: a spoofing attempt the client must ignore.
    other = dns.message.make_query("attacker.example", "A")
    other.id = q.id
    r = dns.message.make_response(other)
    r.answer.append(dns.rrset.from_text("attacker.example.", 300, "IN", "A", "192.0.2.66"))
    return r.to_wire()


def _count_lies(q: dns.message.Message) -> bytes:
    # ANCOUNT says 1 but no record follows.
    wire = bytearray(dns.message.make_response(q).to_wire())
    wire[7] = 1
    return bytes(wire)


def _wrong_type(q: dns.message.Message) -> bytes:
    # An A record in answer to an MX question.
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(q.question[0].name, 300, "IN", "A", "192.0.2.1"))
    return r.to_wire()


def _serve(sock: socket.socket, reply: Reply) -> None:
    while True:
        try:
            data, addr = sock.recvfrom(4096)
        except OSError:
            return
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            continue
        wire = reply(query)
        if wire is not None:
            sock.sendto(wire, addr)


@pytest.fixture
def hostile() -> Iterator[Callable[[Reply], str]]:
    """Start a scripted server: ``hostile(reply)`` returns its ``127.0.0.1:PORT``."""
    sockets: list[socket.socket] = []

    def start(reply: Reply) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        threading.Thread(target=_serve, args=(sock, reply), daemon=True).start()
        return f"127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for sock in sockets:
        sock.close()


@pytest.mark.parametrize(
    ("reply", "outcome", "fragment"),
    [
        (lambda q: b"\x00\x01 not a DNS message", Outcome.TIMEOUT, "no answer within"),
        (_other_question, Outcome.TIMEOUT, "no answer within"),
        (_count_lies, Outcome.TIMEOUT, "no answer within"),
        (_rcode(dns.rcode.FORMERR), Outcome.SERVFAIL, "FORMERR"),
        (_rcode(dns.rcode.NOTIMP), Outcome.SERVFAIL, "NOTIMP"),
        (_rcode(dns.rcode.SERVFAIL), Outcome.SERVFAIL, "SERVFAIL"),
        (_rcode(dns.rcode.REFUSED), Outcome.SERVFAIL, "REFUSED"),
        (_truncated, Outcome.SERVFAIL, "server failure"),
        (_wrong_type, Outcome.NODATA, None),
    ],
    ids=[
        "garbage",
        "other-question",
        "count-lies",
        "formerr",
        "notimp",
        "servfail",
        "refused",
        "tc-without-tcp",
        "wrong-type",
    ],
)
@pytest.mark.parametrize("resolver_class", [StubResolver, DnspythonResolver])
async def test_bad_reply_gives_a_defined_outcome(
    hostile: Callable[[Reply], str],
    reply: Reply,
    outcome: Outcome,
    fragment: str | None,
    resolver_class: type[StubResolver] | type[DnspythonResolver],
) -> None:
    resolver = resolver_class(hostile(reply), timeout=0.5)
    began = time.monotonic()
    result = await resolver.mx("example.com")
    assert time.monotonic() - began < 1.5
    assert result.outcome is outcome
    assert result.records == ()
    if fragment is None:
        assert result.error is None
    else:
        assert result.error is not None and fragment in result.error
