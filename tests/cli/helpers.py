"""Shared helpers of the CLI tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    code: int
    out: str
    err: str


CliRun = Callable[..., Run]


def assert_one_line_error(result: Run, *needles: str) -> None:
    """Exit 2, nothing on stdout, one line on stderr naming the problem, no traceback."""
    assert result.code == 2, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in lines[0], (needle, result.err)


def shared_testdata() -> Path:
    """The shared test data next to the repository (never copied into it)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
