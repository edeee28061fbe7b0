"""Talking to systemd: readiness and watchdog notifications (sd_notify(3)).

The protocol is one datagram of ``KEY=VALUE`` lines to the ``AF_UNIX`` socket named in
``$NOTIFY_SOCKET`` (a path, or an abstract name written with a leading ``@``). Without
that variable (not started by systemd with ``Type=notify``) every call does nothing.
``$WATCHDOG_USEC`` (``WatchdogSec=`` in the unit) says how often ``WATCHDOG=1`` is due;
we send it at half that interval, as sd_watchdog_enabled(3) recommends.
"""

from __future__ import annotations

import os
import socket
import time

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"


def notify(*states: str) -> bool:
    """Send ``states`` (``"READY=1"``, ``"STOPPING=1"``...) as one message; True if sent.

    Never raises: a server must not stop because its supervisor went away.
    """
    address = os.environ.get(ENV_SOCKET)
    if not address or not states:
        return False
    if address.startswith("@"):  # abstract namespace: a NUL byte instead of '@'
        target: str | bytes = b"\0" + address[1:].encode()
    else:
        target = address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(states).encode(), target)
    except OSError:
        return False
    return True


def reloading() -> bool:
    """``RELOADING=1`` with the monotonic time systemd 253+ wants (older ones ignore it)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}")


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` messages, or None when no watchdog is configured
    for this process."""
    usec = os.environ.get(ENV_WATCHDOG_USEC, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = os.environ.get(ENV_WATCHDOG_PID, "")
    if pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 2_000_000
