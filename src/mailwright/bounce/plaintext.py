"""Bounces without RFC 3464 structure: Exchange, Gmail, qmail, Exim, Postfix as text.

Each format has a sentence that introduces the failed addresses; the remote reply
follows the address (the MTA's own words before it are dropped). What is not
recognised but comes from a mailer daemon and names an address next to an SMTP status
is read by a generic rule; so is a bounce whose ``X-Failed-Recipients`` header (Exim
and others) names the addresses while its text only quotes the reply. The returned copy
of the original message is cut off first, so its addresses are never mistaken for
failures.
"""

from __future__ import annotations

import re
from email.message import Message

from .model import MAX_RECIPIENTS, RecipientReport, Report, clip, recipient_report
from .util import author, embedded_headers, header_text, part_text

_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery (?:sub)?system", re.IGNORECASE)
_SUBJECT = re.compile(
    r"undeliver|delivery (?:status notification|failure|has failed)|failure notice|"
    r"mail delivery failed|returned mail|delivery failed|non[- ]?delivery|"
    r"could not be delivered|warning: message .* delayed|delayed mail",
    re.IGNORECASE,
)
_CUT = re.compile(
    r"^(?:-{2,} ?Below this line is a copy of the message|"
    r"-{2,} ?This is a copy of the message|-{2,} ?Original message|"
    r"-{2,} ?The header of the original message|Original message headers:|"
    r"-{2,}\s*Forwarded message)",
    re.IGNORECASE | re.MULTILINE,
)
_ADDR = r"[^\s<>()\"',;:@]{1,64}@[A-Za-z0-9.-]{1,253}"
_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_CODE = re.compile(r"(?<![\d.])[45]\d\d(?![\d.])")
_TEMPORARY = re.compile(
    r"temporar|delayed|will (?:retry|keep trying|try again)|still trying|deferred|"
    r"not yet been delivered|has not been delivered yet",
    re.IGNORECASE,
)

_FORMATS = (
    ("qmail", re.compile(r"This is the qmail-send program", re.IGNORECASE)),
    ("postfix", re.compile(r"This is the mail system at host", re.IGNORECASE)),
    (
        "exim",
        re.compile(
            r"following address\(es\) failed|message has been delayed|"
            r"created automatically by mail delivery software",
            re.IGNORECASE,
        ),
    ),
    (
        "exchange",
        re.compile(
            r"Delivery has failed to these recipients|Diagnostic information for administrators|"
            r"Your message (?:to .*? )?couldn't be delivered",
            re.IGNORECASE,
        ),
    ),
    (
        "gmail",
        re.compile(
            r"Delivery to the following recipients? failed|Address not found|"
            r"Message not delivered|Delivery incomplete|wasn't delivered to",
            re.IGNORECASE,
        ),
    ),
)

# "<addr>: reply..." paragraphs (qmail, Postfix)
_ANGLE_PARAGRAPH = re.compile(
    rf"^<({_ADDR})>(?:\s*\(expanded from <[^>]*>\))?:[ \t]*(.*(?:\n(?![ \t]*\n|<).*){{0,20}})",
    re.MULTILINE,
)
# Exim: indented address lines after "failed:", each followed by indented details
_EXIM_BLOCK = re.compile(
    rf"^[ \t]{{2}}({_ADDR})\s*\n((?:[ \t]{{3,}}.*\n?){{0,20}})",
    re.MULTILINE,
)
_GMAIL_RCPT = re.compile(
    rf"(?:failed (?:permanently|temporarily):\s*\n\s*|wasn't delivered to\s+|"
    rf"couldn't be delivered to\s+|problem delivering your message to\s+)<?({_ADDR})>?",
    re.IGNORECASE,
)
_GMAIL_REPLY = re.compile(
    r"(?:The response (?:from the remote server )?was|The error that the other server "
    r"returned was):\s*\n\s*(.+(?:\n(?!\s*\n).+){0,5})",
    re.IGNORECASE,
)
_EXCHANGE_RCPT = re.compile(
    rf"(?:Delivery has failed to these recipients or groups:|"
    rf"Your message to\s+)\s*\n?\s*(?:[^\n<]*?\(|<)?({_ADDR})",
    re.IGNORECASE,
)
_EXCHANGE_REPLY = re.compile(
    r"(?:Remote Server returned '([^'\n]+)'|^#?([45]\d\d[ -][245]\.\d+\.\d+[^\n]*)|"
    r"^(#[245]\.\d+\.\d+[^\n]*))",
    re.MULTILINE,
)
# An address next to a reply. Tried only where a run of address characters starts, with
# a local part that does not give back what it took, so a long run is scanned once and
# not from each of its positions (linear time on hostile text).
_GENERIC = re.compile(
    r"(?<![^\s<>()\"',;:])<?([^\s<>()\"',;:@]{1,64}+@[A-Za-z0-9.-]{1,253})>?"
    r"[^\n]{0,200}?\b([45]\d\d[ -][245]\.\d+\.\d+[^\n]*)"
)
# An SMTP reply inside an MTA's text: a code not glued to a word or a number before it.
_REPLY = re.compile(r"(?<![\w.])[245]\d\d[ -]")
_REPLY_MARKERS = ("Remote host said: ", "SMTP error from remote mail server after ")
# The reply paragraph of a bounce that names its recipients only in X-Failed-Recipients:
# a reply with an enhanced status code, else a line that starts with a failure code.
_FIRST_REPLY = re.compile(r"(?<![\w.])[45]\d\d[ -][45]\.\d{1,3}\.\d{1,3}\b")
_FIRST_REPLY_LINE = re.compile(r"(?m)^[ \t]*[45]\d\d[ -]")
_EXIM_HOST = re.compile(r"\bhost (\S{1,255}) \[")
_TAGS = re.compile(r"<[^<>]{0,2000}>")


def looks_like_bounce(msg: Message, subject: str) -> bool:
    """A bounce-like subject, and a null sender, a mailer-daemon sender or a known
    format's wording (auto-replies have the null sender too, but not these subjects)."""
    if _failed_header(msg):
        return True  # set by the MTA on its bounces only, whatever the subject says
    if not _SUBJECT.search(subject):
        return False
    sender = header_text(msg.get("From")) + " " + header_text(msg.get("Return-Path"))
    null_sender = header_text(msg.get("Return-Path")) == "<>"
    if null_sender or _DAEMON.search(sender):
        return True
    head = _body(msg)[:4000]
    return any(pattern.search(head) for _, pattern in _FORMATS)


def _failed_header(msg: Message) -> list[str]:
    """The addresses of ``X-Failed-Recipients`` (comma-separated, repeatable)."""
    values = ",".join(header_text(v) for v in msg.get_all("X-Failed-Recipients") or [])
    return [a.strip().strip("<>") for a in values.split(",") if "@" in a][:MAX_RECIPIENTS]


def _body(msg: Message) -> str:
    """The first plain-text part; else the first HTML part without its tags."""
    html = ""
    for part in msg.walk() if msg.is_multipart() else [msg]:
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            return part_text(part)
        if ctype == "text/html" and not html:
            html = _TAGS.sub(" ", part_text(part))
    return html


def parse(msg: Message, parts: list[Message], subject: str) -> Report:
    text = _body(msg).replace("\r\n", "\n")
    cut = _CUT.search(text)
    if cut is not None:
        text = text[: cut.start()]
    fmt = next((name for name, pattern in _FORMATS if pattern.search(text)), "generic")
    found = _read(fmt, text)
    if not found and fmt != "generic":
        found = _read("generic", text)
    if not found:
        found = _failed_with_reply(text, _failed_header(msg))
    temporary = bool(_TEMPORARY.search(subject)) or (
        bool(_TEMPORARY.search(text[:2000])) and "permanent" not in text[:2000].lower()
    )
    recipients: list[RecipientReport] = []
    seen: set[str] = set()
    for address, reply, remote in found:
        key = address.lower()
        if key in seen:
            continue
        seen.add(key)
        if len(recipients) >= MAX_RECIPIENTS:
            break
        status_match = _STATUS.search(reply)
        code = _CODE.search(reply)
        first = status_match.group(0)[0] if status_match else (code.group(0)[0] if code else "")
        action = "delayed" if first == "4" or (not first and temporary) else "failed"
        recipients.append(recipient_report(address, action, "", reply, remote_mta=remote))
    original = None
    for part in parts:
        original = embedded_headers(part)
        if original is not None:
            break
    message_id = (
        clip(header_text(original.get("Message-ID")), 998) or None if original is not None else None
    )
    if message_id is None and cut is not None:
        m = re.search(r"^Message-ID:\s*(<[^>\n]{1,900}>)", _body(msg)[cut.start() :], re.M | re.I)
        message_id = m.group(1) if m else None
    actions = {r.action for r in recipients}
    kind = "bounce" if "failed" in actions else "delayed" if actions else "bounce"
    return Report(
        kind,  # type: ignore[arg-type]
        fmt,
        recipients=tuple(recipients),
        original_message_id=message_id,
        original_from=author(original),
        reason="" if recipients else "a bounce that names no recipient",
        truncated=len(found) > MAX_RECIPIENTS,
    )


def _read(fmt: str, text: str) -> list[tuple[str, str, str]]:
    """(address, reply, remote MTA) for each failed address the text names."""
    if fmt in ("qmail", "postfix"):
        return [
            (m.group(1), _remote_reply(m.group(2)), "") for m in _ANGLE_PARAGRAPH.finditer(text)
        ]
    if fmt == "exim":
        start = re.search(r"failed:|delayed:|deferred:", text)
        region = text[start.end() :] if start else text
        found = []
        for m in _EXIM_BLOCK.finditer(region):
            host = _EXIM_HOST.search(m.group(2))
            found.append((m.group(1), _remote_reply(m.group(2)), host.group(1) if host else ""))
        return found
    if fmt == "gmail":
        reply = _GMAIL_REPLY.search(text)
        return [
            (m.group(1), _one_line(reply.group(1)) if reply else "", "")
            for m in _GMAIL_RCPT.finditer(text)
        ]
    if fmt == "exchange":
        reply = _EXCHANGE_REPLY.search(text)
        reply_text = next((g for g in reply.groups() if g), "") if reply else ""
        return [(m.group(1), reply_text.lstrip("#"), "") for m in _EXCHANGE_RCPT.finditer(text)]
    return [(m.group(1), m.group(2), "") for m in _GENERIC.finditer(text)]


def _remote_reply(text: str) -> str:
    """The remote server's reply in an MTA's paragraph about one address, on one line:
    after qmail's "Remote host said:" or Exim's "SMTP error from remote mail server
    after CMD:", else from the first reply code on; the paragraph itself when it has
    no reply (the MTA's own reason, such as a domain that does not exist)."""
    joined = _one_line(text)
    for marker in _REPLY_MARKERS:
        _, found, after = joined.partition(marker)
        if found:
            if marker.startswith("SMTP"):  # "RCPT TO:<x>: 550 ..."
                m = _REPLY.search(after)
                return after[m.start() :] if m else after
            return after
    m = _REPLY.search(joined)
    return joined[m.start() :] if m else joined


def _failed_with_reply(text: str, failed: list[str]) -> list[tuple[str, str, str]]:
    """A bounce in no known wording: the first failure reply in its text, its paragraph
    on one line, for each ``X-Failed-Recipients`` address (else each address the reply
    names)."""
    m = _FIRST_REPLY.search(text) or _FIRST_REPLY_LINE.search(text)
    if m is None:
        return []
    end = text.find("\n\n", m.start())
    reply = _one_line(text[m.start() : end if end >= 0 else len(text)]).lstrip().rstrip("'\"")
    if not failed:
        named = (a.strip("<>.,;:") for a in re.findall(_ADDR, reply))
        failed = list(dict.fromkeys(named))
    return [(address, reply, "") for address in failed]


def _one_line(text: str) -> str:
    return clip(" ".join(text.split()), 2000)
