"""DSN structure (RFC 3464, RFC 6522), parsed back with the email package."""

from __future__ import annotations

import email
import email.policy
from email.message import Message

import pytest

from mailwright.delivery.dsn import RETURN_LIMIT, RecipientReport, build_dsn, wants_dsn

ORIGINAL = (
    b"From: App <app@example.com>\r\nTo: a@example.net\r\nSubject: Hello\r\n"
    b"Message-ID: <1@example.com>\r\n\r\nBody line\r\n.dotted\r\n"
)


def dsn(**kw: object) -> Message:
    args: dict[str, object] = dict(
        kind="failure",
        reporting_mta="mail.example.com",
        sender="app@example.com",
        queue_id="0ABCDEFGHJK123",
        arrival=1_790_000_000.0,
        recipients=[
            RecipientReport(
                "a@example.net",
                "5.1.1",
                diagnostic="550 5.1.1 <a@example.net>: Recipient address rejected",
                remote_mta="mx.example.net",
            ),
            RecipientReport(
                "b@example.org",
                "5.1.10",
                diagnostic="5.1.10 example.org does not accept mail (null MX)",
                remote=False,
            ),
        ],
        original=ORIGINAL,
        now=1_790_000_100.0,
    )
    args.update(kw)
    data = build_dsn(**args)  # type: ignore[arg-type]
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    return email.message_from_bytes(data, policy=email.policy.compat32)


def status_blocks(message: Message) -> list[Message]:
    parts = message.get_payload()
    assert isinstance(parts, list)
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status"
    blocks = status.get_payload()
    assert isinstance(blocks, list)
    return blocks


def test_failure_dsn_structure() -> None:
    message = dsn()
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert message["To"] == "<app@example.com>"
    assert message["From"] == "Mail Delivery System <MAILER-DAEMON@mail.example.com>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Subject"] == "Undelivered Mail Returned to Sender"
    assert message["Message-ID"] and message["Date"]
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 3
    assert parts[0].get_content_type() == "text/plain"
    human = parts[0].get_payload()
    assert "<a@example.net>: 550 5.1.1" in human
    per_message, first, second = status_blocks(message)
    assert per_message["Reporting-MTA"] == "dns; mail.example.com"
    assert per_message["Arrival-Date"] == "Mon, 21 Sep 2026 14:13:20 +0000"
    assert first["Final-Recipient"] == "rfc822; a@example.net"
    assert first["Action"] == "failed"
    assert first["Status"] == "5.1.1"
    assert first["Remote-MTA"] == "dns; mx.example.net"
    assert first["Diagnostic-Code"] == (
        "smtp; 550 5.1.1 <a@example.net>: Recipient address rejected"
    )
    assert second["Final-Recipient"] == "rfc822; b@example.org"
    assert second["Status"] == "5.1.10"
    assert second["Remote-MTA"] is None
    assert second["Diagnostic-Code"].startswith("X-mailwright; 5.1.10")
    returned = parts[2]
    assert returned.get_content_type() == "message/rfc822"
    inner = returned.get_payload()[0]
    assert inner["Subject"] == "Hello"
    assert ".dotted" in inner.get_payload()


def test_delay_dsn() -> None:
    message = dsn(
        kind="delay",
        recipients=[
            RecipientReport(
                "a@example.net",
                "4.2.0",
                action="delayed",
                diagnostic="450 4.2.0 greylisted",
                remote_mta="mx.example.net",
                will_retry_until=1_790_432_000.0,
            )
        ],
    )
    assert message["Subject"] == "Delayed Mail (still being retried)"
    _, block = status_blocks(message)
    assert block["Action"] == "delayed"
    assert block["Status"] == "4.2.0"
    assert block["Will-Retry-Until"]
    parts = message.get_payload()
    assert isinstance(parts, list)
    assert parts[2].get_content_type() == "text/rfc822-headers"
    assert "Body line" not in parts[2].get_payload()


def test_large_original_returns_headers_only() -> None:
    big = ORIGINAL + b"x" * (RETURN_LIMIT + 1)
    parts = dsn(original=big).get_payload()
    assert isinstance(parts, list)
    assert parts[2].get_content_type() == "text/rfc822-headers"


def test_hostile_reply_text_cannot_inject_fields() -> None:
    nasty = "550 5.1.1 bad\r\nStatus: 2.0.0\r\n\x00caf\u00e9 " + "long " * 40
    message = dsn(recipients=[RecipientReport("a@example.net", "5.1.1", diagnostic=nasty)])
    _, block = status_blocks(message)
    assert block["Status"] == "5.1.1"
    assert block.get_all("Status") == ["5.1.1"]
    code = " ".join(block["Diagnostic-Code"].split())
    assert code.startswith("smtp; 550 5.1.1 bad Status: 2.0.0 ?caf?")


def test_never_to_the_null_sender() -> None:
    assert not wants_dsn("")
    assert wants_dsn("app@example.com")
    with pytest.raises(ValueError, match="null reverse path"):
        dsn(sender="")


def test_needs_a_recipient() -> None:
    with pytest.raises(ValueError, match="at least one"):
        dsn(recipients=[])


def test_8bit_original_is_marked() -> None:
    parts = dsn(original=ORIGINAL.replace(b"Body line", "Grüße".encode())).get_payload()
    assert isinstance(parts, list)
    assert parts[2]["Content-Transfer-Encoding"] == "8bit"


def test_boundary_never_occurs_in_the_returned_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # RFC 2046 §5.1.1: the first random boundary is planted in the original; a second is drawn.
    draws = iter([b"\x00" * 6, b"\x01" * 6])
    monkeypatch.setattr("mailwright.delivery.dsn.os.urandom", lambda n: next(draws, b"\x02" * n))
    planted = b"--Q.1790000100.000000000000/mail.example.com--"
    message = dsn(queue_id="Q", original=ORIGINAL + planted + b"\r\nafter\r\n")
    assert "000000000000" not in message.get_boundary()
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 3
    assert b"after" in parts[2].get_payload()[0].as_bytes()
