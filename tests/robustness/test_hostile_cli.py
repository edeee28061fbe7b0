"""CLI arguments are user input: a malformed value is a one-line usage error (exit 2),
never an internal error (exit 70)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwright.cli.main import main


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--listen", "127.0.0.1:²"],
        ["send-test", "--server", "127.0.0.1:²", "a@b.example"],
        ["serve", "--listen", "127.0.0.1:65536"],
        ["send-test", "--server", "127.0.0.1:65536", "a@b.example"],
        ["send-test", "--server", "127.0.0.1:0", "a@b.example"],
    ],
)
def test_superscript_port_is_a_usage_error(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A port that is not 1-65535 in ASCII digits ('²' passes str.isdigit() but not int())
    is a one-line error with exit 2, not 'internal error: ValueError' with exit 70.

    Through ``main``, which maps errors to exit codes (CliRunner on the bare group would
    report any exception as exit 1)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "internal error" not in err
    assert "is not HOST:PORT" in err
