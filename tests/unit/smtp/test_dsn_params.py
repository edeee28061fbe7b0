"""The SMTP DSN extension (RFC 3461) on the server side: EHLO, MAIL and RCPT parameters."""

from __future__ import annotations

import pytest
from test_session import events, make

from mailwright.queue import DsnRecipient
from mailwright.smtp.address import AddressError
from mailwright.smtp.dsn import mail_params, rcpt_params, xtext_decode, xtext_encode
from mailwright.smtp.protocol import MessageReady, Reply

HELLO = b"EHLO client.example\r\n"


def transaction(*commands: str) -> tuple[list[str], MessageReady | None]:
    session = make(trusted=True)
    out = events(session, HELLO + "".join(f"{c}\r\n" for c in commands).encode())
    replies = [e.text for e in out if isinstance(e, Reply)][1:]
    ready = next((e for e in out if isinstance(e, MessageReady)), None)
    return replies, ready


def test_ehlo_offers_dsn() -> None:
    [reply] = events(make(), HELLO)
    assert isinstance(reply, Reply) and "DSN" in reply.lines


def test_all_four_parameters_are_accepted_and_kept() -> None:
    replies, ready = transaction(
        "MAIL FROM:<app@example.com> RET=HDRS ENVID=order+2B42",
        "RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40example.net",
        "RCPT TO:<b@example.net> NOTIFY=NEVER",
        "RCPT TO:<c@example.net>",
        "DATA",
        "Subject: x\r\n\r\nbody\r\n.",
    )
    assert replies[:4] == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok"]
    assert ready is not None
    env = ready.envelope
    assert env.ret == "HDRS" and env.envid == "order+42"  # xtext decoded (RFC 3461 §4)
    assert env.dsn["a@example.net"] == DsnRecipient(("SUCCESS", "FAILURE"), "rfc822;a@example.net")
    assert env.dsn["b@example.net"] == DsnRecipient(notify=())
    assert "c@example.net" not in env.dsn


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("MAIL FROM:<a@example.com> RET=ALL", "501 5.5.4 RET must be FULL or HDRS (RFC 3461 §4.3)"),
        ("MAIL FROM:<a@example.com> RET", "501 5.5.4 RET must be FULL or HDRS (RFC 3461 §4.3)"),
        ("MAIL FROM:<a@example.com> RET=FULL RET=HDRS", "501 5.5.4 Duplicate parameter RET"),
        ("MAIL FROM:<a@example.com> ENVID=" + "x" * 101, "501 5.5.4 Bad ENVID (RFC 3461 §4.4)"),
        ("MAIL FROM:<a@example.com> ENVID=a+2", "501 5.5.4 Malformed xtext (RFC 3461 §4)"),
        ("MAIL FROM:<a@example.com> ENVID=a+zz", "501 5.5.4 Malformed xtext (RFC 3461 §4)"),
        ("MAIL FROM:<a@example.com> ENVID=a+0A", "501 5.5.4 Bad ENVID (RFC 3461 §4.4)"),
    ],
)
def test_bad_mail_parameters(command: str, reply: str) -> None:
    replies, _ = transaction(command)
    assert replies == [reply]


@pytest.mark.parametrize(
    ("param", "reply"),
    [
        (
            "NOTIFY=NEVER,SUCCESS",
            "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY",
        ),
        ("NOTIFY=SOMETIMES", "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY"),
        (
            "NOTIFY=DELAY,DELAY",
            "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY",
        ),
        ("NOTIFY", "501 5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY"),
        ("ORCPT=a@example.net", "501 5.5.4 ORCPT must be addr-type;xtext (RFC 3461 §4.2)"),
        ("ORCPT=rfc822;", "501 5.5.4 ORCPT must be addr-type;xtext (RFC 3461 §4.2)"),
        ("ORCPT=rfc822;" + "a" * 500, "501 5.5.4 ORCPT too long (RFC 3461 §4.2)"),
        ("XFOO=1", "555 5.5.4 Unsupported RCPT option"),
    ],
)
def test_bad_rcpt_parameters(param: str, reply: str) -> None:
    replies, _ = transaction("MAIL FROM:<a@example.com>", f"RCPT TO:<x@example.net> {param}")
    assert replies == ["250 2.1.0 Ok", reply]


@pytest.mark.parametrize("text", ["plain", "a+b=c", "space here", "\x01ctl", "+", ""])
def test_xtext_round_trip(text: str) -> None:
    encoded = xtext_encode(text)
    assert all(33 <= ord(c) <= 126 and c != "=" for c in encoded)
    assert xtext_decode(encoded) == text


def test_xtext_writes_non_ascii_as_utf8_octets() -> None:
    assert xtext_encode("grüße") == "gr+C3+BC+C3+9Fe"


def test_xtext_refuses_lowercase_hex_and_equals() -> None:
    # RFC 3461 §4: hexchar is "+" followed by two upper-case hexadecimal digits.
    for bad in ("a+2b", "a=b", "a b"):
        with pytest.raises(AddressError):
            xtext_decode(bad)


def test_parameters_written_for_the_next_hop() -> None:
    assert mail_params("FULL", "id with space") == ["RET=FULL", "ENVID=id+20with+20space"]
    assert mail_params(None, None) == []
    assert rcpt_params(DsnRecipient()) == []
    assert rcpt_params(DsnRecipient(notify=())) == ["NOTIFY=NEVER"]
    assert rcpt_params(DsnRecipient(("SUCCESS", "DELAY"), "rfc822;b+c@example.net")) == [
        "NOTIFY=SUCCESS,DELAY",
        "ORCPT=rfc822;b+2Bc@example.net",
    ]
