"""Issue 12 item 1: the wheel installs into a fresh venv of the system Python and runs as
an unprivileged user (``nobody``): init, records, config check, serve (development
mode) and send-test.

Building needs uv; installing fetches the runtime dependencies with pip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwright.testing.ports import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


def _uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    assert Path(found).exists(), "uv is installed by scripts/bootstrap"
    return found


@pytest.fixture(scope="module")
def installed() -> Iterator[tuple[Path, Path]]:
    """(the venv's mailwright, a directory for the test) outside pytest's 0700 tree."""
    base = Path(tempfile.mkdtemp(prefix="mw-wheel-"))
    base.chmod(0o755)
    try:
        dist = base / "dist"
        subprocess.run(
            [_uv(), "build", "--wheel", "--out-dir", str(dist)],
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=300,
        )
        wheel = next(dist.glob("mailwright-*.whl"))
        venv = base / "venv"
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)],
            check=True,
            capture_output=True,
            timeout=600,
        )
        yield venv / "bin" / "mailwright", base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _as_user() -> tuple[list[str], pwd.struct_passwd]:
    """Run as nobody when we are root; an unprivileged runner is already what we want."""
    if os.geteuid() != 0:
        return [], pwd.getpwuid(os.geteuid())
    nobody = pwd.getpwnam("nobody")
    prefix = [
        "setpriv",
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
        "--reset-env",
    ]
    return prefix, nobody


def _run(
    prefix: list[str], argv: list[str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    result = subprocess.run(
        [*prefix, "env", *(f"{k}={v}" for k, v in env.items()), *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result
    return result


def test_the_wheel_runs_as_an_unprivileged_user(installed: tuple[Path, Path]) -> None:
    mailwright, base = installed
    prefix, user = _as_user()
    work = base / "work"
    (work / "dev").mkdir(parents=True)
    for path in (work, work / "dev"):
        os.chown(path, user.pw_uid, user.pw_gid)
    mw = str(mailwright)
    # the venv is the system Python's, not the build environment's
    python = (mailwright.parent / "python").resolve()
    assert str(python).startswith("/usr/bin/python3"), python

    init = _run(prefix, [mw, "init", "example.com", "--ip", "192.0.2.10"], work)
    assert "mailwright check example.com" in init.stdout
    assert (work / "mailwright.toml").stat().st_uid == user.pw_uid
    records = _run(prefix, [mw, "--config", "mailwright.toml", "records", "--format", "zone"], work)
    assert "_domainkey" in records.stdout and "v=spf1" in records.stdout
    _run(prefix, [mw, "--config", "mailwright.toml", "config", "check"], work)

    port = free_port()
    dev = work / "dev"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(dev), "LANG": "C.UTF-8"}
    serve = subprocess.Popen(
        [
            *prefix,
            "env",
            *(f"{k}={v}" for k, v in env.items()),
            mw,
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=dev,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, serve.stdout.read() if serve.stdout else ""
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        sent = _run(
            prefix,
            [mw, "send-test", "user@example.net", "--server", f"127.0.0.1:{port}", "--wait", "30"],
            dev,
        )
        assert "delivered" in sent.stdout, sent
    finally:
        serve.send_signal(signal.SIGTERM)
        output = serve.communicate(timeout=60)[0].decode()
    assert serve.returncode == 0, output
    outbox = list((dev / "mailwright-data" / "outbox" / "new").iterdir())
    assert len(outbox) == 1
    for path in (outbox[0], dev / "mailwright-data" / "queue.sqlite3"):
        assert path.stat().st_uid == user.pw_uid, path
    key = dev / "mailwright-data" / "dkim" / "dev-rsa.private"
    verified = subprocess.run(
        [mw, "dkim", "verify", "--key-file", str(key)],
        stdin=outbox[0].open("rb"),
        capture_output=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified
