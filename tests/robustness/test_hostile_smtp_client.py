"""The delivery client against a hostile or broken server on loopback: whatever the
server says in its EHLO reply, a malformed extension parameter is no reason to bounce."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from robust_support import robust, run

from mailwright.delivery.client import ClientSettings, Session, SessionError, TransactionResult
from mailwright.delivery.routing import Hop, Route

MESSAGE = b"From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n"


async def _serve(size_param: str) -> tuple[asyncio.AbstractServer, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake.example ESMTP\r\n")
        in_data = False
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    writer.write(b"250 2.0.0 queued\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(f"250-fake.example\r\n250 SIZE {size_param}\r\n".encode())
            elif verb == b"DATA":
                in_data = True
                writer.write(b"354 go\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 2.0.0 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("size_param", ["-1", "\u0665"])
async def test_malformed_size_limit_is_ignored(size_param: str) -> None:
    server, port = await _serve(size_param)
    async with server:
        hop = Hop("fake.example", "127.0.0.1", port)
        settings = ClientSettings(helo="h.example", connect_timeout=2, command_timeout=2)
        session = await Session.open(hop, Route((), tls="none"), settings)
        try:
            result = await session.send("a@example.com", ["b@example.net"], MESSAGE)
        finally:
            await session.close()
    assert result.accepted == ["b@example.net"], result.replies


# --- a server that answers anything -------------------------------------------------------

REPLIES = [
    b"250 ok\r\n",
    b"250-fake.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-SIZE 100\r\n250 8BITMIME\r\n",
    b"250-fake.example\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n",
    b"354 go\r\n",
    b"451 4.3.0 later\r\n",
    b"550 5.1.1 no\r\n",
    b"250-a\r\n550 b\r\n",  # the code changes inside one reply
    b"2\xc2\xb2\xc2\xb2 x\r\n",
    b"999 x\r\n",
    b"250",  # an unfinished line
    b"\r\n",
    b"\xff\xfe garbage\r\n",
    b"250-" + b"x" * 3000 + b"\r\n",
    b"250-x\r\n" * 150,
    b"221 bye\r\n",
    b"CLOSE",
]


@st.composite
def server_script(draw: st.DrawFn) -> list[bytes]:
    return draw(st.lists(st.sampled_from(REPLIES), max_size=12))


async def _scripted(script: list[bytes]) -> tuple[asyncio.AbstractServer, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pending = list(script)
        writer.write(pending.pop(0) if pending else b"220 fake.example\r\n")
        with contextlib.suppress(ConnectionError):
            while await reader.readline():
                chunk = pending.pop(0) if pending else b"250 ok\r\n"
                if chunk == b"CLOSE":
                    break
                writer.write(chunk)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@robust(40)
@given(server_script(), st.sampled_from(["none", "opportunistic"]))
def test_client_gets_a_result_or_a_session_error(script: list[bytes], tls: str) -> None:
    async def go() -> TransactionResult | SessionError:
        server, port = await _scripted(script)
        async with server:
            hop = Hop("fake.example", "127.0.0.1", port)
            settings = ClientSettings(helo="h.example", connect_timeout=1, command_timeout=0.5)
            try:
                session = await Session.open(hop, Route((), tls=tls), settings)  # type: ignore[arg-type]
            except SessionError as exc:
                return exc
            try:
                return await session.send(
                    "a@example.com", ["b@example.net", "c@x.example"], MESSAGE
                )
            finally:
                await session.close()

    start = time.perf_counter()
    outcome = run(go())
    assert time.perf_counter() - start < 5
    if isinstance(outcome, SessionError):
        # Never a success; a 3xx greeting is neither transient nor permanent, and the
        # agent defers on anything that is not permanent.
        assert 300 <= outcome.reply.code <= 599
    else:
        assert set(outcome.replies) == {"b@example.net", "c@x.example"}
        assert all(200 <= r.code <= 599 for r in outcome.replies.values())


# --- a server that stops answering, or stops reading ----------------------------------------


async def _stalling(stop_at: bytes, read: bool) -> tuple[asyncio.AbstractServer, int]:
    """Greets and answers until a command starting with ``stop_at``; then says nothing
    more (and with ``read=False`` reads nothing more either)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake.example ESMTP\r\n")
        while line := await reader.readline():
            if line.upper().startswith(stop_at):
                if line.upper().startswith(b"DATA"):
                    writer.write(b"354 go\r\n")
                while read and await reader.read(65536):
                    pass
                await asyncio.sleep(5)  # longer than the client waits
                break
            writer.write(b"250 ok\r\n")
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("stop_at", "read", "size", "expected"),
    [
        # no reply to MAIL: each recipient gets the timeout, to be tried again
        (b"MAIL", True, 0, "421 4.4.2 timeout waiting for fake.example[127.0.0.1]"),
        # the server takes no more data: the client stops waiting to send
        (b"DATA", False, 64 << 20, "421 4.4.2 timeout sending to fake.example[127.0.0.1]"),
    ],
)
async def test_a_stalled_server_times_out_within_the_command_timeout(
    stop_at: bytes, read: bool, size: int, expected: str
) -> None:
    server, port = await _stalling(stop_at, read)
    message = MESSAGE + (b"x" * 998 + b"\r\n") * (size // 1000)
    async with server:
        hop = Hop("fake.example", "127.0.0.1", port)
        settings = ClientSettings(helo="h.example", connect_timeout=2, command_timeout=0.5)
        session = await Session.open(hop, Route((), tls="none"), settings)
        start = time.perf_counter()
        try:
            result = await session.send("a@example.com", ["b@example.net"], message)
        finally:
            await session.close()
        took = time.perf_counter() - start
        server.close()
    assert str(result.replies["b@example.net"]).startswith(expected)
    assert session.broken
    assert 0.4 < took < 3
