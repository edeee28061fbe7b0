"""Header fields added before queueing (RFC 5321 §4.4, RFC 5322 §3.6)."""

from __future__ import annotations

import pytest

from mailwright.smtp import headers

MSG = (
    b'From: "Alice, Ops" <Alice@Example.COM>\r\nTo: b@example.net\r\n'
    b"Subject: folded\r\n continued\r\n\r\nFrom: body@not.header\r\n"
)


def test_field_names_and_values_come_from_the_header_only() -> None:
    assert headers.field_names(MSG) == {"from", "to", "subject"}
    assert headers.header_value(MSG, "subject") == "folded continued"
    assert headers.header_value(MSG, "message-id") is None
    assert headers.field_names(b"\r\nFrom: x@y\r\n") == set()  # no header at all


@pytest.mark.parametrize(
    ("message", "domain"),
    [
        (MSG, "example.com"),
        (b"From: a@B.example.\r\n\r\n", "b.example"),
        (b"From: undisclosed\r\n\r\n", None),
        (b"Subject: none\r\n\r\n", None),
        (b"From: a@x.example, b@y.example\r\n\r\n", "x.example"),
        # At most MAX_FROM_COMMENTS (32) comments are parsed; beyond, no usable domain.
        (b"From: " + b"(c)" * 32 + b" a@x.example\r\n\r\n", "x.example"),
        (b"From: " + b"(c)" * 33 + b" a@x.example\r\n\r\n", None),
    ],
)
def test_from_domain(message: bytes, domain: str | None) -> None:
    assert headers.from_domain(message) == domain


def test_received_count_counts_header_fields_only() -> None:
    """RFC 5321 §6.3 counts the Received fields of the header; body lines do not count."""
    hop = b"Received: from a by b; Tue, 24 Nov 2026 19:00:00 +0000\r\n"
    message = hop * 3 + b"RECEIVED : from c\r\n\tby d\r\nX-Received: x\r\n\r\n" + hop
    assert headers.received_count(message) == 4
    assert headers.received_count(b"Subject: none\r\n\r\n" + hop) == 0


def test_received_field() -> None:
    field = headers.received(
        helo="client.example",
        client_ip="192.0.2.1",
        client_name=None,
        hostname="mx.example.com",
        protocol="ESMTPSA",
        queue_id="2K6EERE55KMKDX",
        recipient="b@example.net",
        tls="using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384",
        user="bob",
        now=1_800_000_000,
    )
    assert field == (
        b"Received: from client.example (unknown [192.0.2.1])\r\n"
        b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
        b"\t(authenticated sender: bob)\r\n"
        b"\tby mx.example.com (mailwright) with ESMTPSA id 2K6EERE55KMKDX\r\n"
        b"\tfor <b@example.net>; Fri, 15 Jan 2027 08:00:00 +0000\r\n"
    )


def test_received_neutralises_hostile_helo() -> None:
    field = headers.received(
        helo="evil)\r\nBcc: x@y (",
        client_ip="192.0.2.1",
        client_name=None,
        hostname="mx.example.com",
        protocol="ESMTP",
        queue_id="X",
        recipient=None,
    )
    assert field.count(b"\r\n") == 2  # no header field smuggled in
    assert field.startswith(b"Received: from evil___Bcc:_x@y__ (unknown")


def test_message_id_and_date() -> None:
    assert headers.message_id("mx.example.com").startswith(b"Message-ID: <")
    assert headers.message_id("h") != headers.message_id("h")
    assert headers.date_field(1_800_000_000) == b"Date: Fri, 15 Jan 2027 08:00:00 +0000\r\n"
