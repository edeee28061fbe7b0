"""SIGHUP runs ``config check``'s checks: a broken config is refused and the old one stays."""

from __future__ import annotations

import signal
import smtplib
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailwright.testing.ports import free_port
from mailwright.testing.tls import make_certificate

pytestmark = pytest.mark.integration

MAILWRIGHT = str(Path(sys.executable).parent / "mailwright")


def _wait(predicate: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError(what)


def _starttls_names(port: int, ca: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=context)
        assert client.noop()[0] == 250


def test_sighup_with_a_broken_certificate_keeps_the_old_config(tmp_path: Path) -> None:
    good = make_certificate(tmp_path / "good", "mail.example.com")
    other = make_certificate(tmp_path / "other", "mail.example.com")
    port = free_port()
    config = tmp_path / "mailwright.toml"
    body = (
        'hostname = "mail.example.com"\ndomains = ["example.com"]\n'
        'mailboxes = ["admin@example.com"]\ndata_dir = "data"\nworkers = 1\nallow_root = true\n'
        f'[[listeners]]\nname = "sub"\nport = {port}\ntls = "starttls"\n'
    )
    config.write_text(
        body + f'[tls]\ncertificate = "{good.certificate}"\nprivate_key = "{good.private_key}"\n'
    )
    proc = subprocess.Popen(
        [MAILWRIGHT, "--config", str(config), "serve"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "data" / "mailwright.log"
    try:
        _wait(lambda: log.exists() and "event=started" in log.read_text(), "no start")
        _starttls_names(port, good.ca)
        config.write_text(
            body
            + f'[tls]\ncertificate = "{good.certificate}"\nprivate_key = "{other.private_key}"\n'
        )
        check = subprocess.run(
            [MAILWRIGHT, "--config", str(config), "config", "check"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 2, check
        proc.send_signal(signal.SIGHUP)
        _wait(lambda: "what=reload" in log.read_text(), "no reload error logged")
        assert "key must belong to the certificate" in log.read_text()
        assert "event=reloaded" not in log.read_text()
        _starttls_names(port, good.ca)  # the old certificate still serves
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
