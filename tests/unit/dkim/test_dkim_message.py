"""Splitting messages into header fields and body (RFC 5322 §2.2.3 folding, line ends)."""

from __future__ import annotations

from mailwright.dkim.message import normalize_line_endings, split_message


def test_crlf_message() -> None:
    parsed = split_message(b"From: a\r\nSubject: x\r\n  y\r\n\r\nbody\r\n")
    assert [f.key for f in parsed.headers] == ["from", "subject"]
    assert parsed.headers[1].raw == b"Subject: x\r\n  y\r\n"
    assert parsed.body == b"body\r\n"
    assert not parsed.lf_only


def test_bare_lf_is_crlf() -> None:
    parsed = split_message(b"From: a\nSubject: x\n\ty\n\nbody\n\n")
    assert parsed.headers[1].raw == b"Subject: x\r\n\ty\r\n"
    assert parsed.body == b"body\r\n\r\n"
    assert parsed.lf_only


def test_mixed_line_ends_and_bare_cr() -> None:
    assert normalize_line_endings(b"a\r\nb\nc\rd\r\n") == b"a\r\nb\r\nc\rd\r\n"
    parsed = split_message(b"From: a\r\nTo: b\n\nx\ry\n")
    assert [f.raw for f in parsed.headers] == [b"From: a\r\n", b"To: b\r\n"]
    assert parsed.body == b"x\ry\r\n"


def test_no_body_separator_and_no_headers() -> None:
    parsed = split_message(b"From: a\r\nTo: b")
    assert [f.raw for f in parsed.headers] == [b"From: a\r\n", b"To: b\r\n"]
    assert parsed.body == b""
    parsed = split_message(b"\r\nonly body\r\n")
    assert parsed.headers == ()
    assert parsed.body == b"only body\r\n"


def test_obs_space_before_colon_eight_bit_and_garbage_lines() -> None:
    parsed = split_message("B : y\r\nX-8bit: caf\xe9\r\nnot a header\r\n\r\n".encode("latin-1"))
    assert [f.key for f in parsed.headers] == ["b", "x-8bit", ""]
    assert parsed.headers[1].raw == b"X-8bit: caf\xe9\r\n"


def test_count() -> None:
    parsed = split_message(b"From: a\r\nfrom: b\r\nTo: c\r\n\r\n")
    assert parsed.count("from") == 2
    assert parsed.count("cc") == 0
