"""Loopback ports for test servers: one way to find a free one and to wait for one."""

from __future__ import annotations

import contextlib
import socket
import time

from ..errors import MailwrightError

__all__ = ["HOST", "free_port", "wait_for_port"]

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


def wait_for_port(port: int, timeout: float, host: str = HOST) -> bool:
    """True once something accepts TCP connections on ``host:port``, False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return True
        time.sleep(0.05)
    return False
