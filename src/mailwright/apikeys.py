"""API keys for the HTTP API: making them, their stored hashes, and the check.

A key is ``mwk_`` and 32 random bytes in unpadded base64url (256 bits): it is shown once
by ``mailwright passwd --api-key`` and only its hash is configured
(``[[api_keys]] hash = "$sha256$..."``). A slow password hash (scrypt, as for
``[[users]]``) protects *guessable* secrets; a 256-bit random key cannot be guessed or
looked up in a dictionary, so one SHA-256 is as safe and keeps each API request cheap
(scrypt would cost ~0.1 s of CPU per request). The comparison is constant-time and runs
over every configured key, so the time taken says nothing about which key nearly matched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import MailwrightError

PREFIX = "mwk_"
HASH_PREFIX = "$sha256$"
SCOPES = ("send", "read", "suppressions", "admin", "metrics")
"""``admin`` implies every other scope (the status page needs it)."""


class BadKeyHash(MailwrightError, ValueError):
    """A configured key hash mailwright cannot read."""


def new_key() -> str:
    """A new random API key (show it once, store :func:`hash_key` of it)."""
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def hash_key(key: str) -> str:
    return HASH_PREFIX + base64.b64encode(_digest(key)).decode("ascii").rstrip("=")


def parse_key_hash(text: str) -> bytes:
    """The 32-byte digest of a ``$sha256$`` key hash, or :class:`BadKeyHash`."""
    if not text.startswith(HASH_PREFIX):
        raise BadKeyHash("not a $sha256$ key hash (make one with 'mailwright passwd --api-key')")
    body = text[len(HASH_PREFIX) :]
    try:
        digest = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:
        raise BadKeyHash("malformed $sha256$ key hash") from None
    if len(digest) != 32:
        raise BadKeyHash("a $sha256$ key hash holds 32 bytes")
    return digest


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class ApiKeys:
    """The configured keys; :meth:`find` is the constant-time lookup."""

    def __init__(self, keys: Iterable[tuple[str, str, Iterable[str]]]) -> None:
        self._keys = [
            (parse_key_hash(hashed), ApiKey(name, frozenset(scopes)))
            for name, hashed, scopes in keys
        ]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def find(self, presented: str) -> ApiKey | None:
        digest = _digest(presented)
        found: ApiKey | None = None
        for stored, key in self._keys:  # no early exit: every key is compared
            if hmac.compare_digest(digest, stored):
                found = key
        return found
