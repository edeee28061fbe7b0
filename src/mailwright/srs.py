"""The Sender Rewriting Scheme: envelope senders for mail we forward, and their reversal.

A forward changes the sending IP, so the original MAIL FROM would fail SPF (RFC 7208)
at the destination. Forwarded mail leaves with an address of our forwarding domain
that encodes the original sender, a timestamp and an HMAC, so that:

* SPF at the destination checks our domain (which authorizes us);
* a bounce to that address can be sent back to the original sender;
* nobody can make us send mail to an address of their choosing (no open relay): an
  address without the right HMAC, or older than ``max_age_days``, is refused.

Formats (the established SRS0/SRS1 shapes; our hash is HMAC-SHA256, base32, 8
characters, which survives case changes by MTAs on the way)::

    SRS0=HASH=TT=orig-domain=orig-local@forwarder
    SRS1=HASH=first-forwarder==HASH0=TT=orig-domain=orig-local@forwarder

SRS1 is used when the sender is already an SRS0 address of another forwarder: the
address stays short and a bounce goes back to that first forwarder. Pure: the keys
and the time are given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import MailwrightError

__all__ = [
    "DEFAULT_MAX_AGE_DAYS",
    "SecretFileSrs",
    "Srs",
    "SrsError",
    "is_srs",
    "load_or_create_secrets",
]

DEFAULT_MAX_AGE_DAYS = 21
"""How long a bounce to a rewritten sender is accepted (libsrs2's default lifetime)."""
_HASH_LENGTH = 8
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lowercase
_TIME_SLOTS = len(_ALPHABET) ** 2  # two characters: days modulo 1024
_DAY = 86400
_SEPARATOR = "="


class SrsError(MailwrightError):
    """An SRS address we must refuse (forged, expired, malformed): ``550 5.1.1``."""


def is_srs(address: str) -> bool:
    """The local part has the SRS0/SRS1 shape (case-insensitively: MTAs fold case)."""
    local = address.rpartition("@")[0]
    return local[:5].lower() in ("srs0=", "srs1=")


def _timestamp(now: float) -> str:
    day = int(now // _DAY) % _TIME_SLOTS
    return _ALPHABET[day // len(_ALPHABET)] + _ALPHABET[day % len(_ALPHABET)]


class Srs:
    """Rewrites with the first secret; reverses with any (so that a key can be rotated:
    put the new one first and keep the old one until ``max_age_days`` have passed)."""

    def __init__(self, secrets: Sequence[bytes], max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> None:
        self.max_age_days = max_age_days
        self._secrets: tuple[bytes, ...] | None = _checked(secrets)

    def secrets(self) -> tuple[bytes, ...]:
        assert self._secrets is not None
        return self._secrets

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_age_days={self.max_age_days})"  # never the secrets

    def _hash(self, secret: bytes, *parts: str) -> str:
        data = "\0".join(p.lower() for p in parts).encode("utf-8")
        digest = hmac.new(secret, data, hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii").lower()[:_HASH_LENGTH]

    def _valid(self, given: str, *parts: str) -> bool:
        return any(
            hmac.compare_digest(given.lower(), self._hash(secret, *parts))
            for secret in self.secrets()
        )

    def forward(self, sender: str, forwarder_domain: str, *, now: float | None = None) -> str:
        """The envelope sender for ``sender``'s mail forwarded by ``forwarder_domain``.

        The null reverse path stays null (bounces are never rewritten, RFC 5321 §4.5.5);
        an address of ours is left as it is.
        """
        if not sender or sender == "<>":
            return sender
        local, at, domain = sender.rpartition("@")
        forwarder = forwarder_domain.lower().rstrip(".")
        if not at or not local:
            return sender
        if domain.lower().rstrip(".") == forwarder:
            return sender  # already an address of the forwarding domain (ours, or our SRS)
        secret = self.secrets()[0]
        if local[:5].lower() == "srs0=":
            # Another forwarder's SRS0: SRS1 names that forwarder (the first hop) and keeps
            # its opaque part, so a bounce goes back through it.
            rest = local[5:]
            digest = self._hash(secret, domain, rest)
            return f"SRS1={digest}={domain}=={rest}@{forwarder}"
        if local[:5].lower() == "srs1=":
            fields = local[5:].split(_SEPARATOR, 2)
            if len(fields) == 3 and fields[2].startswith(_SEPARATOR):
                first_hop, rest = fields[1], fields[2][1:]
                digest = self._hash(secret, first_hop, rest)
                return f"SRS1={digest}={first_hop}=={rest}@{forwarder}"
        stamp = _timestamp(time.time() if now is None else now)
        digest = self._hash(secret, stamp, domain, local)
        return f"SRS0={digest}={stamp}={domain}={local}@{forwarder}"

    def reverse(self, address: str, *, now: float | None = None) -> str:
        """The address an SRS address stands for; raise :class:`SrsError` if it is
        forged, expired or malformed."""
        local = address.rpartition("@")[0]
        kind = local[:5].lower()
        if kind == "srs0=":
            fields = local[5:].split(_SEPARATOR, 3)
            if len(fields) != 4 or not all(fields):
                raise SrsError("malformed SRS0 address")
            digest, stamp, domain, original = fields
            if not self._valid(digest, stamp, domain, original):
                raise SrsError("SRS address with a wrong hash (forged)")
            self._check_age(stamp.lower(), time.time() if now is None else now)
            return f"{original}@{domain}"
        if kind == "srs1=":
            fields = local[5:].split(_SEPARATOR, 2)
            if len(fields) != 3 or not fields[2].startswith(_SEPARATOR) or not all(fields[:2]):
                raise SrsError("malformed SRS1 address")
            digest, first_hop, rest = fields[0], fields[1], fields[2][1:]
            if not rest or not self._valid(digest, first_hop, rest):
                raise SrsError("SRS address with a wrong hash (forged)")
            return f"SRS0={rest}@{first_hop}"
        raise SrsError("not an SRS address")

    def _check_age(self, stamp: str, now: float) -> None:
        if len(stamp) != 2 or any(c not in _ALPHABET for c in stamp):
            raise SrsError("malformed SRS timestamp")
        then = _ALPHABET.index(stamp[0]) * len(_ALPHABET) + _ALPHABET.index(stamp[1])
        today = int(now // _DAY) % _TIME_SLOTS
        age = (today - then) % _TIME_SLOTS
        if age > self.max_age_days:
            raise SrsError(f"SRS address expired ({age} days old, limit {self.max_age_days})")


class SecretFileSrs(Srs):
    """SRS with the secrets of a file that is made on first use: by the server process
    after it dropped root, so that the file (and the data directory) belong to it."""

    def __init__(self, path: Path, max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> None:
        self.path = path
        self.max_age_days = max_age_days
        self._secrets = None

    def secrets(self) -> tuple[bytes, ...]:
        if self._secrets is None:
            try:
                self._secrets = _checked(load_or_create_secrets(self.path))
            except (OSError, UnicodeError, ValueError) as exc:
                raise SrsError(f"SRS secret {self.path} unusable: {exc}") from None
        return self._secrets


def _checked(secrets: Sequence[bytes]) -> tuple[bytes, ...]:
    if not secrets or any(len(s) < 16 for s in secrets):
        raise ValueError("SRS needs at least one secret of 16 bytes or more")
    return tuple(secrets)


def load_or_create_secrets(path: Path) -> tuple[bytes, ...]:
    """The secrets in ``path`` (one per line, the first signs), made on first use.

    Created with mode 0600: whoever knows a secret can make us send mail anywhere.
    """
    try:
        text = path.read_text("ascii")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        try:
            with open(path, "x", encoding="ascii", opener=_private) as handle:
                handle.write(value + "\n")
        except FileExistsError:  # another worker made it meanwhile
            pass
        text = path.read_text("ascii")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return tuple(line.encode("ascii") for line in lines)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
