"""Value types shared by every resolver.

A lookup never raises for a DNS-level outcome: SPF (RFC 7208 §4.6.4, §5),
DKIM (RFC 6376 §6.1.2) and DMARC (RFC 9989 §4.10) each treat "no such name",
"no records of that type", "server failure" and "timeout" differently, so the
outcome is data that the caller inspects.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T_co = TypeVar("T_co", covariant=True)
"""Covariant: a result is immutable, so ``DnsResult[MXRecord]`` is a ``DnsResult[object]``."""


class Outcome(enum.StrEnum):
    """What a single DNS query produced."""

    ANSWER = "answer"
    """One or more records of the asked type."""
    NXDOMAIN = "nxdomain"
    """The name does not exist (RCODE 3)."""
    NODATA = "nodata"
    """The name exists but has no records of the asked type."""
    SERVFAIL = "servfail"
    """The server failed or refused (SERVFAIL, REFUSED, no usable server)."""
    TIMEOUT = "timeout"
    """No answer within the lifetime."""
    INVALID_NAME = "invalid-name"
    """The name cannot be queried (label > 63 octets, name > 253, empty label); nothing sent."""


@dataclass(frozen=True, slots=True)
class MXRecord:
    """One MX record; ``exchange`` is lowercase without the trailing dot, ``""`` for "."."""

    preference: int
    exchange: str

    @property
    def is_null(self) -> bool:
        """RFC 7505 §3: a null MX has preference 0 and exchange ".".

        Callers usually test ``exchange == ""`` alone; the preference is kept here
        so that a doctor can flag a malformed null MX.
        """
        return self.exchange == ""


@dataclass(frozen=True, slots=True)
class DnsResult(Generic[T_co]):
    """The result of one query: outcome, parsed records and the raw answer for display.

    Record types by ``rdtype``: ``A``/``AAAA`` → address strings, ``MX`` →
    :class:`MXRecord`, ``TXT``/``SPF`` → the character-strings of one record joined
    without separators (RFC 7208 §3.3), ``PTR``/``CNAME``/``NS`` → names in lowercase
    without the trailing dot.
    """

    name: str
    rdtype: str
    outcome: Outcome
    records: tuple[T_co, ...] = ()
    cnames: tuple[str, ...] = ()
    """CNAME targets followed to reach the answer, in order (empty when ``name`` had none)."""
    text: tuple[str, ...] = ()
    """The answer section as ``dig`` shows it: ``name. TTL IN TYPE data`` per line."""
    error: str | None = field(default=None)
    """A human explanation for non-answers (server message, timeout after N s)."""
    ttl: int | None = field(default=None, compare=False)
    """Seconds the result may be cached (RFC 1035 §3.2.1; RFC 2308 §5 for NXDOMAIN/NODATA),
    None when the resolver cannot tell or the result must not be cached."""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.ANSWER

    @property
    def is_void(self) -> bool:
        """NXDOMAIN or no data: RFC 7208 §4.6.4 counts these as void lookups."""
        return self.outcome in (Outcome.NXDOMAIN, Outcome.NODATA)

    @property
    def is_error(self) -> bool:
        """Server failure or timeout: a temporary error for SPF, DKIM and DMARC."""
        return self.outcome in (Outcome.SERVFAIL, Outcome.TIMEOUT)
