"""Every command and subcommand has --help with examples, and exits 0."""

from __future__ import annotations

import click
import pytest

from mailwright.cli.main import COMMANDS, LazyGroup, cli

from .helpers import CliRun


def _paths() -> list[list[str]]:
    paths: list[list[str]] = [[]]
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = LazyGroup._load(name)
        assert command is not None, name
        paths.append([name])
        if isinstance(command, click.Group):
            paths.extend([name, sub] for sub in command.list_commands(ctx))
    return paths


@pytest.mark.parametrize("path", _paths(), ids=lambda p: " ".join(p) or "mailwright")
def test_help_has_examples(cli_run: CliRun, path: list[str]) -> None:
    result = cli_run(*path, "--help")
    assert result.code == 0, result
    assert "Examples:" in result.out, result.out
    assert result.err == ""
