"""Privileges (issue 12 item 2): bind as root, run as ``user``; or start unprivileged with
CAP_NET_BIND_SERVICE. The ports 25/465/587 are bound in a private network namespace
(``unshare -n``), where the test's clients join the server (``nsenter -n``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwright.testing.tls import make_certificate

pytestmark = pytest.mark.integration

MAILWRIGHT = str(Path(sys.executable).parent / "mailwright")


@pytest.fixture
def service_user() -> Iterator[pwd.struct_passwd]:
    name = f"mwpriv{os.getpid() % 100000}"
    subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
        subprocess.run(["groupdel", name], capture_output=True, check=False)


@pytest.fixture
def base() -> Iterator[Path]:
    """Outside pytest's 0700 temp tree: the service user must reach its files."""
    path = Path(tempfile.mkdtemp(prefix="mw-priv-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _config(base: Path, extra: str) -> Path:
    tls = make_certificate(base / "tls", "mail.example.com")
    config = base / "mailwright.toml"
    config.write_text(
        'hostname = "mail.example.com"\ndomains = ["example.com"]\n'
        'mailboxes = ["admin@example.com"]\ndata_dir = "data"\nworkers = 2\n'
        f"{extra}\n"
        f'[tls]\ncertificate = "{tls.certificate}"\nprivate_key = "{tls.private_key}"\n'
        '[[listeners]]\nname = "inbound"\naddress = "127.0.0.1"\nport = 25\nrole = "inbound"\n'
        'tls = "starttls"\n'
        '[[listeners]]\nname = "submission"\naddress = "127.0.0.1"\nport = 587\n'
        'tls = "starttls"\n'
        '[[listeners]]\nname = "submissions"\naddress = "127.0.0.1"\nport = 465\n'
        'tls = "implicit"\n'
    )
    return config


CLIENT = """
import smtplib, ssl, sys, time
context = ssl.create_default_context(cafile=sys.argv[1])
context.check_hostname = False
for _ in range(100):
    try:
        smtplib.SMTP("127.0.0.1", 25, timeout=5).quit()
        break
    except OSError:
        time.sleep(0.1)
with smtplib.SMTP("127.0.0.1", 25, timeout=10) as s:
    s.sendmail("someone@example.net", ["admin@example.com"], b"Subject: in\\r\\n\\r\\nhello\\r\\n")
with smtplib.SMTP("127.0.0.1", 587, timeout=10) as s:
    s.starttls(context=context)
    s.sendmail("app@example.com", ["admin@example.com"], b"Subject: sub\\r\\n\\r\\nhello\\r\\n")
with smtplib.SMTP_SSL("127.0.0.1", 465, timeout=10, context=context) as s:
    assert s.noop()[0] == 250
print("ok")
"""


def _ids(pid: int) -> tuple[set[int], set[int]]:
    """(uids, gids): real, effective, saved and filesystem ids of a process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
    gids = next(line for line in status if line.startswith("Gid:")).split()[1:]
    return {int(u) for u in uids}, {int(g) for g in gids}


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()]


def _serve_in_namespace(argv: list[str], base: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv],
        cwd=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _run_client(pid: int, ca: Path) -> None:
    result = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", sys.executable, "-c", CLIENT, str(ca)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result


def _wait_for(predicate: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.1)
    raise AssertionError(what)


def _stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.stdout.read().decode() if proc.stdout else ""


def _delivered(data: Path) -> list[Path]:
    box = data / "mail"
    return (
        [p for p in box.rglob("*") if p.is_file() and p.parent.name == "new"]
        if box.exists()
        else []
    )


def test_root_binds_25_465_587_then_runs_as_the_configured_user(
    base: Path, service_user: pwd.struct_passwd
) -> None:
    config = _config(base, f'user = "{service_user.pw_name}"')
    proc = _serve_in_namespace([MAILWRIGHT, "--config", str(config), "serve"], base)
    data = base / "data"
    try:
        _wait_for(lambda: len(_children(proc.pid)) == 2, "no workers", 30)
        _run_client(proc.pid, base / "tls" / "ca.pem")
        _wait_for(lambda: len(_delivered(data)) == 2, "not delivered to the Maildir", 30)
        expected_uid, expected_gid = service_user.pw_uid, service_user.pw_gid
        for pid in (proc.pid, *_children(proc.pid)):
            assert _ids(pid) == ({expected_uid}, {expected_gid}), pid
            groups = next(
                line
                for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("Groups:")
            ).split()[1:]
            assert 0 not in {int(g) for g in groups}  # root's groups are gone
        owned = [p for p in data.rglob("*")] + [data]
        assert any(p.name == "queue.sqlite3" for p in owned)
        for path in owned:
            st = path.lstat()
            assert (st.st_uid, st.st_gid) == (expected_uid, expected_gid), path
    finally:
        output = _stop(proc)
    assert proc.returncode == 0, output
    # root's queue commands run as the user too: what they create stays the server's
    (data / "mailwright.log").rename(data / "rotated.log")  # retry logs into a new file
    listed = subprocess.run(
        [MAILWRIGHT, "--config", str(config), "queue", "retry", "--all"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed
    assert (data / "mailwright.log").exists()
    for path in [*data.rglob("*"), data]:
        assert path.lstat().st_uid == service_user.pw_uid, path


def test_root_without_user_is_refused(base: Path) -> None:
    config = _config(base, "")
    result = subprocess.run(
        ["unshare", "-n", MAILWRIGHT, "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "keep running as root" in lines[0] and "allow_root" in lines[0]
    assert not (base / "data").exists()


def test_an_unknown_user_names_useradd(base: Path) -> None:
    config = _config(base, 'user = "mw-no-such-user"')
    result = subprocess.run(
        [MAILWRIGHT, "--config", str(config), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no system user 'mw-no-such-user'" in result.stderr and "useradd" in result.stderr


def test_a_root_owned_queue_is_named_with_the_fix(
    base: Path, service_user: pwd.struct_passwd
) -> None:
    config = _config(base, f'user = "{service_user.pw_name}"')
    (base / "data").mkdir()
    os.chown(base / "data", service_user.pw_uid, service_user.pw_gid)
    (base / "data" / "queue.sqlite3").write_bytes(b"")  # left by a run as root
    result = subprocess.run(
        [MAILWRIGHT, "--config", str(config), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1
    assert "queue.sqlite3" in result.stderr and "belongs to root" in result.stderr
    assert f"chown -R {service_user.pw_name}:" in result.stderr


def test_an_unreadable_key_is_named_with_the_fix(
    base: Path, service_user: pwd.struct_passwd
) -> None:
    config = _config(base, f'user = "{service_user.pw_name}"')
    key = base / "tls" / "server.key"
    key.chmod(0o600)  # root's
    result = subprocess.run(
        [MAILWRIGHT, "--config", str(config), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert f"tls key {key} is not readable by {service_user.pw_name}" in result.stderr
    assert f"chown {service_user.pw_name}:" in result.stderr


def _setpriv(user: pwd.struct_passwd, *caps: str) -> list[str]:
    argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    if caps:
        argv += [f"--inh-caps=+{','.join(caps)}", f"--ambient-caps=+{','.join(caps)}"]
    return [*argv, "--reset-env"]


def test_unprivileged_with_cap_net_bind_service(
    base: Path, service_user: pwd.struct_passwd
) -> None:
    config = _config(base, "")
    data = base / "data"
    data.mkdir()
    os.chown(data, service_user.pw_uid, service_user.pw_gid)
    argv = [
        *_setpriv(service_user, "net_bind_service"),
        MAILWRIGHT,
        "--config",
        str(config),
        "serve",
    ]
    proc = _serve_in_namespace(argv, base)
    try:
        _wait_for(lambda: len(_children(proc.pid)) == 2, "no workers", 30)
        _run_client(proc.pid, base / "tls" / "ca.pem")
        _wait_for(lambda: len(_delivered(data)) == 2, "not delivered", 30)
        assert _ids(proc.pid)[0] == {service_user.pw_uid}
    finally:
        output = _stop(proc)
    assert proc.returncode == 0, output


def test_unprivileged_without_the_capability_explains_both_ways(
    base: Path, service_user: pwd.struct_passwd
) -> None:
    config = _config(base, "")
    data = base / "data"
    data.mkdir()
    os.chown(data, service_user.pw_uid, service_user.pw_gid)
    argv = [*_setpriv(service_user), MAILWRIGHT, "--config", str(config), "serve"]
    proc = _serve_in_namespace(argv, base)
    output = (
        _stop(proc)
        if proc.wait(60) is None
        else (proc.stdout.read().decode() if proc.stdout else "")
    )
    assert proc.returncode == 2, output
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert "cannot listen on 127.0.0.1:25 (inbound): permission denied" in lines[0]
    assert "as root with user =" in lines[0] and "CAP_NET_BIND_SERVICE" in lines[0]
