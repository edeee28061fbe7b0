"""ARC sealing (RFC 8617 §5.1): the ARC Set we add to mail we pass on.

Pure: the message, our key, our authserv-id and the time in; the three new fields out.
The ARC-Authentication-Results carries what our inbound checks found (our
Authentication-Results field, written by :mod:`mailwright.inbound`), and the ``cv=`` of
the seal is the ``arc=`` result recorded there (§5.1 step 4C: "as determined during ARC
validation"). All changes to the message, DKIM signing included, come before sealing
(§5.1 step 1).
"""

from __future__ import annotations

import base64
import hashlib
import time

from .. import authres
from ..dkim.canonicalization import canonicalize_body
from ..dkim.keys import SigningKey
from ..dkim.message import split_message
from ..dkim.signer import DEFAULT_SIGNED_HEADERS, sign_data
from .chain import AAR, AMS, AS, MAX_INSTANCES, ArcSet, ArcStatus, collect, tag_field
from .verify import ams_input, seal_input

__all__ = ["chain_status_of", "seal_message"]

_LINE = 78


def chain_status_of(message: bytes, authserv_id: str) -> tuple[str | None, ArcStatus | None]:
    """Our Authentication-Results value (without the field name) and its ``arc=`` result."""
    parsed = split_message(message)
    for key, raw in parsed.headers:
        if key != "authentication-results":
            continue
        value = raw[raw.find(b":") + 1 : -2].decode("utf-8", "replace")
        if authres.authserv_id_of(value) is None:
            continue
        try:
            results = authres.parse(value)
        except authres.AuthResSyntaxError:
            continue
        if not authres.same_id(results.authserv_id, authserv_id):
            continue
        arc = results.find("arc")
        status = None
        if arc:
            try:
                status = ArcStatus(arc[0].result.lower())
            except ValueError:
                status = ArcStatus.FAIL
        return value.strip(" \t\r\n"), status
    return None, None


def _fold(name: str, tags: list[str]) -> str:
    """``Name: tag; tag; ...`` folded before 78 columns, ending with ``b=`` on its own line."""
    lines: list[str] = []
    line = f"{name}:"
    for tag in tags:
        if len(line) + 1 + len(tag) > _LINE:
            lines.append(line)
            line = " " + tag
        else:
            line += " " + tag
    lines.append(line)
    return "\r\n".join(lines) + "\r\n b="


def _fold_b(signature: bytes) -> bytes:
    value = base64.b64encode(signature)
    chunks = [value[i : i + 72] for i in range(0, len(value), 72)]
    return b"\r\n  ".join(chunks) + b"\r\n"


def seal_message(
    message: bytes,
    key: SigningKey,
    authserv_id: str,
    *,
    cv: ArcStatus | None = None,
    timestamp: int | None = None,
) -> bytes:
    """The new ARC Set to prepend to ``message`` (AS, AMS, AAR, top to bottom), or ``b""``
    when the message must not be sealed: its chain already says ``cv=fail`` (§5.1 step 2)
    or has 50 sets (§4.2.1).

    ``cv`` overrides the status read from our Authentication-Results; without either, a
    message with no ARC Set is ``none`` and one with a chain we did not validate ``fail``.
    """
    parsed = split_message(message)
    chain = collect(parsed)
    if chain.newest_cv == ArcStatus.FAIL or chain.highest >= MAX_INSTANCES:
        return b""
    results, recorded = chain_status_of(message, authserv_id)
    if cv is None:
        cv = recorded
    if cv is None or (cv is ArcStatus.NONE and chain.present):
        cv = ArcStatus.FAIL if chain.present else ArcStatus.NONE
    if cv is ArcStatus.PASS and (chain.error is not None or not chain.sets):
        cv = ArcStatus.FAIL  # what we recorded does not match what is on the message
    instance = chain.highest + 1
    t = str(int(time.time()) if timestamp is None else timestamp)
    linesep = b"\r\n"

    # §4.1.1: ARC-Authentication-Results, i= then our Authentication-Results value.
    body = results if results is not None else f"{authres.quote(authserv_id)}; none"
    aar_raw = f"ARC-Authentication-Results: i={instance}; {body}".encode() + linesep
    aar = tag_field(AAR, aar_raw)

    # §4.1.2: ARC-Message-Signature, DKIM-like over the message (never over ARC-Seal).
    index = parsed.by_key()
    names: list[str] = []
    for name in (
        *DEFAULT_SIGNED_HEADERS,
        *(k for k in index if k.startswith("list-")),
        "dkim-signature",
    ):
        names.extend([name] * len(index.get(name, [])))
    names.append("from")  # oversigned, as our DKIM signatures are (RFC 6376 §8.15)
    body_hash = base64.b64encode(
        hashlib.sha256(canonicalize_body(parsed.body, "relaxed")).digest()
    ).decode("ascii")
    ams_head = _fold(
        "ARC-Message-Signature",
        [
            f"i={instance};",
            f"a={key.algorithm};",
            "c=relaxed/relaxed;",
            f"d={key.domain};",
            f"s={key.selector};",
            f"t={t};",
            "h=" + ":".join(names) + ";",
            f"bh={body_hash};",
        ],
    ).encode("ascii")
    ams_signature = sign_data(key, ams_input(parsed, ams_head + linesep, names))
    ams_raw = ams_head + _fold_b(ams_signature)
    ams = tag_field(AMS, ams_raw)

    # §4.1.3 and §5.1.1: ARC-Seal over every set (only ours if the chain failed, §5.1.2).
    seal_head = _fold(
        "ARC-Seal",
        [
            f"i={instance};",
            f"a={key.algorithm};",
            f"cv={cv};",
            f"d={key.domain};",
            f"s={key.selector};",
            f"t={t};",
        ],
    ).encode("ascii")
    placeholder = tag_field(AS, seal_head + b"x" + linesep)
    ours = ArcSet(instance, aar, ams, placeholder)
    previous = list(chain.sets) if cv is ArcStatus.PASS else []
    seal_signature = sign_data(key, seal_input([*previous, ours], seal_head + linesep))
    return seal_head + _fold_b(seal_signature) + ams_raw + aar_raw
