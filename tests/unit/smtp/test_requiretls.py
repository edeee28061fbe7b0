"""RFC 8689 on the receiving side: REQUIRETLS in EHLO and MAIL, TLS-Required: No."""

from __future__ import annotations

import pytest

from mailwright.local import LocalDirectory
from mailwright.smtp.address import Mailbox
from mailwright.smtp.intake import Accepted, Arrival, IntakePolicy, prepare, tls_required_no
from mailwright.smtp.protocol import Envelope, Reply, Session, SessionPolicy

DIRECTORY = LocalDirectory.build(["example.com"], ["app@example.com"])
BODY = b"From: App <app@example.com>\r\nTo: x@example.net\r\nSubject: hi\r\n\r\nhello\r\n"
SUBMISSION = Arrival(client_ip="192.0.2.1", listener="submission", helo="app.example", user="app")


def session(*, tls: bool, requiretls: bool = True) -> Session:
    policy = SessionPolicy(
        hostname="mail.example.com", size_limit=10_000, directory=DIRECTORY, requiretls=requiretls
    )
    return Session(policy, client_ip="127.0.0.1", trusted=True, tls=tls)


def replies(s: Session, data: bytes) -> list[Reply]:
    s.feed(data)
    out = []
    while (event := s.next_event()) is not None:
        if isinstance(event, Reply):
            out.append(event)
    return out


def test_offered_only_inside_tls() -> None:
    [inside] = replies(session(tls=True), b"EHLO app.example\r\n")
    assert "REQUIRETLS" in inside.text
    [outside] = replies(session(tls=False), b"EHLO app.example\r\n")
    assert "REQUIRETLS" not in outside.text


def test_not_offered_on_inbound_listeners() -> None:
    [ehlo] = replies(session(tls=True, requiretls=False), b"EHLO app.example\r\n")
    assert "REQUIRETLS" not in ehlo.text
    s = session(tls=True, requiretls=False)
    replies(s, b"EHLO app.example\r\n")
    [mail] = replies(s, b"MAIL FROM:<app@example.com> REQUIRETLS\r\n")
    assert mail.code == 555


def test_mail_parameter_is_recorded() -> None:
    s = session(tls=True)
    replies(s, b"EHLO app.example\r\n")
    [mail] = replies(s, b"MAIL FROM:<app@example.com> REQUIRETLS\r\n")
    assert mail.code == 250
    assert s.envelope is not None and s.envelope.requiretls


@pytest.mark.parametrize(
    ("tls", "command", "code", "status"),
    [
        (False, b"MAIL FROM:<app@example.com> REQUIRETLS\r\n", 530, "5.7.10"),
        (True, b"MAIL FROM:<app@example.com> REQUIRETLS=YES\r\n", 501, "5.5.4"),
    ],
)
def test_bad_use(tls: bool, command: bytes, code: int, status: str) -> None:
    s = session(tls=tls)
    replies(s, b"EHLO app.example\r\n")
    [mail] = replies(s, command)
    assert mail.code == code and status in mail.text


def _accept(data: bytes, *, requiretls: bool = False) -> Accepted:
    env = Envelope(Mailbox("app", "example.com"), requiretls=requiretls)
    env.recipients = [Mailbox("x", "example.net")]
    result = prepare(env, data, SUBMISSION, IntakePolicy(hostname="mail.example.com"), queue_id="Q")
    assert isinstance(result, Accepted)
    return result


def test_queue_meta_carries_requiretls() -> None:
    assert _accept(BODY, requiretls=True).meta.requiretls
    assert not _accept(BODY).meta.requiretls


def test_tls_required_no_header() -> None:
    # RFC 8689 §4.1: the header tags the message, unless REQUIRETLS was given.
    tagged = b"TLS-Required: No\r\n" + BODY
    assert _accept(tagged).meta.tls_optional
    assert not _accept(tagged, requiretls=True).meta.tls_optional
    assert not _accept(BODY).meta.tls_optional


@pytest.mark.parametrize(
    ("header", "optional"),
    [
        (b"TLS-Required: no\r\n", True),
        (b"TLS-Required:No\r\n", True),
        (b"TLS-Required: Yes\r\n", False),
        (b"TLS-Required: No\r\nTLS-Required: No\r\n", False),  # §3: at most one instance
    ],
)
def test_tls_required_values(header: bytes, optional: bool) -> None:
    assert tls_required_no(header + BODY) is optional
