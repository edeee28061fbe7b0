"""Loopback ports for test servers: one way to find a free one and to wait for one."""

from __future__ import annotations

import contextlib
import random
import socket
import time

from ..errors import MailwrightError

__all__ = ["HOST", "free_address", "free_port", "wait_for_port"]

HOST = "127.0.0.1"


def free_port(*, udp: bool = False, host: str = HOST) -> int:
    """A TCP port on ``host`` that is free right now; with ``udp``, free for UDP as well
    (a DNS server listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            if not udp:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
                try:
                    datagram.bind((host, port))
                except OSError:
                    continue
                return port
    raise MailwrightError(f"no free port on {host} for both TCP and UDP")


def free_address(port: int) -> str:
    """A 127.0.0.N (N from 100 to 250) whose ``port`` is free for TCP and UDP right now:
    for a server that must use a well-known port (DNS on 53), as root."""
    candidates = [f"127.0.0.{n}" for n in range(100, 251)]
    random.shuffle(candidates)
    for host in candidates[:50]:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram,
        ):
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((host, port))
                datagram.bind((host, port))
            except OSError:
                continue
            return host
    raise MailwrightError(f"no loopback address with port {port} free for TCP and UDP")


def wait_for_port(port: int, timeout: float, host: str = HOST) -> bool:
    """True once something accepts TCP connections on ``host:port``, False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return True
        time.sleep(0.05)
    return False
