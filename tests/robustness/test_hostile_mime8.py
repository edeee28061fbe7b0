"""The 7-bit conversion on arbitrary input: never raises, ASCII out (unless the header
itself is 8-bit), the same decoded content, linear time."""

from __future__ import annotations

import email
import email.policy
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from mailwright.rfc6152 import to_7bit

HEADER = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"


def _parts(data: bytes) -> list[bytes]:
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    return [
        (p.get_payload(decode=True) or b"").replace(b"\r\n", b"\n")
        for p in msg.walk()
        if not p.is_multipart()
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300).filter(lambda b: b"--zz" not in b), max_size=5))
def test_any_8bit_parts_become_7bit_with_the_same_content(bodies: list[bytes]) -> None:
    parts = b"".join(
        b"--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + body.replace(b"\r", b"").replace(b"\n", b"\r\n")
        + b"\r\n"
        for body in bodies
    )
    data = HEADER + parts + b"--zz--\r\n"
    result = to_7bit(data)
    assert result.data.isascii() and not result.headers_8bit
    assert _parts(result.data) == _parts(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_never_raises(data: bytes) -> None:
    result = to_7bit(data)
    assert result.data.isascii() or result.headers_8bit


def test_large_message_is_linear() -> None:
    body = ("café " * 20 + "\r\n").encode() * 40_000  # ~4.4 MB of 8-bit text
    data = b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
    started = time.perf_counter()
    assert to_7bit(data).data.isascii()
    assert time.perf_counter() - started < 10
