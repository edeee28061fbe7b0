"""Bounces (RFC 3464 DSNs) built from hostile parts — the remote server's reply text,
recipient addresses, the returned message — stay one well-formed multipart/report."""

from __future__ import annotations

import email
import email.policy

from hypothesis import given
from hypothesis import strategies as st
from robust_support import mixed_text, robust

from mailwright.delivery.dsn import RecipientReport, build_dsn

HOSTILE = mixed_text(["550 5.1.1", "\r\n", "\r", "\n", "--", "boundary", "é", "x" * 200, " "])


def _dsn(reports: list[RecipientReport], original: bytes, kind: str = "failure") -> bytes:
    return build_dsn(
        kind=kind,  # type: ignore[arg-type]
        reporting_mta="mx.example.com",
        sender="alice@example.com",
        queue_id="Q1",
        arrival=1_800_000_000,
        recipients=reports,
        original=original,
        now=1_800_000_100,
    )


@robust(200)
@given(
    st.lists(
        st.builds(
            RecipientReport,
            recipient=HOSTILE,
            status=st.sampled_from(["5.1.1", "4.4.1", "5.0.0"]),
            action=st.sampled_from(["failed", "delayed"]),
            diagnostic=st.one_of(st.none(), HOSTILE),
            remote=st.booleans(),
            remote_mta=st.one_of(st.none(), HOSTILE),
            original_recipient=st.one_of(st.none(), HOSTILE),
        ),
        min_size=1,
        max_size=4,
    ),
    st.binary(max_size=300),
    st.sampled_from(["failure", "delay"]),
)
def test_dsn_is_one_well_formed_report(
    reports: list[RecipientReport], original: bytes, kind: str
) -> None:
    dsn = _dsn(reports, b"Subject: x\r\n\r\n" + original.replace(b"--Q1.", b"--Q2."), kind)
    head, _, _ = dsn.partition(b"\r\n\r\n")
    assert head.isascii() and b"\n" not in head.replace(b"\r\n", b"")
    message = email.message_from_bytes(dsn, policy=email.policy.default)
    assert message.get_content_type() == "multipart/report"
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 3
    status = dsn.split(b"Content-Type: message/delivery-status\r\n\r\n", 1)[1].split(b"\r\n--")[0]
    assert status.isascii()
    for line in status.split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line and len(line) <= 998


def test_returned_message_cannot_contain_the_boundary() -> None:
    report = RecipientReport("bob@example.net", "5.1.1", diagnostic="550 5.1.1 unknown")
    original = b"Subject: x\r\n\r\nhello\r\n--Q1.1800000100/mx.example.com--\r\nafter\r\n"
    dsn = _dsn([report], original)
    message = email.message_from_bytes(dsn, policy=email.policy.default)
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 3
    returned = parts[2].get_payload()[0].as_bytes()
    assert b"after" in returned
