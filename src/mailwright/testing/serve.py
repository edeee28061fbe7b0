"""``mailwright serve`` as a real process, for tests and benchmarks.

One way to start it (the installed ``mailwright`` next to the running interpreter,
waiting until the listener accepts, with the server's own output in the error when
it exits first) and one way to stop it (SIGTERM, then SIGKILL if it hangs).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from ..errors import MailwrightError
from .ports import HOST, wait_for_port

__all__ = ["MAILWRIGHT", "ServeError", "start_serve", "stop_serve", "write_config"]

MAILWRIGHT = Path(sys.executable).parent / "mailwright"
"""The ``mailwright`` command of the environment the tests run in."""


class ServeError(MailwrightError):
    """``mailwright serve`` exited or did not listen in time; the message has its output."""


def write_config(
    directory: Path,
    port: int,
    *,
    relay_port: int | None = None,
    workers: int = 1,
    hostname: str = "mx.example.com",
) -> Path:
    """``directory/mailwright.toml`` for a server of ``example.com`` (mailbox
    ``admin@example.com``, data in ``directory/data``) with one submission listener on
    ``127.0.0.1:port``; it delivers to its outbox, or with ``relay_port`` through a relay
    on ``127.0.0.1:relay_port`` without TLS (``smtp-sink``, a test stand-in). Tests run
    as root in CI, so the config says ``allow_root = true``."""
    if relay_port is None:
        delivery = 'mode = "local"\n'
    else:
        delivery = (
            f'mode = "relay"\n\n[delivery.relay]\nurl = "smtp://{HOST}:{relay_port}?tls=none"\n'
        )
    config = directory / "mailwright.toml"
    config.write_text(
        f"""hostname = "{hostname}"
domains = ["example.com"]
mailboxes = ["admin@example.com"]
data_dir = "data"
allow_root = true
workers = {workers}

[[listeners]]
name = "submission"
address = "{HOST}"
port = {port}

[delivery]
{delivery}"""
    )
    return config


def start_serve(
    port: int,
    *args: str,
    config: Path | None = None,
    cwd: Path | None = None,
    output: int | IO[bytes] | None = subprocess.PIPE,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
    timeout: float = 30,
) -> subprocess.Popen[bytes]:
    """Run ``mailwright [--config CONFIG] serve ARGS`` and return once ``port`` accepts.

    ``output`` receives stdout and stderr together (a pipe by default, read for the
    error message if the server exits early). ``new_session`` gives the server its own
    process group, so that ``os.killpg`` reaches the master and every worker.
    """
    argv = [str(MAILWRIGHT)]
    if config is not None:
        argv += ["--config", str(config)]
    proc = subprocess.Popen(
        [*argv, "serve", *args],
        cwd=cwd if cwd is not None else (config.parent if config is not None else None),
        stdout=output,
        stderr=subprocess.STDOUT,
        env=dict(env) if env is not None else None,
        start_new_session=new_session,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise ServeError(f"mailwright serve exited with {proc.returncode}: {said[-3000:]}")
        if greets(port):
            return proc
    stop_serve(proc)
    raise ServeError(f"mailwright serve did not greet on {HOST}:{port} in {timeout} s")


def greets(port: int) -> bool:
    """A worker answers with its 220 greeting. (The master binds the listeners before
    the workers have opened the queue: the port accepts, queued in the kernel, before
    any worker is ready, so a bare TCP connection is not enough.)"""
    if not wait_for_port(port, 0.1, HOST):
        return False
    try:
        with socket.create_connection((HOST, port), 2) as sock:
            sock.settimeout(2)
            ready = sock.recv(4).startswith(b"220")
            if ready:
                sock.sendall(b"QUIT\r\n")
            return ready
    except OSError:
        return False


def stop_serve(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM and wait for a clean exit (SIGKILL after ``timeout``); the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
