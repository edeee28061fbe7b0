"""The ``sendmail`` command line, sans I/O: argv in, an :class:`Invocation` out; the raw
message a program pipes in, a clean message and its recipients out.

Programs that never speak SMTP (``mail``, cron, PHP's ``mail()``, ``git send-email``,
logwatch, unattended-upgrades) run ``/usr/sbin/sendmail`` with the option syntax of the
original Sendmail: single letters in getopt clusters (``-ti``), some with an argument
attached or following (``-fapp@example.com``, ``-f app@example.com``), and whole families
that take the rest of the word (``-oi``, ``-oem``, ``-bs``, ``-q30m``). Click cannot
parse that, so this module does, following what Postfix's ``sendmail(1)`` documents.

Exit codes are sysexits.h: programs (cron, mailx) read them.
"""

from __future__ import annotations

import email.utils
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import MailwrightError

# sysexits.h
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78

MAX_LINE = 998
"""RFC 5322 §2.1.1: at most 998 octets per line, without the CRLF."""
MAX_RECIPIENTS = 100_000
"""More than any mailing program hands to one sendmail call; beyond, a usage error."""

Mode = Literal["deliver", "smtp", "mailq", "newaliases", "flush", "help", "version"]

USAGE = """\
usage: sendmail [options] [--] [recipient ...]
  -t            recipients from To:, Cc: and Bcc: (Bcc: is removed), added to the arguments
  -i, -oi       a line with a single '.' does not end the message
  -f SENDER     envelope sender (-f '<>': none); also -r SENDER
  -F NAME       full name for the From: field mailwright adds when there is none
  -C FILE       mailwright config file (default: $MAILWRIGHT_CONFIG, ./mailwright.toml,
                /etc/mailwright/mailwright.toml)
  -bm           read the message from stdin and queue it (the default)
  -bs           speak SMTP on stdin and stdout
  -bp           list the queue (also: mailq)
  -bi           rebuild aliases: nothing to do, [aliases] is read by the server
                (also: newaliases)
  -q            process the queue: nothing to do, mailwright retries by itself
  --install [--dry-run]    (mailwright sendmail only) make this the system's
                /usr/sbin/sendmail, mailq and newaliases (dpkg-divert or a link)
  --uninstall [--dry-run]  undo --install
ignored for compatibility: -oX..., -OX=Y, -B TYPE, -N DSN, -R RET, -V ENVID, -h N, -L TAG,
  -X FILE, -v, -m, -n, -U, -G, -Am, -Ac
exit codes (sysexits.h): 0 queued, 64 usage, 65 bad message, 73 cannot write the maildrop,
  74 I/O error, 75 try again later, 77 no permission, 78 config error

Examples:
  echo hello | mailwright sendmail root           # to root's alias, From root@DOMAIN
  mailwright sendmail -t -i < message.eml         # recipients from To/Cc/Bcc
  mailwright sendmail -i -f app@example.com -F App alice@example.net < msg
  mailwright sendmail --install --dry-run         # what becoming /usr/sbin/sendmail runs
"""


class SendmailError(MailwrightError):
    """A failed ``sendmail`` call: one line for stderr and its sysexits code."""

    def __init__(self, exit_code: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


@dataclass(frozen=True)
class Invocation:
    """What a sendmail command line asks for."""

    mode: Mode = "deliver"
    recipients: tuple[str, ...] = ()
    extract_recipients: bool = False
    """``-t``."""
    ignore_dots: bool = False
    """``-i`` / ``-oi``: a lone ``.`` line is data, not the end of the message."""
    sender: str | None = None
    """``-f``/``-r``; ``""`` is the null sender; None: the invoking user."""
    full_name: str | None = None
    config_path: str | None = None
    body_type: str | None = None
    ignored: tuple[str, ...] = field(default=())
    """Options accepted for compatibility and without effect (for a debug line)."""


# Letters that take an argument (attached or the next word) and letters that do not.
_WITH_ARGUMENT = set("fFrCBNRVhLXOA")
_FLAGS = set("itvmnUGx")
_MODES: dict[str, Mode] = {"m": "deliver", "s": "smtp", "p": "mailq", "i": "newaliases"}
_UNSUPPORTED_MODES = {
    "d": "daemon mode: run 'mailwright serve'",
    "D": "daemon mode: run 'mailwright serve'",
    "a": "ARPANET mode is not supported",
    "t": "address test mode is not supported",
    "v": "address verification mode is not supported",
    "h": "host status is not kept",
    "H": "host status is not kept",
    "P": "queue statistics: use -bp",
}


def program_mode(argv0: str) -> Mode:
    """``mailq`` and ``newaliases`` are the same program under another name."""
    name = os.path.basename(argv0)
    if name == "mailq":
        return "mailq"
    if name == "newaliases":
        return "newaliases"
    return "deliver"


def parse_argv(argv: Sequence[str], mode: Mode = "deliver") -> Invocation:
    """Parse sendmail's options (POSIX getopt: options end at ``--`` or the first word
    that is not an option). Raises :class:`SendmailError` with ``EX_USAGE``."""
    recipients: list[str] = []
    extract = ignore_dots = False
    sender: str | None = None
    full_name = config_path = body_type = None
    ignored: list[str] = []
    words = list(argv)
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--":
            recipients.extend(words[index:])
            break
        if word in ("--help", "-help"):
            return Invocation(mode="help")
        if word == "--version":
            return Invocation(mode="version")
        if word.startswith("--"):
            raise _usage(f"unknown option {word}")
        if not word.startswith("-") or word == "-":
            recipients.extend(words[index - 1 :])
            break
        position = 1
        while position < len(word):
            letter = word[position]
            rest = word[position + 1 :]
            if letter in _FLAGS:
                if letter == "t":
                    extract = True
                elif letter == "i":
                    ignore_dots = True
                else:
                    ignored.append(f"-{letter}")
                position += 1
                continue
            if letter in ("b", "o", "q"):
                # The rest of the word is the value; "-b s" and "-o i" also work.
                if not rest and letter != "q":
                    if index >= len(words):
                        raise _usage(f"option -{letter} needs a value")
                    rest = words[index]
                    index += 1
                if letter == "b":
                    mode = _mode(rest)
                elif letter == "o":
                    if rest == "i":
                        ignore_dots = True
                    else:
                        ignored.append(f"-o{rest}")
                else:
                    mode = "flush"
                break
            if letter == "I":
                mode = "newaliases"
                position += 1
                continue
            if letter in _WITH_ARGUMENT:
                if rest:
                    value = rest
                elif index < len(words):
                    value = words[index]
                    index += 1
                else:
                    raise _usage(f"option -{letter} needs a value")
                if letter in "fr":
                    sender = _sender(value)
                elif letter == "F":
                    full_name = _clean_name(value)
                elif letter == "C":
                    config_path = value
                elif letter == "B":
                    body_type = value.upper()
                    if body_type not in ("7BIT", "8BITMIME"):
                        raise _usage(f"-B {value!r}: write -B 7BIT or -B 8BITMIME")
                else:
                    ignored.append(f"-{letter}")
                break
            raise _usage(f"unknown option -{letter}")
    if len(recipients) > MAX_RECIPIENTS:
        raise _usage(f"{len(recipients)} recipients: at most {MAX_RECIPIENTS} in one call")
    return Invocation(
        mode=mode,
        recipients=tuple(recipients),
        extract_recipients=extract,
        ignore_dots=ignore_dots,
        sender=sender,
        full_name=full_name,
        config_path=config_path,
        body_type=body_type,
        ignored=tuple(ignored),
    )


def _usage(message: str) -> SendmailError:
    return SendmailError(EX_USAGE, message, "see 'sendmail --help'")


def _mode(value: str) -> Mode:
    letter = value[:1]
    if letter in _MODES and len(value) == 1:
        return _MODES[letter]
    if letter in _UNSUPPORTED_MODES:
        raise SendmailError(EX_USAGE, f"-b{value}: {_UNSUPPORTED_MODES[letter]}")
    raise _usage(f"unknown mode -b{value}")


def _sender(value: str) -> str:
    text = value.strip()
    if text in ("", "<>"):
        return ""
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return check_address(text, "-f")


def _clean_name(value: str) -> str:
    """A full name goes into a header field: no line breaks or other controls."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", value).strip()


_LIST_SYNTAX = re.compile(r'[\s,<>():;"]')
_BAD_ADDRESS = re.compile(r"[\x00-\x20\x7f<>()\[\],;\\]")


def check_address(address: str, where: str) -> str:
    """A bare address (``user`` or ``user@domain``) as programs pass them; raises
    ``EX_USAGE`` for what no mail system accepts (spaces, controls, brackets)."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    bad = (
        not address
        or _BAD_ADDRESS.search(address.replace('"', "")) is not None
        or not local
        or (at and not domain)
        or len(address) > 254
    )
    if bad:
        raise SendmailError(EX_USAGE, f"{where}: {address!r} is not a mail address")
    return address


def split_addresses(values: Sequence[str], where: str) -> list[str]:
    """Addresses from argument words or header values: each may be a list
    (``a@x, Bob <b@y>``) as Sendmail accepts; groups and empty entries drop out."""
    out: list[str] = []
    for value in values:
        if not _LIST_SYNTAX.search(value.strip()):
            pairs = [("", value.strip())]
        else:
            try:
                pairs = email.utils.getaddresses([value])
            except Exception:  # any parser failure: report the word, not a traceback
                raise SendmailError(
                    EX_USAGE, f"{where}: {value[:200]!r} is not a list of addresses"
                ) from None
        for _, address in pairs:
            if address:
                out.append(check_address(address, where))
    return out


# -- the message ------------------------------------------------------------------------------

_LINE_END = re.compile(rb"\r\n|\r|\n")
_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:")
_DOT_LINE = re.compile(rb"(?:^|\n)\.\r?(?:\n|$)")


def end_of_input(data: bytes | bytearray, ignore_dots: bool, start: int = 0) -> int | None:
    """Without ``-i`` a line holding only ``.`` ends the message: where it starts
    (searching from ``start``, for input that arrives in chunks)."""
    if ignore_dots:
        return None
    match = _DOT_LINE.search(data, start)
    if match is None:
        return None
    return match.start() + (1 if match.group().startswith(b"\n") else 0)


@dataclass(frozen=True)
class PreparedMessage:
    data: bytes
    """Every line ending CRLF, at most 998 octets, header and body separated."""
    recipients: tuple[str, ...]
    eight_bit: bool


def prepare_message(
    raw: bytes,
    *,
    recipients: Sequence[str] = (),
    extract: bool = False,
    size_limit: int,
) -> PreparedMessage:
    """Make what a program piped in a message the queue can carry, or say why not.

    * NUL bytes: refused (``EX_DATAERR``): no receiver takes them (RFC 5322 §2.3);
    * CR, LF and CRLF line ends, mixed: each becomes CRLF (RFC 5322 §2.1);
    * lines over 998 octets (RFC 5322 §2.1.1): broken by inserting CRLF SPACE, as Postfix
      does (``smtp_line_length_limit``), so nothing is refused later on the way;
    * a leading mbox ``From `` line is dropped;
    * no header, or no empty line after it: the header ends at the first line that is not
      a field, and an empty line is put there (the rest is body);
    * ``extract`` (``-t``): To, Cc and Bcc name recipients, added to ``recipients``;
      Bcc is removed from the header;
    * over ``size_limit`` octets: refused (``EX_DATAERR``).
    """
    nul = raw.find(b"\0")
    if nul >= 0:
        raise SendmailError(
            EX_DATAERR,
            f"the message contains a NUL byte (octet {nul})",
            "mail carries text; send binary data as a MIME attachment",
        )
    if raw.startswith(b"From "):
        raw = raw.partition(b"\n")[2]
    lines = _LINE_END.split(raw)
    if lines and lines[-1] == b"":
        lines.pop()
    header_end = _header_length(lines)
    header = lines[:header_end]
    body = lines[header_end:]
    if body and body[0] == b"":
        body = body[1:]
    found: list[str] = []
    if extract:
        found, header = _extract_recipients(header)
    all_recipients = [*split_addresses(recipients, "recipient"), *found]
    if not all_recipients:
        raise SendmailError(
            EX_USAGE,
            "no recipients",
            "name them as arguments, or use -t with To:, Cc: or Bcc: in the message",
        )
    if len(all_recipients) > MAX_RECIPIENTS:
        raise _usage(f"{len(all_recipients)} recipients: at most {MAX_RECIPIENTS} in one call")
    out = bytearray()
    for line in header:
        out += _fold_long(line)
    out += b"\r\n"
    for line in body:
        out += _fold_long(line)
    data = bytes(out)
    if len(data) > size_limit:
        raise too_big(size_limit)
    unique = tuple(dict.fromkeys(all_recipients))
    return PreparedMessage(data, unique, not data.isascii())


def too_big(size_limit: int) -> SendmailError:
    return SendmailError(
        EX_DATAERR,
        f"the message is over the size limit of {size_limit} octets; nothing was queued",
        "send a smaller message, or raise message_size_limit in the config",
    )


def _header_length(lines: list[bytes]) -> int:
    """How many leading lines are header fields (with their continuation lines)."""
    count = 0
    for line in lines:
        if (line[:1] in (b" ", b"\t") and count) or _FIELD.match(line):
            count += 1
        else:
            break
    return count


def _fold_long(line: bytes) -> bytes:
    if len(line) <= MAX_LINE:
        return line + b"\r\n"
    parts = [line[:MAX_LINE]]
    rest = line[MAX_LINE:]
    while rest:
        parts.append(b" " + rest[: MAX_LINE - 1])
        rest = rest[MAX_LINE - 1 :]
    return b"\r\n".join(parts) + b"\r\n"


_RECIPIENT_FIELDS = (b"to", b"cc", b"bcc")


def _extract_recipients(header: list[bytes]) -> tuple[list[str], list[bytes]]:
    """Recipients from To/Cc/Bcc and the header without Bcc (RFC 5322 §3.6.3: Bcc
    recipients are not shown to the others)."""
    found: list[str] = []
    kept: list[bytes] = []
    fields: list[list[bytes]] = []
    for line in header:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    for lines in fields:
        name = lines[0].split(b":", 1)[0].strip().lower()
        if name in _RECIPIENT_FIELDS:
            value = b" ".join(line.strip() for line in lines).split(b":", 1)[1]
            found.extend(split_addresses([value.decode("utf-8", "replace")], name.decode()))
        if name != b"bcc":
            kept.extend(lines)
    return found, kept
