"""The one resolver a server worker shares between its sessions and its delivery agent."""

from __future__ import annotations

from .cache import CachingResolver
from .client import StubResolver
from .resolver import Resolver

_shared: dict[tuple[str | None, float], CachingResolver] = {}


def server_resolver(nameserver: str | None, timeout: float) -> Resolver:
    """A cached :class:`StubResolver` for ``nameserver``, the same object on every call.

    One per process and configuration: all sessions of a worker share its cache
    and its UDP socket; a reload that names another server gets a fresh one.
    """
    key = (nameserver, timeout)
    resolver = _shared.get(key)
    if resolver is None:
        resolver = _shared[key] = CachingResolver(StubResolver(nameserver, timeout=timeout))
    return resolver
