"""Streamed dot-stuffing (a big message sent from the queue a piece at a time) equals
:func:`dot_stuff` of the whole message however it is cut (RFC 5321 §4.5.2)."""

from __future__ import annotations

import itertools

import pytest

from mailwright.delivery.client import DotStuffer, dot_stuff

MESSAGES = [
    b"",
    b".",
    b"a\r\n.b\r\n..\r\n.\r\n",
    b".starts with a dot\r\nand\r\n.\r\n",
    b"no final line end",
    b"bare\nlf\n.dot after bare lf\n",
    b"cr at end\r",
    b"cr\rinside\r\n",
]


@pytest.mark.parametrize("message", MESSAGES)
def test_every_cut(message: bytes) -> None:
    want = dot_stuff(message)
    positions = range(len(message) + 1)
    for cuts in itertools.chain(
        ((),), ((i,) for i in positions), itertools.combinations(positions, 2)
    ):
        edges = [0, *cuts, len(message)]
        stuffer = DotStuffer()
        got = b"".join(stuffer.feed(message[a:b]) for a, b in itertools.pairwise(edges))
        assert got + stuffer.finish() == want, (message, cuts)
