"""Read a bounce message: which recipients failed, with the remote reply of each.

Pure functions over bytes (no I/O), shared by ``mailwright explain`` and inbound bounce
processing.  The standard form is RFC 3464 (``multipart/report;
report-type=delivery-status``, RFC 6522) with a ``message/delivery-status`` part
(``message/global-delivery-status``, RFC 6533, the same fields in UTF-8): one
per-message block, then one block per recipient (§2.3) with ``Final-Recipient``,
``Action``, ``Status``, ``Remote-MTA`` and ``Diagnostic-Code``.  Bounces that predate or
ignore it are read by their shape: qmail's QSBMF (``<address>:`` then the reply),
Exim's "The following address(es) failed:" list, and, last, any text with an SMTP reply
and an ``X-Failed-Recipients`` header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import email.message

# The email package is imported when a bounce is parsed, not with this module: log
# readers import looks_like_message and should not pay for it.

MAX_BOUNCE = 16 << 20
"""Bytes of a bounce message that are read; the rest is the returned original."""
MAX_TEXT = 256 * 1024
"""Characters of the human-readable part searched for non-standard bounces."""
MAX_DIAGNOSTIC = 8192
"""A reply longer than this is cut (SMTP replies are a few hundred characters)."""

_KNOWN_HEADERS = frozenset(
    {
        "return-path",
        "received",
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "delivered-to",
        "reply-to",
        "sender",
        "auto-submitted",
        "x-failed-recipients",
        "dkim-signature",
        "arc-seal",
        "authentication-results",
        "x-original-to",
        "envelope-to",
    }
)
_FIELD = re.compile(rb"^([A-Za-z][A-Za-z0-9-]*):")


def looks_like_message(head: bytes) -> bool:
    """True when ``head`` (the first bytes of an input) is a mail message: an mbox
    ``From `` line, or a first line that is a header field a message starts with."""
    head = head.lstrip(b"\r\n")
    if head.startswith(b"From "):
        return True
    m = _FIELD.match(head)
    if m is None:
        return False
    name = m.group(1).decode("ascii").lower()
    return name in _KNOWN_HEADERS or name.startswith(("x-", "arc-", "list-"))


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    """One recipient a bounce reports as failed (or delayed)."""

    recipient: str
    action: str
    """``failed`` or ``delayed`` (RFC 3464 §2.3.3); non-standard bounces: ``failed``."""
    status: str
    """The enhanced status code (RFC 3463), ``""`` when the bounce gives none."""
    remote_mta: str | None
    diagnostic: str
    """The remote server's reply (``Diagnostic-Code`` without its ``smtp;`` type), or the
    bounce's own words when there is no reply."""
    form: str
    """``rfc3464``, ``qmail``, ``exim`` or ``text``: how it was read."""
    original_message_id: str | None = None
    original_sender: str | None = None


def parse_bounce(data: bytes) -> list[FailedRecipient]:
    """The failed and delayed recipients of a bounce message (empty: none found)."""
    import email
    import email.message
    from email.policy import compat32

    msg = email.message_from_bytes(data[:MAX_BOUNCE], policy=compat32)
    message_id, sender = _original(msg)
    found: list[FailedRecipient] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            found.extend(_delivery_status(part, message_id, sender))
    if found:
        return found
    text = _human_text(msg)
    failed_header = [
        a.strip().strip("<>")
        for a in ",".join(str(v) for v in msg.get_all("X-Failed-Recipients") or []).split(",")
        if a.strip()
    ]
    for reader in (_qmail, _exim):
        found = reader(text, message_id, sender)
        if found:
            return found
    return _generic(text, failed_header, message_id, sender)


# --- RFC 3464 -------------------------------------------------------------------------


def _blocks(text: str) -> list[dict[str, str]]:
    """Header-style blocks separated by blank lines, unfolded (RFC 3464 §2.1 uses the
    RFC 822 header syntax), keys lowercased; repeated fields keep the first."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
        elif line[:1] in " \t" and last is not None:
            current[last] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            last = name.strip().lower()
            current.setdefault(last, value.strip())
    if current:
        blocks.append(current)
    return blocks


def _typed(value: str | None) -> str:
    """``rfc822; bob@example.net`` → ``bob@example.net`` (the type is RFC 3464 §2.1.2)."""
    if not value:
        return ""
    kind, sep, rest = value.partition(";")
    text = rest if sep and re.fullmatch(r"\s*[\w-]+\s*", kind) else value
    return " ".join(text.split())


def _host(remote: str) -> str | None:
    """``gmail-smtp-in.l.google.com. (142.250.102.27, the server for ...)`` → the name."""
    words = remote.split()
    return words[0].rstrip(".") or None if words else None


def _status_text(part: email.message.Message) -> str:
    import email.message
    import email.utils

    payload = part.get_payload()
    if isinstance(payload, list):  # compat32 parses message/delivery-status into blocks
        return "\n\n".join(
            "\n".join(f"{k}: {v}" for k, v in block.items())
            for block in payload
            if isinstance(block, email.message.Message)
        )
    raw = part.get_payload(decode=True)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return str(payload)


def _delivery_status(
    part: email.message.Message, message_id: str | None, sender: str | None
) -> list[FailedRecipient]:
    result: list[FailedRecipient] = []
    for block in _blocks(_status_text(part))[1:]:  # [0] is the per-message block
        action = block.get("action", "").split()[0].lower() if block.get("action") else ""
        if action not in ("failed", "delayed"):
            continue  # delivered, relayed, expanded: nothing went wrong (§2.3.3)
        recipient = _typed(block.get("final-recipient") or block.get("original-recipient"))
        status = (block.get("status") or "").split()[0] if block.get("status") else ""
        result.append(
            FailedRecipient(
                recipient.strip("<>"),
                action,
                status,
                _host(_typed(block.get("remote-mta"))),
                _typed(block.get("diagnostic-code"))[:MAX_DIAGNOSTIC],
                "rfc3464",
                message_id,
                sender,
            )
        )
    return result


# --- the returned original and the human-readable text --------------------------------


def _original(msg: email.message.Message) -> tuple[str | None, str | None]:
    """Message-ID and From of the returned message (``message/rfc822`` or
    ``text/rfc822-headers``), when the bounce includes it."""
    import email.message
    import email.utils
    from email.policy import compat32

    for part in msg.walk():
        ctype = part.get_content_type()
        inner: email.message.Message | None = None
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                first = payload[0]
                inner = first if isinstance(first, email.message.Message) else None
        elif ctype == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                inner = email.message_from_bytes(raw, policy=compat32)
        if inner is not None:
            mid = inner.get("Message-ID")
            sender = email.utils.parseaddr(str(inner.get("From") or ""))[1]
            return (" ".join(str(mid).split()) if mid else None), (sender or None)
    return None, None


_COPY_MARKERS = re.compile(
    r"^(?:-+ ?This is a copy of the message|--- Below this line is a copy|"
    r"-+ ?Original message|-+ ?Forwarded message|-+ ?Undelivered message)",
    re.IGNORECASE | re.MULTILINE,
)


def _human_text(msg: email.message.Message) -> str:
    """The text parts outside any returned message, cut where the copy begins."""
    import email.message
    import email.utils

    texts: list[str] = []
    stack: list[email.message.Message] = [msg]
    while stack:
        part = stack.pop(0)
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "text/rfc822-headers"):
            continue
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack[:0] = [p for p in payload if isinstance(p, email.message.Message)]
            continue
        if part.get_content_maintype() == "text":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    text = raw.decode(charset, "replace")
                except LookupError:
                    text = raw.decode("utf-8", "replace")
                if ctype == "text/html":
                    text = re.sub(r"<[^>]*>", " ", text)
                texts.append(text)
    text = "\n\n".join(texts).replace("\r\n", "\n")
    m = _COPY_MARKERS.search(text)
    text = text[: m.start()] if m else text
    return text[:MAX_TEXT]


# --- non-standard bounces ---------------------------------------------------------------

_REPLY = re.compile(r"(?<![\w.])([245]\d\d)[ -]")
_ADDRESS = r"(?<![^\s<>\"(\[,;:])[^\s<>@\"]+@[^\s<>@\"]+"
"""An address: one run of characters around an ``@``, matched only from the start of
its run (so a long run without ``@`` is scanned once, never from every position)."""


def _reply_in(text: str) -> str:
    """:func:`_find_reply`, cut at :data:`MAX_DIAGNOSTIC`."""
    return _find_reply(text)[:MAX_DIAGNOSTIC]


def _find_reply(text: str) -> str:
    """The SMTP reply in a block of bounce text, joined to one line (the lines of a
    multi-line reply and the wrapped text after it)."""
    joined = " ".join(text.split())
    for marker in ("Remote host said: ", "SMTP error from remote mail server after "):
        if marker in joined:
            after = joined.split(marker, 1)[1]
            if marker.startswith("SMTP"):  # "RCPT TO:<x>: 550 ..."
                m = _REPLY.search(after)
                after = after[m.start() :] if m else after
            return after
    m = _REPLY.search(joined)
    return joined[m.start() :] if m else joined


def _qmail(text: str, message_id: str | None, sender: str | None) -> list[FailedRecipient]:
    """qmail's QSBMF (and bounces copying it): ``<address>:`` then the reason."""
    result: list[FailedRecipient] = []
    for block in re.split(r"\n\s*\n", text):
        m = re.match(rf"\s*<({_ADDRESS})>:\s*\n?(.*)", block, re.DOTALL)
        if m is None or not m.group(2).strip():
            continue
        reply = _reply_in(m.group(2))
        result.append(
            FailedRecipient(
                m.group(1), "failed", _enhanced(reply), None, reply, "qmail", message_id, sender
            )
        )
    return result


def _exim(text: str, message_id: str | None, sender: str | None) -> list[FailedRecipient]:
    """Exim: "The following address(es) failed:", then each address indented, with the
    host and reply indented further."""
    m = re.search(
        r"following address(?:\(es\)|es)? (?:failed|has failed|could not)[^\n]*\n",
        text,
        re.IGNORECASE,
    )
    if m is None:
        return []
    result: list[FailedRecipient] = []
    address: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if address is not None:
            body = "\n".join(lines)
            host = re.search(r"host (\S+) \[", body)
            reply = _reply_in(body)
            result.append(
                FailedRecipient(
                    address,
                    "failed",
                    _enhanced(reply),
                    host.group(1) if host else None,
                    reply,
                    "exim",
                    message_id,
                    sender,
                )
            )

    for line in text[m.end() :].split("\n"):
        am = re.match(rf"^ {{1,3}}<?({_ADDRESS})>?\s*$", line)
        if am is not None:
            flush()
            address, lines = am.group(1), []
        elif address is not None and (line.startswith("    ") or not line.strip()):
            lines.append(line)
        elif address is not None:
            break
    flush()
    return result


def _generic(
    text: str, failed: list[str], message_id: str | None, sender: str | None
) -> list[FailedRecipient]:
    """Any other bounce: the first SMTP reply in its text, for each address of
    ``X-Failed-Recipients`` (else each address the reply's paragraph names)."""
    m = re.search(r"(?<![\w.])[45]\d\d[ -][45]\.\d{1,3}\.\d{1,3}\b", text) or re.search(
        r"(?m)^\s*[45]\d\d[ -]", text
    )
    reply = ""
    if m is not None:
        start = m.start()
        para_end = text.find("\n\n", start)
        reply = " ".join(text[start : para_end if para_end >= 0 else len(text)].split())
        reply = reply.rstrip("'\"")[:MAX_DIAGNOSTIC]
    if not failed and reply:
        failed = list(dict.fromkeys(a.strip("<>.,;:") for a in re.findall(_ADDRESS, reply)))
    if not failed or not reply:
        return []
    return [
        FailedRecipient(a, "failed", _enhanced(reply), None, reply, "text", message_id, sender)
        for a in failed
    ]


def _enhanced(reply: str) -> str:
    m = re.search(r"\b([245]\.\d{1,3}\.\d{1,3})\b", reply[:200])
    return m.group(1) if m else ""
