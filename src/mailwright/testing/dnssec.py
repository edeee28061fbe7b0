"""A DNSSEC test world: zones signed with ``ldns-signzone``, validated by a real Unbound.

:class:`ZoneSigner` makes one key (ECDSA P-256, a KSK that signs everything) per zone
with ``ldns-keygen`` and signs the full zone text that :meth:`NsdServer.set_zone`
builds (``signer=signer``). :meth:`ZoneSigner.ds` gives the DS record for the parent;
the root's DS is the trust anchor.

:class:`UnboundServer` runs Debian's ``/usr/sbin/unbound`` in the foreground on a
free loopback port, with that trust anchor and a stub zone per test zone pointing at
NSD, caching switched off (tests change zones). Its AD flag is then what
``[dns] dnssec = true`` trusts: secure, insecure (no DS in the parent) and bogus
(a signature that does not verify → SERVFAIL) are all real.

Usage::

    signer = ZoneSigner(tmp / "keys")
    nsd.set_zone("example.net", body, signer=signer)
    nsd.set_zone(".", signer.delegation("example.net"), signer=signer)
    with UnboundServer(nsd.port, ["."], signer.trust_anchor()) as unbound:
        DnspythonResolver(unbound.nameserver, dnssec=True)
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query

from ..errors import MailwrightError
from .ports import free_port

LDNS_KEYGEN = "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = "/usr/bin/ldns-signzone"
UNBOUND = "/usr/sbin/unbound"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0


class DnssecToolError(MailwrightError, RuntimeError):
    """ldns or Unbound failed; the message carries their output."""


def _run(argv: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise DnssecToolError(
            f"{argv[0]} not found: install ldnsutils and unbound (scripts/bootstrap)"
        ) from None
    if done.returncode != 0:
        raise DnssecToolError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


class ZoneSigner:
    """Keys and signatures for test zones (one key per zone, kept for the signer's life)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._keys: dict[str, str] = {}

    def key(self, origin: str) -> str:
        """The key file base name (``Kexample.net.+013+12345``) of ``origin``'s key."""
        fq = _fq(origin)
        if fq not in self._keys:
            out = _run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", fq], self.directory)
            self._keys[fq] = out.strip().splitlines()[-1]
        return self._keys[fq]

    def ds(self, origin: str) -> str:
        """The DS record (``example.net. IN DS ...``) to publish in the parent zone."""
        return (self.directory / f"{self.key(origin)}.ds").read_text().strip()

    def trust_anchor(self) -> str:
        """The root's DS record: what Unbound trusts."""
        return self.ds(".")

    def delegation(self, origin: str, *, secure: bool = True) -> str:
        """Parent-zone lines delegating ``origin`` (NS, and DS when ``secure``)."""
        lines = [f"{_fq(origin)} IN NS ns.mailwright.test."]
        if secure:
            lines.append(self.ds(origin))
        return "\n".join(lines) + "\n"

    def __call__(self, origin: str, text: str) -> str:
        """Sign the full zone ``text`` (the :meth:`NsdServer.set_zone` signer hook)."""
        fq = _fq(origin)
        name = "root" if fq == "." else fq.rstrip(".")
        zone = self.directory / f"{name}.zone"
        zone.write_text(text, encoding="utf-8")
        _run([LDNS_SIGNZONE, "-f", f"{zone}.signed", str(zone), self.key(fq)], self.directory)
        return Path(f"{zone}.signed").read_text(encoding="utf-8")


def tamper(signed: str, owner: str, rdtype: str, replace: str) -> str:
    """Change the data of one signed record (its RRSIG then no longer verifies: bogus)."""
    pattern = re.compile(
        rf"^({re.escape(owner)}\s+\d+\s+IN\s+{rdtype}\s+)(.*)$", re.MULTILINE | re.IGNORECASE
    )
    result, count = pattern.subn(lambda m: m.group(1) + replace, signed, count=1)
    if not count:
        raise ValueError(f"no {rdtype} record of {owner} in the zone")
    return result


def _fq(origin: str) -> str:
    return "." if origin in (".", "") else origin.rstrip(".") + "."


class UnboundServer:
    """A validating Unbound on ``127.0.0.1:port`` resolving only from NSD (stub zones)."""

    def __init__(self, nsd_port: int, zones: Iterable[str], trust_anchor: str) -> None:
        self.nsd_port = nsd_port
        self.zones = [_fq(z) for z in zones]
        self.trust_anchor = trust_anchor
        self.port = 0
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def nameserver(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> UnboundServer:
        if not Path(UNBOUND).exists():
            raise DnssecToolError(f"{UNBOUND} not found: install unbound (scripts/bootstrap)")
        self.directory = Path(tempfile.mkdtemp(prefix="mailwright-unbound-"))
        self.port = free_port(udp=True)
        (self.directory / "root.key").write_text(self.trust_anchor + "\n")
        config = self.directory / "unbound.conf"
        config.write_text(self._config())
        log = open(self.directory / "unbound.log", "wb")  # noqa: SIM115 (the process keeps it)
        self._process = subprocess.Popen(
            [UNBOUND, "-d", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DnssecToolError(f"unbound exited: {self.log()}")
            with contextlib.suppress(dns.exception.DNSException, OSError):
                query = dns.message.make_query(".", "SOA")
                dns.query.udp(query, HOST, port=self.port, timeout=0.3)
                return self
            time.sleep(0.05)
        self.stop()
        raise DnssecToolError(f"unbound did not answer within {START_TIMEOUT:g} s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> UnboundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log(self) -> str:
        if self.directory is None:
            return ""
        with contextlib.suppress(OSError):
            return (self.directory / "unbound.log").read_text(errors="replace")[-2000:]
        return ""

    def _config(self) -> str:
        assert self.directory is not None
        d = self.directory
        stubs = "".join(
            f'stub-zone:\n    name: "{zone}"\n    stub-addr: {HOST}@{self.nsd_port}\n'
            for zone in self.zones
        )
        return f"""# Written by mailwright.testing.dnssec for one test resolver.
server:
    interface: {HOST}@{self.port}
    port: {self.port}
    do-ip6: no
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    trust-anchor-file: "{d}/root.key"
    module-config: "validator iterator"
    qname-minimisation: no
    aggressive-nsec: no
    cache-max-ttl: 0
    cache-max-negative-ttl: 0
    val-bogus-ttl: 0
    prefetch: no
    num-threads: 1
remote-control:
    control-enable: no
{stubs}"""
