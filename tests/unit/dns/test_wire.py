"""The wire decoder against dnspython's encoder, and against hostile bytes."""

from __future__ import annotations

import contextlib
import random

import dns.message
import dns.rrset
import pytest

from mailwright.dns import wire

RECORDS = [
    ("A", "192.0.2.1"),
    ("AAAA", "2001:db8::25"),
    ("AAAA", "::ffff:192.0.2.1"),
    ("MX", "10 mail.example.com."),
    ("MX", "0 ."),
    ("TXT", '"v=spf1 " "ip4:192.0.2.0/24" " -all"'),
    ("TXT", '"quote \\" and backslash \\\\ and \\000 and caf\\233"'),
    ("TXT", '""'),
    ("PTR", "mail.example.com."),
    ("CNAME", "Other.Example.NET."),
    ("NS", "ns1.example.com."),
    ("SOA", "ns.example.com. hostmaster.example.com. 2026 7200 3600 1209600 300"),
    ("TLSA", "3 1 1 " + "ab" * 32),
    ("CAA", '0 issue "letsencrypt.org"'),
]


@pytest.mark.parametrize(("rdtype", "data"), RECORDS)
def test_decodes_like_dnspython(rdtype: str, data: str) -> None:
    query = dns.message.make_query("Owner.example.com", rdtype)
    response = dns.message.make_response(query)
    rrset = dns.rrset.from_text("Owner.example.com.", 300, "IN", rdtype, data)
    response.answer.append(rrset)
    message = response.to_wire()
    question_length = len(query.question[0].name.to_wire()) + 4
    decoded = wire.parse_response(message, question_length)
    assert len(decoded.answer) == 1
    record = decoded.answer[0]
    assert (record.owner, record.ttl) == ("Owner.example.com", 300)
    number = wire.rdtype_number(rdtype)
    assert number is not None
    # The presentation form is dnspython's, character for character.
    assert wire.rdata_text(number, record.value) == rrset[0].to_text()


def test_owner_names_escape_like_dnspython() -> None:
    name = dns.name.Name([b"a b", b'q"(x);@$', b"\x00\xff", b"example", b""])
    query = dns.message.make_query(name, "A")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.1"))
    decoded = wire.parse_response(response.to_wire(), len(name.to_wire()) + 4)
    assert decoded.answer[0].owner + "." == name.to_text()


def _good_response() -> tuple[bytes, int]:
    query = dns.message.make_query("example.com", "MX")
    response = dns.message.make_response(query)
    response.answer.append(
        dns.rrset.from_text("example.com.", 300, "IN", "MX", "10 mail.example.com.")
    )
    response.authority.append(
        dns.rrset.from_text(
            "example.com.", 300, "IN", "SOA", "ns.example.com. h.example.com. 1 2 3 4 5"
        )
    )
    return response.to_wire(), len(query.question[0].name.to_wire()) + 4


@pytest.mark.parametrize(
    ("problem", "damage"),
    [
        ("pointer to itself", lambda m, q: m[: 12 + q] + bytes([0xC0, 12 + q]) + m[14 + q :]),
        ("pointer forwards", lambda m, q: m[: 12 + q] + bytes([0xC0, 0xFF]) + m[14 + q :]),
        ("cut in the middle", lambda m, q: m[: len(m) // 2]),
        ("more records than sent", lambda m, q: m[:6] + b"\x00\x09" + m[8:]),
        ("header only", lambda m, q: m[:11]),
        ("reserved label type", lambda m, q: m[: 12 + q] + b"\x80\x00" + m[14 + q :]),
    ],
)
def test_malformed_messages_raise_wire_error(problem: str, damage: object) -> None:
    message, question_length = _good_response()
    assert callable(damage)
    with pytest.raises(wire.WireError):
        wire.parse_response(damage(message, question_length), question_length)


def test_random_damage_never_raises_anything_else() -> None:
    message, question_length = _good_response()
    rng = random.Random(1035)
    for _ in range(3000):
        damaged = bytearray(message)
        for _ in range(rng.randint(1, 6)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.randrange(len(damaged))]
        with contextlib.suppress(wire.WireError):
            wire.parse_response(bytes(damaged), question_length)


def test_query_is_what_dnspython_reads() -> None:
    question = wire.question(wire.encode_name("mail.example.com"), wire.MX)
    parsed = dns.message.from_wire(wire.build_query(4711, question))
    assert parsed.id == 4711
    assert parsed.question[0].to_text() == "mail.example.com. IN MX"
    assert parsed.edns == 0 and parsed.payload == wire.UDP_PAYLOAD
    assert wire.answers_question(dns.message.make_response(parsed).to_wire(), question)


def test_answers_question_ignores_case_of_the_name_only() -> None:
    question = wire.question(wire.encode_name("mail.example.com"), wire.A)
    echoed = dns.message.make_response(dns.message.make_query("MAIL.Example.com", "A"))
    assert wire.answers_question(echoed.to_wire(), question)
    other_type = dns.message.make_response(dns.message.make_query("mail.example.com", "AAAA"))
    assert not wire.answers_question(other_type.to_wire(), question)
    not_a_response = dns.message.make_query("mail.example.com", "A")
    assert not wire.answers_question(not_a_response.to_wire(), question)
