"""Header fields the server adds before queueing: Received, Message-ID, Date.

Pure functions on message bytes (CRLF line ends, as :mod:`.protocol` delivers them).
"""

from __future__ import annotations

import email.utils
import re
import secrets
import time
from datetime import UTC, datetime

_HEADER_END = re.compile(rb"\r\n\r\n")
_FIELD_START = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


def header_block(message: bytes) -> bytes:
    """The header section, up to (not including) the empty line."""
    if message.startswith(b"\r\n"):
        return b""
    match = _HEADER_END.search(message)
    return message[: match.start() + 2] if match else message


def field_names(message: bytes) -> set[str]:
    """Lower-cased names of the header fields present."""
    return {
        m.group(1).decode("ascii").lower() for m in _FIELD_START.finditer(header_block(message))
    }


def received_count(message: bytes) -> int:
    """How many Received fields the header holds: one per hop (RFC 5321 §4.4), the count
    RFC 5321 §6.3 loop detection compares with a limit."""
    return sum(
        1 for m in _FIELD_START.finditer(header_block(message)) if m.group(1).lower() == b"received"
    )


def header_value(message: bytes, name: str) -> str | None:
    """The unfolded value of the first ``name`` field (None if absent)."""
    block = header_block(message)
    pattern = re.compile(
        rb"^" + re.escape(name.encode()) + rb"[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)",
        re.MULTILINE | re.IGNORECASE,
    )
    match = pattern.search(block)
    if match is None:
        return None
    return re.sub(rb"\r\n(?=[ \t])", b"", match.group(1)).decode("utf-8", "replace").strip()


MAX_FROM_COMMENTS = 32
"""More comments than any real From field carries; beyond, the field is not parsed."""


def from_domain(message: bytes) -> str | None:
    """The domain of the (first) author address in From (RFC 5322 §3.6.2), lower-cased.

    None when there is no usable address: the stdlib parser recurses once per nested
    comment (RFC 5322 §3.2.2 allows nesting), so a field with hundreds of ``(`` would
    raise RecursionError at the end of DATA; such a field is refused before parsing.
    """
    value = header_value(message, "From")
    if not value or value.count("(") > MAX_FROM_COMMENTS:
        return None
    try:
        addresses = email.utils.getaddresses([value])
    except Exception:  # any parser failure means no usable author domain, not a crash
        return None
    for _, address in addresses:
        local, sep, domain = address.rpartition("@")
        if sep and local and domain:
            return domain.strip().rstrip(".").lower() or None
    return None


def received(
    *,
    helo: str,
    client_ip: str,
    client_name: str | None,
    hostname: str,
    protocol: str,
    queue_id: str,
    recipient: str | None,
    tls: str | None = None,
    user: str | None = None,
    now: float | None = None,
) -> bytes:
    """A Received field as RFC 5321 §4.4 describes it (trace information, one per hop).

    ``protocol`` is the ``with`` keyword registered by RFC 3848 / RFC 6531 (ESMTP, ESMTPS,
    ESMTPA, ESMTPSA, UTF8SMTPS ...). ``for`` names the recipient only when there is one,
    so a multi-recipient message does not reveal the others.
    """
    date = _rfc5322_date(now)
    name = client_name or "unknown"
    safe_helo = _clean(helo)
    lines = [f"Received: from {safe_helo} ({_clean(name)} [{client_ip}])"]
    if tls:
        lines.append(f"\t({_clean(tls, spaces=True)})")
    if user:
        lines.append(f"\t(authenticated sender: {_clean(user, spaces=True)})")
    by = f"\tby {hostname} (mailwright) with {protocol} id {queue_id}"
    if recipient:
        by += f"\r\n\tfor <{_clean(recipient, spaces=True)}>"
    lines.append(by + f"; {date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def received_local(
    *, hostname: str, uid: int, queue_id: str, recipient: str | None, now: float | None = None
) -> bytes:
    """The Received field of a message handed in on this machine (the ``sendmail``
    command): no client to name, so only ``by`` with the submitting user's ID, as Postfix
    writes it (RFC 5322 §3.6.7 trace syntax; RFC 5321 §4.4's ``from`` presumes SMTP)."""
    line = f"Received: by {hostname} (mailwright, from userid {uid})\r\n\tid {queue_id}"
    if recipient:
        line += f"\r\n\tfor <{_clean(recipient, spaces=True)}>"
    return f"{line}; {_rfc5322_date(now)}\r\n".encode()


def _clean(text: str, *, spaces: bool = False) -> str:
    """Untrusted text (HELO, user names) made safe in the field: no line breaks, no
    parentheses or backslashes that would end or escape a comment, and no spaces where
    a single token is expected."""
    pattern = r"[\x00-\x1f()\\\x7f]" if spaces else r"[\x00-\x20()\\\x7f]"
    return re.sub(pattern, "_", text)[:255] or "_"


def message_id(hostname: str) -> bytes:
    """A new Message-ID field (RFC 5322 §3.6.4), unique by time and 96 random bits."""
    return f"Message-ID: <{int(time.time())}.{secrets.token_hex(12)}@{hostname}>\r\n".encode()


def date_field(now: float | None = None) -> bytes:
    """A Date field (RFC 5322 §3.6.1) for messages that lack one."""
    return f"Date: {_rfc5322_date(now)}\r\n".encode()


def _rfc5322_date(now: float | None) -> str:
    # "+0000", not formatdate's "-0000" (RFC 5322 §3.3: "-0000" means the zone is unknown).
    when = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return email.utils.format_datetime(when)
