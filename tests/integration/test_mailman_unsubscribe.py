"""RFC 8058 one-click unsubscribe end to end: a private Mailman core, NSD, the Postfix MX
and mailwright's HTTPS listener on loopback.

Two members get a post; each copy at the Postfix MX carries its own HTTPS link next to
Mailman's mailto URI and ``List-Unsubscribe-Post``, under the list domain's DKIM
signature (dkimpy verifies, ``h=`` names both) and a valid ARC Set. A GET of the link
changes nothing; the POST a mail provider sends removes that member from Mailman's
roster and no one else.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import dkim
import pytest

from mailwright import message as rfc5322
from mailwright.testing.listsite import (
    LIST,
    LIST_ID,
    ListSite,
    publish_zones,
    running_list_site,
    smtp_transaction,
)
from mailwright.testing.mailman import MailmanCore
from mailwright.testing.nsd import NsdServer
from mailwright.testing.postfix import PostfixServer
from mailwright.testing.tls import CertificateFiles

pytestmark = pytest.mark.integration

ALICE, BOB = "alice@example.net", "bob@example.net"


@pytest.fixture
async def site(
    dns_world: NsdServer,
    postfix_mx: PostfixServer,
    mailman_core: Callable[..., MailmanCore],
    tls_files: CertificateFiles,
    tmp_path: Path,
) -> AsyncIterator[ListSite]:
    publish_zones(dns_world)
    async with running_list_site(
        dns_world, postfix_mx, mailman_core, tmp_path, https=tls_files
    ) as running:
        yield running


def _crlf(message: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _copies(postfix: PostfixServer, subject: bytes) -> dict[str, bytes]:
    """The stored copies of the post, by the member Postfix delivered each to."""
    out: dict[str, bytes] = {}
    for message in postfix.messages():
        if subject in message:
            stored = _crlf(message)
            out[(rfc5322.field_value(stored, "Delivered-To") or "").lower()] = stored
    return out


def _signed_names(message: bytes) -> list[str]:
    for value in rfc5322.field_values(message, "DKIM-Signature"):
        if re.search(r"\bd=lists\.example;", value):
            found = re.search(r"\bh=([^;]+);", value)
            assert found is not None
            return [n.strip().lower() for n in found.group(1).split(":")]
    raise AssertionError("no DKIM-Signature of lists.example")


async def test_each_member_gets_a_signed_link_and_the_post_unsubscribes_only_them(
    site: ListSite, postfix_mx: PostfixServer, tls_files: CertificateFiles
) -> None:
    flags = {"pre_verified": "true", "pre_confirmed": "true", "pre_approved": "true"}
    for member in (ALICE, BOB):
        await asyncio.to_thread(
            site.mailman.rest,
            "POST",
            "members",
            {"list_id": LIST_ID, "subscriber": member, **flags},
        )
    post = (
        f"From: Bob <{BOB}>\r\nTo: {LIST}\r\nSubject: picnic on sunday\r\n"
        "Message-ID: <picnic-1@example.net>\r\nDate: Tue, 24 Nov 2026 19:00:00 +0000\r\n\r\n"
        "Bring a blanket.\r\n"
    ).encode()
    assert ((await smtp_transaction(site.smtp.ports()["mx"], BOB, [LIST], post))[-1]).startswith(
        "250 "
    )

    copies = await site.wait_for(
        lambda: (c := _copies(postfix_mx, b"picnic on sunday")) and len(c) == 2 and c, 90
    )
    assert set(copies) == {ALICE, BOB}
    # Mailman sent one transaction for both members; we queued a copy for each
    from_list = [
        e
        for e in site.events
        if e["event"] == "accepted" and e.get("from") == "<team-bounces@lists.example>"
    ]
    assert sum(1 for e in from_list if e.get("nrcpt") == "1") >= 2, from_list

    def txt(name: bytes | str, timeout: float = 5) -> bytes:
        qname = name.decode() if isinstance(name, bytes) else name
        result = asyncio.run(site.agent.resolver.txt(qname.rstrip(".")))
        return result.records[0].encode() if result.ok else b""

    links: dict[str, str] = {}
    for member, stored in copies.items():
        [unsubscribe] = rfc5322.field_values(stored, "List-Unsubscribe")
        found = re.fullmatch(r"<(https://[^>]+)>, <mailto:team-leave@lists\.example>", unsubscribe)
        assert found is not None, unsubscribe  # ours first, Mailman's mailto kept
        links[member] = found.group(1)
        assert links[member].startswith(f"https://127.0.0.1:{site.http_port}/unsubscribe/")
        assert rfc5322.field_values(stored, "List-Unsubscribe-Post") == [
            "List-Unsubscribe=One-Click"
        ]
        assert re.search(rb"(?m)^List-Id: <team\.lists\.example>", stored)  # Mailman's
        # RFC 8058 §4: a valid DKIM signature covering both fields; the ARC Set holds too
        names = _signed_names(stored)  # both, and oversigned (none can be added above)
        assert names.count("list-unsubscribe") == names.count("list-unsubscribe-post") == 2
        assert await asyncio.to_thread(dkim.verify, stored, dnsfunc=txt)
        cv, _, reason = await asyncio.to_thread(dkim.arc_verify, stored, dnsfunc=txt)
        assert (cv, reason) == (dkim.CV_Pass, "success")
    assert links[ALICE] != links[BOB]  # one link per member

    # Mailman's welcome notices: no List-Post, so no one-click
    welcome = await site.wait_for(
        lambda: [m for m in postfix_mx.messages() if b"Welcome to" in m], 90
    )
    assert all(b"List-Unsubscribe-Post" not in m for m in welcome)
    assert all(b"List-Id: <team.lists.example>" in m for m in welcome)

    members = {m["email"] for m in await asyncio.to_thread(site.mailman.members, LIST)}
    assert members == {ALICE, BOB}
    client_tls = tls_files.client_context()
    async with aiohttp.ClientSession() as http:
        # a link scanner's GET: a page with a button, nobody unsubscribed
        async with http.get(links[ALICE], ssl=client_tls) as page:
            assert page.status == 200
            assert 'name="List-Unsubscribe" value="One-Click"' in await page.text()
        members = {m["email"] for m in await asyncio.to_thread(site.mailman.members, LIST)}
        assert members == {ALICE, BOB}
        # the provider's one-click POST (RFC 8058 §3.2), no cookie nor credential
        async with http.post(
            links[ALICE], data={"List-Unsubscribe": "One-Click"}, ssl=client_tls
        ) as done:
            assert done.status == 200, await done.text()
            assert "no longer subscribed" in await done.text()
    members = {m["email"] for m in await asyncio.to_thread(site.mailman.members, LIST)}
    assert members == {BOB}
    assert site.tracking is not None
    [event] = await site.tracking.latest(10, ["unsubscribed"])
    assert event.recipient == ALICE and event.details["list"] == LIST
