"""A real authoritative DNS server for tests, benchmarks and the demo: NSD on loopback.

:class:`NsdServer` runs Debian's ``/usr/sbin/nsd`` in the foreground on
``127.0.0.1`` at a free port, from a private temporary directory with its own
``nsd.conf`` (no system files are read or written). Zones are added, changed and
removed at run time over NSD's control socket (a unix socket in that directory,
so no TLS keys are needed), and every change is waited for: a call returns only
once NSD serves the new SOA serial, so a test never races a reload.

Zone bodies are zone-file text with names relative to the origin; the SOA (with
a fresh serial) and an NS record are prepended, and the whole file is checked
with ``nsd-checkzone`` first so that a typo raises :class:`ZoneError` naming the
zone, the line of the body and NSD's message instead of a silent timeout.

Usage::

    with NsdServer() as ns:
        ns.set_zone("example.com", '@ MX 10 mail\\nmail A 192.0.2.10')
        resolver = ns.resolver()          # a DnspythonResolver aimed at NSD
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from ..dns import DnspythonResolver
from ..dns.names import is_dns_name, name_problem, normalize, to_ascii
from ..errors import MailwrightError
from .ports import free_port

NSD = "/usr/sbin/nsd"
NSD_CHECKZONE = "/usr/sbin/nsd-checkzone"

HOST = "127.0.0.1"
DEFAULT_TTL = 300
START_TIMEOUT = 10.0
CHANGE_TIMEOUT = 10.0
"""Seconds to wait for NSD to serve a change; a healthy NSD needs a few milliseconds."""

_PATTERN = "mailwright"
_HEADER = """$ORIGIN {origin}.
$TTL {ttl}
@ IN SOA ns.mailwright.test. hostmaster.{origin}. {serial} 3600 600 86400 60
@ IN NS ns.mailwright.test.
"""
_HEADER_LINES = _HEADER.count("\n")
# nsd-checkzone's log lines: "[2026-01-01 12:00:00.000] nsd-checkzone[123]: error: FILE:LINE: text"
_CHECK_LINE = re.compile(r"^\[[^\]]*\] nsd-checkzone\[\d+\]: (?:error: )?(?P<text>.*)$")
_FILE_LINE = re.compile(r"^(?P<file>\S+?):(?P<line>\d+): (?P<text>.*)$")


class NsdError(MailwrightError, RuntimeError):
    """NSD could not be started, controlled or did not serve a change in time."""


class ZoneError(NsdError):
    """A zone body that NSD rejects; the message names the zone and NSD's errors."""

    def __init__(self, origin: str, errors: list[str]) -> None:
        self.origin = origin
        self.errors = errors
        super().__init__(f"zone {origin!r} is invalid: " + "; ".join(errors))


class NsdServer:
    """One NSD process serving zones that the caller sets; see the module docstring.

    Start with :meth:`start` or a ``with`` block; :meth:`stop` ends the process and
    removes the directory. Methods are safe to call from several threads.
    """

    def __init__(self, *, ttl: int = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self.port = 0
        self.directory: Path | None = None
        self.start_seconds = 0.0
        """Wall time of the last :meth:`start`, from spawning NSD to its first answer."""
        self._process: subprocess.Popen[bytes] | None = None
        self._zones: dict[str, int] = {}
        self._serial = int(time.time()) % 1_000_000_000
        self._lock = threading.RLock()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def nameserver(self) -> str:
        """``127.0.0.1:PORT``, the form ``--nameserver`` and :class:`DnspythonResolver` take."""
        if not self.port:
            raise NsdError("NSD is not running")
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def zones(self) -> tuple[str, ...]:
        """The origins being served, in the order they were added."""
        return tuple(self._zones)

    def start(self) -> NsdServer:
        """Start NSD and wait until it answers queries; retries on a port lost to a race."""
        with self._lock:
            if self.running:
                return self
            for tool in (NSD, NSD_CHECKZONE):
                if not os.access(tool, os.X_OK):
                    raise NsdError(
                        f"{tool} not found: install the 'nsd' package (scripts/bootstrap --test)"
                    )
            self._terminate()  # a process that died on its own: reap it, drop its files
            self._cleanup()
            root = _short_tmp()
            _remove_stale_directories(Path(root or tempfile.gettempdir()))
            self.directory = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=root))
            last_error = ""
            try:
                for _attempt in range(5):
                    try:
                        self._spawn()
                        return self
                    except _PortTaken as exc:
                        last_error = str(exc)
                raise NsdError(f"NSD did not start: {last_error}")
            except BaseException:
                self._terminate()
                self._cleanup()
                raise

    def stop(self) -> None:
        """Stop NSD (SIGTERM, then SIGKILL after 5 s) and delete its directory."""
        with self._lock:
            self._terminate()
            self._cleanup()

    def __enter__(self) -> NsdServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort against leaked processes when stop() was never reached.
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                process.kill()

    # -- zones -------------------------------------------------------------------

    def set_zone(
        self, origin: str, body: str, *, signer: Callable[[str, str], str] | None = None
    ) -> None:
        """Serve ``body`` as zone ``origin`` (new or replaced); returns once NSD serves it.

        ``body`` is zone-file text with names relative to the origin; the SOA and an
        NS record are added. Raises :class:`ZoneError` when NSD rejects the text.
        ``signer(origin, text)`` returns the whole zone text DNSSEC-signed
        (:class:`mailwright.testing.dnssec.ZoneSigner`); ``"."`` is the root zone.
        """
        origin = _check_origin(origin)
        with self._lock:
            directory = self._require_running()
            self._serial += 1
            serial = self._serial
            text = _header(origin, self.ttl, serial) + body
            if not text.endswith("\n"):
                text += "\n"
            if signer is not None:
                text = signer(origin, text)
            final = directory / f"{origin}.zone"
            staged = directory / f"{origin}.zone.new"
            staged.write_text(text, encoding="utf-8")
            self._checkzone(origin, staged)
            previous_ns = final.stat().st_mtime_ns if final.exists() else 0
            os.replace(staged, final)
            # NSD re-reads a zone file only when its mtime changed; make sure it did even
            # when two writes fall in the same clock tick.
            mtime = max(time.time_ns(), previous_ns + 1_000_000)
            os.utime(final, ns=(mtime, mtime))
            old_servers = self._server_pids()
            if origin in self._zones:
                self._control(f"reload {origin}")
            else:
                self._control(f"addzone {origin} {_PATTERN}")
            self._zones[origin] = serial
            self._wait_for(origin, serial, old_servers)

    def remove_zone(self, origin: str) -> None:
        """Stop serving ``origin``; returns once NSD no longer answers with its SOA."""
        origin = _check_origin(origin)
        with self._lock:
            directory = self._require_running()
            if origin not in self._zones:
                raise KeyError(f"zone {origin!r} is not served (served: {', '.join(self._zones)})")
            old_servers = self._server_pids()
            self._control(f"delzone {origin}")
            del self._zones[origin]
            (directory / f"{origin}.zone").unlink(missing_ok=True)
            self._wait_for(origin, None, old_servers)

    def reset(self) -> None:
        """Remove every zone: the state a fresh server starts in."""
        with self._lock:
            for origin in list(self._zones):
                self.remove_zone(origin)

    def zone_text(self, origin: str) -> str:
        """The full zone file as served (header included), for debugging a test."""
        directory = self._require_running()
        return (directory / f"{_check_origin(origin)}.zone").read_text(encoding="utf-8")

    def resolver(self, timeout: float = 2.0) -> DnspythonResolver:
        """A resolver that sends every query to this server."""
        return DnspythonResolver(self.nameserver, timeout=timeout)

    def log(self) -> str:
        """NSD's log file so far (empty when not started)."""
        if self.directory is None:
            return ""
        try:
            return (self.directory / "nsd.log").read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # -- internals ---------------------------------------------------------------

    def _require_running(self) -> Path:
        if not self.running or self.directory is None:
            raise NsdError("NSD is not running: call start() first" + self._exit_note())
        return self.directory

    def _exit_note(self) -> str:
        if self._process is not None and self._process.returncode is not None:
            return f" (it exited with status {self._process.returncode}; log: {self._log_tail()})"
        return ""

    def _spawn(self) -> None:
        assert self.directory is not None
        began = time.monotonic()
        self.port = free_port(udp=True)
        self._zones.clear()
        config = self.directory / "nsd.conf"
        config.write_text(nsd_config(self.directory, self.port), encoding="utf-8")
        (self.directory / "zone.list").unlink(missing_ok=True)
        (self.directory / "nsd.log").unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [NSD, "-d", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.directory,
            # Own session: a Ctrl-C in the terminal reaches Python, which stops NSD in order.
            start_new_session=True,
            preexec_fn=_die_with_parent if _is_main_thread() else None,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                log = self._log_tail()
                self._process = None
                if "bind" in log or "address already in use" in log.lower():
                    raise _PortTaken(log)
                raise NsdError(f"NSD exited at start: {log or 'no log output'}")
            if self._answers() and self._control_ready():
                break
            if time.monotonic() > deadline:
                self._terminate()
                raise NsdError(f"NSD did not answer within {START_TIMEOUT:g} s: {self._log_tail()}")
            time.sleep(0.005)
        self.start_seconds = time.monotonic() - began

    def _terminate(self) -> None:
        process, self._process = self._process, None
        self._zones.clear()
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5.0)
            except subprocess.TimeoutExpired:
                # NSD's children are in its session: take them down with it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def _cleanup(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        self.port = 0

    def _checkzone(self, origin: str, path: Path) -> None:
        result = subprocess.run(
            [NSD_CHECKZONE, origin, str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if result.returncode == 0:
            return
        errors: list[str] = []
        for raw in (result.stderr + "\n" + result.stdout).splitlines():
            match = _CHECK_LINE.match(raw.strip())
            line = match.group("text") if match else raw.strip()
            if not line or line.startswith(f"zone {origin} file"):
                continue
            where = _FILE_LINE.match(line)
            if where:
                body_line = int(where.group("line")) - _HEADER_LINES
                line = (
                    f"near line {body_line} of the body: {where.group('text')}"
                    if body_line > 0
                    else f"in the generated SOA/NS header: {where.group('text')}"
                )
            errors.append(line)
        path.unlink(missing_ok=True)
        raise ZoneError(origin, errors or [f"nsd-checkzone exited with {result.returncode}"])

    def _control(self, command: str) -> str:
        """One command over NSD's control socket (the protocol nsd-control speaks)."""
        assert self.directory is not None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(CHANGE_TIMEOUT)
            try:
                sock.connect(str(self.directory / "nsd.ctl"))
                sock.sendall(f"NSDCT1 {command}\n".encode())
                chunks = []
                while chunk := sock.recv(4096):
                    chunks.append(chunk)
            except OSError as exc:
                raise NsdError(f"nsd control {command!r} failed: {exc}{self._exit_note()}") from exc
        reply = b"".join(chunks).decode("utf-8", errors="replace").strip()
        if reply.startswith("error"):
            raise NsdError(f"nsd control {command!r}: {reply}")
        return reply

    def _control_ready(self) -> bool:
        assert self.directory is not None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(self.directory / "nsd.ctl"))
            except OSError:
                return False
        return True

    def _answers(self) -> bool:
        """NSD answers (REFUSED for a name it does not serve is an answer)."""
        try:
            dns.query.udp(dns.message.make_query(".", "SOA"), HOST, port=self.port, timeout=0.05)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    def _served_serial(self, origin: str) -> int | None:
        """The SOA serial NSD answers for ``origin`` (None when it serves no such zone)."""
        query = dns.message.make_query(dns.name.from_text(origin), "SOA")
        try:
            response = dns.query.udp(query, HOST, port=self.port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            return -1  # no answer at all: neither the old nor the new state, keep waiting
        if response.rcode() != dns.rcode.NOERROR:
            return None
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.SOA and rrset.name == query.question[0].name:
                return int(rrset[0].serial)
        return None

    def _wait_for(self, origin: str, serial: int | None, old_servers: set[int]) -> None:
        """Wait until NSD serves ``serial`` for ``origin`` (None: no such zone) everywhere.

        A reload starts new server processes next to the old ones, which keep answering
        from the old data until they exit: seeing the new serial once is not enough, the
        old servers must be gone too.
        """
        deadline = time.monotonic() + CHANGE_TIMEOUT
        delay = 0.001
        while True:
            if self._served_serial(origin) == serial and not (old_servers & self._server_pids()):
                return
            if not self.running:
                raise NsdError(f"NSD died while loading zone {origin!r}{self._exit_note()}")
            if time.monotonic() > deadline:
                want = f"serial {serial}" if serial is not None else "the zone gone"
                raise NsdError(
                    f"NSD did not serve zone {origin!r} with {want} within "
                    f"{CHANGE_TIMEOUT:g} s: {self._log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _server_pids(self) -> set[int]:
        """The live processes of NSD that answer queries ("nsd: server N")."""
        if self._process is None:
            return set()
        found: set[int] = set()
        todo = [self._process.pid]
        while todo:
            pid = todo.pop()
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue  # exited meanwhile
            if stat.rsplit(") ", 1)[-1].startswith("Z"):
                continue  # a zombie answers nothing
            if comm.startswith("nsd: server"):
                found.add(pid)
            todo.extend(_children(pid))
        return found

    def _log_tail(self, lines: int = 8) -> str:
        return " | ".join(self.log().strip().splitlines()[-lines:])


class _PortTaken(NsdError):
    """The port picked was taken before NSD bound it: pick another."""


_DIR_PREFIX = "mwnsd-"
_STALE_AFTER = 600.0


def _remove_stale_directories(root: Path) -> None:
    """Delete directories of servers whose process is gone (a test run killed hard).

    A directory counts as stale when its NSD is not running (no pid file, or the pid is
    not an NSD) and nothing in it changed for ten minutes, so that a server of another
    run that is just starting is never touched.
    """
    now = time.time()
    for directory in root.glob(f"{_DIR_PREFIX}*"):
        try:
            if now - directory.stat().st_mtime < _STALE_AFTER:
                continue
            pid_text = (directory / "nsd.pid").read_text().strip()
        except FileNotFoundError:
            pid_text = ""
        except OSError:
            continue
        if pid_text.isdigit():
            try:
                if Path(f"/proc/{pid_text}/comm").read_text().startswith("nsd"):
                    continue  # still serving
            except OSError:
                pass
        shutil.rmtree(directory, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """Child pids, from /proc/PID/task/PID/children, or by scanning /proc where the kernel
    lacks that file (CONFIG_PROC_CHILDREN)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        if Path(f"/proc/{pid}").exists():
            return _children_by_scan(pid)
        return []
    except OSError:
        return []


def _children_by_scan(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def _header(origin: str, ttl: int, serial: int) -> str:
    if origin == ".":  # the root of a test world (DNSSEC tests)
        text = _HEADER.format(origin="", ttl=ttl, serial=serial)
        return text.replace("hostmaster..", "hostmaster.")
    return _HEADER.format(origin=origin, ttl=ttl, serial=serial)


def _check_origin(origin: str) -> str:
    if origin == ".":
        return origin
    problem = name_problem(origin)
    if problem is not None:
        raise ValueError(f"zone origin {origin!r}: {problem}")
    name = to_ascii(normalize(origin))
    if not is_dns_name(name):
        raise ValueError(f"zone origin {origin!r}: use letters, digits, inner '-', '_' and dots")
    return name


def nsd_config(directory: Path, port: int) -> str:
    """NSD's configuration for a private server on 127.0.0.1:``port``, everything in
    ``directory`` (zones added by ``nsd-control`` or as ``zone:`` sections after it)."""
    d = str(directory)
    return f"""# Written by mailwright.testing.nsd for one test server; deleted when it stops.
server:
    ip-address: {HOST}@{port}
    port: {port}
    server-count: 1
    tcp-count: 64
    reuseport: no
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    pidfile: "{d}/nsd.pid"
    logfile: "{d}/nsd.log"
    verbosity: 1
    hide-version: yes
    zonefiles-check: yes
    zonefiles-write: 0
    xfrd-reload-timeout: 0
    # NSD rate-limits answers by default (about 200/s per source) and then drops
    # queries, which tests would see as timeouts.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0

remote-control:
    control-enable: yes
    control-interface: {d}/nsd.ctl

pattern:
    name: "{_PATTERN}"
    zonefile: "%s.zone"
"""


def _short_tmp() -> str | None:
    """A temp root short enough for a unix socket path (108 bytes on Linux)."""
    root = tempfile.gettempdir()
    return root if len(root) < 60 else "/tmp"


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child: ask Linux to send SIGTERM when our process dies (no orphaned NSD).

    Only set from the main thread: the signal fires when the *thread* that forked exits.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
