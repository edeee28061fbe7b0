"""VERP return paths: ``bounces+TOKEN@DOMAIN``, one per message and recipient, unforgeable.

Why: a bounce is sent to the envelope sender (RFC 5321 §4.5.5, §6.1). With one address
per message and recipient, an asynchronous bounce names its message and recipient by the
address it was sent to — even when the bounce itself is malformed or names nobody. The
token carries an HMAC, so that nobody can make up a bounce address that suppresses a
real recipient, and the day it was made, so that old tokens stop counting.

The domain is the original envelope sender's (our own), so SPF (RFC 7208 §2.4 checks
MAIL FROM's domain) and DMARC alignment (RFC 7489 §3.1.2) are what they were.

Token: ``QUEUEID-INDEX-DAY-MAC``, all lower case (some MTAs lower-case local parts; queue
IDs are Crockford base32, which is case-insensitive), ``INDEX`` the recipient's position
in the queue entry (base 36), ``DAY`` days since 1970 (base 36), ``MAC`` the first 50 bits
of HMAC-SHA256(key, "QUEUEID-INDEX-DAY") in base32. The local part stays under 64 octets
(RFC 5321 §4.5.3.1.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import MailwrightError

KEY_FILE = "verp.key"
KEY_BYTES = 32
DEFAULT_LOCAL_PART = "bounces"
DEFAULT_MAX_AGE_DAYS = 30
"""Longer than the queue lifetime (5 days) plus the days a late DSN may take."""
MAC_CHARS = 10
SEPARATOR = "+"


class VerpError(MailwrightError):
    """The address is not one of our bounce addresses, or its token is forged or old."""


@dataclass(frozen=True)
class BounceToken:
    queue_id: str
    recipient_index: int
    day: int
    """Days since 1970-01-01 (UTC) when the token was made."""


def _b36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, d = divmod(value, 36)
        out = digits[d] + out
        if not value:
            return out


def _mac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:MAC_CHARS].lower()


def _today(now: float | None) -> int:
    return int((time.time() if now is None else now) // 86400)


def make_token(key: bytes, queue_id: str, recipient_index: int, now: float | None = None) -> str:
    if recipient_index < 0:
        raise ValueError("recipient_index must be >= 0")
    body = f"{queue_id.lower()}-{_b36(recipient_index)}-{_b36(_today(now))}"
    return f"{body}-{_mac(key, body)}"


def bounce_address(
    key: bytes,
    queue_id: str,
    recipient_index: int,
    domain: str,
    *,
    local_part: str = DEFAULT_LOCAL_PART,
    now: float | None = None,
) -> str:
    """The envelope sender for one recipient of one message."""
    return f"{local_part}{SEPARATOR}{make_token(key, queue_id, recipient_index, now)}@{domain}"


def is_bounce_address(address: str, local_part: str = DEFAULT_LOCAL_PART) -> bool:
    """Whether ``address`` has our bounce local part (token not checked)."""
    local = address.rpartition("@")[0].lower()
    return local == local_part.lower() or local.startswith(local_part.lower() + SEPARATOR)


def verify_token(
    key: bytes,
    token: str,
    *,
    now: float | None = None,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
) -> BounceToken:
    """The message and recipient a token names; :class:`VerpError` if forged or too old."""
    if len(token) > 64:
        raise VerpError("token too long")
    parts = token.lower().split("-")
    if len(parts) != 4:
        raise VerpError("not a bounce token")
    queue_part, index_part, day_part, mac = parts
    body = f"{queue_part}-{index_part}-{day_part}"
    if not hmac.compare_digest(mac.encode("ascii", "replace"), _mac(key, body).encode("ascii")):
        raise VerpError("bad HMAC: forged or made with another key")
    try:
        index, day = int(index_part, 36), int(day_part, 36)
    except ValueError as exc:  # the MAC matched, so only our own bug gets here
        raise VerpError("bad token fields") from exc
    age = _today(now) - day
    if age > max_age_days or age < -1:
        raise VerpError(f"token is {age} days old (limit {max_age_days})")
    return BounceToken(queue_part.upper(), index, day)


def parse_bounce_address(
    key: bytes,
    address: str,
    *,
    local_part: str = DEFAULT_LOCAL_PART,
    now: float | None = None,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
) -> BounceToken:
    """Verify a ``bounces+TOKEN@domain`` address (the domain is the caller's to check)."""
    local = address.rpartition("@")[0]
    prefix = local_part.lower() + SEPARATOR
    if not local.lower().startswith(prefix):
        raise VerpError("no bounce token in the address")
    return verify_token(key, local[len(prefix) :], now=now, max_age_days=max_age_days)


def load_or_create_key(data_dir: Path, *, file: str = KEY_FILE) -> bytes:
    """The HMAC key in ``DATA_DIR/verp.key`` (or ``file``; made, mode 0600, on first use).

    Racing processes: the file is created with O_EXCL, the loser reads the winner's."""
    path = Path(data_dir) / file
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes()
        else:
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
    if len(key) < 16:
        raise VerpError(f"{path}: key too short ({len(key)} bytes); delete it to make a new one")
    return key
