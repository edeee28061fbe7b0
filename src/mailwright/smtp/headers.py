"""Header fields the server adds before queueing: Received, Message-ID, Date.

Pure functions on message bytes (CRLF line ends, as :mod:`.protocol` delivers them).
"""

from __future__ import annotations

import email.utils
import functools
import re
import secrets
import time
from datetime import UTC, datetime


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
    return (_UNSAFE_IN_COMMENT if spaces else _UNSAFE_IN_TOKEN).sub("_", text)[:255] or "_"


_UNSAFE_IN_COMMENT = re.compile(r"[\x00-\x1f()\\\x7f]")
_UNSAFE_IN_TOKEN = re.compile(r"[\x00-\x20()\\\x7f]")


def message_id(hostname: str) -> bytes:
    """A new Message-ID field (RFC 5322 §3.6.4), unique by time and 96 random bits."""
    return f"Message-ID: <{int(time.time())}.{secrets.token_hex(12)}@{hostname}>\r\n".encode()


def date_field(now: float | None = None) -> bytes:
    """A Date field (RFC 5322 §3.6.1) for messages that lack one."""
    return f"Date: {_rfc5322_date(now)}\r\n".encode()


def _rfc5322_date(now: float | None) -> str:
    # "+0000", not formatdate's "-0000" (RFC 5322 §3.3: "-0000" means the zone is unknown).
    return _date_of_second(int(time.time() if now is None else now))


@functools.lru_cache(maxsize=4)
def _date_of_second(second: int) -> str:
    """The date-time of one second (the field has no fractions): every message of
    that second gets the same text, made once."""
    return email.utils.format_datetime(datetime.fromtimestamp(second, UTC))
