"""Binding the configured listeners, with errors a person can act on.

``serve`` binds before anything else happens (before a development key is generated,
before root is dropped): a port that is taken or privileged is the most common first
failure, and it must be reported with the address and port and what to do.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence

from .config import Config, ListenerConfig
from .errors import UserError
from .smtp.server import listener_sockets

PRIVILEGED_PORTS = 1024
"""Ports below this need root or CAP_NET_BIND_SERVICE (net.ipv4.ip_unprivileged_port_start)."""


def endpoint(listener: ListenerConfig) -> str:
    host = f"[{listener.address}]" if ":" in listener.address else listener.address
    return f"{host}:{listener.port}"


def bind_error(listener: ListenerConfig, exc: OSError, config: Config, dev_mode: bool) -> UserError:
    """One line: which address and port, what the system said, how to fix it."""
    where = f"cannot listen on {endpoint(listener)} ({listener.name})"
    if exc.errno == errno.EADDRINUSE:
        if dev_mode:
            hint = (
                "another server uses that port: "
                "pick another with 'mailwright serve --listen 127.0.0.1:2526'"
            )
        else:
            hint = (
                f"another server uses that port (see 'ss -ltnp'): stop it, or change port in "
                f"[[listeners]] of {config.source}"
            )
        return UserError(f"{where}: address already in use", hint)
    if exc.errno == errno.EACCES and listener.port < PRIVILEGED_PORTS:
        return UserError(
            f"{where}: permission denied: ports below {PRIVILEGED_PORTS} need privileges",
            "start 'mailwright serve' as root with user = \"mailwright\" in the config (it drops "
            "root after binding), or grant CAP_NET_BIND_SERVICE (the unit of "
            "'mailwright service install' does)",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return UserError(
            f"{where}: the address is not on this machine",
            "use one of this machine's addresses (see 'ip -brief address'), or 0.0.0.0",
        )
    reason = exc.strerror or str(exc)
    return UserError(f"{where}: {reason}", f"check [[listeners]] in {config.source}")


def bind_listeners(
    config: Config, listeners: Sequence[ListenerConfig] | None = None, *, dev_mode: bool = False
) -> dict[str, socket.socket]:
    """Bind every listener (all or none: on an error the ones already bound are closed)."""
    bound: dict[str, socket.socket] = {}
    try:
        for listener in listeners if listeners is not None else config.listeners:
            try:
                bound.update(listener_sockets([listener]))
            except OSError as exc:
                raise bind_error(listener, exc, config, dev_mode) from None
    except BaseException:
        for sock in bound.values():
            sock.close()
        raise
    return bound
