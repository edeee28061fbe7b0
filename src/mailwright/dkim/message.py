"""Split a message (bytes) into header fields and body, the way DKIM sees it.

DKIM works on the message as transmitted with CRLF line ends (RFC 6376 §3.4,
RFC 5322 §2.1).  Messages handed to us by local programs often use bare LF, so
bare LF is converted to CRLF in one pass first.  A bare CR (not before LF) is
kept as an ordinary byte of its line: RFC 5322 forbids it, and turning it into
a line break would change what the signer signed.

Nothing here raises on malformed input: a header line without a colon becomes
a field with an empty ``key`` (never selected by ``h=``), a message without a
blank line is all header, 8-bit bytes pass through untouched.  Work is linear
in the size of the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..message import field_lines, field_name, normalize_line_endings, split_header

__all__ = ["HeaderField", "ParsedMessage", "normalize_line_endings", "split_message"]

# Field name as written → lowercase key: the same few dozen names recur in every message.
_KEYS: dict[bytes, str] = {}
_KEYS_MAX = 4096
_new = tuple.__new__  # builds a HeaderField without the named tuple's Python-level __new__


class HeaderField(NamedTuple):
    """One header field: ``raw`` is all of its lines, ending with CRLF.

    A named tuple rather than a dataclass: messages are split per signature and per
    verification, and tuple creation is the cheapest.
    """

    key: str
    """The field name in lowercase ASCII, for matching ``h=``; "" if the line had no colon."""
    raw: bytes


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    headers: tuple[HeaderField, ...]
    body: bytes
    """The body with CRLF line ends, exactly as transmitted otherwise."""
    lf_only: bool
    """The input used bare LF line ends (so a signature prepended to it should too)."""

    def count(self, key: str) -> int:
        return sum(1 for field in self.headers if field.key == key)

    def by_key(self) -> dict[str, list[bytes]]:
        """Raw fields per lowercase name, top to bottom."""
        index: dict[str, list[bytes]] = {}
        for key, raw in self.headers:
            if key in index:
                index[key].append(raw)
            else:
                index[key] = [raw]
        return index


def split_message(message: bytes) -> ParsedMessage:
    """Parse ``message`` into header fields (folding kept) and the CRLF body."""
    first_nl = message.find(b"\n")
    lf_only = first_nl >= 0 and (first_nl == 0 or message[first_nl - 1] != 0x0D)
    data = normalize_line_endings(message)
    block, body = split_header(data)
    fields: list[HeaderField] = []
    keys = _KEYS
    for text in field_lines(block):
        name = field_name(text)
        if name is None:
            # no name, or a continuation line with nothing to continue: never selected
            fields.append(_new(HeaderField, ("", text + b"\r\n")))
            continue
        key = keys.get(name)
        if key is None:
            if len(keys) >= _KEYS_MAX:
                keys.clear()
            key = keys[name] = name.decode("ascii", "replace").lower()
        fields.append(_new(HeaderField, (key, text + b"\r\n")))
    return ParsedMessage(tuple(fields), body, lf_only)
