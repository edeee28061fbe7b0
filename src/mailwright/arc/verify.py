"""ARC validation (RFC 8617 §5.2): the Chain Validation Status of an arriving message.

Keys are fetched and signatures checked with the DKIM code (:mod:`mailwright.dkim`): an
ARC-Message-Signature is a DKIM signature with ``i=`` as instance, an ARC-Seal signs the
ARC Sets themselves with relaxed header canonicalization (§5.1.1). Every error,
DNS failures included, is a ``fail`` (§5.2.1). Work is bounded: at most 50 sets, one
key lookup per distinct (selector, domain), made concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from ..dkim.body import BodyDigests
from ..dkim.canonicalization import (
    Canonicalization,
    canonicalize_body,
    canonicalize_header,
    canonicalize_headers,
    parse_canonicalization,
)
from ..dkim.keys import MIN_RSA_BITS, KeyRecord
from ..dkim.message import ParsedMessage, split_message
from ..dkim.signer import select_headers
from ..dkim.tags import shown
from ..dkim.verifier import DkimStatus, SignatureError, fetch_key, signature_verifies
from ..dns import Resolver
from .chain import ArcField, ArcSet, ArcStatus, Chain, collect

__all__ = ["ArcResult", "ams_input", "seal_input", "verify_chain"]

_ALGORITHMS = {"rsa-sha256": ("rsa", "sha256"), "ed25519-sha256": ("ed25519", "sha256")}
_B64_WS = re.compile(r"[ \t\r\n]+")


@dataclass(frozen=True)
class ArcResult:
    """The outcome of ARC validation, for Authentication-Results and local policy."""

    status: ArcStatus
    reason: str
    instances: int = 0
    oldest_pass: int | None = None
    """RFC 8617 §5.2 step 5: the oldest AMS instance still valid, 0 if all are."""
    sets: tuple[ArcSet, ...] = field(default=())
    """The validated sets (empty unless the status is pass)."""

    @property
    def sealers(self) -> tuple[str, ...]:
        """The sealing domains, newest first."""
        return tuple(s.domain for s in reversed(self.sets))


def seal_input(sets: list[ArcSet] | tuple[ArcSet, ...], last_seal: bytes) -> bytes:
    """What an ARC-Seal signs (RFC 8617 §5.1.1): each set's AAR, AMS and AS in instance
    order, relaxed, the newest AS (``last_seal``) with ``b=`` blanked and no final CRLF."""
    parts: list[bytes] = []
    for arc_set in sets[:-1]:
        parts.extend((arc_set.aar.raw, arc_set.ams.raw, arc_set.seal.raw))
    newest = sets[-1]
    parts.extend((newest.aar.raw, newest.ams.raw))
    return canonicalize_headers(parts, "relaxed") + canonicalize_header(last_seal, "relaxed")[:-2]


def ams_input(
    parsed: ParsedMessage,
    ams_blanked: bytes,
    signed: tuple[str, ...] | list[str],
    header_c: Canonicalization = "relaxed",
) -> bytes:
    """What an ARC-Message-Signature signs, as for DKIM (RFC 6376 §3.7, RFC 8617 §4.1.2):
    the fields ``h=`` selects, then the AMS itself with ``b=`` blanked, no final CRLF."""
    return (
        canonicalize_headers(select_headers(parsed, signed), header_c)
        + (canonicalize_header(ams_blanked, header_c)[:-2])
    )


class _Failure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(_B64_WS.sub("", value), validate=True)
    except (binascii.Error, ValueError):
        raise _Failure(f"{what} is not valid base64") from None


def _check_signature(
    arc_field: ArcField,
    record: KeyRecord | SignatureError,
    data: bytes,
    what: str,
) -> None:
    assert arc_field.tags is not None
    algorithm = (arc_field.tags.get("a") or "").lower()
    if algorithm not in _ALGORITHMS:
        raise _Failure(f"{what} uses unsupported a={shown(algorithm, 20)}")
    key_type, hash_name = _ALGORITHMS[algorithm]
    if isinstance(record, SignatureError):
        raise _Failure(f"{what}: {record.reason}")
    if record.revoked:
        raise _Failure(f"{what}: key revoked")
    if record.key_type != key_type:
        raise _Failure(f"{what}: key type {record.key_type} does not match a={algorithm}")
    if key_type == "rsa" and (record.bits or 0) < MIN_RSA_BITS:
        raise _Failure(f"{what}: RSA key of {record.bits} bits is too small (RFC 8301)")
    signature = _decode(arc_field.tags["b"], f"{what} b=")
    try:
        ok = signature_verifies(record, hash_name, signature, data)
    except ValueError as exc:
        raise _Failure(f"{what}: signature unusable: {exc}") from None
    if not ok:
        raise _Failure(f"{what} did not verify")


def _key_name(arc_field: ArcField) -> tuple[str, str]:
    assert arc_field.tags is not None
    return (
        (arc_field.tags.get("s") or "").lower(),
        (arc_field.tags.get("d") or "").lower().rstrip("."),
    )


def _check_ams(
    parsed: ParsedMessage,
    arc_set: ArcSet,
    record: KeyRecord | SignatureError,
    bodies: dict[str, bytes],
    body: BodyDigests | None = None,
) -> None:
    ams = arc_set.ams
    what = f"ARC-Message-Signature i={arc_set.instance}"
    assert ams.tags is not None
    for required in ("a", "b", "bh", "d", "h", "s"):
        if required not in ams.tags:
            raise _Failure(f"{what} lacks {required}=")
    try:
        header_c, body_c = parse_canonicalization(ams.tags.get("c"))
    except ValueError:
        raise _Failure(f"{what} has an unsupported c=") from None
    signed = tuple(n.strip(" \t\r\n").lower() for n in ams.tags["h"].split(":"))
    if "arc-seal" in signed:
        raise _Failure(f"{what} signs ARC-Seal (RFC 8617 §4.1.2 forbids it)")
    if body is not None:  # a spooled message: hashed a piece at a time
        digest = body.digests.get((body_c, "sha256", None), b"")
    else:
        canonical = bodies.get(body_c)
        if canonical is None:
            canonical = bodies[body_c] = canonicalize_body(parsed.body, body_c)
        digest = hashlib.sha256(canonical).digest()
    if digest != _decode(ams.tags["bh"], f"{what} bh="):
        raise _Failure(f"{what}: body hash mismatch (the body was altered)")
    _check_signature(ams, record, ams_input(parsed, ams.blanked(), signed, header_c), what)


async def verify_chain(
    message: bytes | ParsedMessage, resolver: Resolver, *, body: BodyDigests | None = None
) -> ArcResult:
    """The Chain Validation Status of ``message`` (RFC 8617 §5.2). Never raises for
    anything in the message or the DNS answers. ``body``: as for
    :func:`mailwright.dkim.verify_message` (a spooled message's header section)."""
    parsed = message if isinstance(message, ParsedMessage) else split_message(message)
    chain: Chain = collect(parsed)
    if not chain.present:
        return ArcResult(ArcStatus.NONE, "no ARC Sets")
    if chain.error is not None:
        return ArcResult(ArcStatus.FAIL, chain.error, chain.highest)
    sets = chain.sets
    names = list(
        dict.fromkeys(_key_name(f) for s in sets for f in (s.ams, s.seal) if all(_key_name(f)))
    )
    fetched = await asyncio.gather(*(fetch_key(resolver, sel, dom) for sel, dom in names))
    records: dict[tuple[str, str], KeyRecord | SignatureError] = dict(
        zip(names, fetched, strict=True)
    )
    missing = SignatureError(DkimStatus.PERMERROR, "no key: s= or d= missing")

    def key_for(arc_field: ArcField) -> KeyRecord | SignatureError:
        return records.get(_key_name(arc_field), missing)

    bodies: dict[str, bytes] = {}
    newest = sets[-1]
    try:
        # §5.2 step 4: the most recent AMS must validate.
        _check_ams(parsed, newest, key_for(newest.ams), bodies, body)
    except _Failure as exc:
        return ArcResult(ArcStatus.FAIL, exc.reason, chain.highest)
    # §5.2 step 5: the oldest AMS that still validates.
    oldest_pass = 0
    for arc_set in reversed(sets[:-1]):
        try:
            _check_ams(parsed, arc_set, key_for(arc_set.ams), bodies, body)
        except _Failure:
            oldest_pass = arc_set.instance + 1
            break
    # §5.2 step 6: every ARC-Seal, newest first.
    for count in range(len(sets), 0, -1):
        arc_set = sets[count - 1]
        what = f"ARC-Seal i={arc_set.instance}"
        try:
            for required in ("a", "d", "s"):
                if arc_set.seal.tags is None or required not in arc_set.seal.tags:
                    raise _Failure(f"{what} lacks {required}=")
            data = seal_input(sets[:count], arc_set.seal.blanked())
            _check_signature(arc_set.seal, key_for(arc_set.seal), data, what)
        except _Failure as exc:
            return ArcResult(ArcStatus.FAIL, exc.reason, chain.highest)
    return ArcResult(
        ArcStatus.PASS,
        f"{len(sets)} ARC Set{'s' if len(sets) > 1 else ''} verified",
        chain.highest,
        oldest_pass,
        sets,
    )
