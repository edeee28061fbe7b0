"""The sans-I/O SMTP session: command order, extensions, limits and bad input."""

from __future__ import annotations

import base64

import pytest

from mailwright.local import LocalDirectory
from mailwright.smtp.protocol import (
    MAX_COMMAND_LINE,
    AuthCheck,
    MessageReady,
    Reply,
    Session,
    SessionPolicy,
    StartTls,
)

DIRECTORY = LocalDirectory.build(["example.com"], ["admin@example.com", "bob@example.com"])


def make(
    *,
    trusted: bool = False,
    tls: bool = False,
    starttls: bool = False,
    auth: str = "none",
    size_limit: int = 10_000,
    max_recipients: int = 1000,
) -> Session:
    policy = SessionPolicy(
        hostname="mx.example.com",
        size_limit=size_limit,
        directory=DIRECTORY,
        starttls=starttls,
        auth=auth,  # type: ignore[arg-type]
        max_recipients=max_recipients,
    )
    return Session(policy, client_ip="192.0.2.1", trusted=trusted, tls=tls)


def events(session: Session, data: bytes) -> list[object]:
    session.feed(data)
    out: list[object] = []
    while True:
        event = session.next_event()
        if event is None:
            return out
        out.append(event)
        if isinstance(event, MessageReady):
            out.append(session.message_result(Reply.of(250, "2.0.0", "Ok: queued as X")))
        if isinstance(event, (AuthCheck, StartTls)):
            return out


def codes(session: Session, data: bytes) -> list[int]:
    return [e.code for e in events(session, data) if isinstance(e, Reply)]


def text(session: Session, data: bytes) -> list[str]:
    return [e.text for e in events(session, data) if isinstance(e, Reply)]


def ready(session: Session, data: bytes) -> MessageReady:
    found = [e for e in events(session, data) if isinstance(e, MessageReady)]
    assert len(found) == 1
    return found[0]


def test_greeting_and_ehlo_keywords() -> None:
    s = make()
    assert s.greeting().text == "220 mx.example.com ESMTP mailwright"
    [reply] = events(s, b"EHLO client.example\r\n")
    assert isinstance(reply, Reply)
    assert reply.lines == (
        "mx.example.com",
        "PIPELINING",
        "SIZE 10000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
    )
    assert reply.encode().startswith(b"250-mx.example.com\r\n250-PIPELINING\r\n")
    assert reply.encode().endswith(b"250 DSN\r\n")


def test_starttls_and_auth_are_offered_only_when_they_can_work() -> None:
    plain = make(starttls=True, auth="optional")
    [reply] = events(plain, b"EHLO c\r\n")
    assert isinstance(reply, Reply)
    assert "STARTTLS" in reply.lines and not any(x.startswith("AUTH") for x in reply.lines)
    secure = make(tls=True, starttls=True, auth="optional")
    [reply] = events(secure, b"EHLO c\r\n")
    assert isinstance(reply, Reply)
    assert "STARTTLS" not in reply.lines and "AUTH PLAIN LOGIN" in reply.lines


def test_a_whole_transaction_pipelined() -> None:
    s = make()
    out = events(
        s,
        b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
        b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n",
    )
    replies = [e.text for e in out if isinstance(e, Reply)]
    assert replies[1:] == [
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 Ok: queued as X",
        "221 2.0.0 Bye",
    ]
    [msg] = [e for e in out if isinstance(e, MessageReady)]
    assert msg.data == b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n"  # RFC 5321 §4.5.2
    assert msg.envelope.reverse_path == "a@example.org"
    assert [m.address for m in msg.envelope.recipients] == ["bob@example.com"]
    assert s.closed


def test_empty_message_and_null_sender() -> None:
    s = make()
    codes(s, b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.com>\r\n")
    msg = ready(s, b"DATA\r\n.\r\n")
    assert msg.data == b""
    assert msg.envelope.reverse_path == ""


def test_data_arriving_byte_by_byte() -> None:
    s = make()
    codes(s, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    stream = b"Subject: x\r\n\r\nline\r\n.\r\n"
    found: list[MessageReady] = []
    for byte in stream:
        s.feed(bytes([byte]))
        event = s.next_event()
        if isinstance(event, MessageReady):
            found.append(event)
    assert [m.data for m in found] == [b"Subject: x\r\n\r\nline\r\n"]


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        (b"MAIL FROM:<a@example.org>\r\n", "503 5.5.1 Error: send HELO/EHLO first"),
        (b"RCPT TO:<bob@example.com>\r\n", "503 5.5.1 Error: need MAIL command"),
        (b"DATA\r\n", "503 5.5.1 Error: need MAIL command"),
        (b"STARTTLS\r\n", "503 5.5.1 Error: send EHLO first"),
        (b"AUTH PLAIN\r\n", "503 5.5.1 Error: send EHLO first"),
        (b"FOO bar\r\n", "500 5.5.2 Error: command not recognized"),
        (b"EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname"),
        (b"NOOP\r\n", "250 2.0.0 Ok"),
        (b"RSET\r\n", "250 2.0.0 Ok"),
        (
            b"VRFY bob\r\n",
            "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
        ),
        (b"EXPN staff\r\n", "502 5.5.1 Error: EXPN not available"),
        (b"MAIL\x00 FROM:<a@b>\r\n", "500 5.5.2 Error: NUL character in command"),
        (b"\xff\xfe\r\n", "500 5.5.2 Error: command is not UTF-8"),
    ],
)
def test_commands_before_ehlo_and_bad_commands(commands: bytes, expected: str) -> None:
    assert text(make(), commands) == [expected]


def test_command_line_too_long_is_discarded_and_the_session_goes_on() -> None:
    s = make()
    long_line = b"NOOP " + b"x" * (MAX_COMMAND_LINE * 5) + b"\r\n"
    assert text(s, long_line) == ["500 5.5.2 Error: line too long"]
    assert s.buffered == 0
    assert text(s, b"NOOP\r\n") == ["250 2.0.0 Ok"]
    exactly = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 7) + b"\r\n"
    assert len(exactly) == MAX_COMMAND_LINE
    assert text(make(), exactly) == ["250 2.0.0 Ok"]
    assert text(make(), b"x" + exactly) == ["500 5.5.2 Error: line too long"]


def test_buffer_stays_bounded_without_line_ends() -> None:
    s = make()
    for _ in range(100):
        s.feed(b"x" * 10_000)
        assert s.next_event() is None
    assert s.buffered <= MAX_COMMAND_LINE + 10_000


def test_mail_syntax_and_state_errors() -> None:
    s = make()
    codes(s, b"EHLO c\r\n")
    assert text(s, b"MAIL TO:<a@b.example>\r\n") == ["501 5.5.4 Syntax: MAIL FROM:<address>"]
    assert text(s, b"MAIL FROM:a@b.example\r\n") == ["501 5.1.7 Bad sender syntax"]
    assert text(s, b"MAIL FROM:<a@b.example> FOO=1\r\n") == ["555 5.5.4 Unsupported option: FOO"]
    assert text(s, b"MAIL FROM:<a@b.example> BODY=9BIT\r\n") == [
        "501 5.5.4 BODY must be 7BIT or 8BITMIME"
    ]
    assert text(s, b"MAIL FROM:<a@b.example>\r\n") == ["250 2.1.0 Ok"]
    assert text(s, b"MAIL FROM:<a@b.example>\r\n") == ["503 5.5.1 Error: nested MAIL command"]
    assert text(s, b"DATA\r\n") == ["554 5.5.1 Error: no valid recipients"]


def test_size_declared_over_the_limit_is_refused_at_mail() -> None:
    s = make(size_limit=10_000)
    codes(s, b"EHLO c\r\n")
    assert text(s, b"MAIL FROM:<a@b.example> SIZE=10001\r\n") == [
        "552 5.3.4 Message size exceeds fixed limit"
    ]
    assert text(s, b"MAIL FROM:<a@b.example> SIZE=10000\r\n") == ["250 2.1.0 Ok"]


def test_message_over_the_limit_is_refused_after_data_and_memory_stays_bounded() -> None:
    s = make(size_limit=10_000)
    codes(s, b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    for _ in range(200):
        s.feed(b"x" * 998 + b"\r\n")
        assert s.next_event() is None
        assert s.buffered < 20_000
    assert text(s, b".\r\n") == ["552 5.3.4 Error: message exceeds size limit"]
    assert text(s, b"NOOP\r\n") == ["250 2.0.0 Ok"]  # the session goes on


def test_eight_bit_data_needs_8bitmime() -> None:
    body = "Subject: caf\u00e9\r\n\r\n\u00e9\r\n.\r\n".encode()
    s = make()
    codes(s, b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    assert text(s, body) == ["554 5.6.1 Error: 8-bit data needs BODY=8BITMIME"]
    s = make()
    codes(s, b"EHLO c\r\nMAIL FROM:<a@b.example> BODY=8BITMIME\r\nRCPT TO:<bob@example.com>\r\n")
    assert ready(s, b"DATA\r\n" + body).envelope.body == "8BITMIME"


def test_nul_in_message_is_refused() -> None:
    s = make()
    codes(s, b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    assert text(s, b"a\x00b\r\n.\r\n") == ["554 5.6.0 Error: NUL character in message"]


def test_long_text_line_is_refused() -> None:
    s = make()
    codes(s, b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    assert text(s, b"x" * 999 + b"\r\n.\r\n") == [
        "554 5.6.0 Error: line longer than 1000 octets (RFC 5321)"
    ]
    s = make()
    codes(s, b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    assert ready(s, b"x" * 998 + b"\r\n.\r\n").data == b"x" * 998 + b"\r\n"


def test_bare_lf_dot_does_not_end_data_and_is_normalised() -> None:
    """SMTP smuggling: only CRLF.CRLF ends the data; bare LFs become CRLF."""
    s = make()
    codes(s, b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
    smuggled = b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@x>\r\n.\r\n"
    msg = ready(s, smuggled)
    assert msg.data == b"Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<evil@x>\r\n"


def test_recipient_limit() -> None:
    s = make(max_recipients=3)
    codes(s, b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n")
    rcpts = b"".join(b"RCPT TO:<bob@example.com>\r\n" for _ in range(5))
    assert codes(s, rcpts) == [250, 250, 250, 452, 452]
    assert text(s, b"RCPT TO:<bob@example.com>\r\n") == ["452 4.5.3 Error: too many recipients"]
    msg = ready(s, b"DATA\r\n.\r\n")
    assert len(msg.envelope.recipients) == 3


def test_too_many_errors_close_the_session() -> None:
    s = make()
    replies = text(s, b"FOO\r\n" * 30)
    assert len(replies) == 20
    assert replies[-1] == "421 4.7.0 mx.example.com Error: too many errors"
    assert s.closed


def test_rset_and_ehlo_reset_the_transaction() -> None:
    s = make()
    codes(s, b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRSET\r\n")
    assert text(s, b"RCPT TO:<bob@example.com>\r\n") == ["503 5.5.1 Error: need MAIL command"]
    codes(s, b"MAIL FROM:<a@b.example>\r\nEHLO c\r\n")
    assert s.envelope is None


def test_starttls_discards_pipelined_commands() -> None:
    """RFC 3207 §4.2 / CVE-2011-0411: commands sent with STARTTLS are not executed."""
    s = make(starttls=True)
    codes(s, b"EHLO c\r\n")
    out = events(s, b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
    assert len(out) == 1 and isinstance(out[0], StartTls)
    assert out[0].reply.text == "220 2.0.0 Ready to start TLS"
    s.feed(b"RCPT TO:<evil@example.org>\r\n")  # arrives before the handshake: clear text
    s._buf.clear()  # the I/O layer: plaintext after STARTTLS goes into the TLS handshake
    s.tls_started()
    assert s.envelope is None and s.helo is None
    assert text(s, b"MAIL FROM:<a@b.example>\r\n") == ["503 5.5.1 Error: send HELO/EHLO first"]
    assert text(s, b"EHLO c\r\nSTARTTLS\r\n")[-1] == "503 5.5.1 Error: TLS already active"


def test_starttls_not_offered() -> None:
    s = make()
    codes(s, b"EHLO c\r\n")
    assert text(s, b"STARTTLS\r\n") == ["502 5.5.1 Error: STARTTLS not available"]


def test_auth_before_tls_gets_538() -> None:
    s = make(starttls=True, auth="optional")
    codes(s, b"EHLO c\r\n")
    assert text(s, b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n") == [
        "538 5.7.11 Encryption required for requested authentication mechanism"
    ]


def test_auth_not_enabled() -> None:
    s = make(tls=True)
    codes(s, b"EHLO c\r\n")
    assert text(s, b"AUTH PLAIN\r\n") == ["503 5.5.1 Error: authentication not enabled"]


def test_auth_plain_initial_response() -> None:
    s = make(tls=True, auth="required")
    codes(s, b"EHLO c\r\n")
    assert text(s, b"MAIL FROM:<a@b.example>\r\n") == ["530 5.7.0 Authentication required"]
    token = base64.b64encode(b"\0bob\0secret")
    [check] = events(s, b"AUTH PLAIN " + token + b"\r\n")
    assert check == AuthCheck("PLAIN", "bob", "secret", "")
    assert s.auth_result(True, "bob").text == "235 2.7.0 Authentication successful"
    assert text(s, b"MAIL FROM:<a@b.example>\r\n") == ["250 2.1.0 Ok"]
    assert s.user == "bob"


def test_auth_login_dialogue_and_failure() -> None:
    s = make(tls=True, auth="optional")
    codes(s, b"EHLO c\r\n")
    assert text(s, b"AUTH LOGIN\r\n") == ["334 VXNlcm5hbWU6"]
    assert text(s, base64.b64encode(b"bob") + b"\r\n") == ["334 UGFzc3dvcmQ6"]
    [check] = events(s, base64.b64encode(b"wrong") + b"\r\n")
    assert check == AuthCheck("LOGIN", "bob", "wrong", "")
    assert s.auth_result(False, "bob").text == "535 5.7.8 Authentication credentials invalid"
    assert s.user is None
    assert s.auth_result(False, "bob", limited=True).code == 454


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (b"AUTH CRAM-MD5\r\n", "504 5.5.4 Unrecognized authentication type"),
        (b"AUTH PLAIN !!!\r\n", "501 5.5.2 Cannot decode response"),
        (
            b"AUTH PLAIN " + base64.b64encode(b"no-nuls") + b"\r\n",
            "501 5.5.2 Cannot decode response",
        ),
        (b"AUTH PLAIN\r\n*\r\n", "501 5.7.0 Authentication cancelled"),
    ],
)
def test_auth_bad_input(command: bytes, expected: str) -> None:
    s = make(tls=True, auth="optional")
    codes(s, b"EHLO c\r\n")
    assert text(s, command)[-1] == expected


def test_null_sender_and_smtputf8() -> None:
    s = make()
    codes(s, b"EHLO c\r\n")
    assert text(s, "MAIL FROM:<jos\u00e9@b.example>\r\n".encode()) == [
        "553 5.6.7 Non-ASCII sender needs the SMTPUTF8 parameter"
    ]
    assert text(s, "MAIL FROM:<jos\u00e9@b.example> SMTPUTF8\r\n".encode()) == ["250 2.1.0 Ok"]
    assert s.envelope is not None and s.envelope.smtputf8


def test_helo_has_no_extensions() -> None:
    s = make()
    assert text(s, b"HELO c\r\n") == ["250 mx.example.com"]
    assert text(s, b"MAIL FROM:<a@b.example> SIZE=10\r\n") == ["555 5.5.4 Parameters need EHLO"]
