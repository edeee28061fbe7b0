"""Helpers for the CLI's own tests: run ``mailwright`` in-process like a shell would.

stdout/stderr are captured (so not a terminal: the piped layout is what is tested),
the environment is cleaned of ``MAILWRIGHT_*`` so that no user setting leaks in, and
the working directory is a fresh temp dir (no ``./mailwright.toml`` is found).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwright.cli.main import main

from .helpers import CliRun, Run


@pytest.fixture
def cli_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> CliRun:
    for name in ("MAILWRIGHT_DEBUG", "MAILWRIGHT_NAMESERVER", "MAILWRIGHT_CONFIG", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def run(*args: str) -> Run:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run
