"""Header fields added before queueing (RFC 5321 §4.4, RFC 5322 §3.6)."""

from __future__ import annotations

from mailwright.smtp import headers


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
