"""8-bit message data made 7-bit (RFC 6152 §3, RFC 2045 §6), without a MIME library.

RFC 6152 §3 lets an MTA that must relay 8-bit data to a server without 8BITMIME convert
it to 7-bit MIME. This module does that on the raw bytes, per MIME part: a part whose
body has 8-bit octets gets quoted-printable when it is mostly text and base64 otherwise,
and its ``Content-Transfer-Encoding`` is replaced. Everything else — every other header
line, the 7-bit parts, the boundaries — is kept byte for byte, so a message that was
7-bit already comes back unchanged, and only the header fields a conversion must touch
change.

Why raw bytes and not :mod:`email`: re-serialising a parsed message refolds and
re-encodes header fields, which would change far more than RFC 6152 allows. Header
sections are read with :mod:`mailwright.message` (the project's one RFC 5322 reader);
input is CRLF, as the SMTP server delivers it.

Bounded work: nesting deeper than :data:`MAX_DEPTH` is encoded as one opaque part;
the work is linear in the message size.

Header fields with raw 8-bit octets (SMTPUTF8 mail, RFC 6532) cannot be made 7-bit
without rewriting them; they are left as they are, and :func:`to_7bit` says so in
:attr:`Converted.headers_8bit`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from . import message as rfc5322

MAX_DEPTH = 20
"""Multipart nesting beyond this is treated as one leaf (base64 as a whole)."""

TEXT_8BIT_RATIO = 0.2
"""A text part with more than this share of 8-bit octets gets base64 (shorter than QP)."""

SHORT_TEXT = 256
"""Text parts shorter than this get quoted-printable whatever their mix (readable)."""

CRLF = b"\r\n"
_PARAM = re.compile(
    rb';\s*([!#-\'*+.0-9A-Z^-~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))', re.IGNORECASE
)


@dataclass(frozen=True)
class Converted:
    data: bytes
    changed: bool
    """Some part was re-encoded (False: the data was 7-bit already, or only its headers
    are 8-bit)."""
    headers_8bit: bool
    """Some header field still has 8-bit octets (the result is not 7-bit)."""


def to_7bit(data: bytes) -> Converted:
    """The message with every 8-bit body part re-encoded (see the module docstring)."""
    if data.isascii():
        return Converted(data, False, False)
    state = _State()
    out = _convert_entity(data, state, depth=0, default_type=b"text/plain", top=True)
    return Converted(out, out != data, state.headers_8bit)


class _State:
    headers_8bit = False


def _content_type(value: str | None, default: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    if value is None:
        return default, {}
    raw = value.encode("utf-8", "replace")
    mtype = raw.split(b";", 1)[0].strip().lower()
    if b"/" not in mtype:
        mtype = default
    params: dict[bytes, bytes] = {}
    for m in _PARAM.finditer(raw):
        quoted, plain = m.group(2), m.group(3)
        params[m.group(1).lower()] = (
            re.sub(rb"\\(.)", rb"\1", quoted) if quoted is not None else plain
        )
    return mtype, params


def _convert_entity(
    entity: bytes, state: _State, *, depth: int, default_type: bytes, top: bool = False
) -> bytes:
    if entity.isascii():
        return entity
    header, body = rfc5322.split_header(entity)
    if not header.isascii():
        state.headers_8bit = True
    if body.isascii():
        return entity
    fields = rfc5322.fields(entity)
    declared = {f.name: f.value for f in reversed(fields)}  # the first of each wins
    ctype, params = _content_type(declared.get("content-type"), default_type)
    boundary = params.get(b"boundary")
    if ctype.startswith(b"multipart/") and boundary and depth < MAX_DEPTH:
        new_body = _convert_multipart(body, boundary, state, depth=depth, ctype=ctype)
        return _header(fields, b"7bit") + CRLF + new_body
    if ctype == b"message/rfc822" and depth < MAX_DEPTH:
        # RFC 2046 §5.2.1: message/rfc822 itself must be 7bit, 8bit or binary; encode inside.
        inner = _convert_entity(body, state, depth=depth + 1, default_type=b"text/plain")
        return _header(fields, b"7bit") + CRLF + inner
    eight = _count_8bit(body)
    text = ctype.startswith(b"text/") or ctype == b"message/delivery-status"
    mostly_ascii = len(body) < SHORT_TEXT or eight <= TEXT_8BIT_RATIO * len(body)
    if text and mostly_ascii and b"\0" not in body:
        cte, encoded = b"quoted-printable", _qp(body)
    else:
        cte, encoded = b"base64", _b64(body)
    added = []
    if top and "content-type" not in declared:
        # No MIME type declared: 8-bit text of an unknown charset (RFC 1428).
        added.append(b'Content-Type: text/plain; charset="unknown-8bit"')
    if top and "mime-version" not in declared:
        added.append(b"MIME-Version: 1.0")
    return _header(fields, cte, added) + CRLF + encoded


def _count_8bit(body: bytes) -> int:
    return len(body) - len(body.translate(None, bytes(range(128, 256))))


def _header(fields: list[rfc5322.Field], cte: bytes, added: list[bytes] | None = None) -> bytes:
    """The header section with its Content-Transfer-Encoding fields replaced by one (and
    ``added`` fields after it); every other field byte for byte."""
    kept = b"".join(f.raw for f in fields if f.name != "content-transfer-encoding")
    lines = [b"Content-Transfer-Encoding: " + cte, *(added or [])]
    return kept + b"".join(line + CRLF for line in lines)


def _convert_multipart(
    body: bytes, boundary: bytes, state: _State, *, depth: int, ctype: bytes
) -> bytes:
    """Each body part converted; boundary lines, preamble and epilogue kept (their 8-bit
    octets, which no reader shows, become '?')."""
    delimiter = re.compile(rb"(?:^|(?<=\n))--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|$)")
    child_default = b"message/rfc822" if ctype == b"multipart/digest" else b"text/plain"
    out = bytearray()
    pos = 0
    inside = False
    for m in delimiter.finditer(body):
        chunk = body[pos : m.start()]
        if inside:
            # the line end before the delimiter belongs to the delimiter (RFC 2046 §5.1.1)
            if chunk.endswith(b"\r\n"):
                part, tail = chunk[:-2], b"\r\n"
            elif chunk.endswith(b"\n"):
                part, tail = chunk[:-1], b"\n"
            else:
                part, tail = chunk, b""
            out += _convert_entity(part, state, depth=depth + 1, default_type=child_default) + tail
        else:
            out += _ascii_only(chunk)
        out += m.group(0)
        pos = m.end()
        if m.group(1):  # the close delimiter: the rest is the epilogue
            inside = False
            break
        inside = True
    rest = body[pos:]
    if inside:  # no close delimiter: the last part runs to the end
        out += _convert_entity(rest, state, depth=depth + 1, default_type=child_default)
    else:
        out += _ascii_only(rest)
    return bytes(out)


def _ascii_only(chunk: bytes) -> bytes:
    if chunk.isascii():
        return chunk
    return chunk.translate(bytes(range(128)) + b"?" * 128)


def _qp(body: bytes) -> bytes:
    lines = re.split(rb"\r\n|\n", body)
    out = []
    for line in lines:
        encoded = binascii.b2a_qp(line.replace(b"\r", b""), quotetabs=False, istext=True)
        # A line starting with '.' or "From " is safe in QP either way; b2a_qp breaks
        # long lines with '=\n' soft breaks.
        out.append(encoded.replace(b"=\n", b"=" + CRLF))
    return CRLF.join(out)


def _b64(body: bytes) -> bytes:
    return base64.encodebytes(body).replace(b"\n", CRLF)
