"""The ``http`` listener role: an aiohttp application served by every worker on the
shared sockets. Today: ACME HTTP-01 challenges and ``/healthz``; issue 11's API adds its
routes to :func:`.app.make_app`."""

from __future__ import annotations

from .app import make_app
from .server import HttpServer

__all__ = ["HttpServer", "make_app"]
