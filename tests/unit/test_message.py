"""RFC 5322 rules in one place (mailwright.message): each rule with its cases."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright import message
from mailwright.message import (
    MAX_FROM_COMMENTS,
    address_domain,
    author_domain,
    authors,
    field_lines,
    field_name,
    field_names,
    field_value,
    field_values,
    normalize_line_endings,
    received_count,
    split_header,
)


@pytest.mark.parametrize(
    ("data", "header", "body"),
    [
        # RFC 5322 §2.1: the header ends at the first empty line; its last CRLF stays.
        (b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore", b"A: 1\r\nB: 2\r\n", b"body\r\n\r\nmore"),
        (b"A: 1\r\n\r\n", b"A: 1\r\n", b""),
        # No empty line: all header. Starting with one: no header.
        (b"A: 1\r\nB: 2", b"A: 1\r\nB: 2", b""),
        (b"\r\nbody\r\n\r\nx", b"", b"body\r\n\r\nx"),
        (b"\nbody", b"", b"body"),
        (b"", b"", b""),
        # Bare LF line ends (local programs) end the header too, in any mix with CRLF.
        (b"A: 1\nB: 2\n\nbody\n", b"A: 1\nB: 2\n", b"body\n"),
        (b"A: 1\r\n\nbody", b"A: 1\r\n", b"body"),
        (b"A: 1\n\r\nbody", b"A: 1\n", b"body"),
        # A bare CR is not a line end.
        (b"A: 1\r\r\nbody\r\n", b"A: 1\r\r\nbody\r\n", b""),
    ],
)
def test_split_header(data: bytes, header: bytes, body: bytes) -> None:
    assert split_header(data) == (header, body)


def test_split_header_agrees_with_dkim_after_normalizing() -> None:
    from mailwright.dkim.message import split_message

    data = b"A: 1\nB: x\n y\n\nbody\n"
    header, body = split_header(normalize_line_endings(data))
    parsed = split_message(data)
    assert b"".join(f.raw for f in parsed.headers) == header
    assert parsed.body == body


def test_normalize_line_endings_keeps_bare_cr() -> None:
    """RFC 5322 §2.3: bare LF is taken as a line end; bare CR stays a byte of its line."""
    assert normalize_line_endings(b"a\r\nb\nc\rd\r\n") == b"a\r\nb\r\nc\rd\r\n"
    unchanged = b"a\r\nb\r\n"
    assert normalize_line_endings(unchanged) is unchanged


def test_field_lines_keep_folding() -> None:
    """RFC 5322 §2.2.3: a line starting with WSP continues the field before it."""
    header = b"Subject: a\r\n b\r\n\tc\r\nTo: x\r\n"
    assert field_lines(header) == [b"Subject: a\r\n b\r\n\tc", b"To: x"]
    assert field_lines(b"") == []
    assert field_lines(b"To: x") == [b"To: x"]


@pytest.mark.parametrize(
    ("line", "name"),
    [
        (b"Subject: x", b"Subject"),
        (b"Subject \t: x", b"Subject"),  # RFC 5322 §4.5 obs-fields: WSP before the colon
        (b"X:", b"X"),
        (b"no colon here", None),
        (b": no name", None),
        (b" Folded: continuation", None),
    ],
)
def test_field_name(line: bytes, name: bytes | None) -> None:
    assert field_name(line) == name


MSG = (
    b'From: "Alice, Ops" <Alice@Example.COM>\r\nTo: b@example.net\r\n'
    b"Subject: folded\r\n continued\r\nsubject: second\r\n\r\nFrom: body@not.header\r\n"
)


def test_field_lookup_unfolds_and_ignores_the_body() -> None:
    assert field_value(MSG, "SUBJECT") == "folded continued"
    assert field_values(MSG, "subject") == ["folded continued", "second"]
    assert field_values(MSG, "from") == ['"Alice, Ops" <Alice@Example.COM>']
    assert field_value(MSG, "message-id") is None
    assert field_names(MSG) == {"from", "to", "subject"}
    assert field_names(b"\r\nFrom: x@y\r\n") == set()
    assert field_names(b"not a field\r\n\r\n") == set()


def test_fields_of_an_lf_message() -> None:
    assert [f.raw for f in message.fields(b"A: 1\nB: 2\n x\n\nC: body\n")] == [
        b"A: 1\r\n",
        b"B: 2\r\n x\r\n",
    ]


def test_received_count_counts_header_fields_only() -> None:
    """RFC 5321 §4.4 one Received per hop, counted by §6.3 loop detection."""
    hop = b"Received: from a by b; Tue, 24 Nov 2026 19:00:00 +0000\r\n"
    data = hop * 3 + b"RECEIVED : from c\r\n\tby d\r\nX-Received: x\r\n\r\n" + hop
    assert received_count(data) == 4
    assert received_count(b"Subject: none\r\n\r\n" + hop) == 0


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("a@Example.COM", "example.com"),
        ("a@b.example.", "b.example"),
        ('"x@y"@z.example', "z.example"),
        ("a@", None),
        ("@b.example", None),
        ("nobody", None),
        ("", None),
    ],
)
def test_address_domain(address: str, domain: str | None) -> None:
    """RFC 5322 §3.4.1 addr-spec = local-part "@" domain."""
    assert address_domain(address) == domain


def test_authors_of_the_from_fields() -> None:
    """RFC 5322 §3.6.2 From: a mailbox-list, in every From field present."""
    found = authors(b"From: a@x.example, B <b@y.example>\r\nFrom: c@z.example\r\n\r\n")
    assert found.fields == 2
    assert found.addresses == ("a@x.example", "b@y.example", "c@z.example")
    assert found.problem is None
    assert authors(b"Subject: x\r\n\r\n").problem == "no From header field"


def test_from_comment_bound_is_shared_by_every_from_field() -> None:
    """At most MAX_FROM_COMMENTS '(' over all From fields: the stdlib parser recurses per
    nested comment (RFC 5322 §3.2.2), so more are refused before it runs."""
    assert MAX_FROM_COMMENTS == 32
    at_bound = b"From: " + b"(c)" * MAX_FROM_COMMENTS + b" a@x.example\r\n\r\n"
    assert authors(at_bound).addresses == ("a@x.example",)
    over = b"From: " + b"(c)" * 20 + b" a@x.example\r\nFrom: " + b"(c)" * 13 + b" b@y\r\n\r\n"
    found = authors(over)
    assert (found.addresses, found.problem) == (
        (),
        "unusable From header field (comments nested too deep)",
    )
    assert authors(b"From: " + b"(" * 10_000 + b"\r\n\r\n").problem is not None


_FROM_TEXT = st.text(alphabet="aB0 .,;:@<>\"'()\\-_=?\t", max_size=6)
_FROM_VALUES = st.tuples(
    _FROM_TEXT,
    st.sampled_from(["", "a@b.example", "<a@b.example>", "x.y@z-q.example", "<x.y@z>"]),
    st.text(alphabet="aB0 .,;:@<>\"'()\\-_=?\t", max_size=3),
).map("".join)


@settings(max_examples=3000)
@given(_FROM_VALUES)
def test_a_plain_from_reads_as_the_full_parser_reads_it(value: str) -> None:
    """The short path for one plain mailbox gives exactly what the full (stdlib) parser
    gives, or is not taken: signing and DMARC must never see another author."""
    found = authors(f"From: {value}\r\n\r\n".encode())
    if message._PLAIN_MAILBOX.fullmatch(value):
        assert found.addresses == tuple(a for _, a in email.utils.getaddresses([value]))
        assert len(found.addresses) == 1


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ("app@example.com", True),
        ("Example App <app@example.com>", True),
        ("J. O'Neil <j.o@mail.example.com>", True),
        ('"App" <app@example.com>', False),  # a quoted display name: the parser decides
        ("a@x.example, b@y.example", False),  # two authors
        ("A <a@x.example> b@y.example", False),
        ("a, B <b@y.example>", False),  # "a" is a first (domainless) author
        ("a..b@example.com", False),  # not a dot-atom
        ("app@example.com.", False),
        ("=?utf-8?q?App?= <app@example.com>", False),
        ("(comment) app@example.com", False),
    ],
)
def test_which_from_values_take_the_short_path(value: str, plain: bool) -> None:
    assert (message._PLAIN_MAILBOX.fullmatch(value) is not None) == plain
    expected = tuple(a for _, a in email.utils.getaddresses([value]))
    assert authors(f"From: {value}\r\n\r\n".encode()).addresses == expected


@pytest.mark.parametrize(
    ("data", "domain"),
    [
        (MSG, "example.com"),
        (b"From: a@B.example.\r\n\r\n", "b.example"),
        (b"From: undisclosed\r\n\r\n", None),
        (b"From: undisclosed, a@later.example\r\n\r\n", "later.example"),
        (b"Subject: none\r\n\r\n", None),
        (b"From: a@x.example, b@y.example\r\n\r\n", "x.example"),
        (b"From: " + b"(c)" * 32 + b" a@x.example\r\n\r\n", "x.example"),
        (b"From: " + b"(c)" * 33 + b" a@x.example\r\n\r\n", None),
    ],
)
def test_author_domain(data: bytes, domain: str | None) -> None:
    assert author_domain(data) == domain


def test_signing_and_dmarc_pick_the_same_from_domain() -> None:
    """The domain whose key signs is the first Author Domain DMARC evaluates."""
    from mailwright.inbound import author_domains

    for data in (
        MSG,
        b"From: undisclosed, a@Later.example\r\nFrom: c@z.example\r\n\r\n",
        b"From: " + b"(c)" * 33 + b" a@x.example\r\n\r\n",
    ):
        dmarc = author_domains(data).domains
        assert author_domain(data) == (dmarc[0] if dmarc else None)


def test_remembered_fields_follow_the_header_bytes() -> None:
    """fields() remembers recent header sections by their bytes: the same section
    (another body, another message object) gives the same fields; a changed one is read
    afresh; what a caller does with the list it got does not leak into the next call."""
    first = b"From: a@example.com\r\nSubject: one\r\n\r\nbody\r\n"
    other_body = b"From: a@example.com\r\nSubject: one\r\n\r\nanother body\r\n"
    changed = b"From: a@example.com\r\nSubject: two\r\n\r\nbody\r\n"
    got = message.fields(first)
    assert [f.raw for f in got] == [b"From: a@example.com\r\n", b"Subject: one\r\n"]
    got.clear()
    assert [f.name for f in message.fields(other_body)] == ["from", "subject"]
    assert field_value(changed, "Subject") == "two"
    assert field_value(first, "Subject") == "one"
    # a bare-LF section is not the CRLF one: its own entry, the same fields
    assert [f.raw for f in message.fields(first.replace(b"\r\n", b"\n"))] == [
        b"From: a@example.com\r\n",
        b"Subject: one\r\n",
    ]
    # more sections than remembered: the oldest is read again, still right
    for i in range(message._REMEMBERED * 2):
        assert field_value(b"X-N: %d\r\n\r\n" % i, "X-N") == str(i)
    assert field_value(first, "Subject") == "one"
    huge = b"X-Big: " + b"y" * (message._REMEMBERED_SIZE + 10) + b"\r\n\r\n"
    assert field_value(huge, "X-Big") == "y" * (message._REMEMBERED_SIZE + 10)
    assert huge.split(b"\r\n\r\n")[0] + b"\r\n" not in message._remembered
