"""The machine's own mail: qualifying bare and host-local addresses with our domain.

Pure functions. Mail from ``sendmail`` names people the way a Unix host does: ``root``,
``www-data``, ``webmaster@localhost`` (Django's default sender), ``cron@web1``. None of
these works beyond the machine: receivers refuse unqualified senders, a From domain of
``localhost`` can never be DKIM-signed or DMARC-aligned. Postfix solves it with
``myorigin`` + ``append_at_myorigin`` (a bare name gets ``@myorigin``), ``mydestination``
(the machine's own names are local) and masquerading (``user@host.example.com`` becomes
``user@example.com``). Here the same with one setting less:

* **origin** is the first of ``domains`` (else ``hostname``);
* **own names** are ``localhost``, ``localhost.localdomain``, ``hostname`` and the names
  the machine calls itself; an address there, or without any domain, is rewritten to
  ``@origin`` — envelope sender, recipients and the ``From:`` field alike, so what leaves
  is signed for and aligned with our domain;
* **system users** (``root``, ``www-data``, ``nobody``: accounts below UID 1000) that have
  no alias or mailbox of their own go to ``root@origin`` when that exists, else to
  ``postmaster@origin`` — as Debian's ``/etc/aliases`` sends them to root.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .. import message as rfc5322
from ..local import LocalDirectory

LOCALHOST_NAMES = ("localhost", "localhost.localdomain")
SYSTEM_UID_LIMIT = 1000
"""Debian policy: UIDs below 1000 are system accounts (0-99 static, 100-999 dynamic)."""


@dataclass(frozen=True)
class LocalNames:
    """Who this machine is, for qualification."""

    origin: str
    own_names: frozenset[str]
    system_users: frozenset[str] = frozenset({"root"})

    @classmethod
    def build(
        cls,
        domains: Iterable[str],
        hostname: str,
        machine_names: Iterable[str] = (),
        system_users: Iterable[str] = ("root",),
    ) -> LocalNames:
        domain_list = [d.lower().rstrip(".") for d in domains]
        origin = domain_list[0] if domain_list else hostname.lower().rstrip(".")
        own = {n.lower().rstrip(".") for n in (*LOCALHOST_NAMES, hostname, *machine_names) if n}
        own -= {origin, *domain_list}  # a configured domain is never rewritten to another
        return cls(origin, frozenset(own), frozenset({"root", *system_users}))


def qualify(address: str, names: LocalNames) -> str:
    """``root`` → ``root@origin``; ``user@localhost`` / ``user@HOSTNAME`` → ``user@origin``;
    anything else unchanged. The null sender stays null."""
    if not address:
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        return f"{address}@{names.origin}"
    if domain.lower().rstrip(".") in names.own_names:
        return f"{local}@{names.origin}"
    return address


def route_recipient(address: str, names: LocalNames, directory: LocalDirectory) -> str:
    """A qualified recipient, with system users that nobody configured sent to root
    (or postmaster): their mail is the administrator's."""
    address = qualify(address, names)
    local, _, domain = address.rpartition("@")
    if domain.lower() != names.origin or directory.exists(address):
        return address
    if local.lower() in names.system_users:
        for role in ("root", "postmaster"):
            target = f"{role}@{names.origin}"
            if directory.exists(target):
                return target
    return address


ADDRESS_FIELDS = frozenset({b"from", b"sender", b"reply-to", b"to", b"cc"})
"""The fields that name people (RFC 5322 §3.6.2, §3.6.3); Bcc never leaves (sendmail -t)."""
MAX_FIELD_LENGTH = 20_000
"""Longer address fields are left alone (no real one needs it; the parser is slow)."""


def rewrite_addresses(message: bytes, names: LocalNames) -> bytes:
    """``From:``, ``Sender:``, ``Reply-To:``, ``To:`` and ``Cc:`` with each address
    qualified, so that a message from ``root`` or ``webmaster@localhost`` can be signed
    for our domain and its replies reach someone. Display names, other fields and fields
    that need no change are kept byte for byte (``message`` has CRLF line ends)."""
    header, _ = rfc5322.split_header(message)
    out: list[bytes] = []
    changed = False
    for line in rfc5322.field_lines(header):
        name = rfc5322.field_name(line)
        new = None
        if name is not None and name.lower() in ADDRESS_FIELDS:
            new = _qualified_field(name, line.partition(b":")[2], names)
        out.append(line + b"\r\n" if new is None else new)
        changed = changed or new is not None
    if not changed:
        return message
    return b"".join(out) + message[len(header) :]


def _qualified_field(name: bytes, raw: bytes, names: LocalNames) -> bytes | None:
    if len(raw) > MAX_FIELD_LENGTH:
        return None
    value = re.sub(rb"\r\n(?=[ \t])", b"", raw).decode("utf-8", "replace")
    if value.count("(") > 32:  # the stdlib parser recurses once per nested comment
        return None
    try:
        pairs = email.utils.getaddresses([value])
    except Exception:  # an unparsable field is left for the receiver to judge
        return None
    pairs = [(n, a) for n, a in pairs if a]
    if not pairs:
        return None
    qualified = [(n, qualify(a, names)) for n, a in pairs]
    if qualified == pairs:
        return None
    text = ",\r\n ".join(_format(n, a) for n, a in qualified)
    return name + b": " + text.encode() + b"\r\n"


def add_from(message: bytes, sender: str, full_name: str | None) -> bytes:
    """A ``From:`` field for a message without one (RFC 5322 §3.6 requires it): the
    envelope sender, with ``-F``'s full name."""
    if not sender or "from" in rfc5322.field_names(message):
        return message
    return f"From: {_format(full_name or '', sender)}\r\n".encode() + message


def _format(name: str, address: str) -> str:
    """``Name <address>`` with the name quoted or RFC 2047-encoded as needed
    (formataddr refuses a non-ASCII address, which SMTPUTF8 allows)."""
    try:
        return email.utils.formataddr((name, address), charset="utf-8")
    except UnicodeEncodeError:
        shown = email.utils.formataddr((name, "x@x"), charset="utf-8")
        return shown[: -len("<x@x>")] + f"<{address}>" if name else address
