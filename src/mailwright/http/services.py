"""What the HTTP route modules share: the worker's services and the keys they are
stored under in the application and the request (apart from :mod:`.app`, which imports
the route modules, so that they need not import it back)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..apikeys import ApiKey, ApiKeys
from ..certificates.store import CertificateStore
from ..config import Config
from ..log import EventLogger
from ..mailman import MailmanRest
from ..queue.store import QueueStore
from ..queue.tracking import Tracking
from ..smtp.auth import AuthLimiter

STORE_KEY = web.AppKey("certificate_store", CertificateStore)
API_KEY = web.RequestKey("api_key", ApiKey)


@dataclass
class Services:
    """What the API works with: the worker's config view, queue, events and SMTP server
    (whose :meth:`~mailwright.smtp.server.SmtpServer.submit` is the intake path)."""

    config: Callable[[], Config]
    store: QueueStore
    tracking: Tracking | None
    smtp: Any
    logger: EventLogger
    limiter: AuthLimiter = field(default_factory=AuthLimiter)
    unsubscribe_key: bytes | None = None
    """Checks RFC 8058 one-click tokens (None: no ``[mailman]``, every link is 404)."""
    mailman: Callable[[], MailmanRest | None] = field(default=lambda: None)
    """Mailman's REST API of the current config (may raise UserError: no password)."""
    _keys: tuple[int, ApiKeys] | None = None

    def keys(self) -> ApiKeys:
        """The configured keys (rebuilt after a reload)."""
        config = self.config()
        if self._keys is None or self._keys[0] != id(config):
            self._keys = (id(config), ApiKeys((k.name, k.hash, k.scopes) for k in config.api_keys))
        return self._keys[1]

    def trusted(self, ip: str | None) -> bool:
        try:
            addr = ipaddress.ip_address(ip or "")
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.config().trusted_networks)


SERVICES = web.AppKey("services", Services)
