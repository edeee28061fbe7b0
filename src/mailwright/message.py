"""RFC 5322 message syntax: the header section, its fields, the author.

Every part of mailwright that looks inside a message (the SMTP server adding trace
fields, DKIM signing and verifying, DMARC picking the Author Domain, DSNs quoting the
original, ``mailwright queue show``) uses these rules, so that all of them see the
same header, the same fields and the same From domain.

Messages are bytes with CRLF line ends (RFC 5322 §2.1). Messages handed over by local
programs often use bare LF: where a rule says so, a bare LF counts as a line end. A
bare CR stays an ordinary byte. Nothing here raises on malformed input, and all work
is linear in the size of the message.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "MAX_FROM_COMMENTS",
    "Authors",
    "Field",
    "address_domain",
    "author_domain",
    "authors",
    "field_lines",
    "field_name",
    "field_names",
    "field_value",
    "field_values",
    "fields",
    "normalize_line_endings",
    "received_count",
    "split_header",
]

MAX_FROM_COMMENTS = 32
"""More comments than any real From field carries; beyond, the field is refused unparsed.

The stdlib address parser recurses once per nested comment (RFC 5322 §3.2.2 allows
nesting), so a From field with hundreds of ``(`` would raise RecursionError."""

_BARE_LF = re.compile(rb"(?<!\r)\n")
_EMPTY_LINE = re.compile(rb"\r?\n\r?\n")
_FIELD_BREAK = re.compile(rb"\r\n(?![ \t])")
_FOLD = re.compile(rb"\r\n(?=[ \t])")
_WSP = (0x20, 0x09)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PLAIN_MAILBOX = re.compile(rf"(?:[A-Za-z0-9 .'-]*<({_PLAIN_ADDRESS})>|({_PLAIN_ADDRESS}))")
"""A From value with one mailbox and nothing for a parser to decide: an ASCII dot-atom
address, bare or in angle brackets after a plain display name (RFC 5322 §3.4). Most
mail's From is this; everything else goes to the full parser."""


def normalize_line_endings(data: bytes) -> bytes:
    """Every bare LF made CRLF; CRLF and bare CR are left alone (RFC 5322 §2.3 forbids
    bare CR and LF; a bare LF from a local program is meant as a line end)."""
    newlines = data.count(b"\n")
    if newlines == 0 or data.count(b"\r\n") == newlines:
        return data
    return _BARE_LF.sub(b"\r\n", data)


def split_header(message: bytes) -> tuple[bytes, bytes]:
    """The header section and the body, split at the first empty line (RFC 5322 §2.1).

    The header keeps the line end of its last field; the empty line belongs to
    neither part. A message without an empty line is all header; one that starts
    with an empty line has no header. A bare LF counts as a line end, so this is
    the split DKIM sees after :func:`normalize_line_endings`.
    """
    if message.startswith(b"\r\n"):
        return b"", message[2:]
    if message.startswith(b"\n"):
        return b"", message[1:]
    empty = _EMPTY_LINE.search(message)
    if empty is None:
        return message, b""
    cut = empty.start() + (2 if message[empty.start()] == 0x0D else 1)
    return message[:cut], message[empty.end() :]


def field_lines(header: bytes) -> list[bytes]:
    """The fields of a CRLF header section, each without its final CRLF.

    RFC 5322 §2.2.3: a line that starts with WSP continues the field before it, so a
    field is everything up to a CRLF that is not followed by WSP (folding is kept).
    """
    if header.endswith(b"\r\n"):
        header = header[:-2]
    return _FIELD_BREAK.split(header) if header else []


def field_name(line: bytes) -> bytes | None:
    """The name of a field as written (RFC 5322 §2.2), or None for a line that has no
    colon or starts with WSP (a continuation with nothing to continue).

    WSP before the colon is dropped: the obsolete syntax allows it (RFC 5322 §4.5).
    """
    colon = line.find(b":")
    if colon <= 0 or line[0] in _WSP:
        return None
    return line[:colon].rstrip(b" \t")


class Field(NamedTuple):
    """One header field: ``raw`` is all of its lines, ending with CRLF."""

    name: str
    """The field name in lowercase ("" for a line that is not a field)."""
    raw: bytes

    @property
    def value(self) -> str:
        """The unfolded value (RFC 5322 §2.2.3), decoded, without surrounding WSP."""
        _, _, value = self.raw.partition(b":")
        return _FOLD.sub(b"", value).decode("utf-8", "replace").strip()


def fields(message: bytes) -> list[Field]:
    """The header fields of ``message`` (bare LF line ends count as CRLF).

    Intake asks for the fields of a message several times (From, Received, the field
    names, the tracking fields), before and after adding its own: the last few header
    sections read are remembered, keyed by their bytes, so a repeat only finds the
    empty line and looks the section up."""
    header = split_header(message)[0]
    known = _remembered.get(header)
    if known is not None:
        return list(known)
    found: list[Field] = []
    for line in field_lines(normalize_line_endings(header)):
        name = field_name(line)
        key = "" if name is None else name.decode("ascii", "replace").lower()
        found.append(Field(key, line + b"\r\n"))
    if len(header) <= _REMEMBERED_SIZE:
        if len(_remembered) >= _REMEMBERED:
            # the oldest goes; another thread may have taken it already
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del _remembered[next(iter(_remembered))]
        _remembered[header] = tuple(found)
    return found


_REMEMBERED = 8
_REMEMBERED_SIZE = 16384
"""Header sections up to this size are remembered by :func:`fields` (a bigger one is
parsed each time rather than kept)."""
_remembered: dict[bytes, tuple[Field, ...]] = {}


def field_values(message: bytes, name: str) -> list[str]:
    """The unfolded values of every ``name`` field, top to bottom (name case-insensitive)."""
    key = name.lower()
    return [field.value for field in fields(message) if field.name == key]


def field_value(message: bytes, name: str) -> str | None:
    """The unfolded value of the first ``name`` field (None if absent)."""
    values = field_values(message, name)
    return values[0] if values else None


def field_names(message: bytes) -> set[str]:
    """Lower-cased names of the header fields present."""
    return {field.name for field in fields(message) if field.name}


def received_count(message: bytes) -> int:
    """How many Received fields the header holds: one per hop (RFC 5321 §4.4), the count
    RFC 5321 §6.3 loop detection compares with a limit."""
    return sum(1 for field in fields(message) if field.name == "received")


@dataclass(frozen=True)
class Authors:
    """What the From fields (RFC 5322 §3.6.2) name as the message's authors."""

    fields: int
    """How many From fields there are (RFC 5322 §3.6 allows exactly one)."""
    addresses: tuple[str, ...] = ()
    """The addr-specs in order, as the parser found them (possibly without a domain)."""
    problem: str | None = None
    """Why no address could be read: no field, too many comments, unparsable."""


def authors(message: bytes) -> Authors:
    """The author addresses of every From field, parsed once for signing and DMARC alike."""
    values = field_values(message, "From")
    if not values:
        return Authors(0, problem="no From header field")
    if len(values) == 1 and (plain := _PLAIN_MAILBOX.fullmatch(values[0])) is not None:
        return Authors(1, (plain[1] or plain[2],))
    if sum(value.count("(") for value in values) > MAX_FROM_COMMENTS:
        return Authors(len(values), problem="unusable From header field (comments nested too deep)")
    try:
        parsed = email.utils.getaddresses(values)
    except Exception:  # any parser failure is an unusable field, not a crash
        return Authors(len(values), problem="unparsable From header field")
    return Authors(len(values), tuple(address for _, address in parsed))


def address_domain(address: str) -> str | None:
    """The domain of an addr-spec ``local@domain`` (RFC 5322 §3.4.1), lower-cased and
    without a trailing dot; None when the local part or the domain is missing."""
    local, at, domain = address.rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    return domain if at and local and domain else None


def author_domain(message: bytes) -> str | None:
    """The domain of the first author address with one: the domain whose key signs.

    It is the first domain DMARC evaluates as well (see ``inbound.author_domains``,
    which in addition converts it to its A-label and checks its syntax).
    """
    for address in authors(message).addresses:
        domain = address_domain(address)
        if domain:
            return domain
    return None
