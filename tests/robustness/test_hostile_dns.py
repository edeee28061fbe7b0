"""The DNS layer under hostile answers: a fake server on loopback answers every query
with what a broken or malicious server might send (any RCODE, records of the wrong name
or type, invalid UTF-8 TXT data, null MX, CNAME chains and loops, mismatched questions).
DnspythonResolver.query must always return a DnsResult, never raise, within its timeout;
SPF, DKIM and DMARC on top of it must always give a result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from hypothesis import given
from hypothesis import strategies as st
from robust_support import robust, run

from mailwright.dkim import DkimStatus, verify_message
from mailwright.dmarc import DmarcStatus, evaluate
from mailwright.dns import DnspythonResolver, DnsResult, Outcome
from mailwright.spf import Result, check_mail_from

Responder = Callable[[dns.message.Message], bytes | None]


class _Server(asyncio.DatagramProtocol):
    def __init__(self, respond: Responder) -> None:
        self.respond = respond

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        reply = self.respond(query)
        if reply is not None:
            self.transport.sendto(reply, addr)  # type: ignore[attr-defined]


async def _with_server(respond: Responder, work: Callable[[str], object]) -> object:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Server(respond), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        return await work(f"127.0.0.1:{port}")  # type: ignore[misc]
    finally:
        transport.close()


RDATA = {
    "A": ["192.0.2.1", "0.0.0.0", "255.255.255.255"],
    "AAAA": ["::1", "2001:db8::1"],
    "MX": ["0 .", "10 mail.example.com.", "65535 a\\000b.example.", "5 @"],
    "TXT": [
        '"v=spf1 -all"',
        '"v=spf1 " "include:example.com" " ~all"',
        '"\\255\\254\\000"',
        '"v=DMARC1; p=reject"',
        '"v=DKIM1; k=ed25519; p=AAAA"',
        '""',
        '"' + "x" * 255 + '" ' * 20,
    ],
    "CNAME": ["example.com.", "loop.example.", "a\\.b.example.", "."],
    "PTR": ["mail.example.com.", "\\032.example."],
}


@st.composite
def responder(draw: st.DrawFn) -> Responder:
    rcode = draw(
        st.sampled_from(
            [dns.rcode.NOERROR] * 4
            + [dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NOTIMP]
            + [dns.rcode.FORMERR, dns.rcode.YXDOMAIN, dns.rcode.NOTAUTH]
        )
    )
    records = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["qname", "other.example.", "loop.example.", "example.com."]),
                st.sampled_from(list(RDATA)),
                st.data(),
            ),
            max_size=6,
        )
    )
    chosen = [
        (owner, rdtype, data.draw(st.sampled_from(RDATA[rdtype])))
        for owner, rdtype, data in records
    ]
    truncated = draw(st.booleans()) and draw(st.booleans())
    wrong_id = draw(st.integers(0, 9)) == 0
    wrong_question = draw(st.integers(0, 9)) == 0

    def respond(query: dns.message.Message) -> bytes | None:
        reply = dns.message.make_response(query)
        reply.set_rcode(rcode)
        qname = query.question[0].name
        if wrong_question:
            reply.question = [dns.rrset.RRset(dns.name.from_text("x.invalid."), 1, 1)]
        for owner, rdtype, text in chosen:
            name = qname if owner == "qname" else dns.name.from_text(owner)
            try:
                rrset = dns.rrset.from_text(name, 60, "IN", rdtype, text)
            except Exception:
                continue
            reply.answer.append(rrset)
        if truncated:
            reply.flags |= dns.flags.TC
        if wrong_id:
            reply.id = (query.id + 1) % 65536
        return reply.to_wire(max_size=65535)

    return respond


OUTCOMES = set(Outcome)


@robust(30)
@given(responder(), st.sampled_from(["TXT", "MX", "A", "AAAA", "PTR", "CNAME"]))
def test_resolver_always_returns_a_dns_result(respond: Responder, rdtype: str) -> None:
    async def work(server: str) -> DnsResult[object]:
        return await DnspythonResolver(server, timeout=0.2).query("example.com", rdtype)

    start = time.perf_counter()
    result = run(_with_server(respond, work))  # type: ignore[arg-type]
    assert time.perf_counter() - start < 2.0
    assert isinstance(result, DnsResult)
    assert result.outcome in OUTCOMES
    if result.outcome is Outcome.ANSWER:
        assert result.records and result.text
    if rdtype == "TXT":
        assert all(isinstance(r, str) for r in result.records)


MESSAGE = (
    b"DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=s; h=from; "
    b"bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n"
    b"From: a@example.com\r\n\r\n"
)


@robust(10)
@given(responder())
def test_spf_dkim_dmarc_give_results_over_a_hostile_server(respond: Responder) -> None:
    async def work(server: str) -> tuple[object, ...]:
        resolver = DnspythonResolver(server, timeout=0.2)
        spf = await check_mail_from("192.0.2.1", "a@example.com", "h.example", resolver, timeout=2)
        dkim = await verify_message(MESSAGE, resolver)
        dmarc = await evaluate("example.com", ("example.com", "pass"), [], resolver)
        return spf, dkim, dmarc

    spf, dkim, dmarc = run(_with_server(respond, work))  # type: ignore[misc]
    assert spf.result in set(Result)  # type: ignore[attr-defined]
    assert all(r.status in set(DkimStatus) for r in dkim)  # type: ignore[attr-defined]
    assert dmarc.result in set(DmarcStatus)  # type: ignore[attr-defined]
