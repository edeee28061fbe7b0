"""REQUIRETLS (RFC 8689) on a real submission listener: offered inside TLS only, the
MAIL parameter refused outside it, and the tag (or ``TLS-Required: No``) queued."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from test_smtp_server import PASSWORD, harness_factory, open_session  # same directory

pytestmark = pytest.mark.integration

__all__ = ["harness_factory"]  # the fixture, used by name

TOKEN = base64.b64encode(f"\0bob\0{PASSWORD}".encode()).decode()


async def _submit(harness_factory: Any, mail: str, message: bytes) -> Any:
    h = await harness_factory()
    c = await open_session(h, "submission")
    assert "REQUIRETLS" not in await c.cmd("EHLO c")  # §2: only once TLS is on
    if "REQUIRETLS" in mail:
        assert await c.cmd(mail) == "530 5.7.10 REQUIRETLS needs a TLS session"
    assert await c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    await c.starttls()
    assert "REQUIRETLS" in await c.cmd("EHLO c")
    assert await c.cmd(f"AUTH PLAIN {TOKEN}") == "235 2.7.0 Authentication successful"
    assert await c.cmd(mail) == "250 2.1.0 Ok"
    assert await c.cmd("RCPT TO:<anyone@example.net>") == "250 2.1.5 Ok"
    await c.cmd("DATA")
    reply = await c.cmd(message.decode() + ".")
    assert reply.startswith("250 ")
    await c.close()
    entry = await h.store.get(reply.rsplit(" ", 1)[1])
    assert entry is not None
    return entry.meta


async def test_requiretls_is_offered_in_tls_and_queued(harness_factory: Any) -> None:
    meta = await _submit(
        harness_factory,
        "MAIL FROM:<bob@example.com> REQUIRETLS",
        b"From: bob@example.com\r\nSubject: secret\r\n\r\nhi\r\n",
    )
    assert meta.requiretls and not meta.tls_optional


async def test_tls_required_no_is_queued(harness_factory: Any) -> None:
    meta = await _submit(
        harness_factory,
        "MAIL FROM:<bob@example.com>",
        b"From: bob@example.com\r\nTLS-Required: No\r\nSubject: report\r\n\r\nhi\r\n",
    )
    assert meta.tls_optional and not meta.requiretls


async def test_inbound_listener_does_not_offer_it(harness_factory: Any) -> None:
    h = await harness_factory()
    c = await open_session(h, "inbound", ehlo=False)
    assert "REQUIRETLS" not in await c.cmd("EHLO c")
    assert (await c.cmd("MAIL FROM:<a@example.org> REQUIRETLS")).startswith("555")
    await c.close()
