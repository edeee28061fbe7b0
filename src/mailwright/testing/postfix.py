"""Real Postfix for tests and benchmarks: a private instance and ``smtp-sink``.

:class:`PostfixServer` runs Debian's Postfix from a temporary directory of its
own — ``main.cf``/``master.cf``, queue and data directories — with smtpd on a
free loopback port, so nothing under ``/etc/postfix`` or ``/var/spool/postfix``
is read or written and several instances can run side by side. Two shapes:

* an **MX** for ``domains``: every recipient there is accepted and delivered by
  Postfix's ``virtual`` agent into one Maildir (:attr:`PostfixServer.maildir`),
  optionally with per-recipient 4xx/5xx answers (an ``inline:`` access map that
  :meth:`PostfixServer.set_recipient_access` changes at run time);
* a **relay** (``relayhost``): everything from loopback goes to that host:port
  (the benchmark's Postfix beside mailwright).

DNS is off (``disable_dns_lookups``), so Postfix never leaves loopback.

:class:`SmtpSink` runs ``/usr/sbin/smtp-sink`` and counts messages from its
running counter (``-c``); ``soft``/``hard`` make it answer chosen commands with
4xx/5xx.

Usage::

    with PostfixServer(domains=["example.net"]) as mx:
        ...deliver to 127.0.0.1:mx.port...
        [message] = mx.wait_for_messages(1)
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from ..errors import MailwrightError
from .ports import free_port, wait_for_port

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
HOST = "127.0.0.1"
START_TIMEOUT = 20.0

_MASTER = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(MailwrightError, RuntimeError):
    """Postfix did not start, stop or reload; the message carries its log."""


def _children(parent: int, name: str) -> set[int]:
    """PIDs of ``parent``'s child processes called ``name`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces, so split after the ")"
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        if comm == name and fields and int(fields[1]) == parent:
            found.add(int(entry.name))
    return found


def _access_map(access: Mapping[str, str]) -> str:
    """An ``inline:`` table: ``{ {key=value}, ... }`` (postconf(5), Postfix ≥ 3.0)."""
    if not access:
        return ""
    for key, value in access.items():
        if any(c in key + value for c in "{}\n"):
            raise ValueError(f"access entry not usable in an inline: map: {key!r}")
    items = ", ".join(f"{{{k}={v}}}" for k, v in access.items())
    return f"check_recipient_access inline:{{ {items} }}"


class PostfixServer:
    """A private Postfix instance on ``127.0.0.1:port`` (see the module docstring)."""

    def __init__(
        self,
        *,
        domains: Sequence[str] = ("example.net",),
        hostname: str = "mx.example.net",
        relayhost: str | None = None,
        port: int | None = None,
        recipient_access: Mapping[str, str] | None = None,
        tls_cert: tuple[Path, Path] | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.domains = tuple(domains)
        self.hostname = hostname
        self.relayhost = relayhost
        self.port = port or free_port()
        self.recipient_access = dict(recipient_access or {})
        self.tls_cert = tls_cert
        self.extra = dict(settings or {})
        self.dir = Path(tempfile.mkdtemp(prefix="mailwright-postfix-"))
        self.config_dir = self.dir / "etc"
        self.queue_dir = self.dir / "spool"
        self.maildir = self.dir / "mail" / "inbox"
        self.log_file = self.dir / "maillog"
        self.running = False

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self) -> PostfixServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def main_cf(self) -> dict[str, str]:
        nobody = pwd.getpwnam("nobody")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.dir / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": HOST,
            "inet_protocols": "ipv4",
            "myhostname": self.hostname,
            "mydomain": self.hostname.partition(".")[2] or self.hostname,
            "myorigin": "$myhostname",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "maillog_file": str(self.log_file),
            "maillog_file_prefixes": str(self.dir),
            "disable_dns_lookups": "yes",
            "smtp_host_lookup": "native",
            "smtpd_banner": "$myhostname ESMTP",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            "virtual_mailbox_domains": " ".join(self.domains),
            "virtual_mailbox_base": str(self.dir / "mail"),
            "virtual_mailbox_maps": "static:inbox/",  # trailing slash: Maildir
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            "virtual_minimum_uid": "1",
            "relayhost": self.relayhost or "",
            "smtpd_recipient_restrictions": (
                _access_map(self.recipient_access) + " permit_mynetworks reject_unauth_destination"
            ).strip(),
            "message_size_limit": "10240000",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "default_destination_concurrency_limit": "50",
            "smtp_destination_concurrency_limit": "50",
            "default_process_limit": "200",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "5s",
            "queue_run_delay": "1s",
            "in_flow_delay": "0",
            "smtpd_error_sleep_time": "0",
            "smtputf8_enable": "yes",
        }
        if self.tls_cert:
            settings.update(
                smtpd_tls_security_level="may",
                smtpd_tls_cert_file=str(self.tls_cert[0]),
                smtpd_tls_key_file=str(self.tls_cert[1]),
                smtpd_tls_received_header="yes",
            )
        settings.update(self.extra)
        return settings

    def start(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("data", "mail", "spool"):
            (self.dir / sub).mkdir(exist_ok=True)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.dir / "mail", nobody.pw_uid, nobody.pw_gid)
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.dir / "data", postfix_user.pw_uid, grp.getgrnam("postfix").gr_gid)
        (self.config_dir / "main.cf").write_text(
            "".join(f"{k} = {v}\n" for k, v in self.main_cf().items())
        )
        (self.config_dir / "master.cf").write_text(_MASTER.format(listen=f"{HOST}:{self.port}"))
        self.log_file.touch()
        os.chmod(self.dir, 0o755)
        try:
            self._postfix("start")
        except PostfixError:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.running = True
        if not wait_for_port(self.port, START_TIMEOUT):
            log = self.log()
            self.stop()
            raise PostfixError(f"Postfix did not listen on {HOST}:{self.port}:\n{log[-3000:]}")

    def stop(self) -> None:
        if self.running:
            with contextlib.suppress(PostfixError):
                self._postfix("stop")
            self.running = False
            # master exits asynchronously; wait for the port to be released
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and wait_for_port(self.port, 0.05):
                time.sleep(0.05)
        shutil.rmtree(self.dir, ignore_errors=True)

    def reload(self) -> None:
        """Make new settings effective for the next connection.

        SIGHUP to master (what ``postfix reload`` does, without its seconds of checks),
        then wait until every smtpd that was running has exited: an idle smtpd keeps
        the old settings and would otherwise serve the next client with them.
        """
        pid_file = self.queue_dir / "pid" / "master.pid"
        try:
            master = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            self._postfix("reload")
            time.sleep(1.0)
            return
        old = _children(master, "smtpd")
        os.kill(master, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and old & _children(master, "smtpd"):
            time.sleep(0.02)

    def set_recipient_access(self, access: Mapping[str, str]) -> None:
        """Change the per-recipient answers (``{"x@example.net": "450 4.2.0 later"}``)."""
        self.recipient_access = dict(access)
        self.postconf(
            smtpd_recipient_restrictions=(
                _access_map(self.recipient_access) + " permit_mynetworks reject_unauth_destination"
            ).strip()
        )
        self.reload()

    def postconf(self, **settings: str) -> None:
        args = [f"{k}={v}" for k, v in settings.items()]
        self._run([POSTCONF, "-c", str(self.config_dir), "-e", *args])

    def flush(self) -> None:
        """Try the deferred queue now (``postqueue -f``)."""
        self._run(["/usr/sbin/postqueue", "-c", str(self.config_dir), "-f"])

    def _postfix(self, command: str) -> None:
        self._run([POSTFIX, "-c", str(self.config_dir), command])

    def _run(self, argv: list[str]) -> None:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise PostfixError(
                f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                f"{self.log()[-2000:]}"
            )

    # -- what arrived ------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def messages(self) -> list[bytes]:
        """Messages delivered into the Maildir, oldest first."""
        found: list[Path] = []
        for sub in ("new", "cur"):
            folder = self.maildir / sub
            if folder.is_dir():
                found.extend(folder.iterdir())
        return [p.read_bytes() for p in sorted(found, key=lambda p: p.name)]

    def wait_for_messages(self, count: int, timeout: float = 20.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str] | None:
        """The first match of the regular expression ``pattern`` in the log, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.log())
            if match or time.monotonic() > deadline:
                return match
            time.sleep(0.05)

    def delivered_count(self) -> int:
        """Messages relayed on (``status=sent`` lines in the log)."""
        return len(re.findall(r" status=sent ", self.log()))


class SmtpSink:
    """``smtp-sink`` on a free loopback port; :attr:`count` is the messages received."""

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = HOST,
        soft: Sequence[str] = (),
        hard: Sequence[str] = (),
        soft_reply: str | None = None,
        hard_reply: str | None = None,
        backlog: int = 1024,
        max_concurrency: int = 1024,
        dump_dir: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.host = host
        self.argv = [SMTP_SINK, "-c", "-u", "nobody", "-m", str(max_concurrency)]
        if soft:
            self.argv += ["-r", ",".join(soft)]
        if hard:
            self.argv += ["-f", ",".join(hard)]
        if soft_reply:
            self.argv += ["-b", soft_reply]
        if hard_reply:
            self.argv += ["-B", hard_reply]
        if dump_dir is not None:
            dump_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(dump_dir, 0o777)
            self.argv += ["-d", f"{dump_dir}/%H%M%S."]
        self.argv += [f"{host}:{self.port}", str(backlog)]
        self.proc: subprocess.Popen[bytes] | None = None
        self._count = 0
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not wait_for_port(self.port, 10, self.host):
            self.stop()
            raise RuntimeError(f"smtp-sink did not listen on {self.host}:{self.port}")

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        pending = b""
        while True:
            chunk = self.proc.stdout.read(4096)
            if not chunk:
                return
            pending += chunk
            counts = re.findall(rb"mesg=(\d+)", pending)
            if counts:
                with self._lock:
                    self._count = max(self._count, int(counts[-1]))
                pending = pending[-64:]

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def wait_for(self, count: int, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.count < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.count

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
