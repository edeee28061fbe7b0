"""SMTP replies: parsing (multi-line included), enhanced status codes, classification.

Sans-I/O: :class:`ReplyParser` is fed bytes as they arrive and hands back complete
replies, so the client, the tests and the benchmark share one parser and none of
them needs a socket. Everything here treats the remote server as untrusted: lines
and replies are bounded, and a malformed reply is a :class:`ReplyError` (which the
client turns into a transient failure), never an exception from deep inside.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ..errors import MailwrightError

MAX_LINE = 2048
"""RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets; real servers exceed it a little,
so we accept up to this and call anything longer a protocol error."""
MAX_LINES = 100
"""EHLO replies have a line per extension; a hundred is far more than any server sends."""

# ASCII digits only (RFC 5321 §4.2, RFC 3463 §2): a str pattern's \d is any Unicode digit.
_CODE = re.compile(r"[0-9]{3}")
_ENHANCED = re.compile(r"^([245])\.([0-9]{1,3})\.([0-9]{1,3})(?=\s|$)")


class ReplyError(MailwrightError, ValueError):
    """The server sent something that is not an SMTP reply (RFC 5321 §4.2)."""


class Kind(enum.Enum):
    """RFC 5321 §4.2.1: the first digit says what the client should do next."""

    POSITIVE = 2
    INTERMEDIATE = 3
    TRANSIENT = 4
    PERMANENT = 5


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete reply: the code, the text lines (code and separator removed)."""

    code: int
    lines: tuple[str, ...] = ("",)
    local: bool = False
    """Made up by mailwright (DNS failure, connection refused ...), not sent by a server."""

    @property
    def kind(self) -> Kind:
        return Kind(self.code // 100)

    @property
    def positive(self) -> bool:
        return self.code // 100 == 2

    @property
    def transient(self) -> bool:
        return self.code // 100 == 4

    @property
    def permanent(self) -> bool:
        return self.code // 100 == 5

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 status code at the start of the text, if present and consistent.

        RFC 2034 §3 requires its class to match the first digit of the reply code;
        a mismatch (``250 5.1.1``) means the server is confused, so we ignore it.
        """
        match = _ENHANCED.match(self.lines[0])
        if match is None or int(match.group(1)) != self.code // 100:
            return None
        return f"{match.group(1)}.{int(match.group(2))}.{int(match.group(3))}"

    def status(self, default_detail: str = "0.0") -> str:
        """The enhanced status, or one derived from the reply code (``550`` → ``5.0.0``).

        ``default_detail`` is the subject.detail to use without one: the client knows
        which command the reply answered (RFC 3463 §3.2 ``x.1.1`` for RCPT, ...).
        """
        return self.enhanced or f"{self.code // 100}.{default_detail}"

    @property
    def text(self) -> str:
        """The text of all lines joined with a space, as Postfix logs a multi-line reply."""
        return " ".join(line for line in self.lines if line)

    def __str__(self) -> str:
        text = self.text
        return f"{self.code} {text}" if text else str(self.code)

    @property
    def extensions(self) -> dict[str, str]:
        """For an EHLO reply: keyword (upper case) → parameters (RFC 5321 §4.1.1.1).

        The first line is the greeting (domain), every other line one extension.
        """
        result: dict[str, str] = {}
        for line in self.lines[1:]:
            keyword, _, params = line.strip().partition(" ")
            if keyword:
                result[keyword.upper()] = params.strip()
        return result


def local_reply(code: int, status: str, text: str) -> Reply:
    """A reply mailwright makes up for an outcome without a server reply (DNS, connect)."""
    return Reply(code, (f"{status} {text}",), local=True)


class ReplyParser:
    """Incremental parser: ``feed(data)`` returns the replies completed by ``data``.

    RFC 5321 §4.2: every line is ``CODE`` then ``-`` (more lines follow) or a space
    (last line) or nothing, then text; all lines of one reply carry the same code.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._code: int | None = None
        self._lines: list[str] = []

    @property
    def pending(self) -> bool:
        """True when a partial reply or partial line is buffered."""
        return bool(self._buffer) or self._code is not None

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies: list[Reply] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise ReplyError(f"reply line longer than {MAX_LINE} octets")
                return replies
            if end > MAX_LINE:
                raise ReplyError(f"reply line longer than {MAX_LINE} octets")
            raw = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            reply = self._line(raw)
            if reply is not None:
                replies.append(reply)

    def _line(self, raw: bytes) -> Reply | None:
        # Servers send UTF-8 (RFC 6531) or legacy 8-bit text; the text is only ever
        # logged and quoted, so undecodable octets become U+FFFD rather than an error.
        line = raw.decode("utf-8", errors="replace")
        # RFC 5321 §4.2: the code is three ASCII digits; str.isdigit() and int() would
        # also take "²" or Arabic-Indic digits (and int("²") raises ValueError).
        if not _CODE.match(line) or not "2" <= line[0] <= "5":
            raise ReplyError(f"not an SMTP reply line: {line[:80]!r}")
        code = int(line[:3])
        separator = line[3:4]
        if separator not in ("", " ", "-"):
            raise ReplyError(f"bad separator after reply code: {line[:80]!r}")
        if self._code is not None and code != self._code:
            raise ReplyError(f"reply code changed within a multi-line reply: {line[:80]!r}")
        self._code = code
        self._lines.append(line[4:])
        if len(self._lines) > MAX_LINES:
            raise ReplyError(f"reply longer than {MAX_LINES} lines")
        if separator == "-":
            return None
        reply = Reply(code, tuple(self._lines))
        self._code = None
        self._lines = []
        return reply
