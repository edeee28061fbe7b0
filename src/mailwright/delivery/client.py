"""An async SMTP client for delivery: one :class:`Session` per connection.

The protocol decisions (reply parsing, what a reply means for each recipient)
live in :mod:`.replies` and in the small pure helpers here; the class only moves
bytes over asyncio streams. A session carries several transactions in a row
(``RSET`` between them), pipelines ``MAIL``/``RCPT``/``DATA`` when the server
offers PIPELINING (RFC 2920) — with CHUNKING (RFC 3030) the message too, as
``BDAT n LAST`` — honours SIZE (RFC 1870), 8BITMIME (RFC 6152) and
SMTPUTF8 (RFC 6531), upgrades with STARTTLS (RFC 3207) opportunistically or as
required, and authenticates with AUTH PLAIN or LOGIN (RFC 4954) over TLS.

Nothing raises for a remote outcome except :class:`SessionError`, which carries
the reply (the server's or one we made up, e.g. ``4.4.1`` for a failed connect)
and says whether the connection is gone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
import re
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from .. import dane
from ..errors import MailwrightError
from ..queue.store import QueueMeta, StoredMessage
from ..rfc6152 import to_7bit
from ..smtp import dsn as dsn_params
from .replies import Reply, ReplyError, ReplyParser, local_reply
from .routing import Hop, Route, TlsRequirement

READ_CHUNK = 65536


_NO_META = QueueMeta()


class SessionError(MailwrightError):
    """The session cannot continue (or cannot start); ``reply`` says why."""

    def __init__(
        self, reply: Reply, *, tls_failed: bool = False, policy_failure: str | None = None
    ) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.tls_failed = tls_failed
        """The TLS handshake failed: for opportunistic TLS, try again in plain text."""
        self.policy_failure = policy_failure
        """The host failed its DANE or MTA-STS requirement: the RFC 8460 §4.3 result
        type (``starttls-not-supported``, ``certificate-host-mismatch``, ...)."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    helo: str
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    source_ipv4: str | None = None
    source_ipv6: str | None = None


@dataclass(slots=True)
class TransactionResult:
    """Per-recipient replies of one message; ``accepted`` lists those the server took."""

    replies: dict[str, Reply] = field(default_factory=dict)
    server_spoke: bool = False
    """The server answered at least one command of this transaction. If not, and the
    connection is gone, the message was certainly not taken: safe to send again."""
    dsn_passed: bool = False
    """The server offers DSN (RFC 3461): the DSN requests went on with the message, and
    reporting success is now its job (§5.2.2), not ours."""

    @property
    def accepted(self) -> list[str]:
        return [r for r, reply in self.replies.items() if reply.positive]


def canonical_line_ends(data: bytes) -> bytes:
    """CRLF line ends (RFC 5321 §2.3.8 forbids bare LF), ending with one CRLF."""
    if data.count(b"\n") != data.count(b"\r\n"):  # counting copies nothing
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def dot_stuff(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, ``CRLF.CRLF`` at the end.

    RFC 5321 §4.5.2 (transparency). Bare LFs become CRLF (§2.3.8 forbids bare LF;
    the message was normalized at submission, this only guards the wire).
    """
    data = canonical_line_ends(data)
    if data.startswith(b"."):
        data = b"." + data
    if b"\n." in data:
        data = data.replace(b"\r\n.", b"\r\n..")
    return data + b".\r\n"


MessageSource = bytes | StoredMessage
"""A message to send: in memory, or a big one read from the queue a piece at a time."""


class DotStuffer:
    """:func:`dot_stuff` a piece at a time, however the message is cut: a CR at the end
    of a piece waits for the next (it may start a CRLF), and a dot at the start of a piece
    is doubled when the piece before ended a line."""

    def __init__(self) -> None:
        self._cr = False
        self._line_start = True
        self._ends_crlf = False

    def feed(self, piece: bytes) -> bytes:
        data = b"\r" + piece if self._cr else piece
        self._cr = data.endswith(b"\r")
        if self._cr:
            data = data[:-1]
        if not data:
            return b""
        if data.count(b"\n") != data.count(b"\r\n"):
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self._line_start and data.startswith(b"."):
            data = b"." + data
        if b"\n." in data:
            data = data.replace(b"\r\n.", b"\r\n..")
        self._line_start = self._ends_crlf = data.endswith(b"\r\n")
        return data

    def finish(self) -> bytes:
        """The rest: a last CRLF if the message lacks one, and the end-of-data line."""
        tail = b"\r\r\n" if self._cr else (b"" if self._ends_crlf else b"\r\n")
        return tail + b".\r\n"


async def stuffed_pieces(message: StoredMessage) -> AsyncIterator[bytes]:
    """The DATA payload of a stored message, a piece at a time (RFC 5321 §4.5.2)."""
    stuffer = DotStuffer()
    async for piece in message.chunks():
        yield stuffer.feed(piece)
    yield stuffer.finish()


def _address_ok(address: str) -> bool:
    # An address containing CR, LF or angle brackets would let the envelope inject
    # commands; the submission server should never have accepted one.
    return not any(c in address for c in "\r\n<>\x00") and len(address) <= 1024


def _needs_smtputf8(sender: str, recipients: Sequence[str]) -> bool:
    return not sender.isascii() or not all(r.isascii() for r in recipients)


class Session:
    """One SMTP connection, after the greeting and EHLO (and STARTTLS/AUTH if used)."""

    def __init__(
        self,
        hop: Hop,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        settings: ClientSettings,
    ) -> None:
        self.hop = hop
        peer = writer.get_extra_info("peername")
        self.peer: str = str(peer[0]) if peer else hop.address
        """The address actually connected to (a relay host name resolves at connect time)."""
        self._reader = reader
        self._writer = writer
        self._settings = settings
        self._parser = ReplyParser()
        self._replies: deque[Reply] = deque()
        self.extensions: dict[str, str] = {}
        self.tls = False
        self.authenticated: str | None = None
        """``dane`` or ``mta-sts`` when the server's certificate was authenticated so."""
        self.transactions = 0
        self.replies_read = 0
        self._transaction_open = False
        """The server may still hold a transaction's state (its first MAIL, or one that
        ended without the end of its data): the next transaction starts with RSET."""
        self._deadline = 0.0
        """When the reply being read is late (see :meth:`_watch`)."""
        self._reading = False
        self._timed_out = False
        self._watchdog: asyncio.TimerHandle | None = None
        self.broken = False
        """True once the connection is unusable (lost, timed out, out of sync)."""

    @property
    def relay(self) -> str:
        """``host[ip]:port`` of this connection, as Postfix logs it."""
        return f"{self.hop.host}[{self.peer}]:{self.hop.port}"

    # -- opening ------------------------------------------------------------

    @classmethod
    async def open(
        cls, hop: Hop, route: Route, settings: ClientSettings, *, use_tls: bool = True
    ) -> Session:
        """Connect, read the greeting, EHLO, then STARTTLS and AUTH as ``route`` says.

        ``use_tls=False`` skips opportunistic STARTTLS (the retry after a failed handshake).
        """
        implicit = route.tls == "implicit"
        context = _tls_context(route) if implicit else None
        local_addr, family = _bind(hop, settings)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    hop.address,
                    hop.port,
                    ssl=context if implicit else None,
                    server_hostname=_sni(hop) if implicit else None,
                    local_addr=local_addr,
                    family=family,
                ),
                settings.connect_timeout,
            )
        except TimeoutError:
            raise SessionError(
                local_reply(421, "4.4.1", f"connect to {hop.relay} timed out")
            ) from None
        except ssl.SSLError as exc:
            raise SessionError(
                local_reply(421, "4.7.5", f"TLS handshake with {hop.relay} failed: {exc.reason}")
            ) from None
        except OSError as exc:
            raise SessionError(
                local_reply(421, "4.4.1", f"connect to {hop.relay}: {os_error_text(exc)}")
            ) from None
        session = cls(hop, reader, writer, settings)
        session.tls = implicit
        if implicit:
            session.authenticated = "relay"
        try:
            await session._start(route, use_tls=use_tls)
        except BaseException:
            session.abort()
            raise
        return session

    async def _start(self, route: Route, *, use_tls: bool) -> None:
        greeting = await self.read_reply(self._settings.connect_timeout)
        if not greeting.positive:
            # RFC 5321 §3.1: a 554 greeting means "no service here"; the agent tries the
            # next MX with the reply (Postfix: smtp_skip_5xx_greeting).
            raise SessionError(greeting)
        requirement = route.requirement(self.hop.host) if route.tls == "opportunistic" else None
        await self._ehlo(
            allow_helo=route.tls in ("opportunistic", "none")
            and not route.username
            and requirement is None
        )
        if requirement is not None:
            await self._authenticated_tls(route, requirement)
        elif route.tls == "starttls" or (
            route.tls == "opportunistic" and use_tls and "STARTTLS" in self.extensions
        ):
            await self._starttls(route)
        if route.username is not None:
            await self._authenticate(route.username, route.password or "")

    async def _ehlo(self, *, allow_helo: bool) -> None:
        reply = await self.command(f"EHLO {self._settings.helo}")
        if reply.positive:
            self.extensions = reply.extensions
            return
        if not allow_helo or reply.code not in (500, 502, 504, 550):
            raise SessionError(reply)
        # RFC 5321 §3.2: a server that does not know EHLO gets HELO (no extensions).
        reply = await self.command(f"HELO {self._settings.helo}")
        if not reply.positive:
            raise SessionError(reply)
        self.extensions = {}

    async def _starttls(self, route: Route) -> None:
        if "STARTTLS" not in self.extensions:
            raise SessionError(
                local_reply(421, "4.7.4", f"{self.hop.relay} does not offer STARTTLS")
            )
        reply = await self.command("STARTTLS")
        if not reply.positive:
            raise SessionError(reply, tls_failed=route.tls == "opportunistic")
        if self._replies or self._parser.pending:
            # RFC 3207 §5 / CVE-2011-0411: data sent before the handshake is an injection.
            raise SessionError(local_reply(421, "4.5.0", "data after STARTTLS reply"))
        try:
            await asyncio.wait_for(
                self._writer.start_tls(_tls_context(route), server_hostname=_sni(self.hop)),
                self._settings.connect_timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self.broken = True
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            raise SessionError(
                local_reply(421, "4.7.5", f"TLS handshake with {self.hop.relay} failed: {reason}"),
                tls_failed=route.tls == "opportunistic",
            ) from None
        self.tls = True
        if route.tls == "starttls":
            self.authenticated = "relay"  # verified against the CAs (see _tls_context)
        # RFC 3207 §4.2: forget everything learned before TLS and ask again.
        await self._ehlo(allow_helo=False)

    async def _authenticated_tls(self, route: Route, requirement: TlsRequirement) -> None:
        """STARTTLS that must succeed and authenticate the server, never a plain-text
        fallback: RFC 7672 §2.2 (DANE), RFC 8461 §5 (MTA-STS enforce) and RFC 8689
        §4.2.1 (REQUIRETLS, which also needs the extension offered after STARTTLS)."""
        why = f"{_requirement_name(requirement)} for {requirement.policy_domain}"
        if "STARTTLS" not in self.extensions:
            raise self._policy_error(
                requirement,
                "4.7.4",
                f"{self.hop.relay} does not offer STARTTLS, required by {why}",
                "starttls-not-supported",
            )
        reply = await self.command("STARTTLS")
        if not reply.positive:
            raise self._policy_error(
                requirement,
                "4.7.4",
                f"{self.hop.relay} refused STARTTLS ({reply}), required by {why}",
                "starttls-not-supported",
            )
        if self._replies or self._parser.pending:
            raise SessionError(local_reply(421, "4.5.0", "data after STARTTLS reply"))
        if requirement.kind == "dane":
            context = _tls_context(Route((), tls="opportunistic"))
        else:
            context = _tls_context(Route((), tls="starttls", ca_file=route.ca_file))
        try:
            await asyncio.wait_for(
                self._writer.start_tls(context, server_hostname=self.hop.host),
                self._settings.connect_timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            self.broken = True
            raise self._policy_error(
                requirement,
                "4.7.5",
                f"certificate of {self.hop.relay} not valid for {self.hop.host}"
                f" ({exc.verify_message}), required by {why}",
                _result_type(exc),
            ) from None
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self.broken = True
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            raise self._policy_error(
                requirement,
                "4.7.5",
                f"TLS handshake with {self.hop.relay} failed: {reason} ({why})",
                "validation-failure",
            ) from None
        if requirement.kind == "dane":
            problem = dane.verify(requirement.tlsa, _peer_chain(self._writer), requirement.names)
            if problem is not None:
                self.broken = True
                raise self._policy_error(
                    requirement,
                    "4.7.5",
                    f"DANE: {self.hop.relay}: {problem} (TLSA {dane.tlsa_name(self.hop.host)})",
                    "tlsa-invalid",
                )
        self.tls = True
        self.authenticated = requirement.kind
        await self._ehlo(allow_helo=False)
        if requirement.requiretls and "REQUIRETLS" not in self.extensions:
            # RFC 8689 §4.2.1 step 5, and the code it names for this failure.
            raise SessionError(
                local_reply(
                    550,
                    "5.7.30",
                    f"REQUIRETLS support required: {self.hop.relay} does not offer it",
                )
            )

    def _policy_error(
        self, requirement: TlsRequirement, status: str, text: str, result_type: str
    ) -> SessionError:
        if requirement.requiretls:
            # RFC 8689 §4.2.1: "Unable to establish TLS-protected SMTP session".
            return SessionError(
                local_reply(550, "5.7.10", f"REQUIRETLS: {text}"), policy_failure=result_type
            )
        return SessionError(local_reply(421, status, text), policy_failure=result_type)

    async def _authenticate(self, username: str, password: str) -> None:
        """RFC 4954: PLAIN with an initial response if offered, else LOGIN."""
        if not self.tls and not _is_loopback(self.peer):
            raise SessionError(local_reply(421, "4.7.0", "refusing to send a password without TLS"))
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in mechanisms:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            reply = await self.command(f"AUTH PLAIN {token}", log_as="AUTH PLAIN ***")
        elif "LOGIN" in mechanisms:
            reply = await self.command("AUTH LOGIN")
            for secret in (username, password):
                if reply.code != 334:
                    break
                reply = await self.command(base64.b64encode(secret.encode()).decode())
        else:
            raise SessionError(
                local_reply(421, "4.7.0", f"{self.hop.relay} offers no AUTH PLAIN or LOGIN")
            )
        if reply.code != 235:
            # Postfix defers on SASL failure: a wrong password is fixed by the admin,
            # the mail should still be there when it is.
            raise SessionError(
                Reply(
                    421 if reply.permanent else reply.code,
                    (f"4.7.8 authentication failed: {reply}",),
                    local=True,
                )
            )

    # -- transactions -------------------------------------------------------

    async def send(
        self,
        sender: str,
        recipients: Sequence[str],
        data: MessageSource,
        meta: QueueMeta | None = None,
    ) -> TransactionResult:
        """One message to ``recipients``; the result has a reply for each of them.
        A :class:`StoredMessage` is sent with DATA, read from the queue a piece at a time.

        ``meta``: the queued message's RFC 3461 parameters (passed on when the server
        offers DSN) and whether it came in with SMTPUTF8 (passed on when offered).

        Raises :class:`SessionError` only if the connection fails before any recipient
        was answered; a failure later marks the unanswered recipients with a 4.4.2 reply.
        """
        meta = meta or _NO_META
        offers_dsn = "DSN" in self.extensions
        result = TransactionResult(dsn_passed=offers_dsn)
        bad = [a for a in (sender, *recipients) if not _address_ok(a)]
        if bad:
            reply = local_reply(553, "5.1.3", f"bad address syntax: {bad[0]!r}")
            return TransactionResult(dict.fromkeys(recipients, reply))
        size_limit = _int(self.extensions.get("SIZE", ""))
        if size_limit and len(data) > size_limit:
            reply = local_reply(
                552,
                "5.3.4",
                f"message size {len(data)} exceeds the limit {size_limit} of {self.hop.relay}",
            )
            return TransactionResult(dict.fromkeys(recipients, reply))
        if isinstance(data, StoredMessage) and "8BITMIME" not in self.extensions:
            # a big message to an old server: read whole, for the conversion below (rare:
            # what we sign is 7-bit already)
            data = await data.read_all()
        if isinstance(data, bytes) and not data.isascii() and "8BITMIME" not in self.extensions:
            # RFC 6152 §3: the next hop takes only 7-bit data: convert per MIME part. Mail
            # we sign is made 7-bit before signing, so this only touches relayed mail.
            data = to_7bit(data).data
        params = []
        if "SIZE" in self.extensions:
            params.append(f"SIZE={len(data)}")
        if "8BITMIME" in self.extensions and (
            isinstance(data, StoredMessage) or not data.isascii()
        ):
            # a big stored message is not scanned: BODY=8BITMIME says it *may* hold 8-bit
            params.append("BODY=8BITMIME")
        if _needs_smtputf8(sender, recipients):
            if "SMTPUTF8" not in self.extensions:
                reply = local_reply(
                    553, "5.6.7", f"{self.hop.relay} does not support SMTPUTF8 (RFC 6531 §3.2)"
                )
                return TransactionResult(dict.fromkeys(recipients, reply))
            params.append("SMTPUTF8")
        elif meta.smtputf8 and "SMTPUTF8" in self.extensions:
            params.append("SMTPUTF8")  # RFC 6531 §3.4: UTF-8 header fields may follow
        if offers_dsn:
            params += dsn_params.mail_params(meta.ret, meta.envid)
        if meta.requiretls and sender:
            problem = self._requiretls_problem()
            if problem is not None:
                return TransactionResult(dict.fromkeys(recipients, problem))
        if meta.requiretls and "REQUIRETLS" in self.extensions and self.tls:
            params.append("REQUIRETLS")  # RFC 8689 §4.2.1 (and §5 for our bounces of it)
        mail = f"MAIL FROM:<{sender}>" + "".join(f" {p}" for p in params)
        rcpts = [
            f"RCPT TO:<{r}>"
            + "".join(f" {p}" for p in dsn_params.rcpt_params(meta.recipient_dsn(r)))
            if offers_dsn
            else f"RCPT TO:<{r}>"
            for r in recipients
        ]
        # RFC 5321 §4.1.1.4: the end of data clears the server's buffers, whatever its
        # reply; only a transaction that ended otherwise needs RSET (§4.1.1.5).
        reset = self._transaction_open
        self._transaction_open = True
        self.transactions += 1
        replies_before = self.replies_read
        try:
            if (
                "PIPELINING" in self.extensions
                and "CHUNKING" in self.extensions
                and isinstance(data, bytes)
            ):
                await self._chunked(mail, rcpts, recipients, data, reset, result)
            elif "PIPELINING" in self.extensions:
                await self._pipelined(mail, rcpts, recipients, data, reset, result)
            else:
                await self._lockstep(mail, rcpts, recipients, data, reset, result)
        except SessionError as exc:
            self.broken = True
            lost = Reply(
                exc.reply.code if exc.reply.transient else 421, exc.reply.lines, exc.reply.local
            )
            for r in recipients:
                result.replies.setdefault(r, lost)
        result.server_spoke = self.replies_read > replies_before
        return result

    def _requiretls_problem(self) -> Reply | None:
        """RFC 8689 §4.2.1: authenticated TLS and REQUIRETLS offered, or a bounce."""
        if not self.tls or self.authenticated is None:
            return local_reply(
                550, "5.7.10", f"REQUIRETLS: no authenticated TLS with {self.hop.relay}"
            )
        if "REQUIRETLS" not in self.extensions:
            return local_reply(
                550, "5.7.30", f"REQUIRETLS support required: {self.hop.relay} does not offer it"
            )
        return None

    async def _pipelined(
        self,
        mail: str,
        rcpts: list[str],
        recipients: Sequence[str],
        data: MessageSource,
        reset: bool,
        result: TransactionResult,
    ) -> None:
        # RFC 2920 §3.1: RSET, MAIL, RCPT and DATA may be sent as one group; the client
        # then reads the replies in order.
        lines = (["RSET"] if reset else []) + [mail, *rcpts, "DATA"]
        await self._write("".join(f"{line}\r\n" for line in lines).encode())
        if reset:
            await self.read_reply()  # a failed RSET shows in MAIL's reply anyway
        mail_reply = await self.read_reply()
        rcpt_replies = [await self.read_reply() for _ in rcpts]
        data_reply = await self.read_reply()
        await self._finish(mail_reply, rcpt_replies, recipients, data_reply, data, result)

    async def _chunked(
        self,
        mail: str,
        rcpts: list[str],
        recipients: Sequence[str],
        data: bytes,
        reset: bool,
        result: TransactionResult,
    ) -> None:
        """RFC 3030 + RFC 2920: the whole transaction, message included, in one write.

        ``BDAT n LAST`` carries the message as is (no dot-stuffing, RFC 3030 §2), so
        nothing waits for a 354: one round trip per message instead of two. A server
        rejects the BDAT of a transaction without an accepted recipient after reading
        its n octets (§4.2), so sending it blindly keeps the connection in step.
        """
        body = canonical_line_ends(data)
        lines = (["RSET"] if reset else []) + [mail, *rcpts, f"BDAT {len(body)} LAST"]
        await self._write("".join(f"{line}\r\n" for line in lines).encode() + body)
        if reset:
            await self.read_reply()
        mail_reply = await self.read_reply()
        rcpt_replies = [await self.read_reply() for _ in rcpts]
        final = await self.read_reply()
        if not mail_reply.positive:
            result.replies.update(dict.fromkeys(recipients, mail_reply))
            return
        # RFC 3030 §2: BDAT LAST after an accepted recipient ends the transaction
        self._transaction_open = not any(r.positive for r in rcpt_replies)
        for recipient, reply in zip(recipients, rcpt_replies, strict=True):
            result.replies[recipient] = final if reply.positive else reply

    async def _lockstep(
        self,
        mail: str,
        rcpts: list[str],
        recipients: Sequence[str],
        data: MessageSource,
        reset: bool,
        result: TransactionResult,
    ) -> None:
        if reset:
            await self.command("RSET")
        mail_reply = await self.command(mail)
        if not mail_reply.positive:
            result.replies.update(dict.fromkeys(recipients, mail_reply))
            return
        rcpt_replies = [await self.command(line) for line in rcpts]
        if not any(r.positive for r in rcpt_replies):
            result.replies.update(zip(recipients, rcpt_replies, strict=True))
            return
        data_reply = await self.command("DATA")
        await self._finish(mail_reply, rcpt_replies, recipients, data_reply, data, result)

    async def _finish(
        self,
        mail_reply: Reply,
        rcpt_replies: list[Reply],
        recipients: Sequence[str],
        data_reply: Reply,
        data: MessageSource,
        result: TransactionResult,
    ) -> None:
        if not mail_reply.positive:
            result.replies.update(dict.fromkeys(recipients, mail_reply))
            if data_reply.code == 354:
                await self._abort_data()
            return
        accepted = [r for r, reply in zip(recipients, rcpt_replies, strict=True) if reply.positive]
        for recipient, reply in zip(recipients, rcpt_replies, strict=True):
            if not reply.positive:
                result.replies[recipient] = reply
        if not accepted:
            if data_reply.code == 354:
                await self._abort_data()
            return
        if data_reply.code != 354:
            result.replies.update(dict.fromkeys(accepted, data_reply))
            return
        if isinstance(data, bytes):
            await self._write(dot_stuff(data))
        else:
            async for piece in stuffed_pieces(data):
                await self._write(piece)
        final = await self.read_reply()
        self._transaction_open = False  # the end of data was answered
        result.replies.update(dict.fromkeys(accepted, final))

    async def _abort_data(self) -> None:
        # RFC 2920 §3.1: DATA was accepted although no recipient was: send an empty
        # message; its reply means nothing (and the next transaction starts with RSET).
        await self._write(b".\r\n")
        await self.read_reply()

    # -- primitives ---------------------------------------------------------

    async def command(self, line: str, *, log_as: str | None = None) -> Reply:
        await self._write(f"{line}\r\n".encode())
        return await self.read_reply()

    async def _write(self, data: bytes) -> None:
        """Send ``data``; wait (within the command timeout) only for what the kernel did
        not take at once. A lost connection shows in the next reply's read."""
        try:
            self._writer.write(data)
            if self._writer.transport.get_write_buffer_size():
                async with asyncio.timeout(self._settings.command_timeout):
                    await self._writer.drain()
        except TimeoutError:
            self.broken = True
            raise SessionError(
                local_reply(421, "4.4.2", f"timeout sending to {self.hop.relay}")
            ) from None
        except OSError as exc:
            self.broken = True
            raise SessionError(
                local_reply(421, "4.4.2", f"lost connection with {self.hop.relay}: {exc}")
            ) from None

    async def read_reply(self, timeout: float | None = None) -> Reply:
        """The next reply, within ``timeout`` (default: the command timeout)."""
        timeout = self._settings.command_timeout if timeout is None else timeout
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._replies:
            self._arm(deadline)
            self._reading = True
            try:
                chunk = await self._reader.read(READ_CHUNK)
            except (OSError, ssl.SSLError) as exc:
                self.broken = True
                if self._timed_out:
                    raise self._timeout_error() from None
                raise SessionError(
                    local_reply(421, "4.4.2", f"lost connection with {self.hop.relay}: {exc}")
                ) from None
            finally:
                self._reading = False
            if self._timed_out:
                self.broken = True
                raise self._timeout_error()
            if not chunk:
                self.broken = True
                raise SessionError(
                    local_reply(421, "4.4.2", f"{self.hop.relay} closed the connection")
                )
            try:
                self._replies.extend(self._parser.feed(chunk))
            except ReplyError as exc:
                self.broken = True
                raise SessionError(local_reply(421, "4.5.0", f"{self.hop.relay}: {exc}")) from None
        self.replies_read += 1
        return self._replies.popleft()

    def _arm(self, deadline: float) -> None:
        """Time the read to come out at ``deadline``. One timer serves the whole session
        and moves only when a deadline comes before it: per message this is a clock read,
        where an ``asyncio.timeout`` per read cost about 15 µs of Python."""
        self._deadline = deadline
        watchdog = self._watchdog
        if watchdog is None or watchdog.when() > deadline:
            if watchdog is not None:
                watchdog.cancel()
            self._watchdog = asyncio.get_running_loop().call_at(deadline, self._watch)

    def _watch(self) -> None:
        """The timer: a read still waiting past its deadline ends the connection (its
        read then raises the timeout); otherwise the timer waits for the deadline now."""
        self._watchdog = None
        if not self._reading:
            return  # the next read arms it again
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._watchdog = loop.call_at(self._deadline, self._watch)
            return
        self._timed_out = True
        self._writer.transport.abort()

    def _timeout_error(self) -> SessionError:
        return SessionError(local_reply(421, "4.4.2", f"timeout waiting for {self.hop.relay}"))

    async def close(self) -> None:
        """QUIT politely (bounded by a short timeout), then close."""
        if not self.broken:
            with contextlib.suppress(SessionError):
                await self._write(b"QUIT\r\n")
                await self.read_reply(min(5.0, self._settings.command_timeout))
        self.abort()

    def abort(self) -> None:
        self.broken = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        with contextlib.suppress(Exception):
            self._writer.close()


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


_SIZE_VALUE = re.compile(r"[0-9]{1,20}")


def _int(text: str) -> int:
    """An EHLO SIZE value (RFC 1870 §4: 1*20DIGIT); anything else means "no limit" (0)."""
    words = text.split()
    return int(words[0]) if words and _SIZE_VALUE.fullmatch(words[0]) else 0


def _sni(hop: Hop) -> str | None:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in hop.host else socket.AF_INET, hop.host)
    except OSError:
        return hop.host
    return None  # RFC 6066 §3: no SNI for IP literals


def os_error_text(exc: OSError) -> str:
    """The system's words for a socket error, as Postfix logs them ("Connection refused"):
    asyncio's own text ("Connect call failed ('192.0.2.1', 25)") repeats the address."""
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)


def _bind(hop: Hop, settings: ClientSettings) -> tuple[tuple[str, int] | None, int]:
    """``local_addr`` for the source address of the hop's family (config ``source_ipv*``)."""
    if ":" in hop.address:
        source, family = settings.source_ipv6, socket.AF_INET6
    elif hop.address.replace(".", "").isdigit() or (
        settings.source_ipv4 and not settings.source_ipv6
    ):
        source, family = settings.source_ipv4, socket.AF_INET
    elif settings.source_ipv6 and not settings.source_ipv4:
        source, family = settings.source_ipv6, socket.AF_INET6
    else:
        return None, 0
    return ((source, 0), family) if source else (None, 0)


_contexts: dict[tuple[str, str | None], ssl.SSLContext] = {}


def _tls_context(route: Route) -> ssl.SSLContext:
    """Opportunistic TLS does not verify (RFC 7435: encryption without authentication
    beats plain text); a relay host is verified against the system CAs or ``ca_file``."""
    key = (
        "may" if route.tls == "opportunistic" else "verify",
        str(route.ca_file) if route.ca_file else None,
    )
    context = _contexts.get(key)
    if context is None:
        if key[0] == "may":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=key[1])
        _contexts[key] = context
    return context


def _requirement_name(requirement: TlsRequirement) -> str:
    if requirement.requiretls:
        return "REQUIRETLS"
    if requirement.kind == "dane":
        return "DANE"
    return "MTA-STS" if requirement.enforce else "MTA-STS (testing)"


def _result_type(exc: ssl.SSLCertVerificationError) -> str:
    """RFC 8460 §4.3.2: the result type of a failed certificate verification."""
    code = exc.verify_code
    if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        return "certificate-expired"
    if code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
        return "certificate-host-mismatch"
    return "certificate-not-trusted"


def _peer_chain(writer: asyncio.StreamWriter) -> list[bytes]:
    """The certificates the server sent, leaf first, in DER (DANE-TA needs the chain).

    Python 3.13 has ``SSLObject.get_unverified_chain``; 3.11 and 3.12 have it on the
    internal object only; the leaf alone is the last resort (enough for DANE-EE).
    """
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return []
    getter = getattr(ssl_object, "get_unverified_chain", None) or getattr(
        getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None
    )
    if getter is not None:
        chain = getter() or []
        return [
            c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
            for c in chain
        ]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []
