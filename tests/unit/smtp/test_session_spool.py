"""Big messages in the sans-I/O session: past ``spool_threshold`` the data is handed out
in :class:`DataChunk` pieces, cleaned exactly like a message held whole (dot-stuffing
undone across piece boundaries, bare line ends made CRLF), with the same refusals."""

from __future__ import annotations

import itertools

import pytest

from mailwright.local import LocalDirectory
from mailwright.smtp.protocol import DataChunk, MessageReady, Reply, Session, SessionPolicy

DIRECTORY = LocalDirectory.build(["example.com"], ["bob@example.com"])
START = b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"


def make(threshold: int, chunk: int, size_limit: int = 10_000_000) -> Session:
    policy = SessionPolicy(
        hostname="mx.example.com",
        size_limit=size_limit,
        directory=DIRECTORY,
        spool_threshold=threshold,
        chunk_size=chunk,
    )
    return Session(policy, client_ip="192.0.2.1", trusted=False)


def run(session: Session, wire: bytes, feed: int) -> tuple[list[bytes], object]:
    """Feed ``wire`` in pieces of ``feed`` octets; the DataChunks and the final event."""
    chunks: list[bytes] = []
    final: object = None
    for i in range(0, len(wire), feed):
        session.feed(wire[i : i + feed])
        while (event := session.next_event()) is not None:
            if isinstance(event, DataChunk):
                chunks.append(event.data)
            elif isinstance(event, MessageReady):
                final = event
                session.message_result(Reply.of(250, "2.0.0", "Ok"))
            elif isinstance(event, Reply) and event.code in (552, 554):
                final = event
    return chunks, final


def whole(wire_data: bytes) -> bytes:
    """What the session makes of the data in one block (threshold out of reach)."""
    _, ready = run(make(10**9, 10**9), START + wire_data, len(START) + len(wire_data))
    assert isinstance(ready, MessageReady) and not ready.spooled
    return ready.data


MESSAGES = [
    b"Subject: a\r\n\r\n" + b"".join(b"line %d\r\n" % i for i in range(200)),
    b"Subject: dots\r\n\r\n" + b"..leading dot\r\n" * 150 + b"...\r\n..\r\n",
    b"Subject: bare\r\n\r\n" + b"unix line\n" * 100 + b"old mac\r" * 50 + b"end\r\n",
]


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize(("threshold", "chunk", "feed"), [(64, 32, 7), (100, 50, 1), (300, 64, 61)])
def test_pieces_join_to_the_whole(message: bytes, threshold: int, chunk: int, feed: int) -> None:
    wire = message + b".\r\n"
    chunks, ready = run(make(threshold, chunk), START + wire, feed)
    assert isinstance(ready, MessageReady) and ready.spooled
    assert len(chunks) > 1
    assert b"".join(chunks) + ready.data == whole(wire)


def test_small_message_stays_one_block() -> None:
    chunks, ready = run(make(1000, 100), START + b"Subject: s\r\n\r\nhi\r\n.\r\n", 5)
    assert chunks == [] and isinstance(ready, MessageReady) and not ready.spooled
    assert ready.data == b"Subject: s\r\n\r\nhi\r\n"


def test_dot_line_at_every_piece_boundary() -> None:
    """A stuffed dot right after a cut is still undone; the end marker split over
    feeds still ends the data, and a bare-LF dot line never does (smuggling)."""
    body = b"".join(b"%s\r\n" % (b".." + b"x" * (i % 5)) for i in range(60))
    body += b"a\n.\r\nstill data\r\n"
    wire = b"Subject: d\r\n\r\n" + body + b".\r\n"
    want = whole(wire)
    assert b"\r\n.\r\nstill data" in want  # the bare LF became CRLF, the dot line kept
    for threshold, feed in itertools.product((16, 17, 18, 19, 40), (1, 3, 64)):
        chunks, ready = run(make(threshold, threshold), START + wire, feed)
        assert isinstance(ready, MessageReady)
        assert b"".join(chunks) + ready.data == want, (threshold, feed)


def test_size_limit_counts_the_pieces() -> None:
    wire = b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" + (b"y" * 98 + b"\r\n") * 30 + b".\r\n"
    _, final = run(make(200, 100, size_limit=2000), START + wire, 50)
    assert isinstance(final, Reply) and final.code == 552
    _, final = run(make(200, 100, size_limit=len(wire) - 3), START + wire, 50)
    assert isinstance(final, MessageReady)


def test_nul_in_a_piece_is_refused_at_the_end() -> None:
    wire = b"Subject: n\r\n\r\n" + b"ok\r\n" * 100 + b"n\0l\r\n" + b"ok\r\n" * 100 + b".\r\n"
    session = make(64, 64)
    _, final = run(session, START + wire, 16)
    assert isinstance(final, Reply) and final.code == 554 and "NUL" in final.text
    assert session.next_event() is None and not session.in_data  # back to commands


def test_long_line_without_line_end_is_refused() -> None:
    wire = b"Subject: l\r\n\r\n" + b"z" * 5000 + b"\r\n.\r\n"
    _, final = run(make(256, 256), START + wire, 100)
    assert isinstance(final, Reply) and final.code == 554 and "1000 octets" in final.text


def test_strict_8bitmime_sees_8bit_in_an_earlier_piece() -> None:
    policy = SessionPolicy(
        hostname="mx.example.com",
        size_limit=10_000,
        directory=DIRECTORY,
        strict_8bitmime=True,
        spool_threshold=64,
        chunk_size=64,
    )
    session = Session(policy, client_ip="192.0.2.1", trusted=False)
    wire = b"Subject: e\r\n\r\n" + "é\r\n".encode() + b"plain\r\n" * 50 + b".\r\n"
    _, final = run(session, START + wire, 10)
    assert isinstance(final, Reply) and final.code == 554 and "8BITMIME" in final.text
