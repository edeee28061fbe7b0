"""LMTP (RFC 2033): handing messages to a local delivery agent (Mailman's LMTP runner).

LMTP is SMTP with ``LHLO`` and one reply per accepted recipient after the data (RFC 2033
§4.2), so a partial failure is reported per recipient and honoured per recipient: the
ones that got 250 are done, a 4xx is retried, a 5xx bounces. Not being able to talk
to the server at all is a 451 for everyone (queued, retried). The recipient mapping is
:func:`data_replies` (pure); :func:`deliver` moves the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from .client import MessageSource, stuffed_pieces
from .replies import Reply, ReplyError, ReplyParser, local_reply

__all__ = ["data_replies", "deliver"]


def data_replies(accepted: Sequence[str], replies: Sequence[Reply]) -> dict[str, Reply]:
    """RFC 2033 §4.2: after the final dot, one reply for each recipient that RCPT
    accepted, in RCPT order. Missing replies (a server that closed early) are 451."""
    out: dict[str, Reply] = {}
    for index, recipient in enumerate(accepted):
        if index < len(replies):
            out[recipient] = replies[index]
        else:
            out[recipient] = local_reply(451, "4.4.2", "LMTP server gave no reply for it")
    return out


def _dot_stuff(data: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency, CRLF line ends, then the end-of-data line."""
    text = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    if text.startswith(b"."):
        text = b"." + text
    return text.replace(b"\r\n.", b"\r\n..") + b".\r\n"


async def deliver(
    host: str,
    port: int,
    sender: str,
    recipients: Sequence[str],
    data: MessageSource,
    *,
    lhlo: str,
    timeout: float = 60.0,
) -> dict[str, Reply]:
    """One LMTP transaction; a reply per recipient, never raises for the server's doing."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        down = local_reply(451, "4.4.1", f"LMTP server {host}:{port} unreachable: {exc}")
        return dict.fromkeys(recipients, down)
    parser = ReplyParser()
    pending: list[Reply] = []

    async def read() -> Reply:
        while not pending:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                raise ConnectionError("connection closed")
            pending.extend(parser.feed(chunk))
        return pending.pop(0)

    async def command(line: str) -> Reply:
        writer.write(line.encode("utf-8") + b"\r\n")
        await writer.drain()
        return await read()

    results: dict[str, Reply] = {}
    try:
        greeting = await read()
        if greeting.code != 220:
            return dict.fromkeys(recipients, _transient(greeting))
        hello = await command(f"LHLO {lhlo}")
        if hello.code != 250:
            return dict.fromkeys(recipients, _transient(hello))
        mail = await command(f"MAIL FROM:<{sender}>")
        if mail.code != 250:
            return dict.fromkeys(recipients, mail)
        accepted: list[str] = []
        for recipient in recipients:
            reply = await command(f"RCPT TO:<{recipient}>")
            if reply.code == 250:
                accepted.append(recipient)
            else:
                results[recipient] = reply
        if not accepted:
            return results
        start = await command("DATA")
        if start.code != 354:
            results.update(dict.fromkeys(accepted, start))
            return results
        if isinstance(data, bytes):
            writer.write(_dot_stuff(data))
            await writer.drain()
        else:  # a big message, read from the queue a piece at a time
            async for piece in stuffed_pieces(data):
                writer.write(piece)
                await asyncio.wait_for(writer.drain(), timeout)
        replies = []
        for _ in accepted:
            try:
                replies.append(await read())
            except (ConnectionError, TimeoutError, ReplyError):
                break
        results.update(data_replies(accepted, replies))
        with contextlib.suppress(OSError, TimeoutError, ReplyError):
            await command("QUIT")
        return results
    except (ConnectionError, TimeoutError, OSError, ReplyError) as exc:
        lost = local_reply(451, "4.4.2", f"LMTP session with {host}:{port} failed: {exc}")
        for recipient in recipients:
            results.setdefault(recipient, lost)
        return results
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, ReplyError):
            await writer.wait_closed()


def _transient(reply: Reply) -> Reply:
    """A refused greeting or LHLO is the server's state, not the message's: retry."""
    if reply.code // 100 == 4:
        return reply
    return local_reply(451, "4.4.2", f"LMTP server said {reply}")
