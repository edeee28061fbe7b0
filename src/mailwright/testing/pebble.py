"""Debian's ``pebble`` (Let's Encrypt's ACME test server) on loopback, for tests of
``[tls] acme``.

Pebble validates HTTP-01 challenges by connecting to ``NAME:http_port``, resolving NAME
through ``dns_server`` (the tests' NSD: never the system resolver). Its own HTTPS uses a
certificate from a throw-away CA (:attr:`PebbleServer.ca_file`), trusted only by the
tests through ``[tls] acme_ca_file``; the CA it issues from is random per run
(:meth:`PebbleServer.root_pem`).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request
from pathlib import Path

from .ports import free_port, wait_for_port
from .tls import make_certificate

PEBBLE = "/usr/bin/pebble"
HOST = "127.0.0.1"


class PebbleServer:
    def __init__(
        self,
        directory: Path,
        *,
        http_port: int,
        dns_server: str,
        validity_seconds: int | None = None,
    ) -> None:
        self.directory = directory
        self.http_port = http_port
        self.dns_server = dns_server
        self.validity_seconds = validity_seconds
        self.port = free_port()
        self.management_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = directory / "pebble.log"
        self.ca_file = directory / "tls" / "ca.pem"

    @property
    def directory_url(self) -> str:
        return f"https://{HOST}:{self.port}/dir"

    def start(self) -> PebbleServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        files = make_certificate(self.directory / "tls", "localhost")
        settings: dict[str, object] = {
            "listenAddress": f"{HOST}:{self.port}",
            "managementListenAddress": f"{HOST}:{self.management_port}",
            "certificate": str(files.certificate),
            "privateKey": str(files.private_key),
            "httpPort": self.http_port,
            "tlsPort": free_port(),  # TLS-ALPN-01 is not used; nothing listens there
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.validity_seconds is not None:
            settings["certificateValidityPeriod"] = self.validity_seconds
        config = self.directory / "pebble-config.json"
        config.write_text(json.dumps({"pebble": settings}, indent=2))
        env = dict(
            os.environ,
            PEBBLE_VA_NOSLEEP="1",  # validate at once instead of after 0-15 s
            PEBBLE_WFE_NONCEREJECT="0",  # no artificial badNonce errors
            PEBBLE_AUTHZREUSE="0",  # every order proves control again (the failure test)
        )
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [PEBBLE, "-config", str(config), "-dnsserver", self.dns_server],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.directory,
            )
        if not wait_for_port(self.port, 20, HOST):
            self.stop()
            raise RuntimeError(f"pebble did not listen on {HOST}:{self.port}: {self.log()}")
        return self

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def root_pem(self) -> bytes:
        """The root that signs the certificates this run issues."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        url = f"https://{HOST}:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            data: bytes = response.read()
        return data

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
