"""Shared pieces of the hostile-input property tests (this directory only).

Every test here is deterministic (``derandomize=True``: the same examples on every run,
so a failure reproduces and CI never flakes) and has no per-example deadline: the
2-core machine is shared, and unbounded work is caught by explicit time bounds instead.

``MAILWRIGHT_ROBUST_SCALE`` multiplies every example count: the default 0.6 keeps the
directory near 30 s on an idle 2-core machine; ``MAILWRIGHT_ROBUST_SCALE=20`` is a long
hunt before a release.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")
SCALE = float(os.environ.get("MAILWRIGHT_ROBUST_SCALE", "0.6"))


def robust(max_examples: int) -> settings:
    """Hypothesis settings for this directory: derandomized, no deadline, no DB writes."""
    return settings(
        derandomize=True,
        max_examples=max(10, round(max_examples * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion (hypothesis drives sync test functions)."""
    return asyncio.run(coro)


def timed(seconds: float) -> _Timer:
    return _Timer(seconds)


class _Timer:
    """``with timed(2.0): ...`` fails the test when the block takes longer."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.elapsed = 0.0

    def __enter__(self) -> _Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self._start
        if exc[0] is None:
            assert self.elapsed < self.limit, f"took {self.elapsed:.2f}s, bound {self.limit}s"


# Text that hostile peers like: controls, NUL, CR/LF, non-ASCII digits (``"²".isdigit()``
# is True but ``int("²")`` raises), bidi and zero-width characters, surrogate-free.
NASTY_CHARS = [
    "\x00",
    "\r",
    "\n",
    "\r\n",
    "\t",
    " ",
    "\x7f",
    "\x0b",
    "\x0c",
    "\x85",
    "\u2028",
    "\ufeff",
    "\u202e",
    "é",
    "²",
    "٥",
    "ß",
    "\U0001f4e7",
    '"',
    "\\",
    "(",
    ")",
    ";",
    "=",
    ":",
    ",",
    ".",
    "@",
    "<",
    ">",
    "[",
    "]",
    "%",
    "{",
    "}",
    "/",
    "-",
    "+",
    "~",
    "?",
    "*",
]


def mixed_text(pieces: list[str], *, max_size: int = 30) -> st.SearchStrategy[str]:
    """Strings built from protocol ``pieces``, nasty characters and random text."""
    piece = st.one_of(
        st.sampled_from(pieces),
        st.sampled_from(NASTY_CHARS),
        st.text(max_size=6),
    )
    return st.lists(piece, max_size=max_size).map("".join)


def mutate(data: bytes) -> st.SearchStrategy[bytes]:
    """Byte-level mutations of ``data``: flips, deletions, insertions, truncation."""

    @st.composite
    def _mutated(draw: st.DrawFn) -> bytes:
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 6))):
            if not buf:
                break
            op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "dup"]))
            i = draw(st.integers(0, len(buf) - 1))
            if op == "flip":
                buf[i] = draw(st.integers(0, 255))
            elif op == "delete":
                del buf[i : i + draw(st.integers(1, 20))]
            elif op == "insert":
                buf[i:i] = draw(st.binary(min_size=1, max_size=10))
            elif op == "truncate":
                del buf[i:]
            else:
                j = draw(st.integers(i, min(len(buf), i + 200)))
                buf[j:j] = buf[i:j]
        return bytes(buf)

    return _mutated()


def chunked(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """``data`` cut into pieces at random places, as a network delivers it."""
    cuts = st.lists(st.integers(0, len(data)), max_size=8).map(sorted)
    return cuts.map(lambda c: [data[a:b] for a, b in itertools.pairwise([0, *c, len(data)])])
