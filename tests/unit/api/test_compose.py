"""The send request's JSON → a 7-bit MIME message, each bad field named."""

from __future__ import annotations

import base64
import email
import email.policy
from typing import Any

import pytest

from mailwright.http.compose import FieldError, compose

BASE: dict[str, Any] = {"from": "App <app@example.com>", "to": ["a@example.net"], "text": "hi"}


def test_full_message_is_7bit_and_parses() -> None:
    composed = compose(
        {
            **BASE,
            "from": {"email": "app@example.com", "name": "Zoë"},
            "cc": "c@example.net",
            "bcc": ["b@example.net"],
            "reply_to": "r@example.com",
            "subject": "Grüße <script>",
            "text": "héllo " * 40,
            "html": "<p>héllo</p>",
            "attachments": [{"filename": "r.csv", "content_type": "text/csv", "content": "YSxi"}],
            "headers": {"X-Campaign": "spring"},
            "tags": ["welcome"],
            "metadata": {"user": "ü"},
            "send_at": "2030-01-01T00:00:00Z",
        }
    )
    assert composed.message.isascii()
    assert composed.sender == "app@example.com"
    assert composed.recipients == ("a@example.net", "c@example.net", "b@example.net")
    assert composed.send_at == 1893456000.0
    msg = email.message_from_bytes(composed.message, policy=email.policy.default)
    assert msg["Subject"] == "Grüße <script>"
    assert "Bcc" not in msg and msg["X-Campaign"] == "spring"
    assert msg["X-Mailwright-Tags"] == "welcome"
    assert msg["X-Mailwright-Metadata"] == '{"user":"\\u00fc"}'
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().startswith("héllo")
    html = msg.get_body(("html",))
    assert html is not None and "héllo" in html.get_content()
    (attachment,) = msg.iter_attachments()
    assert attachment.get_filename() == "r.csv" and attachment.get_content() == "a,b"
    assert all(len(line) <= 998 for line in composed.message.split(b"\r\n"))


def test_raw_with_envelope() -> None:
    raw = base64.b64encode(b"From: a@example.com\nSubject: x\n\nbody\n").decode()
    composed = compose({"raw": raw, "envelope": {"from": "a@example.com", "to": ["b@x.org"]}})
    assert composed.message == b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    assert composed.recipients == ("b@x.org",)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "(body)"),
        ({**BASE, "colour": 1}, "colour"),
        ({**BASE, "from": None}, "from"),
        ({**BASE, "to": ["not an address"]}, "to[0]"),
        ({**BASE, "to": ["a@b.example\r\nBcc: x@y"]}, "to[0]"),
        ({**BASE, "to": [], "cc": None}, "to"),
        ({**BASE, "subject": "a\r\nBcc: evil@x"}, "subject"),
        ({**BASE, "subject": 3}, "subject"),
        ({**BASE, "text": None}, "text"),
        ({**BASE, "headers": {"From": "x@y"}}, "headers.From"),
        ({**BASE, "headers": {"Bad Name": "x"}}, "headers.Bad Name"),
        ({**BASE, "headers": {"X-A": "a\nb"}}, "headers.X-A"),
        ({**BASE, "attachments": [{"filename": "a", "content": "***"}]}, "attachments[0].content"),
        ({**BASE, "attachments": [{"content": "YQ=="}]}, "attachments[0].filename"),
        (
            {**BASE, "attachments": [{"filename": "a", "content": "", "content_type": "x"}]},
            "attachments[0].content_type",
        ),
        ({**BASE, "tags": "a"}, "tags"),
        ({**BASE, "tags": ["a,b"]}, "tags[0]"),
        ({**BASE, "metadata": [1]}, "metadata"),
        ({**BASE, "send_at": "tomorrow"}, "send_at"),
        ({**BASE, "send_at": "2030-01-01T00:00:00"}, "send_at"),
        ({**BASE, "send_at": True}, "send_at"),
        ({"raw": "!!", "envelope": {"from": "a@b.c", "to": ["d@e.f"]}}, "raw"),
        ({"raw": "YQo=", "to": ["d@e.f"]}, "to"),
        ({"raw": base64.b64encode(b"A: b\n\nc").decode()}, "envelope"),
        (
            {"raw": base64.b64encode(b"A: b\n\nc").decode(), "envelope": {"from": "a@b.c"}},
            "envelope.to",
        ),
    ],
)
def test_bad_field_is_named(body: Any, field: str) -> None:
    with pytest.raises(FieldError) as caught:
        compose(body)
    assert caught.value.field == field
