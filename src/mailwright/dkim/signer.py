"""Signing (RFC 6376 §5, RFC 8463): one DKIM-Signature field per key.

The work per message is: split the message once, canonicalize and hash the
body once per body canonicalization, canonicalize the signed header fields once
per header canonicalization, then one private-key operation per key.  Nothing
else depends on the message size.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import MailwrightError
from .canonicalization import (
    CANONICALIZATIONS,
    Canonicalization,
    canonicalize_body,
    canonicalize_header,
    canonicalize_headers,
)
from .keys import SigningKey
from .message import ParsedMessage, split_message

__all__ = [
    "DEFAULT_SIGNED_HEADERS",
    "DkimSignError",
    "sign_data",
    "sign_message",
    "signed_header_names",
]

DEFAULT_SIGNED_HEADERS: tuple[str, ...] = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
)
"""RFC 6376 §5.4.1's recommended fields that we sign when present (List-* too)."""

OVERSIGNED_WHEN_PRESENT: tuple[str, ...] = ("list-unsubscribe", "list-unsubscribe-post")
"""Signed once more than they occur (RFC 6376 §8.15), like From: the RFC 8058 §4
one-click fields, so that nobody can put a List-Unsubscribe of their own above ours
(a verifier picks the bottom-most instance, many readers the top-most)."""

_LINE = 78  # RFC 5322 §2.1.1: SHOULD stay within 78 characters
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


class DkimSignError(MailwrightError):
    """The message cannot be signed as asked (no From, bad header list)."""


def signed_header_names(parsed: ParsedMessage) -> list[str]:
    """The default ``h=`` list for this message.

    Every instance of each recommended field present is signed; From gets one
    extra entry (oversigning, RFC 6376 §8.15) so that no From can be added later, and
    so do List-Unsubscribe and List-Unsubscribe-Post when present.
    """
    return _default_selection(parsed.by_key())[0]


def _default_selection(index: dict[str, list[bytes]]) -> tuple[list[str], list[bytes]]:
    """The default ``h=`` names and, in the same order, the fields they select."""
    names: list[str] = []
    selected: list[bytes] = []
    for name in (*DEFAULT_SIGNED_HEADERS, *(k for k in index if k.startswith("list-"))):
        raws = index.get(name)
        if not raws:
            continue
        if len(raws) == 1:
            names.append(name)
            selected.append(raws[0])
        else:
            names.extend([name] * len(raws))
            selected.extend(reversed(raws))  # RFC 6376 §5.4.2: from the bottom up
    names.extend(name for name in OVERSIGNED_WHEN_PRESENT if index.get(name))
    names.append("from")  # the oversigning entries select nothing
    return names, selected


def select_headers(parsed: ParsedMessage, names: Sequence[str]) -> list[bytes]:
    """The raw fields ``h=`` names, each name taking the last unused instance (RFC 6376 §5.4.2).

    A name with no instance left contributes nothing (which is what makes
    oversigning work).
    """
    by_key = parsed.by_key()
    out: list[bytes] = []
    for name in names:
        stack = by_key.get(name.lower())
        if stack:
            out.append(stack.pop())
    return out


def sign_message(
    message: bytes,
    keys: Sequence[SigningKey],
    *,
    headers: Sequence[str] | None = None,
    canonicalization: tuple[str, str] = ("relaxed", "relaxed"),
    timestamp: int | None = None,
    body_hashes: Mapping[str, bytes] | None = None,
) -> bytes:
    """Return the DKIM-Signature field(s) to prepend to ``message``, folded, CRLF-terminated.

    ``headers`` overrides the default field list (it must name From). ``body_hashes``:
    the SHA-256 of the canonical body per body canonicalization, computed elsewhere
    (a spooled message: ``message`` is then its header section only). Raises
    :class:`DkimSignError` for a message without From or a bad option.
    """
    header_c, body_c = canonicalization
    if header_c not in CANONICALIZATIONS or body_c not in CANONICALIZATIONS:
        raise DkimSignError(f"unknown canonicalization {header_c}/{body_c}")
    parsed = split_message(message)
    index = parsed.by_key()
    if "from" not in index:
        # RFC 6376 §5.4: the From field MUST be signed, so a message without one cannot be.
        raise DkimSignError("message has no From header field (RFC 6376 §5.4 requires signing it)")
    selected: list[bytes] | None = None
    if headers is None:
        names, selected = _default_selection(index)
    else:
        names = [h.strip().lower() for h in headers]
        if "from" not in names:
            raise DkimSignError("the signed header list must include From (RFC 6376 §5.4)")
        if any(not n or ":" in n or ";" in n or any(c.isspace() for c in n) for n in names):
            raise DkimSignError(f"invalid header field name in {list(headers)!r}")
    return sign_parsed(
        parsed,
        keys,
        names,
        header_c,
        body_c,
        int(time.time()) if timestamp is None else timestamp,
        selected,
        None if body_hashes is None else _given_hash(body_hashes, body_c),
    )


def sign_parsed(
    parsed: ParsedMessage,
    keys: Sequence[SigningKey],
    names: Sequence[str],
    header_c: Canonicalization,
    body_c: Canonicalization,
    timestamp: int,
    selected: Sequence[bytes] | None = None,
    body_digest: bytes | None = None,
) -> bytes:
    """Sign an already split message with ``h=`` ``names`` (no policy checks: tests use it).

    ``selected`` are the fields ``names`` select, when the caller already has them;
    ``body_digest`` the body's hash, when it was computed a piece at a time.
    """
    if body_digest is None:
        body_digest = hashlib.sha256(canonicalize_body(parsed.body, body_c)).digest()
    body_hash = base64.b64encode(body_digest).decode("ascii")
    if selected is None:
        selected = select_headers(parsed, names)
    header_data = canonicalize_headers(selected, header_c)
    out: list[bytes] = []
    t = str(timestamp)
    for key in keys:
        template = _field_template(
            key.algorithm, header_c, body_c, key.domain, key.selector, tuple(names), len(t)
        )
        # RFC 6376 §3.7: the signature field itself is hashed last, with b= empty and
        # without its final CRLF.
        field = template.replace(_T_SLOT * len(t), t).replace(_BH_SLOT * 44, body_hash)
        raw = field.encode("ascii")
        data = header_data + canonicalize_header(raw + b"\r\n", header_c)[:-2]
        signature = sign_data(key, data)
        out.append(raw + _fold_b(signature, len(field) - field.rfind("\n") - 1))
    return b"".join(out)


def _given_hash(body_hashes: Mapping[str, bytes], body_c: str) -> bytes:
    digest = body_hashes.get(body_c)
    if digest is None:
        raise DkimSignError(f"no body hash for the {body_c} canonicalization was computed")
    return digest


_T_SLOT = "\x01"
_BH_SLOT = "\x02"


@lru_cache(maxsize=512)
def _field_template(
    algorithm: str,
    header_c: str,
    body_c: str,
    domain: str,
    selector: str,
    names: tuple[str, ...],
    t_len: int,
) -> str:
    """The folded field up to ``b=`` with same-width slots for t= and bh=.

    Folding depends only on lengths, so it is done once per key and header list;
    each message only fills in its timestamp and body hash.
    """
    tags = [
        "v=1;",
        f"a={algorithm};",
        f"c={header_c}/{body_c};",
        f"d={domain};",
        f"s={selector};",
        f"t={_T_SLOT * t_len};",
    ]
    return _fold_tags(tags, names, _BH_SLOT * 44) + "b="


def sign_data(key: SigningKey, data: bytes) -> bytes:
    """One private-key operation over the hash input (shared with ARC, RFC 8617)."""
    private = key.private_key
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(data, _PKCS1, _SHA256)
    # RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data (PureEdDSA over the digest).
    return private.sign(hashlib.sha256(data).digest())


def _fold_tags(tags: list[str], names: Sequence[str], body_hash: str) -> str:
    """``DKIM-Signature: ...`` up to (not including) ``b=``, folded at 78 columns.

    The h= list may fold after any colon (RFC 6376 §3.5 allows FWS there).
    """
    pieces: list[tuple[str, str]] = [(t, " ") for t in tags]
    h_parts = [f"{n}:" for n in names]
    h_parts[0] = "h=" + h_parts[0]
    h_parts[-1] = h_parts[-1][:-1] + ";"
    pieces.extend((p, " " if i == 0 else "") for i, p in enumerate(h_parts))
    pieces.append((f"bh={body_hash};", " "))
    pieces.append(("b=", " "))
    lines: list[str] = []
    line = "DKIM-Signature:"
    for text, sep in pieces:
        if len(line) + len(sep) + len(text) > _LINE:
            lines.append(line)
            line = " " + text
        else:
            line += sep + text
    # The trailing "b=" piece is returned by the caller; strip it here.
    lines.append(line[:-2])
    return "\r\n".join(lines)


def _fold_b(signature: bytes, column: int) -> bytes:
    """The b= value, continued on indented lines (FWS in b= is ignored, RFC 6376 §3.5)."""
    value = base64.b64encode(signature)
    first = max(_LINE - column, 8)
    chunks = [value[:first]]
    chunks.extend(value[i : i + _LINE - 1] for i in range(first, len(value), _LINE - 1))
    return b"\r\n ".join(chunks) + b"\r\n"
