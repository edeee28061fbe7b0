"""The ``http`` listener role: an aiohttp application served by every worker on the
shared sockets: ACME HTTP-01 challenges, ``/healthz``, and with the worker's services the
application's API (``/v1``)."""

from __future__ import annotations

from .app import make_app
from .server import HttpServer
from .services import Services

__all__ = ["HttpServer", "Services", "make_app"]
