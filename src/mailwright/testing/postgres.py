"""Real PostgreSQL for tests and benchmarks: a private cluster in a temporary directory.

:class:`PostgresCluster` runs Debian's PostgreSQL server binaries (``initdb``,
``pg_ctl``) on a cluster of its own — data directory, socket directory and log under
one temporary directory, the server on a free loopback port — so the package's own
cluster (``/var/lib/postgresql``, port 5432) is neither read nor touched and several
test runs can have clusters side by side.

The server runs with ``fsync = on`` and ``synchronous_commit = on`` (the defaults,
set explicitly): the queue's durability tests are only worth something on a server
that really flushes its WAL. ``initdb --no-sync`` only skips flushing the freshly made
template files, which a test cluster never needs after a power cut.

PostgreSQL refuses to run as root; as root the cluster belongs to the ``postgres``
user (made by the Debian package) and every command runs through ``runuser``, so the
temporary directory is made traversable for that user.

Usage::

    with PostgresCluster() as cluster:
        url = cluster.create_database("t1")  # postgresql://postgres@127.0.0.1:PORT/t1
        ...
        cluster.stop("fast"); cluster.start()  # a restart, same port and data
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
SUPERUSER = "postgres"
DIR_PREFIX = "mailwright-pg-"
OWNER_FILE = "owner.pid"
"""The process that made the cluster: when it is gone (a test run killed hard), the next
cluster stops the orphaned server and removes its directory."""
START_TIMEOUT = 60.0
PGDIRS = Path("/usr/lib/postgresql")


def postgres_bin() -> Path:
    """The newest installed server version's ``bin`` directory (Debian's layout)."""
    candidates = sorted(
        (p for p in PGDIRS.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(
            f"no PostgreSQL server under {PGDIRS} (install the 'postgresql' package: "
            "scripts/bootstrap)"
        )
    return candidates[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """A private PostgreSQL cluster on a loopback port (see the module docstring)."""

    def __init__(self, *, port: int | None = None, max_connections: int = 200) -> None:
        self.bin = postgres_bin()
        self.port = port or free_port()
        self.max_connections = max_connections
        _stop_orphans(Path(tempfile.gettempdir()), self.bin)
        self.root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._owner = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
            _make_traversable(self.root)
        self._initdb()

    # -- commands ------------------------------------------------------------------------

    def _command(self, program: str, *args: str) -> list[str]:
        argv = [str(self.bin / program), *args]
        if self._owner is not None:
            return ["runuser", "-u", SUPERUSER, "--", *argv]
        return argv

    def _run(self, program: str, *args: str, timeout: float = START_TIMEOUT) -> None:
        result = subprocess.run(
            self._command(program, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log}"
            )

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--auth=trust",
            "--username",
            SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.root}",
                f"-c listen_addresses={HOST}",
                "-c fsync=on",
                "-c synchronous_commit=on",
                f"-c max_connections={self.max_connections}",
            ]
        )
        self._run(
            "pg_ctl",
            "--pgdata",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(int(START_TIMEOUT)),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast``: roll back sessions, checkpoint, exit; ``immediate``: like a crash."""
        self._run("pg_ctl", "--pgdata", str(self.data), "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self._run("createdb", "-h", HOST, "-p", str(self.port), "-U", SUPERUSER, name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._run(
            "dropdb", "-h", HOST, "-p", str(self.port), "-U", SUPERUSER, "--force", "--if-exists",
            name,
        )  # fmt: skip

    def close(self) -> None:
        if self.running:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        if not os.environ.get("MAILWRIGHT_KEEP_PG"):  # set: the cluster stays, for its server.log
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _make_traversable(path: Path) -> None:
    """Let the ``postgres`` user reach ``path``: every parent needs the x bit for others
    (``/tmp`` has it; a private ``TMPDIR`` may not)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


def _stop_orphans(root: Path, bin_dir: Path) -> None:
    """Stop and remove clusters whose owner process died without closing them."""
    for directory in root.glob(f"{DIR_PREFIX}*"):
        try:
            owner = (directory / OWNER_FILE).read_text().strip()
        except OSError:
            continue  # being created right now, or not ours
        if not owner.isdigit() or Path(f"/proc/{owner}").exists():
            continue
        if (directory / "data" / "postmaster.pid").exists():
            argv = [str(bin_dir / "pg_ctl"), "--pgdata", str(directory / "data"), "-m",
                    "immediate", "-w", "stop"]  # fmt: skip
            if os.geteuid() == 0:
                argv = ["runuser", "-u", SUPERUSER, "--", *argv]
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(argv, capture_output=True, timeout=30, check=False)
        shutil.rmtree(directory, ignore_errors=True)


def wait_until_ready(cluster: PostgresCluster, timeout: float = START_TIMEOUT) -> None:
    """Block until the server accepts TCP connections (after an external restart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((HOST, cluster.port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"PostgreSQL on port {cluster.port} did not come back")
