"""``[tls] acme = true`` end to end against Pebble on loopback: a certificate is issued
through the ``http`` listener's HTTP-01 answers, served on STARTTLS and implicit TLS by
both workers, renewed at two thirds of its (short) lifetime without a restart or a
dropped session, and kept when a renewal's challenge fails (log event, doctor finding).
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography import x509

from mailwright.doctor.certificates import check_acme
from mailwright.doctor.context import Context, DoctorOptions
from mailwright.doctor.model import Status
from mailwright.log import parse_line
from mailwright.testing.nsd import NsdServer
from mailwright.testing.pebble import PebbleServer
from mailwright.testing.ports import free_port, wait_for_port

pytestmark = pytest.mark.integration

MAILWRIGHT = str(Path(sys.executable).parent / "mailwright")
ORIGIN = "acme.example"
HOSTNAME = f"mail.{ORIGIN}"
VALIDITY = 20
"""Seconds: renewal is due after about 13."""


@pytest.fixture
def serve() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def events(log: Path, name: str, count: int, timeout: float) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, str]] = []
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = [e for e in map(parse_line, text.splitlines()) if e and e["event"] == name]
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return found


def served(port: int, implicit: bool, root: Path | None) -> x509.Certificate:
    """The certificate a new TLS session gets (verified against ``root`` when given)."""
    context = ssl.create_default_context(cafile=str(root)) if root else ssl.create_default_context()
    context.check_hostname = False  # we connect to 127.0.0.1; the names are checked below
    if root is None:
        context.verify_mode = ssl.CERT_NONE
    if implicit:
        client: smtplib.SMTP = smtplib.SMTP_SSL("127.0.0.1", port, context=context, timeout=10)
    else:
        client = smtplib.SMTP("127.0.0.1", port, timeout=10)
        client.starttls(context=context)
    try:
        assert isinstance(client.sock, ssl.SSLSocket)
        der = client.sock.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)
    finally:
        client.quit()


def file_serial(data_dir: Path) -> int:
    pem = (data_dir / "certificates" / "current.pem").read_bytes()
    return x509.load_pem_x509_certificates(pem)[0].serial_number


def wait_served(ports: list[tuple[int, bool]], serial: int, root: Path | None) -> None:
    """Every listener, on several connections, serves ``serial``: the kernel hands each
    connection to one of the two workers, and three could all reach the one that has
    already switched, so ten are asked per listener."""
    deadline = time.monotonic() + 15
    while True:
        seen = {served(port, implicit, None).serial_number for port, implicit in ports * 10}
        if seen == {serial}:
            if root is not None:  # and it verifies
                for port, implicit in ports:
                    served(port, implicit, root)
            return
        assert time.monotonic() < deadline, f"served {seen}, wanted {serial:x}"
        time.sleep(0.3)


def test_issue_serve_renew_and_keep_on_failure(
    tmp_path: Path,
    dns_world: NsdServer,
    pebble_server: Callable[..., PebbleServer],
    serve: list[subprocess.Popen[bytes]],
) -> None:
    dns_world.set_zone(ORIGIN, "mail A 127.0.0.1\n")
    http_port, starttls_port, implicit_port = free_port(), free_port(), free_port()
    pebble = pebble_server(
        http_port=http_port, dns_server=dns_world.nameserver, validity_seconds=VALIDITY
    )
    data_dir = tmp_path / "data"
    config = tmp_path / "mailwright.toml"
    config.write_text(
        f"""
hostname = "{HOSTNAME}"
domains = ["{ORIGIN}"]
data_dir = "{data_dir}"
allow_root = true
workers = 2

[dns]
nameserver = "{dns_world.nameserver}"

[tls]
acme = true
acme_contact = "postmaster@{ORIGIN}"
acme_directory = "{pebble.directory_url}"
acme_ca_file = "{pebble.ca_file}"

[[listeners]]
name = "submission"
port = {starttls_port}
tls = "starttls"

[[listeners]]
name = "submissions"
port = {implicit_port}
tls = "implicit"

[[listeners]]
name = "http"
role = "http"
port = {http_port}
"""
    )
    serve.append(
        subprocess.Popen(
            [MAILWRIGHT, "--config", str(config), "serve"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    assert wait_for_port(starttls_port, 30) and wait_for_port(http_port, 30)
    log = data_dir / "mailwright.log"
    ports = [(starttls_port, False), (implicit_port, True)]
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=10) as health:
        assert health.status == 200 and health.read() == b"ok\n"

    # 1. issuance: served on both listeners, chained to Pebble's root, for the hostname
    issued = events(log, "certificate-issued", 1, 60)
    assert issued, f"no certificate: {events(log, 'certificate-failed', 1, 0)}\n{pebble.log()}"
    root = tmp_path / "pebble-root.pem"
    root.write_bytes(pebble.root_pem())
    first = file_serial(data_dir)
    wait_served(ports, first, root)
    cert = served(implicit_port, True, root)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == [HOSTNAME]

    # a session that negotiated TLS before the renewal ...
    session = smtplib.SMTP("127.0.0.1", starttls_port, timeout=10)
    session.starttls(context=ssl._create_unverified_context())
    session.ehlo("client.example")

    # 2. renewal at two thirds of the lifetime, picked up without a restart
    assert len(events(log, "certificate-issued", 2, VALIDITY + 20)) >= 2
    second = file_serial(data_dir)
    assert second != first
    wait_served(ports, second, root)
    # ... is still there and still works
    assert session.noop()[0] == 250
    session.quit()
    assert len(events(log, "certificate-loaded", 4, 10)) >= 4  # issued twice x 2 workers

    # 3. the next renewal's challenge fails: the name no longer points at us
    dns_world.set_zone(ORIGIN, "mail A 127.0.0.2\n")
    failed = events(log, "certificate-failed", 1, VALIDITY + 20)
    assert failed, pebble.log()
    assert "challenge failed" in failed[0]["reason"]
    # the last certificate issued is kept: the second, or a third when the steps above
    # outlasted a renewal period on a loaded machine (it is due every ~13 s)
    last = int(events(log, "certificate-issued", 2, 0)[-1]["serial"], 16)
    assert last != first
    assert failed[0]["kept"].startswith(f"serial {last:x}")
    assert file_serial(data_dir) == last
    wait_served(ports, last, None)
    status = json.loads((data_dir / "certificates" / "status.json").read_text())
    assert status["failures"] >= 1 and "challenge failed" in status["reason"]
    doctor = Context(ORIGIN, DoctorOptions(acme_data_dir=data_dir), cast(Any, None))
    finding = asyncio.run(check_acme(doctor))
    assert finding.status == Status.FAIL
    assert "challenge failed" in finding.observed and "serving the old certificate" in (
        finding.observed
    )
