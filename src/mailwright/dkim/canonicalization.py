"""Header and body canonicalization, RFC 6376 §3.4.

Every transform is a handful of ``bytes.replace``/regex passes over the whole
input, never a Python loop per byte, and no regex that could backtrack on long
whitespace runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Literal

__all__ = [
    "CANONICALIZATIONS",
    "BodyCanonicalizer",
    "Canonicalization",
    "body_canonicalizer",
    "canonicalize_body",
    "canonicalize_header",
    "canonicalize_headers",
    "parse_canonicalization",
]

Canonicalization = Literal["simple", "relaxed"]
_SPACE_RUN = re.compile(rb"  +")
CANONICALIZATIONS: tuple[Canonicalization, ...] = ("simple", "relaxed")


def _collapse_wsp(data: bytes) -> bytes:
    """Every run of SP/HTAB → one SP.

    Tabs become spaces first (a plain ``replace``); the remaining runs are found by
    a regex with a literal two-space prefix, which the regex engine locates with a
    fast substring search: linear, and quick even on a megabyte of blanks.
    """
    if b"\t" in data:
        data = data.replace(b"\t", b" ")
    if b"  " in data:
        data = _SPACE_RUN.sub(b" ", data)
    return data


def parse_canonicalization(value: str | None) -> tuple[Canonicalization, Canonicalization]:
    """The ``c=`` tag: "header/body", body defaulting to simple (RFC 6376 §3.5)."""
    if value is None:
        return ("simple", "simple")
    header, _, body = value.partition("/")
    body = body or "simple"
    if header not in CANONICALIZATIONS or body not in CANONICALIZATIONS:
        raise ValueError(f"unknown canonicalization {value!r}")
    return (header, body)


def canonicalize_header(raw: bytes, method: Canonicalization) -> bytes:
    """One header field (``name:value`` with its CRLF) in canonical form."""
    if method == "simple":
        return raw  # RFC 6376 §3.4.1: no change at all
    # RFC 6376 §3.4.2: lowercase the name, unfold, WSP runs → one SP, no WSP around
    # the colon or at the end of the value.
    colon = raw.find(b":")
    if colon < 0:
        return raw
    name = raw[:colon].rstrip(b" \t").lower()
    value = raw[colon + 1 :].replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:
        value = _collapse_wsp(value)
    value = value.strip(b" ")
    return name + b":" + value + b"\r\n"


def canonicalize_headers(raws: Sequence[bytes], method: Canonicalization) -> bytes:
    """Several fields, canonicalized and concatenated (the signed-header part of the hash).

    Same rules as :func:`canonicalize_header`, inlined: this runs for every message.
    """
    if method == "simple":
        return b"".join(raws)
    out: list[bytes] = []
    for raw in raws:
        colon = raw.find(b":")
        if colon < 0:
            out.append(raw)
            continue
        value = raw[colon + 1 : -2]
        if b"\r\n" in value:
            value = value.replace(b"\r\n", b"")
        if b"\t" in value or b"  " in value:
            value = _collapse_wsp(value)
        out.append(raw[:colon].rstrip(b" \t").lower() + b":" + value.strip(b" ") + b"\r\n")
    return b"".join(out)


def canonicalize_body(body: bytes, method: Canonicalization) -> bytes:
    """The body (CRLF line ends) in canonical form."""
    if method == "simple":
        # RFC 6376 §3.4.3: drop trailing empty lines; an empty body becomes one CRLF.
        return body[: _content_end(body)] + b"\r\n"
    # RFC 6376 §3.4.4: WSP runs → one SP, no WSP at line ends, no trailing empty
    # lines; a non-empty body ends with CRLF, an empty one stays empty.
    if not body:
        return b""
    text = _collapse_wsp(body)
    if b" \r\n" in text:  # after collapsing, at most one SP ends a line
        text = text.replace(b" \r\n", b"\r\n")
    if text.endswith(b" "):
        text = text[:-1]
    end = _content_end(text)
    if end == 0:
        return b""
    return text[:end] + b"\r\n"


def _content_end(body: bytes) -> int:
    """Length of ``body`` without its trailing run of CRLF pairs.

    The body is CRLF-normalized, so the stripped tail is made of CRLF pairs and
    perhaps bare CRs; the pairs start right after the last bare CR.
    """
    stripped = len(body.rstrip(b"\r\n"))
    tail = body[stripped:]
    if not tail:
        return stripped
    if tail.endswith(b"\r"):
        return len(body)  # ends with a bare CR: no trailing CRLF to remove
    bare = tail.rfind(b"\r\r")
    return stripped if bare < 0 else stripped + bare + 1


_CRLF_RUN = 32 * 1024
"""Withheld empty lines are given out in pieces of this many CRLFs (bounded memory)."""


class BodyCanonicalizer:
    """:func:`canonicalize_body` a piece at a time, for bodies too big to hold (a spooled
    message): ``update`` returns canonical output, ``finish`` the rest; joined they equal
    the one-shot result for the same CRLF body, however it is cut.

    What cannot be decided yet is withheld: the run of CRLFs at the end so far (only
    trailing empty lines are dropped, RFC 6376 §3.4.3/§3.4.4), kept as a count so that
    megabytes of empty lines cost nothing; a CR that may start a CRLF; for relaxed, a
    space that may belong to a WSP run or end a line (§3.4.4 a, b).
    """

    def __init__(self, method: Canonicalization) -> None:
        self.method = method
        self._crlfs = 0
        self._carry = b""
        self._content = False

    def update(self, piece: bytes) -> bytes:
        return b"".join(self._update(piece))

    def _update(self, piece: bytes) -> Iterator[bytes]:
        text = self._carry + piece
        if not text:
            return
        carry = b""
        if text.endswith(b"\r"):
            text, carry = text[:-1], b"\r"
        if self.method == "relaxed":
            text = _collapse_wsp(text)
            if b" \r\n" in text:
                text = text.replace(b" \r\n", b"\r\n")
            if text.endswith(b" "):
                text, carry = text[:-1], b" " + carry
        self._carry = carry
        end = _content_end(text)
        pairs = (len(text) - end) // 2
        if end == 0:
            self._crlfs += pairs
            return
        yield from self._withheld()
        yield text[:end]
        self._content = True
        self._crlfs = pairs

    def _withheld(self) -> Iterator[bytes]:
        while self._crlfs:
            n = min(self._crlfs, _CRLF_RUN)
            yield b"\r\n" * n
            self._crlfs -= n

    def finish(self) -> bytes:
        out: list[bytes] = []
        # relaxed: WSP at the end of the body goes (§3.4.4); a lone CR ending the body is an
        # ordinary octet of its last line (with the space before it)
        carry = self._carry if self._carry.endswith(b"\r") else b""
        if carry:
            out.extend(self._withheld())
            out.append(carry)
            self._content = True
        self._carry = b""
        if self.method == "simple" or self._content:
            out.append(b"\r\n")  # §3.4.3: even an empty body is one CRLF
        return b"".join(out)


def body_canonicalizer(method: Canonicalization) -> BodyCanonicalizer:
    return BodyCanonicalizer(method)
