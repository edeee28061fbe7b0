"""Running the application on the worker's inherited ``http`` listener sockets."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Sequence

from aiohttp import web

from ..certificates.tls import switching_context
from ..config import ListenerConfig

SHUTDOWN_TIMEOUT = 5.0
IDLE_TIMEOUT = 75.0
"""Seconds a connection may sit without a request (aiohttp's default is an hour): also
how long a client that connects and sends nothing holds a socket."""


class HttpServer:
    """Every ``role = "http"`` listener of one worker, serving one application."""

    def __init__(
        self,
        app: web.Application,
        listeners: Sequence[ListenerConfig],
        ssl_context: Callable[[], ssl.SSLContext | None],
    ) -> None:
        """``ssl_context()``: the worker's current TLS context (implicit-TLS listeners
        follow it, see :func:`~mailwright.certificates.tls.switching_context`)."""
        self.app = app
        self.listeners = [lst for lst in listeners if lst.role == "http"]
        self.ssl_context = ssl_context
        self.runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            keepalive_timeout=IDLE_TIMEOUT,
        )
        self.sites: list[web.BaseSite] = []

    async def start(self, sockets: dict[str, socket.socket] | None = None) -> None:
        await self.runner.setup()
        for listener in self.listeners:
            first = self.ssl_context() if listener.tls == "implicit" else None
            context = switching_context(first, self.ssl_context) if first is not None else None
            sock = (sockets or {}).get(listener.name)
            site: web.BaseSite
            if sock is not None:
                site = web.SockSite(self.runner, sock, ssl_context=context)
            else:
                site = web.TCPSite(
                    self.runner,
                    listener.address,
                    listener.port,
                    ssl_context=context,
                    reuse_address=True,
                )
            await site.start()
            self.sites.append(site)

    async def stop(self) -> None:
        await self.runner.cleanup()
