"""README "Deploy", followed line by line as far as loopback allows (issue 12 item 9).

Every command line of the section's ``sh`` blocks is either run (with the paths moved
into a scratch directory, the service user renamed, the unit written to a scratch
directory) or skipped for a stated reason (package installs, public DNS, systemd as PID
1). "systemctl enable --now" is replaced by running the unit's own ExecStartPre/ExecStart
as its User= with its AmbientCapabilities=, in a private network namespace (only its own
loopback: nothing outside is reachable) where ports 25 and 80 are free, with a notify
socket like systemd's.

The config ``init --acme`` writes asks Let's Encrypt; this test points its
``acme_directory`` at a Pebble in that same namespace instead (and ``acme_ca_file`` at
Pebble's CA), with an NSD there saying ``mail.example.com A 127.0.0.1``, so the HTTP-01
challenge really reaches the ``http`` listener on port 80 and the certificate arrives.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import shlex
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from mailwright.config import LETS_ENCRYPT_DIRECTORY
from mailwright.log import parse_line
from mailwright.testing.nsd import NsdServer
from mailwright.testing.pebble import PebbleServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SKIPPED = {
    "apt-get": "packages are installed by scripts/bootstrap --test",
    "dig": "public DNS (the PTR is set by the provider)",
    "systemctl": "no systemd as PID 1 here: the unit's commands run below",
}
CLONE_NEWNET = 0x40000000


def deploy_lines() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_section_is_what_this_test_follows() -> None:
    lines = deploy_lines()
    firsts = [line.split()[0] for line in lines]
    assert set(firsts) <= {*SKIPPED, "python3", "mailwright", "ln", "grep"} | {
        first for first in firsts if first.startswith("/opt/mailwright/")
    }, firsts
    assert any("service install" in line for line in lines)
    assert any(" init example.com " in line and " --acme" in line for line in lines)
    assert any(line.startswith("grep certificate-issued ") for line in lines)


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


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


@dataclass
class Namespace:
    """A network namespace of its own with only a loopback interface."""

    fd: int

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """This thread, and every process it starts meanwhile, in the namespace."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(self.fd)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(own)


@pytest.fixture
def private_network() -> Iterator[Namespace]:
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"unshare: {os.strerror(error)}")
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    finally:
        _setns(own)
        os.close(own)
    try:
        yield Namespace(fd)
    finally:
        os.close(fd)


@dataclass
class AcmeWorld:
    network: Namespace
    nsd: NsdServer
    pebble: PebbleServer


@pytest.fixture
def acme_world(private_network: Namespace, scratch: Path) -> Iterator[AcmeWorld]:
    """Pebble validating HTTP-01 on port 80 of mail.example.com, which the NSD beside it
    resolves to 127.0.0.1: all inside the private network the server will run in."""
    with private_network.inside():
        nsd = NsdServer().start()
        try:
            nsd.set_zone("example.com", "mail A 127.0.0.1\n")
            pebble = PebbleServer(
                scratch / "pebble", http_port=80, dns_server=nsd.nameserver
            ).start()
        except BaseException:
            nsd.stop()
            raise
    try:
        yield AcmeWorld(private_network, nsd, pebble)
    finally:
        with private_network.inside():
            pebble.stop()
            nsd.stop()


def _use_pebble(config: Path, pebble: PebbleServer) -> None:
    """The one change to what init wrote: Pebble instead of Let's Encrypt."""
    text = config.read_text()
    directory = f'acme_directory = "{LETS_ENCRYPT_DIRECTORY}"'
    ca_file = '# acme_ca_file = "/etc/ssl/private-ca.pem"'
    assert directory in text and ca_file in text, text
    text = text.replace(directory, f'acme_directory = "{pebble.directory_url}"')
    text = text.replace(ca_file, f'acme_ca_file = "{pebble.ca_file}"')
    config.write_text(text)


def _events(log: Path, name: str) -> list[dict[str, str]]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [e for e in map(parse_line, text.splitlines()) if e and e["event"] == name]


def _wait_issued(log: Path, pebble: PebbleServer) -> None:
    deadline = time.monotonic() + 90
    while not _events(log, "certificate-issued"):
        assert time.monotonic() < deadline, (_events(log, "certificate-failed"), pebble.log())
        time.sleep(0.5)


def _served_on_25(network: Namespace, root: Path | None) -> x509.Certificate:
    """The certificate STARTTLS on port 25 serves now (verified against ``root`` if given)."""
    context = ssl.create_default_context(cafile=str(root) if root else None)
    context.check_hostname = False  # 127.0.0.1; the name is checked by the caller
    if root is None:
        context.verify_mode = ssl.CERT_NONE
    with network.inside():
        client = smtplib.SMTP("127.0.0.1", 25, timeout=10)
    try:
        client.starttls(context=context)
        assert isinstance(client.sock, ssl.SSLSocket)
        der = client.sock.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)
    finally:
        client.quit()


def _unit_value(unit: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "="))


def test_deploy_as_written(scratch: Path, user_name: str, acme_world: AcmeWorld) -> None:
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
    data = scratch / "var" / "lib" / "mailwright"
    server: subprocess.Popen[bytes] | None = None
    ran: list[str] = []
    try:
        for line in deploy_lines():
            command = line
            for old, new in moved.items():
                command = command.replace(old, new)
            first = command.split()[0]
            if first == "systemctl" and "enable --now" in command:
                server = _start_unit(scratch, env, acme_world.network)
                ran.append(command)
                continue
            if first == "grep" and "certificate-issued" in command:
                _wait_issued(data / "mailwright.log", acme_world.pebble)  # "within a minute"
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
                _use_pebble(scratch / "etc" / "mailwright" / "mailwright.toml", acme_world.pebble)
            if "records --format zone" in command:
                for needle in ("MX", "v=spf1 ip4:203.0.113.10", "_domainkey", "_dmarc", "PTR"):
                    assert needle in result.stdout, needle
            if "send-test" in command:
                assert "delivered" in result.stdout, result
        assert not calls.exists()  # systemctl is only "enable --now", replaced above
        assert any(c.startswith("grep certificate-issued ") for c in ran)
        root = scratch / "pebble-root.pem"
        with acme_world.network.inside():
            root.write_bytes(acme_world.pebble.root_pem())
        deadline = time.monotonic() + 15  # each worker loads it within seconds
        while True:  # ten connections, so that every worker has been asked
            certs = {_served_on_25(acme_world.network, None) for _ in range(10)}
            if len(certs) == 1 and (cert := certs.pop()).issuer != cert.subject:
                break
            assert time.monotonic() < deadline, "still the self-signed placeholder"
            time.sleep(0.5)
        assert _served_on_25(acme_world.network, root) == cert  # chains to Pebble's root
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.value.get_values_for_type(x509.DNSName) == ["mail.example.com"]
        user = pwd.getpwnam(user_name)
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


def _start_unit(scratch: Path, env: dict[str, str], network: Namespace) -> subprocess.Popen[bytes]:
    """What systemd does with the unit: ExecStartPre, then ExecStart, as User= with the
    ambient capabilities, telling READY=1 on $NOTIFY_SOCKET; in ``network``."""
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
    with network.inside():
        proc = subprocess.Popen(
            ["sh", "-c", f"{pre} && exec {start}"],
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
