"""DNS lookups for every mail concern: one async interface, a dnspython implementation
for the network and an in-memory one for tests.

Usage::

    resolver = DnspythonResolver("127.0.0.1:5353")
    result = await resolver.mx("example.com")
    if result.ok: ...
"""

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
from .types import DnsResult, MXRecord, Outcome

__all__ = [
    "DEFAULT_TIMEOUT",
    "DnsResult",
    "DnspythonResolver",
    "MXRecord",
    "MemoryResolver",
    "Outcome",
    "Resolver",
    "gather_all",
    "name_problem",
    "normalize",
    "parse_ip",
    "parse_nameserver",
    "parse_rdtype",
    "reverse_name",
    "to_ascii",
]
