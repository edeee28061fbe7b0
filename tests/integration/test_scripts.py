"""Issue 12 item 8: the README's main command is harmless on a server.

``scripts/serve`` installs uv and the runtime dependencies only (no test tools, no dev
packages) and stops or reconfigures nothing; the test tools come with
``scripts/bootstrap --test`` (what ``scripts/test`` runs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MAPS = ("wanted=", "demo=", "runtime=")
WATCHED = ("apt-get", "systemctl", "postfix", "debconf-set-selections", "sudo", "kill", "service")


def _stubs(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH directory whose package and service tools only record that they ran."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    calls = tmp_path / "calls"
    calls.touch()
    for name in WATCHED:
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\nexit 0\n')
        stub.chmod(0o755)
    return stubs, calls


def _commands(stderr: str) -> list[str]:
    """The traced commands, without the package maps' declarations."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith("+")
        and not line.lstrip("+ ").startswith(("wanted=", "demo=", "runtime="))
    ]


def _env(stubs: Path, venv: Path) -> dict[str, str]:
    uv_dir = Path(shutil.which("uv") or Path.home() / ".local" / "bin" / "uv").parent
    return {
        **os.environ,
        "PATH": f"{stubs}:{uv_dir}:/usr/bin:/bin:/usr/sbin:/sbin",
        "UV_PROJECT_ENVIRONMENT": str(venv),  # not the suite's own .venv
        "SHELLOPTS": "xtrace",  # every script and sub-script traces its commands
    }


def test_scripts_serve_installs_only_what_running_needs(tmp_path: Path) -> None:
    stubs, calls = _stubs(tmp_path)
    venv = tmp_path / "venv"
    result = subprocess.run(
        [str(REPO / "scripts" / "serve"), "--version"],
        env=_env(stubs, venv),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mailwright, version" in result.stdout
    assert calls.read_text() == ""  # no apt-get, no systemctl, no postfix stop
    traced = _commands(result.stderr)
    assert any("uv sync --frozen --no-dev" in line for line in traced), traced
    assert not any("/usr/sbin/postfix" in line for line in traced)
    site = next(venv.glob("lib/python3*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert {"click", "rich", "dnspython", "cryptography"} <= installed
    for dev_only in ("pytest", "ruff", "mypy", "hypothesis", "dkimpy", "lxml"):
        assert dev_only not in installed, dev_only


def test_bootstrap_without_test_wants_no_test_tool(tmp_path: Path) -> None:
    """Runtime mode never looks at the test packages, let alone installs them."""
    stubs, calls = _stubs(tmp_path)
    result = subprocess.run(
        [str(REPO / "scripts" / "bootstrap")],
        env=_env(stubs, tmp_path / "venv"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert calls.read_text() == ""
    traced = "\n".join(_commands(result.stderr))
    for tool in ("/usr/sbin/nsd", "/usr/sbin/postfix", "opendkim", "named-checkzone"):
        assert tool not in traced, tool


def test_bootstrap_test_leaves_a_system_postfix_alone(tmp_path: Path) -> None:
    stubs, calls = _stubs(tmp_path)
    result = subprocess.run(
        [str(REPO / "scripts" / "bootstrap"), "--test"],
        env=_env(stubs, tmp_path / "venv"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "postfix stop" not in calls.read_text()
    assert "stopping" not in result.stderr


def test_bootstrap_refuses_an_unknown_option(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(REPO / "scripts" / "bootstrap"), "--frob"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "unknown option --frob" in result.stderr
