"""Body hashes of a message too big to hold (a spooled one), for verifying its DKIM
signatures and ARC-Message-Signatures without its body in memory.

The verifier normally canonicalizes the body in memory once per canonicalization and
hashes it per (canonicalization, hash, ``l=``). Here the same digests are made in one
pass over the body's pieces (:class:`~.canonicalization.BodyCanonicalizer`), for the
combinations the header section's signatures ask for (:func:`wanted_digests`), and
handed to :func:`~.verifier.verify_message` and :func:`mailwright.arc.verify_chain`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .canonicalization import CANONICALIZATIONS, BodyCanonicalizer, Canonicalization

__all__ = ["BodyDigests", "DigestKey", "SigningBodyHashes", "digest_body"]

DigestKey = tuple[str, str, int | None]
"""(body canonicalization, hash name, ``l=`` or None)."""


@dataclass(frozen=True)
class BodyDigests:
    lengths: dict[str, int]
    """Octets of the canonical body, per canonicalization (for ``l=`` checks)."""
    digests: dict[DigestKey, bytes]


def digest_body(pieces: Iterable[bytes], wanted: Iterable[DigestKey]) -> BodyDigests:
    """The digests ``wanted`` (plus SHA-256 of both whole canonical bodies, which ARC
    needs), in one pass over the body ``pieces``."""
    keys = set(wanted) | {(c, "sha256", None) for c in CANONICALIZATIONS}
    hashers: dict[str, list[list[Any]]] = {}
    for canon, hash_name, length in keys:
        hashers.setdefault(canon, []).append(
            [(canon, hash_name, length), hashlib.new(hash_name), length]
        )
    canonicalizers = {c: BodyCanonicalizer(c) for c in hashers if c in CANONICALIZATIONS}
    lengths: dict[str, int] = {c: 0 for c in canonicalizers}

    def feed(canon: str, out: bytes) -> None:
        if not out:
            return
        lengths[canon] += len(out)
        for entry in hashers[canon]:
            remaining = entry[2]
            if remaining is None:
                entry[1].update(out)
            elif remaining > 0:
                entry[1].update(out[:remaining])
                entry[2] = remaining - min(remaining, len(out))

    for piece in pieces:
        for canon, canonicalizer in canonicalizers.items():
            feed(canon, canonicalizer.update(piece))
    for canon, canonicalizer in canonicalizers.items():
        feed(canon, canonicalizer.finish())
    digests = {entry[0]: entry[1].digest() for canon in canonicalizers for entry in hashers[canon]}
    return BodyDigests(lengths, digests)


class SigningBodyHashes:
    """The body hashes our signer needs for a big message (SHA-256 per body
    canonicalization; relaxed by default: we sign relaxed/relaxed), fed a piece of the
    body at a time: while it is spooled, or read back from the queue at delivery."""

    def __init__(self, methods: Iterable[Canonicalization] = ("relaxed",)) -> None:
        self._hashers = {c: (BodyCanonicalizer(c), hashlib.sha256()) for c in methods}

    def update(self, piece: bytes) -> None:
        for canon, digest in self._hashers.values():
            digest.update(canon.update(piece))

    def finish(self) -> dict[str, bytes]:
        """The digests by canonicalization name (call once, after the last piece)."""
        for canon, digest in self._hashers.values():
            digest.update(canon.finish())
        return {name: digest.digest() for name, (_, digest) in self._hashers.items()}
