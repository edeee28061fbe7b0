"""DNS lookups for every mail concern: one async interface; :class:`StubResolver`, our
own asyncio transport, for the network (:class:`DnspythonResolver` over
``dns.asyncresolver`` stays as the reference); :class:`CachingResolver` for the
server's shared cache; an in-memory one for tests.

Usage::

    resolver = StubResolver("127.0.0.1:5353")
    result = await resolver.mx("example.com")
    if result.ok: ...
"""

from .cache import CachingResolver
from .client import StubResolver
from .memory import MemoryResolver
from .names import name_problem, normalize, parse_ip, reverse_name, to_ascii
from .resolver import (
    DEFAULT_TIMEOUT,
    DnspythonResolver,
    Resolver,
    gather_all,
    parse_nameserver,
    parse_rdtype,
)
from .shared import server_resolver
from .types import DnsResult, MXRecord, Outcome

__all__ = [
    "DEFAULT_TIMEOUT",
    "CachingResolver",
    "DnsResult",
    "DnspythonResolver",
    "MXRecord",
    "MemoryResolver",
    "Outcome",
    "Resolver",
    "StubResolver",
    "gather_all",
    "name_problem",
    "normalize",
    "parse_ip",
    "parse_nameserver",
    "parse_rdtype",
    "reverse_name",
    "server_resolver",
    "to_ascii",
]
