"""Helpers shared by the DKIM unit tests (a uniquely named module, imported by name)."""

from __future__ import annotations

from mailwright.dkim import SigningKey, dns_record_value
from mailwright.dns import MemoryResolver


def world(*keys: SigningKey, testing: bool = False) -> MemoryResolver:
    """A resolver publishing each key at its selector."""
    resolver = MemoryResolver()
    for key in keys:
        resolver.add(
            f"{key.selector}._domainkey.{key.domain}",
            "TXT",
            dns_record_value(key.private_key, testing=testing),
        )
    return resolver


MESSAGE = (
    b"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Subject: Lunch\r\n"
    b"  tomorrow?\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"\r\n"
    b"Hi Bob,\r\n"
    b"\r\n"
    b"shall we  meet at noon?  \r\n"
    b"\r\n"
    b"\r\n"
)
