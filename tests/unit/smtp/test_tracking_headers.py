"""X-Mailwright-Tags / X-Mailwright-Metadata: read, validated, removed before signing."""

from __future__ import annotations

import pytest

from mailwright.smtp.tracking_headers import MAX_TAGS, TrackingHeaderError, extract


def test_fields_are_read_and_removed() -> None:
    data = (
        b"From: a@example.com\r\nX-Mailwright-Tags: welcome, onboarding,welcome\r\n"
        b'x-mailwright-metadata: {"user": 42,\r\n "plan": "pro"}\r\n'
        b"Subject: hi\r\n\r\nbody\r\n"
    )
    found = extract(data)
    assert found.tags == ("welcome", "onboarding")
    assert found.metadata == {"user": 42, "plan": "pro"}
    assert found.message == b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"


def test_message_without_fields_is_unchanged() -> None:
    data = b"From: a@example.com\r\n\r\nX-Mailwright-Tags: in the body stays\r\n"
    found = extract(data)
    assert found.message is data and found.tags == ()


@pytest.mark.parametrize(
    ("field", "error"),
    [
        (b"X-Mailwright-Metadata: {not json", "not valid JSON"),
        (b"X-Mailwright-Metadata: [1, 2]", "not a JSON object"),
        (b"X-Mailwright-Tags: " + b"x" * 101, "over 100 characters"),
        (b"X-Mailwright-Tags: " + b",".join(b"t%d" % i for i in range(MAX_TAGS + 1)), "more than"),
        (b'X-Mailwright-Metadata: {"a": "' + b"x" * 20_000 + b'"}', "over 10000 octets"),
    ],
)
def test_bad_fields_are_refused(field: bytes, error: str) -> None:
    with pytest.raises(TrackingHeaderError, match=error):
        extract(b"From: a@example.com\r\n" + field + b"\r\n\r\nbody\r\n")
