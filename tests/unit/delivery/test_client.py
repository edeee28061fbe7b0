"""The SMTP client against a scripted server on loopback (RFC 5321, 2920, 1870, 3207, 6531)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from mailwright.delivery.client import ClientSettings, Session, SessionError, dot_stuff
from mailwright.delivery.routing import Hop, Route, TlsRequirement
from mailwright.queue import DsnRecipient, QueueMeta
from mailwright.testing.ports import free_port
from mailwright.testing.tls import CertificateFiles, make_certificate

SETTINGS = ClientSettings(helo="mail.example.com", connect_timeout=2.0, command_timeout=2.0)
PLAIN = Route((), tls="none")
MAYBE_TLS = Route((), tls="opportunistic")


@dataclass
class Script:
    """What the fake server answers; everything it receives is recorded."""

    extensions: list[str] = field(default_factory=lambda: ["PIPELINING", "SIZE 100000", "8BITMIME"])
    greeting: str = "220 fake.example ESMTP"
    ehlo_reply: str | None = None
    rcpt: dict[str, str] = field(default_factory=dict)
    after_starttls: bytes = b""
    drop_after: str | None = None
    drop_at: int = 1
    """Hang up at this occurrence of ``drop_after``."""
    slow: dict[str, float] = field(default_factory=dict)
    """Seconds to wait before answering a verb."""
    raw_reply: dict[str, bytes] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    tls: ssl.SSLContext | None = None
    lines: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    reads: list[bytes] = field(default_factory=list)


async def handle(
    script: Script, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    async def say(text: str) -> None:
        writer.write(text.encode() + b"\r\n")
        await writer.drain()

    await say(script.greeting)
    if not script.greeting.startswith("220"):
        writer.close()
        return
    while line_bytes := await reader.readline():
        line = line_bytes.decode().rstrip("\r\n")
        script.lines.append(line)
        verb = line.split(" ")[0].split(":")[0].upper()
        if verb in script.silent:
            await asyncio.sleep(10)
        if script.drop_after and verb == script.drop_after:
            seen = [x for x in script.lines if x.upper().startswith(script.drop_after)]
            if len(seen) >= script.drop_at:
                writer.close()
                return
        if verb in script.slow:
            await asyncio.sleep(script.slow[verb])
        if verb in script.raw_reply:
            writer.write(script.raw_reply[verb])
            await writer.drain()
            continue
        if verb == "EHLO":
            if script.ehlo_reply:
                await say(script.ehlo_reply)
                continue
            exts = [e for e in script.extensions if e != "STARTTLS" or script.tls]
            body = ["fake.example", *exts]
            await say("\r\n".join([*(f"250-{x}" for x in body[:-1]), f"250 {body[-1]}"]))
        elif verb == "HELO":
            await say("250 fake.example")
        elif verb == "STARTTLS":
            writer.write(b"220 2.0.0 go ahead\r\n" + script.after_starttls)
            await writer.drain()
            assert script.tls is not None
            await writer.start_tls(script.tls)
            script.extensions = [e for e in script.extensions if e != "STARTTLS"] + ["TLSDONE"]
        elif verb == "MAIL":
            await say("250 2.1.0 Ok")
        elif verb == "RCPT":
            address = line.split("<", 1)[1].split(">", 1)[0]
            await say(script.rcpt.get(address, "250 2.1.5 Ok"))
        elif verb == "DATA":
            if not any(
                r.startswith("2") for r in [script.rcpt.get(a, "250") for a in _rcpts(script)]
            ):
                await say("554 5.5.1 Error: no valid recipients")
                continue
            await say("354 End data with <CR><LF>.<CR><LF>")
            data = await reader.readuntil(b"\r\n.\r\n")
            script.messages.append(data)
            await say("250 2.0.0 Ok: queued as 42")
        elif verb == "BDAT":
            size = int(line.split()[1])
            chunk = await reader.readexactly(size)
            if not any(script.rcpt.get(a, "250").startswith("2") for a in _rcpts(script)):
                await say("554 5.5.1 Error: no valid recipients")
                continue
            script.messages.append(chunk)
            await say("250 2.0.0 Ok: queued as 43")
        elif verb == "RSET":
            await say("250 2.0.0 Ok")
        elif verb == "QUIT":
            await say("221 2.0.0 Bye")
            break
        else:
            await say("502 5.5.2 Error: command not recognized")
    writer.close()


def _rcpts(script: Script) -> list[str]:
    # recipients of the current transaction: RCPT lines since the last MAIL
    last_mail = max(i for i, line in enumerate(script.lines) if line.startswith("MAIL"))
    return [
        line.split("<", 1)[1].split(">", 1)[0]
        for line in script.lines[last_mail:]
        if line.startswith("RCPT")
    ]


Start = Callable[[Script], Awaitable[Hop]]


@pytest.fixture
async def server() -> AsyncIterator[Start]:
    """Factory: ``hop = await server(script)`` runs a scripted server on a free port."""
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> Hop:
        running = await asyncio.start_server(lambda r, w: handle(script, r, w), "127.0.0.1", 0)
        servers.append(running)
        port = running.sockets[0].getsockname()[1]
        return Hop("fake.example", "127.0.0.1", port)

    yield start
    for running in servers:
        running.close()


async def open_(hop: Hop, route: Route = PLAIN, **kw: bool) -> Session:
    return await Session.open(hop, route, SETTINGS, **kw)


MESSAGE = b"From: a@example.com\r\nSubject: t\r\n\r\n.leading dot\r\nend\r\n"


def test_dot_stuff() -> None:
    # RFC 5321 §4.5.2: a leading dot is doubled; the end is CRLF.CRLF.
    assert dot_stuff(b".a\r\nb\r\n.\r\n") == b"..a\r\nb\r\n..\r\n.\r\n"
    assert dot_stuff(b"no newline at end") == b"no newline at end\r\n.\r\n"
    assert dot_stuff(b"bare\nlf\n.x") == b"bare\r\nlf\r\n..x\r\n.\r\n"


async def test_pipelined_transaction(server: Start) -> None:
    script = Script(rcpt={"bad@example.net": "550 5.1.1 <bad@example.net>: unknown"})
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net", "bad@example.net"], MESSAGE)
    assert str(result.replies["x@example.net"]) == "250 2.0.0 Ok: queued as 42"
    assert result.replies["bad@example.net"].enhanced == "5.1.1"
    assert result.accepted == ["x@example.net"]
    assert script.lines[:5] == [
        "EHLO mail.example.com",
        f"MAIL FROM:<a@example.com> SIZE={len(MESSAGE)}",
        "RCPT TO:<x@example.net>",
        "RCPT TO:<bad@example.net>",
        "DATA",
    ]
    # transparency: the server received the dot-stuffed form
    assert script.messages == [dot_stuff(MESSAGE)]
    # RFC 5321 §4.1.1.4: the end of data left the server in its initial state, so the
    # next message on the connection needs no RSET
    await session.send("a@example.com", ["y@example.net"], MESSAGE)
    assert script.lines[5:7] == [
        f"MAIL FROM:<a@example.com> SIZE={len(MESSAGE)}",
        "RCPT TO:<y@example.net>",
    ]
    assert "RSET" not in script.lines
    await session.close()
    assert script.lines[-1] == "QUIT"


async def test_lockstep_without_pipelining_sends_no_data_when_all_rcpt_fail(
    server: Start,
) -> None:
    script = Script(extensions=[], rcpt={"x@example.net": "450 4.2.0 later"})
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE)
    assert result.replies["x@example.net"].transient
    assert "DATA" not in script.lines
    assert script.messages == []


async def test_pipelined_all_rcpt_rejected_data_refused(server: Start) -> None:
    script = Script(rcpt={"x@example.net": "550 5.1.1 no"})
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE)
    assert str(result.replies["x@example.net"]) == "550 5.1.1 no"
    assert script.messages == []
    # RFC 5321 §4.1.1.5: the server still holds the MAIL of a transaction that ended
    # without its data: the next one starts with RSET, and the one after that does not
    await session.send("a@example.com", ["y@example.net"], MESSAGE)
    await session.send("a@example.com", ["z@example.net"], MESSAGE)
    assert [line.split(":")[0] for line in script.lines[1:]] == [
        *("MAIL FROM", "RCPT TO", "DATA"),
        *("RSET", "MAIL FROM", "RCPT TO", "DATA"),
        *("MAIL FROM", "RCPT TO", "DATA"),
    ]
    assert len(script.messages) == 2
    assert not session.broken


async def test_size_limit_is_checked_before_sending(server: Start) -> None:
    script = Script(extensions=["PIPELINING", "SIZE 10"])
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE)
    reply = result.replies["x@example.net"]
    assert reply.code == 552 and reply.enhanced == "5.3.4" and reply.local
    assert not any(line.startswith("MAIL") for line in script.lines)


async def test_8bitmime_and_smtputf8_parameters(server: Start) -> None:
    script = Script(extensions=["PIPELINING", "8BITMIME", "SMTPUTF8"])
    session = await open_(await server(script))
    data = "Subject: Grüße\r\n\r\nÄ\r\n".encode()
    await session.send("jörg@example.com", ["x@example.net"], data)
    assert "MAIL FROM:<jörg@example.com> BODY=8BITMIME SMTPUTF8" in script.lines


async def test_utf8_address_without_smtputf8_bounces_5_6_7(server: Start) -> None:
    session = await open_(await server(Script()))
    result = await session.send("a@example.com", ["jörg@example.net"], MESSAGE)
    reply = result.replies["jörg@example.net"]
    assert reply.permanent and reply.enhanced == "5.6.7"


async def test_address_with_crlf_is_never_sent(server: Start) -> None:
    script = Script()
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net>\r\nRSET"], MESSAGE)
    assert result.replies["x@example.net>\r\nRSET"].enhanced == "5.1.3"
    assert not any(line.startswith("MAIL") for line in script.lines)


async def test_helo_fallback_when_ehlo_is_unknown(server: Start) -> None:
    script = Script(ehlo_reply="502 5.5.2 Error: command not recognized")
    session = await open_(await server(script), MAYBE_TLS)
    assert script.lines[:2] == ["EHLO mail.example.com", "HELO mail.example.com"]
    assert session.extensions == {}


async def test_5xx_greeting_is_a_session_error(server: Start) -> None:
    with pytest.raises(SessionError) as info:
        await open_(await server(Script(greeting="554 5.7.1 no service")))
    assert info.value.reply.code == 554 and not info.value.reply.local


async def test_connection_refused_is_4_4_1() -> None:
    with pytest.raises(SessionError) as info:
        await Session.open(Hop("x", "127.0.0.1", free_port()), PLAIN, SETTINGS)
    assert info.value.reply.enhanced == "4.4.1" and info.value.reply.local


async def test_lost_connection_mid_transaction_defers_everyone(
    server: Start,
) -> None:
    script = Script(extensions=[], drop_after="RCPT")
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net", "y@example.net"], MESSAGE)
    assert {r.enhanced for r in result.replies.values()} == {"4.4.2"}
    assert all(r.transient for r in result.replies.values())
    assert session.broken


async def test_malformed_reply_is_a_protocol_error(server: Start) -> None:
    script = Script(raw_reply={"MAIL": b"hello there\r\n"})
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE)
    assert result.replies["x@example.net"].enhanced == "4.5.0"
    assert session.broken


async def test_silent_server_times_out(server: Start) -> None:
    script = Script(extensions=[], silent={"MAIL"})
    hop = await server(script)
    session = await Session.open(
        hop, PLAIN, ClientSettings(helo="h.example", connect_timeout=1, command_timeout=0.3)
    )
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE)
    reply = result.replies["x@example.net"]
    assert reply.enhanced == "4.4.2" and "timeout" in reply.text


async def test_each_reply_has_the_whole_timeout(server: Start) -> None:
    # Two slow replies in a row take longer than the timeout together, not each: the
    # session's one timer, due while the second is read, waits on to that read's deadline.
    script = Script(extensions=[], slow={"MAIL": 0.35, "RCPT": 0.35, "DATA": 0.35})
    settings = ClientSettings(helo="h.example", connect_timeout=0.5, command_timeout=0.5)
    session = await Session.open(await server(script), PLAIN, settings)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE)
    assert loop.time() - started > 1.0  # longer than twice the timeout in all
    assert result.replies["x@example.net"].positive
    assert not session.broken


async def test_a_shorter_timeout_than_the_timer_still_holds(server: Start) -> None:
    # the timer was set for the command timeout (30 s); QUIT's read gives 0.3 s
    script = Script(extensions=[], silent={"QUIT"})
    settings = ClientSettings(helo="h.example", connect_timeout=30, command_timeout=30)
    session = await Session.open(await server(script), PLAIN, settings)
    await session._write(b"QUIT\r\n")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SessionError) as info:
        await session.read_reply(0.3)
    assert loop.time() - started < 2
    assert info.value.reply.enhanced == "4.4.2" and "timeout" in info.value.reply.text
    assert session.broken


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificate(tmp_path_factory.mktemp("client-tls"))


async def test_opportunistic_starttls_reissues_ehlo(server: Start, certs: CertificateFiles) -> None:
    script = Script(extensions=["PIPELINING", "STARTTLS"], tls=certs.server_context())
    session = await open_(await server(script), MAYBE_TLS)
    assert session.tls
    assert script.lines[:3] == ["EHLO mail.example.com", "STARTTLS", "EHLO mail.example.com"]
    assert "TLSDONE" in session.extensions  # RFC 3207 §4.2: the post-TLS EHLO counts
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE)
    assert result.replies["x@example.net"].positive


async def test_starttls_response_injection_is_refused(
    server: Start, certs: CertificateFiles
) -> None:
    # CVE-2011-0411 shape: a reply smuggled in right behind "220 go ahead".
    script = Script(
        extensions=["STARTTLS"],
        tls=certs.server_context(),
        after_starttls=b"250 2.0.0 injected\r\n",
    )
    with pytest.raises(SessionError) as info:
        await open_(await server(script), MAYBE_TLS)
    assert info.value.reply.enhanced == "4.5.0"


async def test_required_starttls_missing_is_4_7_4(server: Start) -> None:
    with pytest.raises(SessionError) as info:
        await open_(await server(Script()), Route((), tls="starttls"))
    assert info.value.reply.enhanced == "4.7.4"


async def test_untrusted_certificate_fails_required_tls(
    server: Start, certs: CertificateFiles, tmp_path: Path
) -> None:
    script = Script(extensions=["STARTTLS"], tls=certs.server_context())
    with pytest.raises(SessionError) as info:
        await open_(await server(script), Route((), tls="starttls"))
    assert info.value.reply.enhanced == "4.7.5"
    assert not info.value.tls_failed  # required TLS: no plain-text retry


async def test_source_address_is_bound() -> None:
    peers: list[str] = []

    async def who(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[0])
        writer.write(b"220 x ESMTP\r\n")
        await reader.readline()
        writer.write(b"250 x\r\n")
        await writer.drain()
        await reader.readline()
        writer.close()

    running = await asyncio.start_server(who, "127.0.0.1", 0)
    port = running.sockets[0].getsockname()[1]
    settings = ClientSettings(helo="h.example", source_ipv4="127.0.0.2", command_timeout=2)
    session = await Session.open(Hop("x", "127.0.0.1", port), PLAIN, settings)
    await session.close()
    running.close()
    assert peers == ["127.0.0.2"]
    assert session.relay == f"x[127.0.0.1]:{port}"


async def test_chunking_sends_the_whole_transaction_at_once(server: Start) -> None:
    # RFC 3030: BDAT carries the message unstuffed; nothing waits for a 354.
    script = Script(
        extensions=["PIPELINING", "CHUNKING"],
        rcpt={"bad@example.net": "550 5.1.1 unknown"},
    )
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net", "bad@example.net"], MESSAGE)
    assert str(result.replies["x@example.net"]) == "250 2.0.0 Ok: queued as 43"
    assert str(result.replies["bad@example.net"]) == "550 5.1.1 unknown"
    assert script.lines[1:4] == [
        "MAIL FROM:<a@example.com>",
        "RCPT TO:<x@example.net>",
        "RCPT TO:<bad@example.net>",
    ]
    assert script.lines[4] == f"BDAT {len(MESSAGE)} LAST"
    assert script.messages == [MESSAGE]  # ".leading dot" is not doubled
    assert "DATA" not in script.lines


async def test_chunking_with_no_accepted_recipient_stays_in_step(server: Start) -> None:
    script = Script(
        extensions=["PIPELINING", "CHUNKING"], rcpt={"x@example.net": "450 4.2.0 later"}
    )
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE)
    assert str(result.replies["x@example.net"]) == "450 4.2.0 later"
    assert script.messages == []
    result = await session.send("a@example.com", ["y@example.net"], MESSAGE + b"second\r\n")
    assert result.replies["y@example.net"].positive
    assert script.messages == [MESSAGE + b"second\r\n"]
    # the refused BDAT ended no transaction: RSET first; the accepted one did
    await session.send("a@example.com", ["z@example.net"], MESSAGE)
    assert [line.split(" ")[0] for line in script.lines[1:]] == [
        *("MAIL", "RCPT", "BDAT"),
        *("RSET", "MAIL", "RCPT", "BDAT"),
        *("MAIL", "RCPT", "BDAT"),
    ]


async def test_server_spoke_tells_whether_a_resend_is_safe(server: Start) -> None:
    script = Script(extensions=[], drop_after="MAIL", drop_at=2)
    session = await open_(await server(script))
    first = await session.send("a@example.com", ["x@example.net"], MESSAGE)
    assert first.server_spoke and first.replies["x@example.net"].positive
    second = await session.send("a@example.com", ["y@example.net"], MESSAGE)
    assert not second.server_spoke and session.broken  # hung up before any answer


async def test_no_greeting_within_the_connect_timeout() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)  # accepts the connection, never says 220

    running = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = running.sockets[0].getsockname()[1]
    settings = ClientSettings(helo="h.example", connect_timeout=0.3, command_timeout=60)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SessionError) as info:
        await Session.open(Hop("x", "127.0.0.1", port), PLAIN, settings)
    assert loop.time() - started < 2  # the connect timeout, not the command timeout
    assert info.value.reply.enhanced == "4.4.2" and "timeout" in info.value.reply.text
    running.close()


async def test_auth_without_tls_only_to_loopback(server: Start) -> None:
    # tls=none with credentials: allowed to a relay on loopback (this one), with PLAIN.
    script = Script(extensions=["AUTH PLAIN LOGIN"], raw_reply={"AUTH": b"235 2.7.0 ok\r\n"})
    route = Route((), tls="none", username="u", password="p")
    session = await open_(await server(script), route)
    assert script.lines[1] == "AUTH PLAIN AHUAcA=="  # base64("\0u\0p"), RFC 4616
    assert session.peer == "127.0.0.1"


async def test_8bit_data_to_a_hop_without_8bitmime_is_sent_as_7bit(server: Start) -> None:
    # RFC 6152 §3: no 8BITMIME at the next hop: the message is converted, not sent raw.
    script = Script(extensions=["PIPELINING"])
    session = await open_(await server(script))
    data = "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncafé\r\n".encode()
    result = await session.send("a@example.com", ["x@example.net"], data)
    assert result.replies["x@example.net"].code == 250
    [sent] = script.messages
    assert sent.isascii() and b"caf=C3=A9" in sent
    assert not any("BODY=8BITMIME" in line for line in script.lines)


async def test_dsn_parameters_pass_on_to_a_server_offering_dsn(server: Start) -> None:
    # RFC 3461 §5.2: a DSN-capable next hop gets RET, ENVID, NOTIFY and ORCPT as given.
    meta = QueueMeta(
        ret="HDRS",
        envid="E 1",
        dsn={"x@example.net": DsnRecipient(("SUCCESS",), "rfc822;x@example.net")},
    )
    script = Script(extensions=["PIPELINING", "DSN"])
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net", "y@example.net"], MESSAGE, meta)
    assert result.dsn_passed
    assert "MAIL FROM:<a@example.com> RET=HDRS ENVID=E+201" in script.lines
    assert "RCPT TO:<x@example.net> NOTIFY=SUCCESS ORCPT=rfc822;x@example.net" in script.lines
    assert "RCPT TO:<y@example.net>" in script.lines


async def test_dsn_parameters_are_not_sent_without_the_extension(server: Start) -> None:
    meta = QueueMeta(ret="FULL", dsn={"x@example.net": DsnRecipient(notify=())})
    script = Script(extensions=["PIPELINING"])
    session = await open_(await server(script))
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE, meta)
    assert not result.dsn_passed
    assert "MAIL FROM:<a@example.com>" in script.lines
    assert "RCPT TO:<x@example.net>" in script.lines


async def test_smtputf8_from_the_submission_is_passed_on(server: Start) -> None:
    # RFC 6531 §3.4: a message received with SMTPUTF8 may carry UTF-8 header fields.
    script = Script(extensions=["PIPELINING", "8BITMIME", "SMTPUTF8"])
    session = await open_(await server(script))
    data = "Subject: Grüße\r\n\r\nx\r\n".encode()
    await session.send("a@example.com", ["x@example.net"], data, QueueMeta(smtputf8=True))
    assert "MAIL FROM:<a@example.com> BODY=8BITMIME SMTPUTF8" in script.lines


# -- authenticated TLS: MTA-STS/DANE requirements and REQUIRETLS (RFC 8689) ----------


def _strict(certs: CertificateFiles, *, requiretls: bool = False) -> Route:
    requirement = TlsRequirement("pkix", "example.net", names=("localhost",), requiretls=requiretls)
    return Route((), ca_file=certs.ca, requirements=(("localhost", requirement),))


async def test_requiretls_passes_the_mail_parameter(server: Start, certs: CertificateFiles) -> None:
    script = Script(extensions=["STARTTLS", "REQUIRETLS"], tls=certs.server_context())
    hop = replace(await server(script), host="localhost")
    session = await open_(hop, _strict(certs, requiretls=True))
    assert session.authenticated == "pkix"
    meta = QueueMeta(requiretls=True)
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE, meta)
    assert result.replies["x@example.net"].positive
    assert "MAIL FROM:<a@example.com> REQUIRETLS" in script.lines


async def test_requiretls_server_without_the_extension_is_5_7_30(
    server: Start, certs: CertificateFiles
) -> None:
    script = Script(extensions=["STARTTLS"], tls=certs.server_context())
    hop = replace(await server(script), host="localhost")
    with pytest.raises(SessionError) as info:
        await open_(hop, _strict(certs, requiretls=True))
    assert (info.value.reply.code, info.value.reply.enhanced) == (550, "5.7.30")


async def test_requiretls_certificate_failure_is_5_7_10(
    server: Start, certs: CertificateFiles, tmp_path: Path
) -> None:
    other = make_certificate(tmp_path / "other")  # a CA the client does not trust
    script = Script(extensions=["STARTTLS", "REQUIRETLS"], tls=other.server_context())
    hop = replace(await server(script), host="localhost")
    with pytest.raises(SessionError) as info:
        await open_(hop, _strict(certs, requiretls=True))
    assert (info.value.reply.code, info.value.reply.enhanced) == (550, "5.7.10")
    assert info.value.policy_failure == "certificate-not-trusted"


async def test_requiretls_message_over_unauthenticated_tls_is_5_7_10(
    server: Start, certs: CertificateFiles
) -> None:
    script = Script(extensions=["STARTTLS", "REQUIRETLS"], tls=certs.server_context())
    session = await open_(await server(script), MAYBE_TLS)
    meta = QueueMeta(requiretls=True)
    result = await session.send("a@example.com", ["x@example.net"], MESSAGE, meta)
    assert result.replies["x@example.net"].enhanced == "5.7.10"
    assert not any(line.startswith("MAIL") for line in script.lines)


async def test_requiretls_bounce_goes_anyway(server: Start, certs: CertificateFiles) -> None:
    # RFC 8689 §5: a bounce (null reverse path) is not held back for REQUIRETLS.
    script = Script(extensions=["STARTTLS"], tls=certs.server_context())
    session = await open_(await server(script), MAYBE_TLS)
    result = await session.send("", ["x@example.net"], MESSAGE, QueueMeta(requiretls=True))
    assert result.replies["x@example.net"].positive


async def test_policy_requirement_without_starttls_is_4_7_4(
    server: Start, certs: CertificateFiles
) -> None:
    hop = replace(await server(Script()), host="localhost")
    with pytest.raises(SessionError) as info:
        await open_(hop, _strict(certs))
    assert info.value.reply.enhanced == "4.7.4" and not info.value.tls_failed
    assert info.value.policy_failure == "starttls-not-supported"
