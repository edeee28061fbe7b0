"""Reusable test infrastructure: real servers (NSD, Postfix) on loopback.

Used by the test suite, the benchmarks and ``mailwright demo``; never by the
server itself. Only :mod:`.pytest_plugin` (the fixtures) imports pytest; the helpers
in :mod:`.ports`, :mod:`.serve` and :mod:`.tls` work without it.
"""

from .nsd import NsdError, NsdServer, ZoneError

DnsWorld = NsdServer
"""The type of the ``dns_world`` fixture, for annotations in tests."""

__all__ = ["DnsWorld", "NsdError", "NsdServer", "ZoneError"]
