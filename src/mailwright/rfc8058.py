"""RFC 8058 one-click unsubscribe for list mail: the per-member link and its header fields.

Mailman 3 (3.3.8) puts ``List-Unsubscribe: <mailto:LIST-leave@DOMAIN>`` into list
posts, but no HTTPS URI and no ``List-Unsubscribe-Post``, and receivers (Gmail,
Yahoo) want one-click. So for each member's copy of a post we add, before DKIM
signing:

* ``List-Unsubscribe: <https://BASE/TOKEN>, <mailto:...>`` — our HTTPS URI first,
  Mailman's mailto URI kept (RFC 8058 §3.1: one HTTPS URI, other schemes may follow);
* ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058 §3.1).

Both are then signed (RFC 8058 §4: a valid DKIM signature must cover them; our
signer signs every ``List-*`` field). The link names one list and one member, so each
member gets a copy of their own.

Token: ``PAYLOAD.MAC``, both base64url without padding; PAYLOAD is
``LIST\\nMEMBER\\nISSUED`` (UTF-8; ISSUED in Unix seconds, base 36), MAC the first 128
bits of HMAC-SHA256(key, "mailwright one-click\\n" + PAYLOAD). It is the "hard-to-forge
component" RFC 8058 §3.1 asks for: the POST carries no cookie nor credential, so the
token alone authorizes the unsubscription. It stops working ``max_age_days`` after
the message was sent.

Pure: no sockets, no clock unless given; the key file is read by :func:`load_or_create_key`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import message as rfc5322
from .errors import MailwrightError

__all__ = [
    "DEFAULT_MAX_AGE_DAYS",
    "KEY_FILE",
    "POST_VALUE",
    "ROUTE",
    "OneClick",
    "OneClickToken",
    "TokenError",
    "TokenExpired",
    "add_one_click",
    "is_list_post",
    "load_or_create_key",
    "make_token",
    "url_problem",
    "verify_token",
]

KEY_FILE = "unsubscribe.key"
ROUTE = "/unsubscribe"
"""Where the http listener answers: ``ROUTE/TOKEN`` (:mod:`mailwright.http.unsubscribe`)."""
DEFAULT_MAX_AGE_DAYS = 180
"""List mail stays in mailboxes for months, and unsubscribing is what an old message
is for; the link of a message older than this no longer works (the mailto URI does)."""
POST_VALUE = "List-Unsubscribe=One-Click"
"""RFC 8058 §3.1: the one key/value pair of List-Unsubscribe-Post, and §3.2: the body
of the receiver's POST."""
MAX_TOKEN = 1024
_MAC_BYTES = 16
_CONTEXT = b"mailwright one-click\n"


class TokenError(MailwrightError):
    """Not a one-click token of ours: garbage, forged, or made with another key."""


class TokenExpired(TokenError):
    """A real token, but older than the link lifetime (or from the future)."""


@dataclass(frozen=True, slots=True)
class OneClickToken:
    fqdn_listname: str
    member: str
    issued: int
    """Unix seconds when the message was prepared."""

    @property
    def list_id(self) -> str:
        """Mailman 3's List-Id of the list (RFC 2919): ``team.lists.example``."""
        local, _, domain = self.fqdn_listname.rpartition("@")
        return f"{local}.{domain}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _CONTEXT + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _b36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, d = divmod(value, 36)
        out = digits[d] + out
        if not value:
            return out


def make_token(key: bytes, fqdn_listname: str, member: str, now: float | None = None) -> str:
    """The token for ``member`` of ``fqdn_listname``, issued ``now``."""
    issued = int(time.time() if now is None else now)
    payload = f"{fqdn_listname.lower()}\n{member}\n{_b36(issued)}".encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def verify_token(
    key: bytes,
    token: str,
    *,
    now: float | None = None,
    max_age_days: int = DEFAULT_MAX_AGE_DAYS,
) -> OneClickToken:
    """The list and member ``token`` names; :class:`TokenError` (garbage, forged) or
    :class:`TokenExpired` (older than ``max_age_days``)."""
    if len(token) > MAX_TOKEN:
        raise TokenError("token too long")
    encoded, dot, mac_text = token.rpartition(".")
    if not dot or not encoded.isascii() or not mac_text.isascii():
        raise TokenError("not a one-click token")
    try:
        payload, mac = _unb64(encoded), _unb64(mac_text)
    except (binascii.Error, ValueError):
        raise TokenError("not a one-click token") from None
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise TokenError("bad MAC: forged, or made with another key")
    try:  # the MAC matched: only a token of ours (or our bug) gets here
        fqdn_listname, member, issued_text = payload.decode("utf-8").split("\n")
        issued = int(issued_text, 36)
    except ValueError:
        raise TokenError("bad token fields") from None
    age = (time.time() if now is None else now) - issued
    if age > max_age_days * 86400 or age < -86400:
        raise TokenExpired(f"the link is {int(age // 86400)} days old (limit {max_age_days})")
    return OneClickToken(fqdn_listname, member, issued)


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be the base of one-click links, or None (RFC 8058 §3.1 wants
    an HTTPS URI; the token is appended as a path segment). A prefix before
    ``/unsubscribe`` is allowed for a reverse proxy that strips it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises for a bad port)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme.lower() != "https":
        return "not an https:// URL (RFC 8058 §3.1 requires HTTPS)"
    if not parts.hostname:
        return "no host name"
    if parts.username or parts.password:
        return "has a user name or password"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "has a query or fragment (the token is added as the last path segment)"
    if any(c.isspace() or c in '<>",' for c in url) or not url.isascii():
        return "has spaces, <, >, quotes, commas or non-ASCII characters"
    if not parts.path.rstrip("/").endswith(ROUTE):
        return f"does not end in {ROUTE} (our http listener answers at {ROUTE}/TOKEN)"
    return None


@dataclass(frozen=True, slots=True)
class OneClick:
    """What intake needs to add one-click links: the key and the base URL."""

    key: bytes
    base_url: str
    """``https://lists.example/unsubscribe``: the link is ``BASE/TOKEN``."""

    def url(self, fqdn_listname: str, member: str, now: float | None = None) -> str:
        token = make_token(self.key, fqdn_listname, member, now)
        return f"{self.base_url.rstrip('/')}/{token}"


def _list_id(value: str) -> str:
    """The list-id of a List-Id value (RFC 2919 §3: ``phrase <list-id>``), lower-cased."""
    start, end = value.rfind("<"), value.rfind(">")
    inner = value[start + 1 : end] if 0 <= start < end else value
    return inner.strip().lower()


def is_list_post(message: bytes, list_id: str) -> bool:
    """A post of the list ``list_id`` that lacks one-click (so we add it).

    Mailman marks its posts with ``List-Post`` (RFC 2369 §3.4; ``NO`` on an
    announce-only list) next to ``List-Id``; its own notices (confirmations, welcome,
    goodbye) carry List-Id but no List-Post: they are for one person, not list mail
    to unsubscribe from. A message with a List-Unsubscribe-Post of its own keeps it.
    """
    names = rfc5322.field_names(message)
    if "list-post" not in names or "list-unsubscribe-post" in names:
        return False
    ids = rfc5322.field_values(message, "List-Id")
    return len(ids) == 1 and _list_id(ids[0]) == list_id.lower()


def _uris(value: str) -> list[str]:
    """The ``<...>`` URIs of a List-Unsubscribe value (RFC 2369 §2)."""
    out: list[str] = []
    rest = value
    while (start := rest.find("<")) >= 0:
        end = rest.find(">", start)
        if end < 0:
            break
        out.append(rest[start + 1 : end].strip())
        rest = rest[end + 1 :]
    return out


def add_one_click(message: bytes, url: str) -> bytes:
    """``message`` with our HTTPS ``url`` first in List-Unsubscribe and a
    List-Unsubscribe-Post field (RFC 8058 §3.1).

    The non-HTTP URIs of the existing List-Unsubscribe fields (Mailman's mailto) are
    kept, after ours; an HTTP(S) URI there is dropped, so that the one HTTPS URI a
    receiver POSTs to is ours. The new fields take the place of the first old one (at
    the end of the header if there was none).
    """
    header, body = rfc5322.split_header(rfc5322.normalize_line_endings(message))
    lines = rfc5322.field_lines(header)
    kept: list[str] = []
    position: int | None = None
    out: list[bytes] = []
    for line in lines:
        name = rfc5322.field_name(line)
        if name is not None and name.lower() == b"list-unsubscribe":
            position = len(out) if position is None else position
            value = line.partition(b":")[2].decode("utf-8", "replace")
            kept += [u for u in _uris(value) if not u.lower().startswith(("http:", "https:"))]
            continue
        out.append(line + b"\r\n")
    uris = ",\r\n ".join(f"<{u}>" for u in [url, *kept])
    added = (f"List-Unsubscribe: {uris}\r\nList-Unsubscribe-Post: {POST_VALUE}\r\n").encode()
    if position is None:
        position = len(out)
    out.insert(position, added)
    return b"".join(out) + b"\r\n" + body


def load_or_create_key(data_dir: Path) -> bytes:
    """The HMAC key in ``DATA_DIR/unsubscribe.key`` (made, mode 0600, on first use).

    Its own key, not the VERP key: a leaked link must not help forge bounces."""
    from .verp import load_or_create_key as load

    return load(data_dir, file=KEY_FILE)
