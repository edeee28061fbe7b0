"""DNS messages on the wire (RFC 1035 §4.1), sans-I/O: build a query, decode an answer.

Why not ``dns.message`` for every answer: dnspython's general message parser
costs 60–130 µs per loopback answer, more than the rest of a lookup together, and
a mail server asks for a handful of record types only. This module decodes the
types mail uses (A, AAAA, MX, TXT, SPF, PTR, CNAME, NS, SOA) itself and hands
any other type's rdata to dnspython (``dns.rdata.from_wire``), so ``mailwright
dns NAME TLSA`` still works. The data is untrusted: every length is checked and
compression pointers may only point backwards (no loops), RFC 1035 §4.1.4.
"""

from __future__ import annotations

import re
import socket
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from ..errors import MailwrightError

HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")
_TYPE_CLASS = struct.Struct("!HH")
_SOA_NUMBERS = struct.Struct("!IIIII")

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, OPT, SPF = 1, 2, 5, 6, 12, 15, 16, 28, 41, 99
CLASS_IN = 1

FLAG_QR = 0x8000
FLAG_TC = 0x0200
FLAG_RD = 0x0100

RCODE_NOERROR, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN = 0, 1, 2, 3
RCODE_TEXT = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

UDP_PAYLOAD = 1232
"""EDNS0 buffer (RFC 6891 §6.2.5): big enough for 2048-bit DKIM keys and long SPF records,
small enough not to fragment (the DNS flag day 2020 value)."""

_OPT_RECORD = b"\x00" + _RR_FIXED.pack(OPT, UDP_PAYLOAD, 0, 0)
_MAX_RECORDS = 512
"""More records than fit in 64 KiB of minimal records would be a lie in the header."""

# dnspython's text form of a label: these characters are backslash-escaped, bytes outside
# 0x21-0x7E become \DDD. Plain labels (nearly all) skip the per-byte loop.
_PLAIN_LABEL = re.compile(rb"[A-Za-z0-9_*/+=!#%&'<>?\[\]^`{|}~,:-]+")
_ESCAPED_IN_NAMES = frozenset(b'"().;\\@$')


class WireError(MailwrightError):
    """A DNS message that does not parse: truncated, bad pointer, wrong rdata length."""


@dataclass(slots=True)
class Record:
    """One resource record of the answer or authority section."""

    owner: str
    """The owner name in dnspython's text form without the final dot (case as sent)."""
    rtype: int
    ttl: int
    value: Any
    """A/AAAA: address text; MX: (preference, exchange text); TXT/SPF: tuple of byte
    strings; PTR/CNAME/NS: target text; SOA: (mname, rname, serial, refresh, retry,
    expire, minimum); any other type: the dnspython rdata."""


@dataclass(slots=True)
class Response:
    """A decoded answer: header fields, the answer section and any SOA of the authority."""

    id: int
    flags: int
    rcode: int
    answer: list[Record] = field(default_factory=list)
    soa: Record | None = None
    """The authority section's SOA, whose TTL bounds negative caching (RFC 2308 §5)."""

    @property
    def truncated(self) -> bool:
        return bool(self.flags & FLAG_TC)


def encode_name(ascii_name: str) -> bytes:
    """The wire form of a validated, IDNA-encoded name (see :func:`names.name_problem`).

    A backslash means dnspython's escapes (``\\.``, ``\\065``); those names go through
    dnspython, which is what the resolver did before.
    """
    if "\\" in ascii_name:
        try:
            encoded = dns.name.from_text(ascii_name).to_wire()
        except dns.exception.DNSException as exc:
            raise WireError(str(exc)) from None
        assert encoded is not None  # only None when writing into a file
        return encoded
    out = bytearray()
    for label in ascii_name.split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise WireError(f"bad label {label!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise WireError("name longer than 255 octets")
    return bytes(out)


def question(qname_wire: bytes, rdtype: int) -> bytes:
    """The question section of a query (RFC 1035 §4.1.2), class IN."""
    return qname_wire + _TYPE_CLASS.pack(rdtype, CLASS_IN)


def build_query(query_id: int, question_wire: bytes, *, edns: bool = True) -> bytes:
    """A recursive query (RD set) with one question and an EDNS0 OPT record (RFC 6891)."""
    if edns:
        return HEADER.pack(query_id, FLAG_RD, 1, 0, 0, 1) + question_wire + _OPT_RECORD
    return HEADER.pack(query_id, FLAG_RD, 1, 0, 0, 0) + question_wire


def answers_question(data: bytes, question_wire: bytes) -> bool:
    """Is ``data`` a response (QR) with exactly our question? (RFC 5452 §9.1).

    The name compares case-insensitively (a server may echo it with other case);
    label length octets are below 0x40 and are left alone by ``lower()``.
    """
    if len(data) < 12 + len(question_wire) or not data[2] & 0x80:
        return False
    if data[4:6] != b"\x00\x01":
        return False
    name_end = 12 + len(question_wire) - 4
    return (
        data[12:name_end].lower() == question_wire[:-4]
        and data[name_end : name_end + 4] == question_wire[-4:]
    )


def parse_response(data: bytes, question_length: int) -> Response:
    """Decode a response whose question section (``question_length`` octets) was matched.

    The answer section is decoded in full; of the authority section only an SOA is
    kept; the additional section is only walked (nothing in it is trusted or needed).
    """
    if len(data) < 12:
        raise WireError("message shorter than its header")
    query_id, flags, _qd, ancount, nscount, arcount = HEADER.unpack_from(data)
    response = Response(query_id, flags, flags & 0xF)
    if ancount + nscount + arcount > _MAX_RECORDS:
        raise WireError("more records than the message can hold")
    offset = 12 + question_length
    answer = response.answer
    for _ in range(ancount):
        record, offset = _read_record(data, offset)
        answer.append(record)
    for _ in range(nscount):
        record, offset = _read_record(data, offset, only=SOA)
        if record.rtype == SOA and response.soa is None:
            response.soa = record
    for _ in range(arcount):  # walked, not kept: a message that lies about it is refused
        _record, offset = _read_record(data, offset, only=-1)
    return response


def _read_record(data: bytes, offset: int, only: int | None = None) -> tuple[Record, int]:
    labels, offset = read_name(data, offset)
    if offset + 10 > len(data):
        raise WireError("record header past the end of the message")
    rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
    start = offset + 10
    end = start + rdlength
    if end > len(data):
        raise WireError("rdata past the end of the message")
    if ttl & 0x80000000:
        ttl = 0  # RFC 2181 §8: a TTL with the top bit set is treated as zero
    owner = name_text(labels)
    if only is not None and rtype != only:
        return Record(owner, rtype, ttl, None), end
    return Record(owner, rtype, ttl, _read_rdata(data, rtype, rclass, start, end)), end


def _read_rdata(data: bytes, rtype: int, rclass: int, start: int, end: int) -> Any:
    length = end - start
    if rtype == A:
        if length != 4:
            raise WireError("A record with rdata not 4 octets")
        return socket.inet_ntop(socket.AF_INET, data[start:end])
    if rtype == AAAA:
        if length != 16:
            raise WireError("AAAA record with rdata not 16 octets")
        return socket.inet_ntop(socket.AF_INET6, data[start:end])
    if rtype in (TXT, SPF):
        strings: list[bytes] = []
        pos = start
        while pos < end:
            size = data[pos]
            chunk = data[pos + 1 : pos + 1 + size]
            pos += 1 + size
            if pos > end:
                raise WireError("TXT character-string past the rdata")
            strings.append(chunk)
        if not strings:
            raise WireError("TXT record without a character-string")
        return tuple(strings)
    if rtype == MX:
        if length < 3:
            raise WireError("MX rdata too short")
        labels, pos = read_name(data, start + 2)
        _check_end(pos, end)
        return (int.from_bytes(data[start : start + 2], "big"), name_text(labels))
    if rtype in (CNAME, PTR, NS):
        labels, pos = read_name(data, start)
        _check_end(pos, end)
        return name_text(labels)
    if rtype == SOA:
        mname, pos = read_name(data, start)
        rname, pos = read_name(data, pos)
        _check_end(pos + 20, end)
        return (name_text(mname), name_text(rname), *_SOA_NUMBERS.unpack_from(data, pos))
    try:
        return dns.rdata.from_wire(
            dns.rdataclass.RdataClass.make(rclass),
            dns.rdatatype.RdataType.make(rtype),
            data,
            start,
            length,
        )
    except (dns.exception.DNSException, ValueError, IndexError, struct.error) as exc:
        raise WireError(f"type {rtype} rdata: {exc}") from None


def _check_end(pos: int, end: int) -> None:
    if pos != end:
        raise WireError("rdata length does not match its content")


def read_name(data: bytes, offset: int) -> tuple[list[bytes], int]:
    """The labels of the name at ``offset`` and the offset after it (RFC 1035 §4.1.4).

    A compression pointer must point before the place it was read from, so a
    chain of pointers always ends; the name may not exceed 255 octets.
    """
    labels: list[bytes] = []
    after = -1
    size = 0
    limit = len(data)
    while True:
        if offset >= limit:
            raise WireError("name past the end of the message")
        length = data[offset]
        if length == 0:
            offset += 1
            break
        if length >= 0xC0:
            if offset + 1 >= limit:
                raise WireError("compression pointer past the end of the message")
            pointer = ((length & 0x3F) << 8) | data[offset + 1]
            if pointer >= offset:
                raise WireError("compression pointer not pointing backwards")
            if after < 0:
                after = offset + 2
            offset = pointer
            continue
        if length > 63:
            raise WireError("unknown label type")
        end = offset + 1 + length
        if end > limit:
            raise WireError("label past the end of the message")
        size += length + 1
        if size > 255:
            raise WireError("name longer than 255 octets")
        labels.append(data[offset + 1 : end])
        offset = end
    return labels, (after if after >= 0 else offset)


def name_text(labels: list[bytes]) -> str:
    """A name as dnspython prints it, without the final dot (the root is ``""``)."""
    return ".".join([_label_text(label) for label in labels])


@lru_cache(maxsize=4096)
def _label_text(label: bytes) -> str:
    if _PLAIN_LABEL.fullmatch(label):
        return label.decode("ascii")
    out = []
    for byte in label:
        if byte in _ESCAPED_IN_NAMES:
            out.append("\\" + chr(byte))
        elif 0x20 < byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def txt_text(strings: tuple[bytes, ...]) -> str:
    """TXT rdata as dig and dnspython print it: each string quoted, ``"``/``\\`` escaped,
    bytes outside printable ASCII as ``\\DDD``."""
    return " ".join(f'"{_escape_string(s)}"' for s in strings)


def _escape_string(data: bytes) -> str:
    if _PLAIN_STRING.fullmatch(data):
        return data.decode("ascii")
    out = []
    for byte in data:
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


_PLAIN_STRING = re.compile(rb"[\x20\x21\x23-\x5b\x5d-\x7e]*")


def rdata_text(rtype: int, value: Any) -> str:
    """The presentation form of a decoded rdata (RFC 1035 §5.1), as dnspython prints it."""
    if rtype in (A, AAAA):
        return str(value)
    if rtype in (TXT, SPF):
        return txt_text(value)
    if rtype == MX:
        return f"{value[0]} {value[1]}."
    if rtype in (CNAME, PTR, NS):
        return f"{value}."
    if rtype == SOA:
        return f"{value[0]}. {value[1]}. " + " ".join(str(n) for n in value[2:])
    return str(value.to_text())


@lru_cache(maxsize=256)
def rdtype_number(rdtype: str) -> int | None:
    """The numeric type of a mnemonic (``MX`` → 15, ``TYPE65`` → 65), None when unknown."""
    try:
        return int(dns.rdatatype.from_text(rdtype))
    except dns.exception.DNSException:
        return None


def rdtype_name(number: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(number))
