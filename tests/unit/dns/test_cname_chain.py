"""The CNAME chain is followed by owner name (RFC 1034 §3.6.2), not taken in section order."""

import dns.message
import dns.name

from mailwright.dns.resolver import _cname_chain


def _response(answer: str) -> dns.message.Message:
    return dns.message.from_text(
        "id 1\nopcode QUERY\nrcode NOERROR\nflags QR AA\n;QUESTION\na.example. IN A\n;ANSWER\n"
        + answer
    )


def test_chain_in_order() -> None:
    response = _response(
        "a.example. 300 IN CNAME b.example.\n"
        "b.example. 300 IN CNAME c.example.\n"
        "c.example. 300 IN A 192.0.2.1\n"
    )
    targets, lines = _cname_chain(response, dns.name.from_text("a.example."))
    assert targets == ["b.example", "c.example"]
    assert lines == [
        "a.example. 300 IN CNAME b.example.",
        "b.example. 300 IN CNAME c.example.",
    ]


def test_chain_out_of_section_order_and_unrelated_cname_ignored() -> None:
    response = _response(
        "b.example. 300 IN CNAME c.example.\n"
        "x.example. 300 IN CNAME y.example.\n"
        "a.example. 300 IN CNAME B.Example.\n"
        "c.example. 300 IN A 192.0.2.1\n"
    )
    targets, _ = _cname_chain(response, dns.name.from_text("a.example."))
    assert targets == ["b.example", "c.example"]


def test_loop_in_the_answer_terminates() -> None:
    response = _response("a.example. 300 IN CNAME b.example.\nb.example. 300 IN CNAME a.example.\n")
    targets, _ = _cname_chain(response, dns.name.from_text("a.example."))
    assert len(targets) <= 3


def test_no_cname() -> None:
    response = _response("a.example. 300 IN A 192.0.2.1\n")
    assert _cname_chain(response, dns.name.from_text("a.example.")) == ([], [])
