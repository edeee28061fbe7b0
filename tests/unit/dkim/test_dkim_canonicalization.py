"""RFC 6376 §3.4: canonicalization, including the §3.4.5 examples from the shared data."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from mailwright.dkim.canonicalization import (
    canonicalize_body,
    canonicalize_header,
    parse_canonicalization,
)
from mailwright.dkim.message import split_message


def _examples(dkim_data: Path, manifest: dict[str, Any]) -> tuple[list[bytes], bytes]:
    spec = manifest["canonicalization"]
    parsed = split_message((dkim_data / spec["input"]).read_bytes())
    wanted = [n.lower() for n in spec["signed_headers"]]
    fields = [f.raw for f in parsed.headers if f.key in wanted]
    assert len(fields) == len(wanted)
    return fields, parsed.body


def test_rfc6376_3_4_5_relaxed_header(dkim_data: Path, manifest: dict[str, Any]) -> None:
    fields, _ = _examples(dkim_data, manifest)
    expected = (dkim_data / manifest["canonicalization"]["expected"]["relaxed_header"]).read_bytes()
    assert b"".join(canonicalize_header(f, "relaxed") for f in fields) == expected


def test_rfc6376_3_4_5_simple_header(dkim_data: Path, manifest: dict[str, Any]) -> None:
    fields, _ = _examples(dkim_data, manifest)
    expected = (dkim_data / manifest["canonicalization"]["expected"]["simple_header"]).read_bytes()
    assert b"".join(canonicalize_header(f, "simple") for f in fields) == expected


@pytest.mark.parametrize("method", ["relaxed", "simple"])
def test_rfc6376_3_4_5_body(dkim_data: Path, manifest: dict[str, Any], method: str) -> None:
    _, body = _examples(dkim_data, manifest)
    expected = (dkim_data / manifest["canonicalization"]["expected"][f"{method}_body"]).read_bytes()
    assert canonicalize_body(body, method) == expected  # type: ignore[arg-type]


def test_empty_body_hashes(manifest: dict[str, Any]) -> None:
    # RFC 6376 §3.4.3/§3.4.4: relaxed keeps an empty body empty, simple makes it one CRLF.
    hashes = manifest["empty_body_hashes"]

    def b64(data: bytes, algorithm: str) -> str:
        return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()

    assert b64(canonicalize_body(b"", "relaxed"), "sha256") == hashes["relaxed_sha256"]
    assert b64(canonicalize_body(b"", "relaxed"), "sha1") == hashes["relaxed_sha1"]
    assert b64(canonicalize_body(b"", "simple"), "sha256") == hashes["simple_sha256"]


@pytest.mark.parametrize(
    ("body", "simple", "relaxed"),
    [
        (b"", b"\r\n", b""),
        (b"\r\n\r\n\r\n", b"\r\n", b""),
        (b"abc", b"abc\r\n", b"abc\r\n"),  # no final CRLF: one is added (both methods)
        (b"abc\r\n\r\n", b"abc\r\n", b"abc\r\n"),
        (b"a \t b\t\r\n", b"a \t b\t\r\n", b"a b\r\n"),
        (b"x  \t", b"x  \t\r\n", b"x\r\n"),  # trailing WSP on a last line without CRLF
        (b" \r\n\t\r\n", b" \r\n\t\r\n", b""),  # lines of only WSP become empty lines
        (b"a\rb\r\n", b"a\rb\r\n", b"a\rb\r\n"),  # a bare CR is an ordinary byte
        (b"a\r\r\n\r\n", b"a\r\r\n", b"a\r\r\n"),
        (b"a\r", b"a\r\r\n", b"a\r\r\n"),
    ],
)
def test_body_cases(body: bytes, simple: bytes, relaxed: bytes) -> None:
    assert canonicalize_body(body, "simple") == simple
    assert canonicalize_body(body, "relaxed") == relaxed


def test_relaxed_header_rules() -> None:
    # RFC 6376 §3.4.2: lowercase name, unfold, WSP runs → SP, no WSP around the colon/at the end.
    raw = b"SUBJECT \t:  Hello \t  wide\r\n \t world  \r\n"
    assert canonicalize_header(raw, "relaxed") == b"subject:Hello wide world\r\n"
    assert canonicalize_header(raw, "simple") == raw
    # 8-bit bytes are left alone
    raw8 = "Subject: Grüße\r\n".encode()
    assert canonicalize_header(raw8, "relaxed") == "subject:Grüße\r\n".encode()


def test_parse_canonicalization() -> None:
    assert parse_canonicalization(None) == ("simple", "simple")
    assert parse_canonicalization("relaxed") == ("relaxed", "simple")  # RFC 6376 §3.5 c=
    assert parse_canonicalization("relaxed/relaxed") == ("relaxed", "relaxed")
    with pytest.raises(ValueError):
        parse_canonicalization("nowsp/simple")


def test_long_whitespace_runs_are_linear() -> None:
    # A regex that backtracks on "spaces not followed by CRLF" would take minutes here.
    body = b"x" + b" " * 2_000_000 + b"y" + b"\t " * 500_000
    start = time.perf_counter()
    assert canonicalize_body(body, "relaxed") == b"x y\r\n"
    header = b"Subject:" + b" \t" * 500_000 + b"z" + b" " * 1_000_000 + b"\r\n"
    assert canonicalize_header(header, "relaxed") == b"subject:z\r\n"
    assert time.perf_counter() - start < 2.0
