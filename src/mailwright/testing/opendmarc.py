"""A receiver that checks DMARC: OpenDKIM (verifying) and OpenDMARC as Postfix milters.

The usual Postfix setup of a receiving site: ``smtpd_milters`` = OpenDKIM, which adds
``Authentication-Results: HOST; dkim=...``, then OpenDMARC (Debian ``opendmarc``), which
reads that result (its ``TrustedAuthservIDs``), looks up the From domain's DMARC record
and adds ``Authentication-Results: HOST; dmarc=pass header.from=...``.

OpenDMARC resolves through the C library resolver, which only talks to port 53 of the
servers in /etc/resolv.conf (it has no option naming a server), while the test NSD
listens on a high port. So both milters run in a private network + mount namespace
(``unshare -r -n -m``, like the OpenDKIM tool tests): there, a second NSD serves the
zones given on 127.0.0.1:53 and a bind-mounted resolv.conf points at it. The namespace
has only its own loopback, so nothing there can reach the system resolver or the
internet; Postfix, outside, talks to the milters over Unix sockets in a shared
directory. Test infrastructure only.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import MailwrightError
from .port53 import NAMESPACE, dns_script

OPENDMARC = "/usr/sbin/opendmarc"
OPENDKIM = "/usr/sbin/opendkim"


class MilterError(MailwrightError, RuntimeError):
    """The milters did not start; the message carries their output."""


class DmarcMilters:
    """OpenDKIM + OpenDMARC for a Postfix receiver; DNS from ``zones`` (origin → zone
    file text, e.g. ``dns_world.zone_text(origin)``). :attr:`postfix_milters` is the value
    for Postfix's ``smtpd_milters``; ``authserv_id`` names the receiver in the
    Authentication-Results fields the milters add."""

    def __init__(self, zones: Mapping[str, str], *, authserv_id: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailwright-dmarc-"))
        os.chmod(self.dir, 0o755)  # Postfix's smtpd (user postfix) connects to the sockets
        self.zones = dict(zones)
        self.authserv_id = authserv_id
        self.dkim_socket = self.dir / "opendkim.sock"
        self.dmarc_socket = self.dir / "opendmarc.sock"
        self.postfix_milters = f"unix:{self.dkim_socket}, unix:{self.dmarc_socket}"
        self.log_file = self.dir / "milters.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DmarcMilters:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_config(self) -> str:
        """The configuration files; returns the script that starts the namespace's DNS."""
        d = self.dir
        # Neither milter may take the test's loopback client for one of its own (OpenDKIM
        # would sign instead of verify, OpenDMARC ignores 127.0.0.1 by default).
        (d / "nobody-hosts").write_text("192.0.2.1\n")
        (d / "unbound.conf").write_text(
            "server:\n    do-not-query-localhost: no\n"
            'forward-zone:\n    name: "."\n    forward-addr: 127.0.0.1@53\n'
        )
        (d / "opendkim.conf").write_text(
            "\n".join(
                [
                    "Syslog no",
                    "Mode v",
                    f"AuthservID {self.authserv_id}",
                    f"Socket local:{self.dkim_socket}",
                    f"PidFile {d / 'opendkim.pid'}",
                    "UMask 0000",
                    f"InternalHosts {d / 'nobody-hosts'}",
                    f"ResolverConfiguration {d / 'unbound.conf'}",
                    "AlwaysAddARHeader yes",
                ]
            )
            + "\n"
        )
        (d / "opendmarc.conf").write_text(
            "\n".join(
                [
                    "Syslog false",
                    f"AuthservID {self.authserv_id}",
                    f"TrustedAuthservIDs {self.authserv_id}",
                    f"Socket local:{self.dmarc_socket}",
                    f"PidFile {d / 'opendmarc.pid'}",
                    "UMask 0000",
                    f"IgnoreHosts {d / 'nobody-hosts'}",
                    "FailureReports false",
                    "RejectFailures false",
                    "SPFSelfValidate false",
                ]
            )
            + "\n"
        )
        return dns_script(d, self.zones)

    def start(self, timeout: float = 20.0) -> None:
        for program in (OPENDMARC, OPENDKIM):
            if not Path(program).exists():
                raise MilterError(f"{program} is missing: run scripts/bootstrap --test")
        d = shlex.quote(str(self.dir))
        script = f"""{self._write_config()}
{OPENDKIM} -f -x {d}/opendkim.conf &
{OPENDMARC} -f -c {d}/opendmarc.conf &
wait
"""
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                [*NAMESPACE, script],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.dkim_socket.exists() and self.dmarc_socket.exists():
                return
            time.sleep(0.1)
        output = self.log_file.read_text(errors="replace")
        self.stop()
        raise MilterError(f"OpenDKIM/OpenDMARC did not open their sockets: {output[-2000:]}")

    def stop(self) -> None:
        """Stop the namespace's processes (its process group) and remove the directory."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc is not None:
            # the milters and NSD may outlive the shell for a moment
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
