"""README "Deploy", followed line by line as far as loopback allows (issue 12 item 9).

Every command line of the section's ``sh`` blocks is either run (with the paths moved
into a scratch directory, the service user renamed, the unit written to a scratch
directory) or skipped for a stated reason (package installs, public DNS, certbot's
network part, systemd as PID 1). The certbot deploy hook runs as written on a test
certificate; "systemctl enable --now" is replaced by running the unit's own
ExecStartPre/ExecStart as its User= with its AmbientCapabilities=, in a private network
namespace where port 25 is free, with a notify socket like systemd's.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwright.testing.tls import make_certificate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SKIPPED = {
    "apt-get": "packages are installed by scripts/bootstrap --test",
    "dig": "public DNS (the PTR is set by the provider)",
    "systemctl": "no systemd as PID 1 here: the unit's commands run below",
    "certbot": "Let's Encrypt is the internet: its deploy hook runs on a test certificate",
}


def deploy_lines() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_section_is_what_this_test_follows() -> None:
    lines = deploy_lines()
    firsts = [line.split()[0] for line in lines]
    assert set(firsts) <= {*SKIPPED, "python3", "mailwright", "ln"} | {
        first for first in firsts if first.startswith("/opt/mailwright/")
    }, firsts
    assert any("service install" in line for line in lines)
    assert any("--deploy-hook" in line for line in lines)


def _uv() -> str:
    return shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")


@pytest.fixture
def scratch() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="mw-deploy-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def user_name() -> Iterator[str]:
    name = f"mwdeploy{os.getpid() % 10000}"
    yield name
    subprocess.run(["userdel", name], capture_output=True, check=False)
    subprocess.run(["groupdel", name], capture_output=True, check=False)


def _unit_value(unit: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "="))


def test_deploy_as_written(scratch: Path, user_name: str) -> None:
    dist = scratch / "dist"
    subprocess.run(
        [_uv(), "build", "--wheel", "--out-dir", str(dist)],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("*.whl"))
    stubs = scratch / "stubs"
    stubs.mkdir()
    calls = scratch / "systemctl-calls"
    (stubs / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (stubs / "systemctl").chmod(0o755)
    moved = {
        "/opt/mailwright": f"{scratch}/opt/mailwright",
        "/etc/mailwright": f"{scratch}/etc/mailwright",
        "/var/lib/mailwright": f"{scratch}/var/lib/mailwright",
        "/usr/local/bin/mailwright": f"{scratch}/bin/mailwright",
        "./mailwright-0.1.0-py3-none-any.whl": str(wheel),
        "--user mailwright": f"--user {user_name}",
        "-o mailwright": f"-o {user_name}",
        "you@gmail.com": "postmaster@example.com",
    }
    (scratch / "bin").mkdir()
    env = {
        "PATH": f"{scratch}/bin:{stubs}:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(scratch),
        "LANG": "C.UTF-8",
    }
    server: subprocess.Popen[bytes] | None = None
    ran: list[str] = []
    try:
        for line in deploy_lines():
            command = line
            for old, new in moved.items():
                command = command.replace(old, new)
            first = command.split()[0]
            if first == "certbot":
                hook = shlex.split(command)[shlex.split(command).index("--deploy-hook") + 1]
                lineage = make_certificate(scratch / "live", "mail.example.com")
                (scratch / "live" / "privkey.pem").write_bytes(lineage.private_key.read_bytes())
                (scratch / "live" / "fullchain.pem").write_bytes(lineage.certificate.read_bytes())
                _sh(hook, {**env, "RENEWED_LINEAGE": str(scratch / "live")})
                ran.append("certbot --deploy-hook")
                continue
            if first == "systemctl" and "enable --now" in command:
                server = _start_unit(scratch, env)
                ran.append(command)
                continue
            if first in SKIPPED:
                continue
            if " check example.com" in command:
                continue  # the doctor asks the public DNS; its tests use a local NSD
            if "service install" in command:
                command += f" --unit-dir {scratch}/units"
            if "send-test" in command:
                assert server is not None
                command = f"nsenter -t {server.pid} -n " + command + " --wait 30"
            result = _sh(command, env)
            ran.append(command)
            if "init example.com" in command:
                assert "wrote" in result.stdout
            if "records --format zone" in command:
                for needle in ("MX", "v=spf1 ip4:203.0.113.10", "_domainkey", "_dmarc", "PTR"):
                    assert needle in result.stdout, needle
            if "send-test" in command:
                assert "delivered" in result.stdout, result
        assert calls.read_text().strip() == "try-reload-or-restart mailwright"  # the hook's
        user = pwd.getpwnam(user_name)
        data = scratch / "var" / "lib" / "mailwright"
        delivered = list((data / "mail").rglob("new/*"))
        assert delivered and all(p.stat().st_uid == user.pw_uid for p in delivered)
        assert len([c for c in ran if "send-test" in c]) == 1
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            output = server.communicate(timeout=60)[0].decode()
            assert server.returncode == 0, output


def _sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["sh", "-c", command], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return result


def _start_unit(scratch: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """What systemd does with the unit: ExecStartPre, then ExecStart, as User= with the
    ambient capabilities, telling READY=1 on $NOTIFY_SOCKET."""
    unit = (scratch / "units" / "mailwright.service").read_text()
    checked = subprocess.run(
        ["systemd-analyze", "verify", str(scratch / "units" / "mailwright.service")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr
    user = pwd.getpwnam(_unit_value(unit, "User"))
    caps = _unit_value(unit, "AmbientCapabilities").lower().replace("cap_", "")
    as_user = [
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--init-groups",
        f"--inh-caps=+{caps}",
        f"--ambient-caps=+{caps}",
        "--",
    ]
    notify = scratch / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    notify.chmod(0o777)
    sock.settimeout(1)
    pre = shlex.join([*as_user, *shlex.split(_unit_value(unit, "ExecStartPre"))])
    start = shlex.join([*as_user, *shlex.split(_unit_value(unit, "ExecStart"))])
    proc = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && {pre} && exec {start}"],
        env={**env, "NOTIFY_SOCKET": str(notify)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    try:
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            assert time.monotonic() < deadline, "no READY=1"
            try:
                if "READY=1" in sock.recv(4096).decode().splitlines():
                    return proc
            except TimeoutError:
                continue
    finally:
        sock.close()
