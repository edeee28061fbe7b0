"""The SMTP server protocol, sans I/O: bytes in, replies and requests out.

:class:`Session` holds one connection's state (RFC 5321 §4.1.4 command order, the
ESMTP extensions we offer) and never touches a socket: the I/O layer
(:mod:`mailwright.smtp.server`) feeds it what the client sent and acts on what
:meth:`Session.next_event` returns:

* :class:`Reply` — send it (and close the connection after it if ``reply.close``);
* :class:`StartTls` — send its reply, then upgrade the connection and call
  :meth:`Session.tls_started`;
* :class:`AuthCheck` — verify the credentials and answer with :meth:`Session.auth_result`;
* :class:`DataChunk` — a message past ``spool_threshold``: store this piece of it (the
  I/O layer spools it to disk, :mod:`mailwright.spool`);
* :class:`MessageReady` — queue the message and answer with :meth:`Session.message_result`;
* ``None`` — nothing to do until more bytes arrive.

Bounded work for any input: a command line is at most :data:`MAX_COMMAND_LINE` octets
(longer ones are discarded up to their end and answered ``500 5.5.2``); message data is
kept up to the size limit and then only scanned for its end.

Message data is handled a block at a time with ``bytes`` operations, not line by line
(one block for a message up to ``spool_threshold``, else pieces cut after a line end,
each handed out as a :class:`DataChunk`: memory stays bounded whatever the size):
finding ``CRLF.CRLF``, undoing dot-stuffing and checking for NUL, 8-bit and over-long
lines are each one pass in C. Only ``CRLF.CRLF`` ends the data (RFC 5321 §4.1.1.4): a bare
LF or CR before a dot does not (the "SMTP smuggling" attack), and bare line ends inside
the message are turned into CRLF, so what we relay can never carry a forged end of data.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ..local import LocalDirectory, Lookup
from ..queue.store import DsnRecipient, NotifyWord, Ret
from ..spool import CHUNK_SIZE, SPOOL_THRESHOLD
from . import dsn as dsn_params
from .address import AddressError, Mailbox, parse_params, parse_path

# RFC 5321 §4.5.3.1.4 sets 512 octets for a command line; extensions (SIZE, SMTPUTF8,
# AUTH initial responses, RFC 4954 §4) make more necessary, and 1000 is the text-line
# limit of §4.5.3.1.6. Beyond it a line is refused.
MAX_COMMAND_LINE = 1000
MAX_TEXT_LINE = 1000  # RFC 5321 §4.5.3.1.6, including CRLF
DEFAULT_MAX_RECIPIENTS = 1000  # Postfix smtpd_recipient_limit; RFC 5321 §4.5.3.1.8: >= 100
DEFAULT_MAX_ERRORS = 20  # Postfix smtpd_hard_error_limit
_BARE_EOL = re.compile(rb"\r\n|\r|\n")
_END = b"\r\n.\r\n"


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply; ``text`` lines start with the enhanced status code when there is one."""

    code: int
    lines: tuple[str, ...]
    close: bool = False
    _wire: list[bytes] = field(default_factory=list, compare=False, repr=False)
    """The encoded form once made: the fixed replies below are encoded once per process."""

    @classmethod
    def of(cls, code: int, status: str | None, text: str, *, close: bool = False) -> Reply:
        # RFC 2034 §4: with ENHANCEDSTATUSCODES every reply after the greeting carries one.
        return cls(code, (f"{status} {text}" if status else text,), close)

    def encode(self) -> bytes:
        if self._wire:
            return self._wire[0]
        out = [f"{self.code}-{line}" for line in self.lines[:-1]]
        out.append(f"{self.code} {self.lines[-1]}")
        wire = ("\r\n".join(out) + "\r\n").encode("utf-8")
        self._wire.append(wire)
        return wire

    @property
    def text(self) -> str:
        """The reply in one line, as the log and Postfix write it."""
        return " ".join(f"{self.code} {line}" for line in self.lines)


@dataclass(frozen=True, slots=True)
class StartTls:
    reply: Reply


@dataclass(frozen=True, slots=True)
class AuthCheck:
    mechanism: str
    username: str
    password: str
    authzid: str


@dataclass
class Envelope:
    """One mail transaction: what MAIL and RCPT established."""

    sender: Mailbox | None
    recipients: list[Mailbox] = field(default_factory=list)
    body: Literal["7BIT", "8BITMIME"] | None = None
    smtputf8: bool = False
    declared_size: int | None = None
    ret: Ret | None = None
    """RFC 3461 §4.3 RET."""
    envid: str | None = None
    """RFC 3461 §4.4 ENVID, decoded."""
    dsn: dict[str, DsnRecipient] = field(default_factory=dict)
    """RFC 3461 NOTIFY/ORCPT per recipient address (only those that gave any)."""
    requiretls: bool = False
    """RFC 8689 §4.1: MAIL ... REQUIRETLS was given."""

    @property
    def reverse_path(self) -> str:
        return self.sender.address if self.sender else ""


@dataclass(frozen=True, slots=True)
class DataChunk:
    """A piece of a big message (past ``spool_threshold``), in order, cleaned like
    :attr:`MessageReady.data`; the transaction's :class:`MessageReady` carries the last
    piece, or a refusal :class:`Reply` ends it (then the pieces are thrown away)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class MessageReady:
    envelope: Envelope
    data: bytes
    """The message, dot-stuffing undone, every line ending CRLF (with ``spooled``: its
    last piece after the :class:`DataChunk` s)."""
    spooled: bool = False


Event = Reply | StartTls | AuthCheck | MessageReady | DataChunk


@dataclass(frozen=True)
class SessionPolicy:
    """What a listener offers and allows (from the config, per connection)."""

    hostname: str
    size_limit: int
    directory: LocalDirectory
    starttls: bool = False
    """STARTTLS can be offered (a certificate is configured and the listener wants it)."""
    auth: Literal["none", "optional", "required"] = "none"
    max_recipients: int = DEFAULT_MAX_RECIPIENTS
    max_errors: int = DEFAULT_MAX_ERRORS
    strict_8bitmime: bool = False
    """Refuse 8-bit data sent without BODY=8BITMIME (RFC 6152 §3); off by default, as in
    Postfix, because Django and many other clients send UTF-8 bodies without it."""
    requiretls: bool = False
    """Offer REQUIRETLS (RFC 8689) inside TLS: on submission, where the delivery agent
    then keeps the promise (authenticated TLS to a host that offers it too)."""
    spool_threshold: int = SPOOL_THRESHOLD
    """Message data past this size is handed out in :class:`DataChunk` s."""
    chunk_size: int = CHUNK_SIZE


def _r(code: int, status: str | None, text: str, *, close: bool = False) -> Reply:
    return Reply.of(code, status, text, close=close)


# The replies of every successful transaction, built and encoded once.
_MAIL_OK = _r(250, "2.1.0", "Ok")
_RCPT_OK = _r(250, "2.1.5", "Ok")
_GO_AHEAD = _r(354, None, "End data with <CR><LF>.<CR><LF>")
_OK = _r(250, "2.0.0", "Ok")
_BYE = _r(221, "2.0.0", "Bye", close=True)
_LINE_TOO_LONG = _r(554, "5.6.0", "Error: line longer than 1000 octets (RFC 5321)")


class Session:
    """The state of one SMTP connection (see the module docstring)."""

    def __init__(
        self,
        policy: SessionPolicy,
        *,
        client_ip: str,
        trusted: bool,
        tls: bool = False,
    ) -> None:
        self.policy = policy
        self.client_ip = client_ip
        self.trusted = trusted
        """The client is in ``trusted_networks``: it may relay without AUTH."""
        self.tls = tls
        self.helo: str | None = None
        self.esmtp = False
        self.user: str | None = None
        self.auth_mechanism: str | None = None
        self.envelope: Envelope | None = None
        self.commands = 0
        self.errors = 0
        self.closed = False
        self._buf = bytearray()
        self._discarding = False
        self._mode: Literal["command", "data", "auth", "wait"] = "command"
        self._auth_state: tuple[str, str | None] | None = None
        self._data = bytearray()
        self._data_scanned = 0
        self._data_too_big = False
        self._data_refused: Reply | None = None
        self._data_given = 0
        """Octets of this message already handed out in DataChunks (as received)."""
        self._data_8bit = False
        self.rejected: list[tuple[str, Reply, str | None]] = []
        """(stage, reply, recipient) of each 4xx/5xx to MAIL/RCPT/DATA, for the log; the I/O
        layer empties it."""

    # -- input -----------------------------------------------------------------------------

    def greeting(self) -> Reply:
        return _r(220, None, f"{self.policy.hostname} ESMTP mailwright")

    def feed(self, data: bytes) -> None:
        """Add bytes received from the client."""
        if self._mode == "data":
            self._data += data
        else:
            self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) + len(self._data)

    @property
    def in_transaction(self) -> bool:
        """A MAIL transaction is under way (shutdown lets it finish)."""
        return self.envelope is not None or self._mode in ("data", "wait")

    @property
    def in_data(self) -> bool:
        return self._mode == "data"

    def next_event(self) -> Event | None:
        """The next thing for the I/O layer to do; None when more input is needed."""
        if self.closed:
            return None
        if self._mode == "wait":
            raise RuntimeError("answer the pending AuthCheck/MessageReady first")
        if self._mode == "data":
            return self._data_event()
        line = self._next_line()
        if line is None:
            return None
        if isinstance(line, Reply):
            self._mode, self._auth_state = "command", None
            return self._count(line)
        if self._mode == "auth":
            return self._auth_continue(line)
        self.commands += 1
        return self._command(line)

    def _next_line(self) -> bytes | Reply | None:
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_COMMAND_LINE:
                    self._discarding = True  # keep nothing: the line is refused anyway
                    self._buf.clear()
                return None
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if self._discarding:
                self._discarding = False
                return _r(500, "5.5.2", "Error: line too long")
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) + 2 > MAX_COMMAND_LINE:
                return _r(500, "5.5.2", "Error: line too long")
            if b"\0" in line:
                return _r(500, "5.5.2", "Error: NUL character in command")
            return line

    def _count(self, reply: Reply) -> Reply:
        if reply.code >= 400 and not reply.close:
            self.errors += 1
            if self.errors >= self.policy.max_errors:
                self.closed = True
                return _r(
                    421, "4.7.0", f"{self.policy.hostname} Error: too many errors", close=True
                )
        if reply.close:
            self.closed = True
        return reply

    # -- commands ----------------------------------------------------------------------------

    def _command(self, raw: bytes) -> Event:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._count(_r(500, "5.5.2", "Error: command is not UTF-8"))
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        handler = _HANDLERS.get(verb)
        if handler is None:
            return self._count(_r(500, "5.5.2", "Error: command not recognized"))
        return handler(self, arg)

    def _helo(self, arg: str, esmtp: bool) -> Reply:
        name = arg.strip()
        if not name or " " in name:
            verb = "EHLO" if esmtp else "HELO"
            return self._count(_r(501, "5.5.4", f"Syntax: {verb} hostname"))
        # RFC 5321 §4.1.4: EHLO resets the transaction, like RSET.
        self.envelope = None
        self.helo = name[:255]
        self.esmtp = esmtp
        if not esmtp:
            return _r(250, None, self.policy.hostname)
        lines = [
            self.policy.hostname,
            "PIPELINING",  # RFC 2920
            f"SIZE {self.policy.size_limit}",  # RFC 1870
            "8BITMIME",  # RFC 6152
            "SMTPUTF8",  # RFC 6531
            "ENHANCEDSTATUSCODES",  # RFC 2034
            "DSN",  # RFC 3461
        ]
        if self.policy.starttls and not self.tls:
            lines.append("STARTTLS")  # RFC 3207
        if self.policy.requiretls and self.tls:
            lines.append("REQUIRETLS")  # RFC 8689 §2: only in a session that uses TLS
        if self._auth_offered:
            lines.append("AUTH PLAIN LOGIN")  # RFC 4954
        return Reply(250, tuple(lines))

    @property
    def _auth_offered(self) -> bool:
        # RFC 4954 §4 and §14: plaintext mechanisms only inside TLS.
        return self.policy.auth != "none" and self.tls and self.user is None

    def _cmd_helo(self, arg: str) -> Reply:
        return self._helo(arg, esmtp=False)

    def _cmd_ehlo(self, arg: str) -> Reply:
        return self._helo(arg, esmtp=True)

    def _cmd_mail(self, arg: str) -> Reply:
        if self.helo is None:
            return self._count(_r(503, "5.5.1", "Error: send HELO/EHLO first"))
        if self.envelope is not None:
            return self._count(_r(503, "5.5.1", "Error: nested MAIL command"))
        if self.policy.auth == "required" and self.user is None:
            return self._reject("mail", _r(530, "5.7.0", "Authentication required"))
        if arg[:5].upper() != "FROM:":
            return self._count(_r(501, "5.5.4", "Syntax: MAIL FROM:<address>"))
        text = arg[5:]
        try:
            smtputf8 = self.esmtp and "SMTPUTF8" in text.upper().split()
            sender, rest = parse_path(text, smtputf8=smtputf8, null_ok=True, what="sender")
            params = parse_params(rest, smtputf8_values=smtputf8) if self.esmtp else {}
            if rest and not self.esmtp:
                raise AddressError(555, "5.5.4", "Parameters need EHLO")
            envelope = Envelope(sender)
            self._mail_params(envelope, params)
        except AddressError as exc:
            return self._reject("mail", _r(exc.code, exc.status, exc.text))
        self.envelope = envelope
        return _MAIL_OK

    def _mail_params(self, envelope: Envelope, params: dict[str, str | None]) -> None:
        for key, value in params.items():
            if key == "SIZE":  # RFC 1870 §6
                # RFC 1870 §3: size-value is 1*20DIGIT, ASCII digits only (str.isdigit()
                # also accepts '²', which int() then refuses).
                if value is None or not (value.isascii() and value.isdigit()) or len(value) > 20:
                    raise AddressError(501, "5.5.4", "Bad SIZE parameter")
                envelope.declared_size = int(value)
                if envelope.declared_size > self.policy.size_limit:
                    raise AddressError(552, "5.3.4", "Message size exceeds fixed limit")
            elif key == "BODY":  # RFC 6152 §2
                body = (value or "").upper()
                if body not in ("7BIT", "8BITMIME"):
                    raise AddressError(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
                envelope.body = body  # type: ignore[assignment]
            elif key == "SMTPUTF8":  # RFC 6531 §3.4
                if value is not None:
                    raise AddressError(501, "5.5.4", "SMTPUTF8 takes no value")
                envelope.smtputf8 = True
            elif key == "RET":  # RFC 3461 §4.3
                envelope.ret = dsn_params.parse_ret(value)
            elif key == "ENVID":  # RFC 3461 §4.4
                envelope.envid = dsn_params.parse_envid(value)
            elif key == "REQUIRETLS" and self.policy.requiretls:  # RFC 8689 §2
                if value is not None:
                    raise AddressError(501, "5.5.4", "REQUIRETLS takes no value")
                if not self.tls:
                    # §2: the option MUST only be specified in a session employing TLS.
                    raise AddressError(530, "5.7.10", "REQUIRETLS needs a TLS session")
                envelope.requiretls = True
            elif key == "AUTH":
                pass  # RFC 4954 §5: accepted and ignored; we trust our own AUTH, not the claim
            else:
                raise AddressError(555, "5.5.4", f"Unsupported option: {key}")

    def _cmd_rcpt(self, arg: str) -> Reply:
        if self.envelope is None:
            return self._count(_r(503, "5.5.1", "Error: need MAIL command"))
        if arg[:3].upper() != "TO:":
            return self._count(_r(501, "5.5.4", "Syntax: RCPT TO:<address>"))
        envelope = self.envelope
        if len(envelope.recipients) >= self.policy.max_recipients:
            # RFC 5321 §4.5.3.1.10: 452 for "too many recipients"; not counted as an error.
            reply = _r(452, "4.5.3", "Error: too many recipients")
            self.rejected.append(("rcpt", reply, None))
            return reply
        text = arg[3:]
        stripped = text.strip()
        if stripped.lower().startswith("<postmaster>"):
            # RFC 5321 §4.1.1.3: "postmaster" without a domain must be accepted.
            target = self.policy.directory.first_domain
            if target is None or self.policy.directory.resolve("postmaster") is None:
                return self._reject("rcpt", _r(550, "5.1.1", "<postmaster>: User unknown"))
            envelope.recipients.append(Mailbox("postmaster", target))
            return _RCPT_OK
        try:
            mailbox, rest = parse_path(
                text, smtputf8=envelope.smtputf8, null_ok=False, what="recipient address"
            )
            recipient_dsn = _rcpt_params(parse_params(rest)) if rest else None
        except AddressError as exc:
            return self._reject("rcpt", _r(exc.code, exc.status, exc.text))
        assert mailbox is not None
        refusal = self._recipient_policy(mailbox)
        if refusal is not None:
            return self._reject("rcpt", refusal, to=mailbox.address)
        envelope.recipients.append(mailbox)
        if recipient_dsn is not None:
            envelope.dsn[mailbox.address] = recipient_dsn
        return _RCPT_OK

    def _recipient_policy(self, mailbox: Mailbox) -> Reply | None:
        """The relay rule: local recipients must exist; others need trust or AUTH."""
        address = mailbox.address
        if mailbox.is_literal:
            # Address literals never name a local domain here, and relaying to raw IPs
            # is what spam bots want: refused for everyone.
            return _r(553, "5.1.3", f"<{address}>: address literals are not accepted")
        directory = self.policy.directory
        if directory.is_local_domain(mailbox.domain):
            found = directory.lookup(address)
            if found is Lookup.UNKNOWN:
                # perhaps a list address, and Mailman cannot be asked: a transient local
                # error (RFC 5321 §4.2.2 451; RFC 3463 X.3.0), the sender tries again
                return _r(451, "4.3.0", f"<{address}>: list service unavailable, try again later")
            if found is Lookup.NOT_FOUND:
                return _r(
                    550,
                    "5.1.1",
                    f"<{address}>: Recipient address rejected: "
                    "User unknown in local recipient table",
                )
            return None
        if self.trusted or self.user is not None:
            return None
        return _r(554, "5.7.1", f"<{address}>: Relay access denied")

    def _reject(self, stage: str, reply: Reply, to: str | None = None) -> Reply:
        self.rejected.append((stage, reply, to))
        return self._count(reply)

    def _cmd_data(self, arg: str) -> Reply:
        if arg.strip():
            return self._count(_r(501, "5.5.4", "Syntax: DATA"))
        if self.envelope is None:
            return self._count(_r(503, "5.5.1", "Error: need MAIL command"))
        if not self.envelope.recipients:
            # RFC 2920 §3.1: after only rejected recipients DATA gets 554 (or 503).
            return self._reject("data", _r(554, "5.5.1", "Error: no valid recipients"))
        self._mode = "data"
        # The data starts right after DATA's CRLF; a virtual CRLF in front lets one search
        # for CRLF.CRLF also find an empty message (".\r\n" at once).
        self._data = bytearray(b"\r\n") + self._buf
        self._buf = bytearray()
        self._data_scanned = 0
        self._data_too_big = False
        self._data_refused = None
        self._data_given = 0
        self._data_8bit = False
        return _GO_AHEAD

    def _data_event(self) -> Event | None:
        data = self._data
        end = data.find(_END, max(self._data_scanned - 4, 0))
        if end < 0:
            limit = self.policy.size_limit + 2
            if self._data_given + len(data) > limit + 4096:
                # Over the limit: drop what we have, keep only a possible partial end marker.
                self._data_too_big = True
            if self._data_too_big or self._data_refused is not None:
                del data[:-4]
            elif len(data) >= (
                self.policy.chunk_size if self._data_given else self.policy.spool_threshold
            ):
                chunk = self._next_chunk()
                if chunk is not None:
                    return chunk
            self._data_scanned = len(data)
            return None
        rest = bytes(data[end + len(_END) :])
        message = bytes(data[: end + 2])  # up to and including the last line's CRLF
        self._data = bytearray()
        self._buf = bytearray(rest)
        self._mode = "command"
        envelope = self.envelope
        assert envelope is not None
        self.envelope = None
        if self._data_too_big or self._data_given + len(message) - 2 > self.policy.size_limit:
            return self._reject("data", _r(552, "5.3.4", "Error: message exceeds size limit"))
        if self._data_refused is not None:
            return self._reject("data", self._data_refused)
        cleaned = self._clean(message)
        if isinstance(cleaned, Reply):
            return self._reject("data", cleaned)
        if (
            self.policy.strict_8bitmime
            and (self._data_8bit or not cleaned.isascii())
            and envelope.body != "8BITMIME"
            and not envelope.smtputf8
        ):
            # RFC 6152 §3: 8-bit data only after BODY=8BITMIME (or SMTPUTF8, RFC 6531 §3.1).
            return self._reject("data", _r(554, "5.6.1", "Error: 8-bit data needs BODY=8BITMIME"))
        self._mode = "wait"
        return MessageReady(envelope, cleaned, spooled=self._data_given > 0)

    def _next_chunk(self) -> DataChunk | None:
        """The complete lines received so far as one piece (None: a line too long for
        one, which is refused at the end of the data). The buffer keeps the last line's
        CRLF: dot-stuffing and the end marker are recognized after it, as before."""
        data = self._data
        cut = data.rfind(b"\n") + 1
        bare_cr = data.rfind(b"\r", 0, len(data) - 1)  # a CR whose next octet is known
        if bare_cr >= cut and data[bare_cr + 1] != 0x0A:
            cut = bare_cr + 1  # a line ended by a bare CR (made CRLF below)
        if cut <= 2:
            self._data_refused = _LINE_TOO_LONG
            del data[:-4]
            return None
        segment = bytes(data[:cut])
        del data[: cut - 2]
        self._data_given += cut - 2
        self._data_scanned = len(data)
        cleaned = self._clean(segment)
        if isinstance(cleaned, Reply):
            self._data_refused = cleaned
            return None
        if not self._data_8bit and not cleaned.isascii():
            self._data_8bit = True
        return DataChunk(cleaned)

    @staticmethod
    def _clean(segment: bytes) -> bytes | Reply:
        """Whole lines of data (after a CRLF, two octets of which start ``segment``):
        dot-stuffing undone (RFC 5321 §4.5.2), bare line ends made CRLF, NUL and over-long
        lines refused."""
        message = segment.replace(b"\r\n..", b"\r\n.")[2:]
        if b"\0" in message:
            return _r(554, "5.6.0", "Error: NUL character in message")
        crlf = message.count(b"\r\n")
        if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
            message = _BARE_EOL.sub(b"\r\n", message)
        if len(message) > MAX_TEXT_LINE - 2 and _longest_line(message) > MAX_TEXT_LINE - 2:
            return _LINE_TOO_LONG
        return message

    def message_result(self, reply: Reply) -> Reply:
        """The queue's answer to :class:`MessageReady` (250 with the ID, or 451)."""
        self._mode = "command"
        if reply.code >= 400:
            self.rejected.append(("data", reply, None))
            return self._count(reply)
        return reply

    def _cmd_rset(self, arg: str) -> Reply:
        self.envelope = None
        return _OK

    def _cmd_noop(self, arg: str) -> Reply:
        return _OK

    def _cmd_quit(self, arg: str) -> Reply:
        self.closed = True
        return _BYE

    def _cmd_vrfy(self, arg: str) -> Reply:
        # RFC 5321 §3.5.3: 252 when we will not say, instead of giving addresses away.
        return _r(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery")

    def _cmd_expn(self, arg: str) -> Reply:
        return self._count(_r(502, "5.5.1", "Error: EXPN not available"))

    def _cmd_help(self, arg: str) -> Reply:
        return _r(214, "2.0.0", "See RFC 5321")

    def _cmd_starttls(self, arg: str) -> Event:
        if self.helo is None or not self.esmtp:
            return self._count(_r(503, "5.5.1", "Error: send EHLO first"))
        if self.tls:
            return self._count(_r(503, "5.5.1", "Error: TLS already active"))
        if not self.policy.starttls:
            return self._count(_r(502, "5.5.1", "Error: STARTTLS not available"))
        if arg.strip():
            return self._count(_r(501, "5.5.4", "Syntax: STARTTLS"))
        # RFC 3207 §4.2 / CVE-2011-0411: whatever the client pipelined after STARTTLS was
        # sent in clear text and must not be executed inside TLS.
        self._buf.clear()
        self._discarding = False
        self._mode = "wait"
        return StartTls(_r(220, "2.0.0", "Ready to start TLS"))

    def tls_started(self) -> None:
        """The connection now runs TLS: forget everything (RFC 3207 §4.2), EHLO again."""
        self.tls = True
        self.helo = None
        self.esmtp = False
        self.envelope = None
        self.user = None
        # The buffer was emptied when STARTTLS was accepted; what is in it now arrived
        # through TLS (the client's EHLO may already be here).
        self._mode = "command"

    def tls_failed(self) -> None:
        self.closed = True

    # -- AUTH (RFC 4954) -------------------------------------------------------------------------

    def _cmd_auth(self, arg: str) -> Event:
        if self.helo is None or not self.esmtp:
            return self._count(_r(503, "5.5.1", "Error: send EHLO first"))
        if self.policy.auth == "none":
            return self._count(_r(503, "5.5.1", "Error: authentication not enabled"))
        if not self.tls:
            # RFC 4954 §6: 538 when the mechanism needs an encrypted channel.
            return self._count(
                _r(538, "5.7.11", "Encryption required for requested authentication mechanism")
            )
        if self.user is not None:
            return self._count(_r(503, "5.5.1", "Error: already authenticated"))
        if self.envelope is not None:
            return self._count(_r(503, "5.5.1", "Error: MAIL transaction in progress"))
        mechanism, _, initial = arg.strip().partition(" ")
        mechanism = mechanism.upper()
        if mechanism not in ("PLAIN", "LOGIN"):
            return self._count(_r(504, "5.5.4", "Unrecognized authentication type"))
        initial = initial.strip()
        if mechanism == "PLAIN":
            if not initial:
                self._mode, self._auth_state = "auth", ("PLAIN", None)
                return Reply(334, ("",))
            return self._plain(initial)
        if initial:
            return self._login_user(initial)
        self._mode, self._auth_state = "auth", ("LOGIN", None)
        return Reply(334, ("VXNlcm5hbWU6",))  # "Username:"

    def _auth_continue(self, raw: bytes) -> Event:
        state = self._auth_state
        assert state is not None
        self._mode, self._auth_state = "command", None
        text = raw.decode("ascii", "replace").strip()
        if text == "*":
            return self._count(_r(501, "5.7.0", "Authentication cancelled"))  # RFC 4954 §4
        mechanism, username = state
        if mechanism == "PLAIN":
            return self._plain(text)
        if username is None:
            return self._login_user(text)
        password = _b64(text)
        if password is None:
            return self._count(_r(501, "5.5.2", "Cannot decode response"))
        self._mode = "wait"
        return AuthCheck("LOGIN", username, password, "")

    def _login_user(self, text: str) -> Reply:
        username = _b64(text)
        if username is None:
            return self._count(_r(501, "5.5.2", "Cannot decode response"))
        self._mode, self._auth_state = "auth", ("LOGIN", username)
        return Reply(334, ("UGFzc3dvcmQ6",))  # "Password:"

    def _plain(self, text: str) -> Event:
        decoded = _b64(text)
        parts = decoded.split("\0") if decoded is not None else []
        if len(parts) != 3:  # RFC 4616 §2: [authzid] NUL authcid NUL passwd
            return self._count(_r(501, "5.5.2", "Cannot decode response"))
        self._mode = "wait"
        return AuthCheck("PLAIN", parts[1], parts[2], parts[0])

    def auth_result(self, ok: bool, username: str, *, limited: bool = False) -> Reply:
        """The answer to :class:`AuthCheck`."""
        self._mode = "command"
        if limited:
            return self._count(
                _r(454, "4.7.0", "Too many failed authentication attempts, try again later")
            )
        if not ok:
            return self._count(_r(535, "5.7.8", "Authentication credentials invalid"))
        self.user = username
        return _r(235, "2.7.0", "Authentication successful")


def _rcpt_params(params: dict[str, str | None]) -> DsnRecipient:
    """RCPT's parameters: only RFC 3461's NOTIFY (§4.1) and ORCPT (§4.2) exist here."""
    notify: tuple[NotifyWord, ...] | None = None
    orcpt: str | None = None
    for key, value in params.items():
        if key == "NOTIFY":
            notify = dsn_params.parse_notify(value)
        elif key == "ORCPT":
            orcpt = dsn_params.parse_orcpt(value)
        else:
            raise AddressError(555, "5.5.4", "Unsupported RCPT option")
    return DsnRecipient(notify=notify, orcpt=orcpt)


def _longest_line(message: bytes) -> int:
    """Length of the longest line without its CRLF (a split in C beats a regex scan)."""
    return max(map(len, message.split(b"\r\n")))


def _b64(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


_HANDLERS = {
    "HELO": Session._cmd_helo,
    "EHLO": Session._cmd_ehlo,
    "MAIL": Session._cmd_mail,
    "RCPT": Session._cmd_rcpt,
    "DATA": Session._cmd_data,
    "RSET": Session._cmd_rset,
    "NOOP": Session._cmd_noop,
    "QUIT": Session._cmd_quit,
    "VRFY": Session._cmd_vrfy,
    "EXPN": Session._cmd_expn,
    "HELP": Session._cmd_help,
    "STARTTLS": Session._cmd_starttls,
    "AUTH": Session._cmd_auth,
}


def reply_lines(replies: Iterable[Reply]) -> bytes:
    return b"".join(r.encode() for r in replies)
