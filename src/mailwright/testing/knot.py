"""A real authoritative DNS server that takes dynamic updates, for tests: Knot DNS.

:class:`KnotServer` runs Debian's ``/usr/sbin/knotd`` in the foreground on
``127.0.0.1`` at a free port, from a private temporary directory with its own
configuration (no system file is read or written).  Its zones accept RFC 2136
dynamic updates signed with a TSIG key (RFC 8945) made up for the run, the way a
DNS provider's primary does.  A server started with ``primary=`` is a secondary:
it transfers the primary's zones (AXFR/IXFR on NOTIFY), so "every authoritative
server serves it" can be observed with a real lag.

Usage::

    with KnotServer({"example.test": "@ MX 10 mail"}) as knot:
        knot.tsig        # (name, algorithm, base64 secret)
        knot.address     # ("127.0.0.1", port)
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from ..errors import MailwrightError
from .ports import free_port

KNOTD = "/usr/sbin/knotd"
HOST = "127.0.0.1"
LOOPBACK = "127.0.0.0/8"
START_TIMEOUT = 10.0
TSIG_NAME = "mailwright-update"
TSIG_ALGORITHM = "hmac-sha256"

_HEADER = """$ORIGIN {origin}.
$TTL 60
@ SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 60
@ NS ns.{origin}.
ns A {ns}
"""


class KnotError(MailwrightError, RuntimeError):
    """knotd could not be started or did not answer in time."""


class KnotServer:
    """One knotd process; see the module docstring."""

    def __init__(
        self,
        zones: dict[str, str] | None = None,
        *,
        primary: KnotServer | None = None,
        secret: bytes | None = None,
        host: str = HOST,
        port: int = 0,
    ) -> None:
        """``host``/``port``: where to listen (default 127.0.0.1, a free port); ``host`` is
        also the address of the zones' ``ns`` (their SOA MNAME), so a primary on port 53
        of a spare loopback address can be found the way ``nsupdate`` finds one."""
        self.host = host
        self._fixed_port = port
        self.zones = {k.rstrip(".").lower(): v for k, v in (zones or {}).items()}
        self.primary = primary
        if primary is not None:
            self.zones = dict.fromkeys(primary.zones, "")
        raw = secret if secret is not None else os.urandom(32)
        self.tsig = (TSIG_NAME, TSIG_ALGORITHM, base64.b64encode(raw).decode("ascii"))
        if primary is not None:
            self.tsig = primary.tsig
        self.port = 0
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def address(self) -> tuple[str, int]:
        if not self.port:
            raise KnotError("knotd is not running")
        return self.host, self.port

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"

    def key_file_text(self) -> str:
        """The TSIG key as Knot's configuration writes it (what ``--tsig-key`` reads)."""
        name, algorithm, secret = self.tsig
        return f"key:\n  - id: {name}\n    algorithm: {algorithm}\n    secret: {secret}\n"

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> KnotServer:
        if not os.access(KNOTD, os.X_OK):
            raise KnotError(f"{KNOTD} not found: install the 'knot' package (scripts/bootstrap)")
        self.directory = Path(tempfile.mkdtemp(prefix="mailwright-knot-"))
        last = ""
        for _attempt in range(1 if self._fixed_port else 5):
            self.port = self._fixed_port or free_port(udp=True, host=self.host)
            self._write_config()
            self._log = self.directory / "knotd.log"
            with open(self._log, "wb") as log:
                self._process = subprocess.Popen(
                    [KNOTD, "-c", str(self.directory / "knot.conf")],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                self._wait_serving()
                return self
            except KnotError as exc:
                last = str(exc)
                self._terminate()
        self.stop()
        raise KnotError(f"knotd did not start: {last}")

    def stop(self) -> None:
        self._terminate()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> KnotServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                process.kill()

    def log(self) -> str:
        if self._log is None or not self._log.exists():
            return ""
        return self._log.read_text(errors="replace")

    # -- internals -----------------------------------------------------------------

    def _write_config(self) -> None:
        assert self.directory is not None
        d = self.directory
        name, algorithm, secret = self.tsig
        lines = [
            "server:",
            f"    rundir: {d}",
            f"    listen: {self.host}@{self.port}",
            "    udp-workers: 1",
            "    tcp-workers: 1",
            "    background-workers: 1",
            "control:",
            f"    listen: {d}/knot.sock",
            "log:",
            "  - target: stderr",
            "    any: info",
            "database:",
            f"    storage: {d}",
            "key:",
            f"  - id: {name}",
            f"    algorithm: {algorithm}",
            f"    secret: {secret}",
        ]
        if self.primary is not None:
            lines += [
                "remote:",
                "  - id: primary",
                f"    address: {self.primary.host}@{self.primary.port}",
                "acl:",
                "  - id: notify",
                f"    address: {LOOPBACK}",
                "    action: notify",
            ]
        else:
            lines += [
                "acl:",
                "  - id: update",
                f"    key: {name}",
                "    action: update",
                "  - id: transfer",
                f"    address: {LOOPBACK}",
                "    action: transfer",
            ]
        lines += [
            "template:",
            "  - id: default",
            f"    storage: {d}",
            "    zonefile-sync: -1",
            "    semantic-checks: off",
            "zone:",
        ]
        for origin, body in self.zones.items():
            lines.append(f"  - domain: {origin}")
            if self.primary is not None:
                # polls the primary's SOA every 2 s: a real, short lag
                lines += [
                    "    master: primary",
                    "    acl: notify",
                    "    refresh-min-interval: 2",
                    "    refresh-max-interval: 2",
                ]
            else:
                header = _HEADER.format(origin=origin, ns=self.host)
                (d / f"{origin}.zone").write_text(header + body + "\n")
                lines += [f"    file: {origin}.zone", "    acl: [update, transfer]"]
        (d / "knot.conf").write_text("\n".join(lines) + "\n")

    def refresh(self) -> None:
        """A secondary: transfer the zones from the primary now (knotc zone-refresh)."""
        assert self.directory is not None
        subprocess.run(
            ["knotc", "-s", str(self.directory / "knot.sock"), "zone-refresh"],
            capture_output=True,
            timeout=10,
            check=False,
        )

    def _wait_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        origin = next(iter(self.zones), "")
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                raise KnotError(f"knotd exited: {self.log()[-2000:]}")
            try:
                query = dns.message.make_query(f"{origin}.", dns.rdatatype.SOA)
                answer = dns.query.udp(query, self.host, port=self.port, timeout=0.5)
                if answer.answer or self.primary is not None:
                    return
            except (dns.exception.DNSException, OSError):
                pass
            time.sleep(0.05)
        raise KnotError(f"no answer within {START_TIMEOUT:g} s: {self.log()[-2000:]}")

    def _terminate(self) -> None:
        process = self._process
        self._process = None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
