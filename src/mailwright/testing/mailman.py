"""A private Mailman 3 core for tests: its own mailman.cfg, var directory and SQLite
database, LMTP and REST on free loopback ports, its outgoing mail to a port we give.

Mailman core is Debian's ``mailman3`` package (``/usr/bin/mailman``, runners under
``/usr/lib/mailman3/bin``). ``start()`` runs ``mailman start`` (a master process and
its runners) and waits until REST and LMTP accept connections; ``stop()`` runs
``mailman stop`` and waits for the processes to go. Tests run as root, hence
``--run-as-root``.

Mailman never leaves loopback: its own DNS questions (the DMARC policy of a poster's
domain, ``mailman.rules.dmarc``, through dnspython's ``Resolver()``, which reads the
system's /etc/resolv.conf) go to the ``nameserver`` given (the test NSD; without one a
dead loopback port) through a ``sitecustomize`` on its ``PYTHONPATH`` that replaces
dnspython's reading of resolv.conf; and the public suffix list it would download for
DMARC's organizational domain is the copy Debian ships, placed in its var directory
as a cache that does not expire, with the download URL pointing at loopback.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import MailwrightError
from .ports import free_port

MAILMAN = "/usr/bin/mailman"
BIN_DIR = "/usr/lib/mailman3/bin"
REST_USER = "restadmin"

_CONFIG = """\
[mailman]
layout: mailwright
site_owner: postmaster@{site_domain}
noreply_address: noreply

[paths.mailwright]
var_dir: {var}
bin_dir: {bin_dir}
queue_dir: $var_dir/queue
list_data_dir: $var_dir/lists
log_dir: $var_dir/logs
lock_dir: $var_dir/locks
data_dir: $var_dir/data
cache_dir: $var_dir/cache
etc_dir: $var_dir/etc
ext_dir: $var_dir/ext
messages_dir: $var_dir/messages
archive_dir: $var_dir/archives
template_dir: $var_dir/templates
pid_file: $var_dir/master.pid
lock_file: $lock_dir/master.lck

[database]
class: mailman.database.sqlite.SQLiteDatabase
url: sqlite:///{var}/data/mailman.db

{mta}
[webservice]
hostname: 127.0.0.1
port: {rest_port}
admin_user: {rest_user}
admin_pass: {rest_password}
workers: 1

[runner.bounces]
# tests wait seconds, not Mailman's two minutes, for bounces to be scored
sleep_time: 1s

[dmarc]
# never downloaded: the shipped copy is the cache (see MailmanCore.start)
org_domain_data_url: http://127.0.0.1:9/public_suffix_list.dat
resolver_timeout: 2s
resolver_lifetime: 3s

[runner.nntp]
start: no
[archiver.mhonarc]
enable: no
[archiver.mail_archive]
enable: no
[archiver.prototype]
enable: no
"""


_SITECUSTOMIZE = """\
\"\"\"Written by mailwright.testing.mailman: this Mailman's DNS goes to the test server.\"\"\"
import dns.resolver


def _read_resolv_conf(self, f):
    self.nameservers = [{host!r}]
    self.port = {port}
    self.search = []


dns.resolver.BaseResolver.read_resolv_conf = _read_resolv_conf
"""
SUFFIX_LIST = Path("/usr/lib/python3/dist-packages/mailman/rules/data/public_suffix_list.dat")
DEAD_NAMESERVER = "127.0.0.1:9"
"""Where Mailman's DNS goes when a test gives no nameserver: nowhere, on loopback."""


class MailmanError(MailwrightError, RuntimeError):
    """The private Mailman core could not be started or asked."""


class MailmanCore:
    """One private Mailman core; ``rest(...)`` talks to its REST API."""

    def __init__(
        self,
        *,
        smtp_port: int,
        site_domain: str = "lists.example",
        nameserver: str | None = None,
        mta_settings: Mapping[str, str] | None = None,
    ) -> None:
        """``mta_settings``: more of mailman.cfg's ``[mta]`` (``verp_delivery_interval``)."""
        from ..mailman import mta_section

        self.directory = Path(tempfile.mkdtemp(prefix="mailwright-mailman-"))
        self.var = self.directory / "var"
        self.lmtp_port = free_port()
        self.rest_port = free_port()
        self.smtp_port = smtp_port
        self.rest_password = base64.b32encode(os.urandom(10)).decode().lower()
        self.config_path = self.directory / "mailman.cfg"
        mta = mta_section(
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            lmtp_host="127.0.0.1",
            lmtp_port=self.lmtp_port,
        ) + "".join(f"{key}: {value}\n" for key, value in (mta_settings or {}).items())
        self.config_path.write_text(
            _CONFIG.format(
                site_domain=site_domain,
                var=self.var,
                bin_dir=BIN_DIR,
                mta=mta,
                rest_port=self.rest_port,
                rest_user=REST_USER,
                rest_password=self.rest_password,
            )
        )
        self.password_file = self.directory / "rest-password"
        self.password_file.write_text(self.rest_password + "\n")
        self.nameserver = nameserver or DEAD_NAMESERVER
        self.site_dir = self.directory / "site"
        self.site_dir.mkdir()
        # In the file, not the environment: Mailman's master passes only PYTHONPATH and a
        # few others on to its runners.
        host, _, port = self.nameserver.rpartition(":")
        (self.site_dir / "sitecustomize.py").write_text(
            _SITECUSTOMIZE.format(host=host, port=int(port))
        )

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}/3.1"

    def _mailman(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        # Output to a file, not a pipe: the master process ``start`` leaves running would
        # hold a pipe open and ``run`` would wait for it.
        with open(self.directory / "mailman-command.log", "a+") as log:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.site_dir), os.environ.get("PYTHONPATH")) if p
            )
            done = subprocess.run(
                [MAILMAN, "-C", str(self.config_path), "--run-as-root", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                start_new_session=True,
            )
            log.seek(0)
            return subprocess.CompletedProcess(done.args, done.returncode, log.read()[-2000:], "")

    def start(self, timeout: float = 90.0) -> None:
        if not Path(MAILMAN).exists():
            raise MailmanError(f"{MAILMAN} is missing: install mailman3 (scripts/bootstrap)")
        self.var.mkdir(parents=True, exist_ok=True)
        suffixes = self.var / SUFFIX_LIST.name
        if not suffixes.exists():
            shutil.copyfile(SUFFIX_LIST, suffixes)
            forever = time.time() + 10 * 365 * 86400  # Mailman's expiry is the file's mtime
            os.utime(suffixes, (forever, forever))
        done = self._mailman("start")
        if done.returncode != 0:
            raise MailmanError(f"mailman start failed: {done.stdout} {done.stderr}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _listening(self.lmtp_port) and self._rest_up():
                return
            time.sleep(0.5)
        log = (self.var / "logs" / "mailman.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise MailmanError(f"Mailman did not come up in {timeout}s: {log}")

    def _rest_up(self) -> bool:
        try:
            self.rest("GET", "system/versions")
        except (OSError, urllib.error.URLError, MailmanError):
            return False
        return True

    def stop(self) -> None:
        """Stop Mailman (if running) and remove its directory; safe to call twice."""
        if not self.directory.exists():
            return
        with contextlib.suppress(Exception):
            self._mailman("stop", timeout=30)
        pid_file = self.var / "master.pid"
        deadline = time.monotonic() + 20
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.3)
        if pid_file.exists():
            with contextlib.suppress(Exception):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        shutil.rmtree(self.directory, ignore_errors=True)

    def rest(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        """One REST call; the decoded JSON answer (None for an empty one)."""
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(f"{self.rest_url}/{path}", data=body, method=method)
        token = base64.b64encode(f"{REST_USER}:{self.rest_password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise MailmanError(f"REST {method} {path}: {exc.code} {exc.read()[:300]!r}") from None
        return json.loads(text) if text else None

    def create_list(self, fqdn_listname: str) -> None:
        domain = fqdn_listname.rpartition("@")[2]
        with contextlib.suppress(Exception):
            self.rest("POST", "domains", {"mail_host": domain})
        self.rest("POST", "lists", {"fqdn_listname": fqdn_listname})

    def members(self, fqdn_listname: str) -> list[dict[str, Any]]:
        list_id = fqdn_listname.replace("@", ".")
        answer = self.rest("GET", f"lists/{list_id}/roster/member")
        return list(answer.get("entries", []))


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
