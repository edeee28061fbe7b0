"""The SMTP DSN extension's parameters (RFC 3461): parsing what a client sends and
writing what we pass on to the next hop.

MAIL takes ``RET=FULL|HDRS`` (§4.3) and ``ENVID=xtext`` (§4.4); RCPT takes
``NOTIFY=NEVER|SUCCESS,FAILURE,DELAY`` (§4.1) and ``ORCPT=addr-type;xtext`` (§4.2).
Values travel as xtext (§4): printable ASCII except ``+`` and ``=``, which (and anything
else) are written ``+XX``. The DSNs themselves are written by
:mod:`mailwright.delivery.dsn` (RFC 3464).
"""

from __future__ import annotations

import re
from typing import cast

from ..queue.store import DsnRecipient, NotifyWord, Ret
from .address import AddressError

ENVID_MAX = 100
"""RFC 3461 §4.4: the ENVID value is at most 100 characters (after decoding)."""
ORCPT_MAX = 500
"""RFC 3461 §4.2: at most 500 characters."""
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")
_NOTIFY_WORDS: frozenset[str] = frozenset({"SUCCESS", "FAILURE", "DELAY"})
_ADDR_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")  # RFC 3461 §4.2: an atom


def xtext_decode(text: str) -> str:
    """Decode xtext (RFC 3461 §4); :class:`AddressError` (501) for malformed text."""
    if any(not 33 <= ord(c) <= 126 or c == "=" for c in text):
        raise AddressError(501, "5.5.4", "Malformed xtext (RFC 3461 §4)")
    if "+" in text and len(_HEXCHAR.findall(text)) != text.count("+"):
        raise AddressError(501, "5.5.4", "Malformed xtext (RFC 3461 §4)")
    return _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), text)


def xtext_encode(text: str) -> str:
    """Encode as xtext: ``+``, ``=``, controls, space and non-ASCII as ``+XX`` (UTF-8)."""
    out = []
    for char in text:
        if 33 <= ord(char) <= 126 and char not in "+=":
            out.append(char)
        else:
            out.extend(f"+{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def parse_ret(value: str | None) -> Ret:
    word = (value or "").upper()
    if word not in ("FULL", "HDRS"):
        raise AddressError(501, "5.5.4", "RET must be FULL or HDRS (RFC 3461 §4.3)")
    return cast(Ret, word)


def parse_envid(value: str | None) -> str:
    envid = xtext_decode(value or "")
    if not envid or len(envid) > ENVID_MAX or not envid.isprintable():
        raise AddressError(501, "5.5.4", "Bad ENVID (RFC 3461 §4.4)")
    return envid


def parse_notify(value: str | None) -> tuple[NotifyWord, ...]:
    """``()`` for NEVER; NEVER cannot be combined with anything (§4.1)."""
    words = [w.strip().upper() for w in (value or "").split(",")]
    if words == ["NEVER"]:
        return ()
    if not words or any(w not in _NOTIFY_WORDS for w in words) or len(set(words)) != len(words):
        raise AddressError(
            501, "5.5.4", "NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY"
        )
    return tuple(cast(NotifyWord, w) for w in words)


def parse_orcpt(value: str | None) -> str:
    """``addr-type;address`` with the address decoded (§4.2)."""
    addr_type, sep, encoded = (value or "").partition(";")
    if not sep or not _ADDR_TYPE.match(addr_type) or not encoded:
        raise AddressError(501, "5.5.4", "ORCPT must be addr-type;xtext (RFC 3461 §4.2)")
    address = xtext_decode(encoded)
    if len(addr_type) + 1 + len(address) > ORCPT_MAX:
        raise AddressError(501, "5.5.4", "ORCPT too long (RFC 3461 §4.2)")
    return f"{addr_type};{address}"


def rcpt_params(params: DsnRecipient) -> list[str]:
    """The RCPT parameters that pass ``params`` on to a next hop offering DSN."""
    out = []
    if params.notify is not None:
        out.append("NOTIFY=" + (",".join(params.notify) if params.notify else "NEVER"))
    if params.orcpt:
        addr_type, _, address = params.orcpt.partition(";")
        out.append(f"ORCPT={addr_type};{xtext_encode(address)}")
    return out


def mail_params(ret: Ret | None, envid: str | None) -> list[str]:
    """The MAIL parameters that pass RET and ENVID on to a next hop offering DSN."""
    out = []
    if ret is not None:
        out.append(f"RET={ret}")
    if envid:
        out.append(f"ENVID={xtext_encode(envid)}")
    return out
