"""DKIM signing when a message leaves (RFC 6376), not when it arrives.

Intake decides which domain's keys sign a message of ours and records it in the
queue metadata (:attr:`~mailwright.queue.QueueMeta.sign_domain`); the delivery agent
signs at each attempt with the keys current then. A message retried for days is signed
with the key in use when it leaves (a rotated key is not needed for mail queued before
the rotation), its ``t=`` is the time it left, and the work is done by whichever worker
delivers, not in the path before the client's ``250``.

The signature fields are never stored: a message in memory is sent as ``signature +
message``; a big one stored in the queue (:class:`~mailwright.queue.store.StoredMessage`)
is signed from its header section and the body hashes intake computed while the body
was spooled (:attr:`~mailwright.queue.QueueMeta.body_hashes`), and sent with the
signature as its prefix, without reading its body an extra time.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ..dkim.body import SigningBodyHashes
from ..queue.store import QueueMeta, StoredMessage
from ..smtp.intake import Signer


@dataclass(frozen=True, slots=True)
class NotSigned:
    """Why the message cannot be signed now (the agent logs it with a warning)."""

    reason: str


def sign_in_memory(signer: Signer | None, domain: str, message: bytes) -> bytes | NotSigned:
    """``message`` with fresh DKIM-Signature fields of ``domain`` on top."""
    if signer is None:
        return _keys_gone(domain)
    try:
        result = signer(message, domain)
    except Exception as exc:  # a signing bug must not lose or block the message
        return NotSigned(f"signing failed: {exc}")
    if result is None:
        return _keys_gone(domain)
    return result[0] + message


async def sign_stored(
    signer: Signer | None, meta: QueueMeta, message: StoredMessage
) -> StoredMessage | NotSigned:
    """A big stored message with its signature as the prefix: the header section read
    from the queue, the body hashes from ``meta`` (or, for one that was read whole at
    intake, from one pass over the stored body)."""
    domain = meta.sign_domain
    assert domain is not None
    if signer is None or not _has_keys(signer, domain):
        return _keys_gone(domain)
    try:
        head = await message.head()
        if not head.endswith(b"\r\n\r\n"):
            # no body, or a header section past HEAD_LIMIT (intake read such a message
            # whole too): signed whole, as rare as it is
            result = signer(await message.read_all(), domain)
        else:
            hashes = _decoded(meta.body_hashes) or await _hash_stored_body(message, len(head))
            result = signer(head, domain, hashes)
    except Exception as exc:  # a signing bug (or a bad stored hash) must not lose the message
        return NotSigned(f"signing failed: {exc}")
    if result is None:
        return _keys_gone(domain)
    return message.with_prefix(result[0])


def _keys_gone(domain: str) -> NotSigned:
    """Intake decided to sign with ``domain``'s keys; a reload has removed them since."""
    return NotSigned(f"no DKIM key for {domain} any more")


def _has_keys(signer: Signer, domain: str) -> bool:
    try:
        return bool(signer.selectors(domain))
    except Exception:
        return True  # let the signing itself fail with its reason


def _decoded(body_hashes: dict[str, str] | None) -> dict[str, bytes] | None:
    if not body_hashes:
        return None
    try:
        return {c: base64.b64decode(h, validate=True) for c, h in body_hashes.items()}
    except (binascii.Error, ValueError):
        return None  # computed again from the stored body


async def _hash_stored_body(message: StoredMessage, head_size: int) -> dict[str, bytes]:
    """The relaxed body hash (our signer signs relaxed/relaxed), read from the queue a
    piece at a time past the header section's ``head_size`` octets."""
    hashes = SigningBodyHashes()
    offset = 0
    async for piece in message.chunks():
        if offset + len(piece) > head_size:
            hashes.update(piece[max(0, head_size - offset) :])
        offset += len(piece)
    return hashes.finish()
