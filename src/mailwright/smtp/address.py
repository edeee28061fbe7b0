"""Envelope addresses and ESMTP parameters as RFC 5321 §4.1.2 (and RFC 6531) define them.

Pure functions: ``MAIL FROM:``/``RCPT TO:`` argument text in, a :class:`Mailbox` (or the
null path) and parameters out, or an :class:`AddressError` carrying the reply to send.

The parser is strict on purpose. Relay decisions are made on the *domain* this parser
returns, so every form that could make a domain look local while routing elsewhere
(``user%other@local``, ``other!user@local``, ``"user@other"@local``, source routes) is
reduced to its RFC meaning: the part after the last unquoted ``@`` is the domain, the rest
is an opaque local part that only our own mailbox table interprets.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..errors import MailwrightError

# RFC 5321 §4.5.3.1: size limits of the parts.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_ATEXT_UTF8 = r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[^\x00-\x7f])"
_QTEXT = r"[\x20\x21\x23-\x5b\x5d-\x7e]"  # RFC 5321 §4.1.2 qtextSMTP
_QTEXT_UTF8 = r"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|[^\x00-\x7f])"
_QPAIR = r"\\[\x20-\x7e]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_LABEL_UTF8 = (
    r"(?:[A-Za-z0-9]|[^\x00-\x7f])(?:(?:[A-Za-z0-9-]|[^\x00-\x7f])*(?:[A-Za-z0-9]|[^\x00-\x7f]))?"
)


def _mailbox_re(atext: str, qtext: str, label: str) -> re.Pattern[str]:
    dot_string = rf"{atext}+(?:\.{atext}+)*"
    quoted = rf'"(?:{qtext}|{_QPAIR})*"'
    domain = rf"{label}(?:\.{label})*"
    literal = r"\[[\x21-\x5a\x5e-\x7e]+\]"  # RFC 5321 §4.1.3 dcontent: printable ASCII
    adl = rf"@{domain}(?:,@{domain})*:"
    return re.compile(
        rf"<(?P<adl>{adl})?(?P<local>{dot_string}|{quoted})@(?P<domain>{domain}|{literal})>"
    )


_PATH_ASCII = _mailbox_re(_ATEXT, _QTEXT, _LABEL)
_PATH_UTF8 = _mailbox_re(_ATEXT_UTF8, _QTEXT_UTF8, _LABEL_UTF8)
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_DOT_STRING_UTF8 = re.compile(rf"{_ATEXT_UTF8}+(?:\.{_ATEXT_UTF8}+)*\Z")
_UNQUOTE = re.compile(r"\\(.)")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+\Z")  # RFC 5321 esmtp-value
_VALUE_UTF8 = re.compile(r"(?:[\x21-\x3c\x3e-\x7e]|[^\x00-\x7f])+\Z")  # RFC 6531 §3.3
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class AddressError(MailwrightError, ValueError):
    """A path or parameter that cannot be accepted, with the SMTP reply that says why."""

    def __init__(self, code: int, status: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.status = status
        self.text = text


@dataclass(frozen=True)
class Mailbox:
    """``local@domain`` with the local part unquoted and the domain as written."""

    local: str
    domain: str

    @property
    def is_literal(self) -> bool:
        return self.domain.startswith("[")

    @property
    def is_ascii(self) -> bool:
        return self.local.isascii() and self.domain.isascii()

    @property
    def address(self) -> str:
        """The address in canonical form: quoted only when it must be, domain lower-cased."""
        return f"{quote_local(self.local)}@{self.domain.lower()}"

    def __str__(self) -> str:
        return self.address


def quote_local(local: str) -> str:
    """A local part as it must be written in a path (RFC 5321 §4.1.2: quoted if needed)."""
    if _DOT_STRING_UTF8.match(local):
        return local
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def shown(text: str, limit: int = 40) -> str:
    """Client text made safe to quote in a reply: RFC 5321 §4.2 reply text is printable
    ASCII, so anything else (a bare CR could forge a reply line in logs and proxies,
    non-ASCII is not ours to echo) becomes ``?``; cut to ``limit`` characters."""
    return _UNPRINTABLE.sub("?", text[:limit])


def _check_literal(text: str) -> None:
    inner = text[1:-1]
    if inner.lower().startswith("ipv6:"):
        try:
            ipaddress.IPv6Address(inner[5:])
        except ValueError:
            raise AddressError(501, "5.1.3", f"Bad address literal {shown(text, 64)}") from None
        return
    try:
        ipaddress.IPv4Address(inner)
    except ValueError:
        raise AddressError(501, "5.1.3", f"Bad address literal {shown(text, 64)}") from None


def parse_path(
    text: str, *, smtputf8: bool, null_ok: bool, what: str = "address"
) -> tuple[Mailbox | None, str]:
    """Parse ``<path> [params]``; returns the mailbox (None for ``<>``) and the parameter text.

    ``smtputf8``: non-ASCII is allowed (RFC 6531 §3.3) — without it, a UTF-8 address is
    answered ``553 5.6.7`` as RFC 6531 §3.7.4.1 says. Source routes are accepted and
    ignored (RFC 5321 §4.1.1.3 and Appendix C).
    """
    status = "5.1.7" if null_ok else "5.1.3"
    text = text.lstrip(" ")  # "MAIL FROM: <a@b>" is common and harmless
    if null_ok and text.startswith("<>"):
        rest = text[2:]
        if rest and not rest.startswith(" "):
            raise AddressError(501, status, f"Bad {what} syntax")
        return None, rest.strip(" ")
    match = _PATH_ASCII.match(text)
    if match is None:
        utf8 = _PATH_UTF8.match(text)
        if utf8 is not None and not smtputf8:
            raise AddressError(553, "5.6.7", f"Non-ASCII {what} needs the SMTPUTF8 parameter")
        match = utf8
    if match is None:
        raise AddressError(501, status, f"Bad {what} syntax")
    rest = text[match.end() :]
    if rest and not rest.startswith(" "):
        raise AddressError(501, status, f"Bad {what} syntax")
    local = match["local"]
    if local.startswith('"'):
        local = _UNQUOTE.sub(r"\1", local[1:-1])
    domain = match["domain"]
    if domain.startswith("["):
        _check_literal(domain)
    if len(local.encode()) > MAX_LOCAL_PART:
        raise AddressError(501, status, f"Bad {what}: local part longer than 64 octets")
    if len(domain.encode()) > MAX_DOMAIN or any(len(p.encode()) > 63 for p in domain.split(".")):
        raise AddressError(501, status, f"Bad {what}: domain name too long")
    mailbox = Mailbox(local, domain)
    if len(mailbox.address.encode()) + 2 > MAX_PATH:
        raise AddressError(501, status, f"Bad {what}: path longer than 256 octets")
    return mailbox, rest.strip(" ")


def parse_params(text: str, *, smtputf8_values: bool = False) -> dict[str, str | None]:
    """``KEY=value KEY2`` → ``{"KEY": "value", "KEY2": None}`` (keywords upper-cased)."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    value_re = _VALUE_UTF8 if smtputf8_values else _VALUE
    for item in text.split(" "):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not _KEYWORD.match(key) or (sep and not value_re.match(value)):
            raise AddressError(501, "5.5.4", f"Bad parameter syntax: {shown(item)}")
        key = key.upper()
        if key in params:
            raise AddressError(501, "5.5.4", f"Duplicate parameter {key}")
        params[key] = value if sep else None
    return params


def split_address(address: str) -> tuple[str, str]:
    """``local@domain`` → (local, domain) at the last ``@`` (a quoted local part may hold ``@``)."""
    local, _, domain = address.rpartition("@")
    return local, domain
