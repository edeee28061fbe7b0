"""systemd: the unit verifies, and ``serve`` speaks sd_notify (issue 12 item 3).

The notifications go to a datagram socket this test listens on, as systemd's would.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwright.service import UnitSpec, render_unit
from mailwright.systemd import notify, watchdog_interval
from mailwright.testing.ports import free_port

pytestmark = pytest.mark.integration

MAILWRIGHT = str(Path(sys.executable).parent / "mailwright")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def _collect(sock: socket.socket, until: str, seen: list[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if any(until in message.splitlines() for message in seen):
            return
    raise AssertionError(f"no {until} in {seen}")


def test_notify_sends_one_datagram(notify_socket: tuple[socket.socket, Path]) -> None:
    sock, path = notify_socket
    os.environ["NOTIFY_SOCKET"] = str(path)
    try:
        assert notify("READY=1", "STATUS=ok")
        assert sock.recv(4096) == b"READY=1\nSTATUS=ok"
    finally:
        del os.environ["NOTIFY_SOCKET"]
    assert not notify("READY=1")  # not under systemd: nothing, no error


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"mailwright-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        os.environ["NOTIFY_SOCKET"] = "@" + name
        try:
            assert notify("WATCHDOG=1")
        finally:
            del os.environ["NOTIFY_SOCKET"]
        assert sock.recv(100) == b"WATCHDOG=1"


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval() is None


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_notifies_ready_reloading_watchdog_stopping(
    notify_socket: tuple[socket.socket, Path], tmp_path: Path, workers: int
) -> None:
    sock, path = notify_socket
    port = free_port()
    config = tmp_path / "mailwright.toml"
    config.write_text(
        f'data_dir = "data"\nallow_root = true\nworkers = {workers}\n'
        f'[[listeners]]\nname = "s"\nport = {port}\n'
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [MAILWRIGHT, "--config", str(config), "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: list[str] = []
    try:
        _collect(sock, "READY=1", seen)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert client.recv(100).startswith(b"220")  # ready means ready
        assert f"MAINPID={proc.pid}" in seen[-1].splitlines()
        _collect(sock, "WATCHDOG=1", seen)
        seen.clear()
        proc.send_signal(signal.SIGHUP)
        _collect(sock, "RELOADING=1", seen)
        reloading = next(m for m in seen if "RELOADING=1" in m)
        assert any(line.startswith("MONOTONIC_USEC=") for line in reloading.splitlines())
        seen.clear()
        _collect(sock, "READY=1", seen)
        proc.send_signal(signal.SIGTERM)
        _collect(sock, "STOPPING=1", seen)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def service_user() -> Iterator[str]:
    """A system user name nobody has; removed again if the test created it."""
    name = f"mwtest{os.getpid() % 100000}"
    yield name
    subprocess.run(["userdel", name], capture_output=True, check=False)


def test_the_installed_unit_verifies(tmp_path: Path, service_user: str) -> None:
    config = tmp_path / "etc" / "mailwright.toml"
    config.parent.mkdir()
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nuser = "{service_user}"\n')
    units = tmp_path / "units"
    result = subprocess.run(
        [MAILWRIGHT, "--config", str(config), "service", "install", "--unit-dir", str(units)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result
    user = pwd.getpwnam(service_user)  # created: a system user without a login shell
    assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin"
    unit = units / "mailwright.service"
    text = unit.read_text()
    for line in (
        "Type=notify",
        f"User={service_user}",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={tmp_path / 'data'}",
        "Restart=on-failure",
        "WatchdogSec=60",
        f"ExecStart={MAILWRIGHT} --config {config} serve",
    ):
        assert line in text.splitlines(), (line, text)
    assert "PrivateTmp=no" in text  # the data directory is under /tmp here
    checked = _verify(unit)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == "", checked.stderr
    assert (tmp_path / "data").stat().st_uid == user.pw_uid


def test_a_unit_for_var_lib_is_private_tmp_and_quotes_spaces(tmp_path: Path) -> None:
    # The program as installed (README 'Deploy': under /opt): a checkout under /tmp would
    # rightly turn PrivateTmp off (the service could not see its own program).
    opt = Path(tempfile.mkdtemp(prefix="mailwright-unit-", dir="/opt"))
    try:
        (opt / "mailwright").symlink_to(MAILWRIGHT)
        _check_var_lib_unit(tmp_path, opt / "mailwright")
    finally:
        shutil.rmtree(opt)


def _check_var_lib_unit(tmp_path: Path, program: Path) -> None:
    spec = UnitSpec(
        program,
        Path("/etc/mail wright/mailwright.toml"),
        "mailwright",
        "mailwright",
        (Path("/var/lib/mail wright"),),
    )
    unit = tmp_path / "mailwright.service"
    text = render_unit(spec)
    unit.write_text(text)
    assert "PrivateTmp=yes" in text and "ProtectHome=yes" in text
    assert "ExecStart=" in text and '"/etc/mail wright/mailwright.toml"' in text
    assert "ReadWritePaths=/var/lib/mail\\x20wright" in text
    checked = _verify(unit)
    assert checked.returncode == 0, checked.stderr


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text('data_dir = "data"\n')
    units = tmp_path / "units"
    result = subprocess.run(
        [
            MAILWRIGHT,
            "--config",
            str(config),
            "service",
            "install",
            "--user",
            "mw-does-not-exist",
            "--dry-run",
            "--unit-dir",
            str(units),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result
    assert result.stdout.startswith("# Written by 'mailwright service install'")
    assert "would create the system user mw-does-not-exist" in result.stderr
    assert not units.exists() and not (tmp_path / "data").exists()


def test_nobody_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text('data_dir = "data"\n')
    result = subprocess.run(
        [MAILWRIGHT, "--config", str(config), "service", "install", "--user", "nobody"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "a user of its own" in result.stderr


def test_install_without_a_config_file_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [MAILWRIGHT, "service", "install", "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "MAILWRIGHT_CONFIG"},
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "mailwright init" in result.stderr


def test_dry_run_with_sendmail_plans_a_debian_diversion(tmp_path: Path) -> None:
    """--sendmail: Postfix's /usr/sbin/sendmail (the test tools install Postfix) is
    diverted, never overwritten, and mailwright's sendmail linked in its place."""
    config = tmp_path / "mailwright.toml"
    config.write_text('data_dir = "data"\n')
    result = subprocess.run(
        [MAILWRIGHT, "--config", str(config), "service", "install", "--user", "mw-x",
         "--dry-run", "--sendmail", "--unit-dir", str(tmp_path / "units")],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result
    plan = " ".join(result.stderr.split())
    assert (
        "would run dpkg-divert --local --rename --divert /usr/sbin/sendmail.mailwright-diverted"
        " --add /usr/sbin/sendmail" in plan
    )
    assert "ln -sfn " in plan and "mailwright-sendmail /usr/sbin/sendmail" in plan
    assert Path("/usr/sbin/sendmail").resolve().name != "mailwright-sendmail"
