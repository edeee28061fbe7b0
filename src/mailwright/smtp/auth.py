"""SMTP AUTH credentials: password hashes and the per-client failure limit.

Hashes use scrypt (RFC 7914) from the standard library in a self-describing format,
``$scrypt$ln=15,r=8,p=1$<salt>$<hash>`` (salt and hash in unpadded base64), so the
cost can be raised later without breaking stored hashes: each hash carries its own.
``ln=15`` (N = 32768, 32 MiB) costs about 0.1 s here, once per login.

Failed logins are slowed and limited per client IP (:class:`AuthLimiter`): each failure
adds a delay before the ``535`` goes out, and after :data:`MAX_FAILURES` in
:data:`FAILURE_WINDOW` seconds the address gets ``454 4.7.0`` without a check until the
window has passed. The counts live in each worker process; with W workers an attacker
gets at most W times the budget, which still makes guessing useless.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import MailwrightError

DEFAULT_LN = 15
R = 8
P = 1
MAX_FAILURES = 10
FAILURE_WINDOW = 600.0
FAILURE_DELAY = 1.0
"""Seconds of delay per recent failure before a ``535`` reply (capped at 5 failures)."""
MAX_MEMORY = 256 << 20
"""scrypt needs 128·r·N bytes (RFC 7914 §6); a stored hash asking for more is refused."""
MAX_COST = 16 * (R * P << DEFAULT_LN)
"""N·r·p at most 16 times the default's (measured here: default 0.2 s, limit 3–4 s per
check): room for stronger hashes, but a pasted hash cannot make each AUTH attempt cost a
worker tens of seconds of CPU (a login DoS; ln=17,r=32,p=16 took ~45 s)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, *, ln: int = DEFAULT_LN) -> str:
    """A new ``$scrypt$...`` hash of ``password`` with a random 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=1 << ln, r=R, p=P, maxmem=256 << 20, dklen=32
    )
    return f"$scrypt$ln={ln},r={R},p={P}${_b64(salt)}${_b64(digest)}"


class BadHash(MailwrightError, ValueError):
    """A stored hash mailwright cannot read (a config mistake, reported at startup)."""


@dataclass(frozen=True)
class ParsedHash:
    ln: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def parse_hash(text: str) -> ParsedHash:
    parts = text.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "scrypt":
        raise BadHash("not a $scrypt$ hash (make one with 'mailwright passwd')")
    try:
        params = dict(item.split("=", 1) for item in parts[2].split(","))
        ln, r, p = int(params["ln"]), int(params["r"]), int(params["p"])
        salt, digest = _unb64(parts[3]), _unb64(parts[4])
    except (KeyError, ValueError) as exc:
        raise BadHash(f"malformed $scrypt$ hash: {exc}") from None
    if not (10 <= ln <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and salt and len(digest) >= 16):
        raise BadHash("scrypt parameters out of range")
    # Each parameter in range is not enough: their product sets the memory and the time.
    if 128 * r << ln > MAX_MEMORY:
        raise BadHash(f"scrypt parameters need more than {MAX_MEMORY >> 20} MiB (lower ln or r)")
    if (r * p) << ln > MAX_COST:
        raise BadHash("scrypt parameters cost over 16 times the default (lower ln, r or p)")
    return ParsedHash(ln, r, p, salt, digest)


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored hash (False for a bad hash)."""
    try:
        parsed = parse_hash(stored)
    except BadHash:
        return False
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=parsed.salt,
        n=1 << parsed.ln,
        r=parsed.r,
        p=parsed.p,
        maxmem=2 * MAX_MEMORY,  # parse_hash bounds 128·r·N by MAX_MEMORY
        dklen=len(parsed.digest),
    )
    return hmac.compare_digest(digest, parsed.digest)


class Credentials:
    """User name → hash, and a check that costs the same for unknown users."""

    def __init__(self, users: Iterable[tuple[str, str]]) -> None:
        self._hashes = {name: pw_hash for name, pw_hash in users}
        self._dummy = hash_password(secrets.token_urlsafe(16), ln=DEFAULT_LN)

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def check(self, username: str, password: str) -> bool:
        """Blocking (scrypt): run it in a thread."""
        stored = self._hashes.get(username)
        ok = verify_password(password, stored if stored is not None else self._dummy)
        return ok and stored is not None


class AuthLimiter:
    """Recent AUTH failures per client IP (see the module docstring)."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window: float = FAILURE_WINDOW,
        delay: float = FAILURE_DELAY,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.delay = delay
        self._failures: dict[str, list[float]] = {}

    def _recent(self, ip: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(ip, ()) if now - t < self.window]
        if times:
            self._failures[ip] = times
        else:
            self._failures.pop(ip, None)
        return times

    def blocked(self, ip: str, now: float | None = None) -> bool:
        return len(self._recent(ip, time.monotonic() if now is None else now)) >= (
            self.max_failures
        )

    def failed(self, ip: str, now: float | None = None) -> float:
        """Record a failure; returns how long to wait before answering."""
        at = time.monotonic() if now is None else now
        times = self._recent(ip, at)
        times.append(at)
        self._failures[ip] = times
        if len(self._failures) > 100_000:  # bounded memory under a distributed attack
            oldest = min(self._failures, key=lambda k: self._failures[k][-1])
            self._failures.pop(oldest, None)
        return self.delay * min(len(times), 5)

    def succeeded(self, ip: str) -> None:
        self._failures.pop(ip, None)
