"""Mailman 3 behind mailwright, with a private Mailman core, NSD and the Postfix MX.

mailwright is the MTA of lists.example: it accepts list addresses at RCPT only for
lists Mailman has (REST API), hands them to Mailman over LMTP, takes Mailman's own
mail on a trusted submission listener, DKIM-signs it with the list domain's key and
delivers it to the members' MX (Postfix, for example.net). The subscription is made
by mail, with Mailman's confirmation round trip.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import dkim
import pytest

from mailwright.dkim import SigningKey, generate_key, sign_message
from mailwright.dkim.keys import dns_record_value
from mailwright.mailman import MailmanError
from mailwright.server import list_cache
from mailwright.testing.listsite import (
    LIST,
    ListSite,
    publish_zones,
    running_list_site,
    smtp_transaction,
    start_list_mailman,
    zone_txt,
)
from mailwright.testing.mailman import MailmanCore
from mailwright.testing.nsd import NsdServer
from mailwright.testing.opendmarc import DmarcMilters
from mailwright.testing.postfix import PostfixServer

pytestmark = pytest.mark.integration

MEMBER = "bob@example.net"


@pytest.fixture
def world(dns_world: NsdServer) -> NsdServer:
    return publish_zones(dns_world)


@pytest.fixture
async def site(
    world: NsdServer,
    postfix_mx: PostfixServer,
    mailman_core: Callable[..., MailmanCore],
    tmp_path: Path,
) -> AsyncIterator[ListSite]:
    async with running_list_site(world, postfix_mx, mailman_core, tmp_path) as running:
        yield running


async def test_rcpt_accepts_list_addresses_of_existing_lists_only(site: ListSite) -> None:
    replies = await smtp_transaction(
        site.smtp.ports()["mx"],
        MEMBER,
        [
            LIST,
            "team-request@lists.example",
            "team-bounces+bob=example.net@lists.example",
            "team-confirm+0123456789abcdef@lists.example",
            "ghost@lists.example",
            "team-join+x@lists.example",
        ],
        None,
    )
    assert [r[:9] for r in replies] == ["250 2.1.5"] * 4 + ["550 5.1.1"] * 2


async def test_subscribe_by_mail_with_confirmation_then_post(
    site: ListSite, postfix_mx: PostfixServer
) -> None:
    join = (
        f"From: Bob <{MEMBER}>\r\nTo: team-join@lists.example\r\nSubject: join\r\n"
        "Message-ID: <join-1@example.net>\r\nDate: Tue, 24 Nov 2026 19:00:00 +0000\r\n\r\n"
        "please\r\n"
    ).encode()
    replies = await smtp_transaction(
        site.smtp.ports()["mx"], MEMBER, ["team-join@lists.example"], join
    )
    assert replies[-1].startswith("250 2.0.0 Ok: queued as")

    # over LMTP to Mailman, which answers with a confirmation request through our
    # submission listener, signed by lists.example, delivered to the member's MX
    def confirmation() -> bytes | None:
        for message in postfix_mx.messages():
            if b"confirm" in message.lower() and b"lists.example" in message:
                return message
        return None

    request = await site.wait_for(confirmation)
    (lmtp,) = [e for e in site.events if e["event"] == "delivered" and "lmtp" in e["relay"]][:1]
    assert lmtp["to"] == "<team-join@lists.example>"
    # dkimpy (independent) verifies the list domain's signature on what Postfix stored
    stored = request.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert b"DKIM-Signature:" in stored and b"d=lists.example" in stored
    assert await asyncio.to_thread(
        dkim.verify, stored, dnsfunc=lambda n, timeout=5: _txt_of(site, n)
    )
    token = re.search(rb"team-confirm\+([0-9a-f]+)@lists\.example", request)
    assert token is not None
    confirm = (
        f"From: Bob <{MEMBER}>\r\nTo: team-confirm+{token.group(1).decode()}@lists.example\r\n"
        f"Subject: Re: confirm {token.group(1).decode()}\r\n"
        "Message-ID: <confirm-1@example.net>\r\nDate: Tue, 24 Nov 2026 19:01:00 +0000\r\n\r\n"
    ).encode()
    address = f"team-confirm+{token.group(1).decode()}@lists.example"
    replies = await smtp_transaction(site.smtp.ports()["mx"], MEMBER, [address], confirm)
    assert replies[-1].startswith("250 ")
    members = await site.wait_for(lambda: site.mailman.members(LIST))
    assert [m["email"] for m in members] == [MEMBER]


def _txt_of(site: ListSite, name: bytes | str) -> bytes:
    qname = name.decode() if isinstance(name, bytes) else name
    result = asyncio.run(site.agent.resolver.txt(qname.rstrip(".")))
    return result.records[0].encode() if result.ok else b""


async def test_mailman_down_defers_with_451(site: ListSite) -> None:
    await asyncio.to_thread(site.mailman.stop)
    post = (
        f"From: {MEMBER}\r\nTo: {LIST}\r\nSubject: hi\r\nMessage-ID: <p1@example.net>\r\n"
        "Date: Tue, 24 Nov 2026 19:00:00 +0000\r\n\r\nhello\r\n"
    ).encode()
    replies = await smtp_transaction(site.smtp.ports()["mx"], MEMBER, [LIST], post)
    assert replies[-1].startswith("250 ")
    await site.run_agent()
    (deferred,) = [e for e in site.events if e["event"] == "deferred"]
    assert deferred["dsn"] == "4.4.1" and deferred["to"] == f"<{LIST}>"


async def test_a_post_reaches_members_dkim_and_arc_valid_with_list_headers(
    site: ListSite, postfix_mx: PostfixServer
) -> None:
    list_id = LIST.replace("@", ".")
    for member in (MEMBER, "alice@example.net"):
        flags = {"pre_verified": "true", "pre_confirmed": "true", "pre_approved": "true"}
        await asyncio.to_thread(
            site.mailman.rest,
            "POST",
            "members",
            {"list_id": list_id, "subscriber": member, **flags},
        )
    post = (
        f"From: Bob <{MEMBER}>\r\nTo: {LIST}\r\nSubject: lunch on friday\r\n"
        "Message-ID: <post-1@example.net>\r\nDate: Tue, 24 Nov 2026 19:00:00 +0000\r\n\r\n"
        "Shall we meet at noon on Friday?\r\n"
    ).encode()
    replies = await smtp_transaction(site.smtp.ports()["mx"], MEMBER, [LIST], post)
    assert replies[-1].startswith("250 ")

    def copy() -> bytes | None:
        for message in postfix_mx.messages():
            if b"lunch on friday" in message and b"alice@example.net" in message:
                return message
        return None

    stored = (await site.wait_for(copy)).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    # RFC 2919 and RFC 2369 fields: added by Mailman
    assert re.search(rb"(?m)^List-Id: .*<team\.lists\.example>", stored)
    assert re.search(rb"(?m)^List-Unsubscribe: <mailto:team-leave@lists\.example>", stored)
    # DKIM-signed by the list domain, ARC-sealed: dkimpy verifies both
    assert b"d=lists.example" in stored

    def txt(name: bytes | str, timeout: float = 5) -> bytes:
        return _txt_of(site, name)

    assert await asyncio.to_thread(dkim.verify, stored, dnsfunc=txt)
    cv, _, reason = await asyncio.to_thread(dkim.arc_verify, stored, dnsfunc=txt)
    assert (cv, reason) == (dkim.CV_Pass, "success")
    assert b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=lists.example" in stored


async def test_lists_command_shows_the_lists_and_their_addresses(
    site: ListSite, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    config = tmp_path / "cli.toml"
    config.write_text(
        "[mailman]\n"
        f'rest_url = "{site.mailman.rest_url}"\n'
        f'rest_password_file = "{site.mailman.password_file}"\n'
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).with_name("mailwright")),
            "--config",
            str(config),
            "lists",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["lists"]
    assert row["list"] == LIST and row["list_id"] == "team.lists.example"
    assert "team-bounces[+VERP]@lists.example" in row["addresses"]
    assert "team-confirm+TOKEN@lists.example" in row["addresses"]


async def test_a_members_hard_bounce_moves_mailmans_bounce_score(
    site: ListSite, postfix_mx: PostfixServer
) -> None:
    list_id = LIST.replace("@", ".")
    flags = {"pre_verified": "true", "pre_confirmed": "true", "pre_approved": "true"}
    for member in (MEMBER, "gone@example.net"):
        await asyncio.to_thread(
            site.mailman.rest,
            "POST",
            "members",
            {"list_id": list_id, "subscriber": member, **flags},
        )
    await asyncio.to_thread(
        postfix_mx.set_recipient_access, {"gone@example.net": "550 5.1.1 no such user"}
    )
    post = (
        f"From: Bob <{MEMBER}>\r\nTo: {LIST}\r\nSubject: agenda\r\n"
        "Message-ID: <post-2@example.net>\r\nDate: Tue, 24 Nov 2026 19:00:00 +0000\r\n\r\n"
        "The agenda is attached in spirit.\r\n"
    ).encode()
    replies = await smtp_transaction(site.smtp.ports()["mx"], MEMBER, [LIST], post)
    assert replies[-1].startswith("250 ")

    # Postfix refuses gone@ (5.1.1): our DSN goes to the list's -bounces address, over
    # LMTP to Mailman, whose bounce runner scores the member
    def score() -> float | None:
        for member in site.mailman.members(LIST):
            if member["email"] == "gone@example.net" and float(member.get("bounce_score", 0)):
                return float(member["bounce_score"])
        return None

    assert await site.wait_for(score, 90) >= 1
    bounced = [e for e in site.events if e["event"] == "bounced"]
    # (the welcome message Mailman sent at subscription bounces too)
    assert {e["to"] for e in bounced} == {"<gone@example.net>"}
    dsn = [e for e in site.events if e["event"] == "delivered" and "lmtp" in e["relay"]]
    assert any(e["to"].startswith("<team-bounces") for e in dsn)


async def test_rcpt_while_mailman_has_never_answered_is_451_until_it_does(
    world: NsdServer,
    postfix_mx: PostfixServer,
    mailman_core: Callable[..., MailmanCore],
    tmp_path: Path,
) -> None:
    """mailwright started while Mailman is down: a list address is 451 (try later), not
    550; mailboxes work; other domains are still refused; once Mailman answers, 250."""
    async with running_list_site(
        world, postfix_mx, mailman_core, tmp_path, start_mailman=False
    ) as s:
        cache = list_cache(s.config)
        assert cache is not None
        with pytest.raises(MailmanError):
            await cache.refresh()
        rcpts = [LIST, "team-leave@lists.example", "postmaster@lists.example", "x@example.org"]
        replies = await smtp_transaction(s.smtp.ports()["mx"], MEMBER, rcpts, None)
        assert [r[:9] for r in replies] == ["451 4.3.0", "451 4.3.0", "250 2.1.5", "554 5.7.1"]
        assert "list service unavailable" in replies[0]
        await start_list_mailman(s)
        replies = await smtp_transaction(
            s.smtp.ports()["mx"], MEMBER, [LIST, "ghost@lists.example"], None
        )
        assert [r[:9] for r in replies] == ["250 2.1.5", "550 5.1.1"]


def _subscribe(site: ListSite, *members: str) -> None:
    """Members without confirmation (REST, pre-approved); no welcome message."""
    list_id = LIST.replace("@", ".")
    site.mailman.rest("PATCH", f"lists/{list_id}/config", {"send_welcome_message": "false"})
    flags = {"pre_verified": "true", "pre_confirmed": "true", "pre_approved": "true"}
    for member in members:
        site.mailman.rest("POST", "members", {"list_id": list_id, "subscriber": member, **flags})


@pytest.mark.parametrize(
    ("to", "subject"),
    [("team-leave@lists.example", "leave"), ("team-request@lists.example", "unsubscribe")],
)
async def test_unsubscribe_by_mail_with_confirmation(
    site: ListSite, postfix_mx: PostfixServer, to: str, subject: str
) -> None:
    """Mailman's default unsubscription policy is "confirm": mail to team-leave@ (or the
    command "unsubscribe" to team-request@) brings a confirmation request to the member,
    whose reply to team-confirm+TOKEN@ ends the subscription."""
    await asyncio.to_thread(_subscribe, site, MEMBER)
    leave = (
        f"From: Bob <{MEMBER}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Message-ID: <leave-1@example.net>\r\nDate: Tue, 24 Nov 2026 19:00:00 +0000\r\n\r\n"
    ).encode()
    replies = await smtp_transaction(site.smtp.ports()["mx"], MEMBER, [to], leave)
    assert replies[-1].startswith("250 2.0.0 Ok: queued as")

    def request() -> re.Match[bytes] | None:
        for message in postfix_mx.messages():
            found = re.search(rb"team-confirm\+([0-9a-f]+)@lists\.example", message)
            if found:
                return found
        return None

    token = (await site.wait_for(request)).group(1).decode()
    # still a member until the confirmation
    assert [m["email"] for m in await asyncio.to_thread(site.mailman.members, LIST)] == [MEMBER]
    address = f"team-confirm+{token}@lists.example"
    confirm = (
        f"From: Bob <{MEMBER}>\r\nTo: {address}\r\nSubject: Re: confirm {token}\r\n"
        "Message-ID: <confirm-2@example.net>\r\nDate: Tue, 24 Nov 2026 19:01:00 +0000\r\n\r\n"
    ).encode()
    replies = await smtp_transaction(site.smtp.ports()["mx"], MEMBER, [address], confirm)
    assert replies[-1].startswith("250 ")
    await site.wait_for(lambda: not site.mailman.members(LIST))
    delivered = [e["to"] for e in site.events if e["event"] == "delivered" and "lmtp" in e["relay"]]
    assert delivered[:2] == [f"<{to}>", f"<{address}>"]


async def test_verp_bounce_reaches_mailman_from_the_verp_address(
    world: NsdServer,
    postfix_mx: PostfixServer,
    mailman_core: Callable[..., MailmanCore],
    tmp_path: Path,
) -> None:
    """With Mailman's VERP on (every post), each member's copy leaves with the envelope
    sender team-bounces+member=domain@; our DSN for a refused member goes to exactly that
    address (accepted at RCPT, over LMTP) and Mailman scores that member."""
    verp = {"verp_delivery_interval": "1", "verp_personalized_deliveries": "yes"}
    async with running_list_site(world, postfix_mx, mailman_core, tmp_path, mta_settings=verp) as s:
        await asyncio.to_thread(_subscribe, s, MEMBER, "gone@example.net")
        await asyncio.to_thread(
            postfix_mx.set_recipient_access, {"gone@example.net": "550 5.1.1 no such user"}
        )
        post = (
            f"From: Bob <{MEMBER}>\r\nTo: {LIST}\r\nSubject: minutes\r\n"
            "Message-ID: <post-3@example.net>\r\nDate: Tue, 24 Nov 2026 19:00:00 +0000\r\n\r\n"
            "The minutes, in spirit.\r\n"
        ).encode()
        replies = await smtp_transaction(s.smtp.ports()["mx"], MEMBER, [LIST], post)
        assert replies[-1].startswith("250 ")

        def score() -> float | None:
            for member in s.mailman.members(LIST):
                if member["email"] == "gone@example.net" and float(member.get("bounce_score", 0)):
                    return float(member["bounce_score"])
            return None

        assert await s.wait_for(score, 90) >= 1
        bounced = [e for e in s.events if e["event"] == "bounced"]
        assert [e["to"] for e in bounced] == ["<gone@example.net>"]
        # the copy for gone@ carried its VERP envelope sender, and our DSN went there
        verp_address = "team-bounces+gone=example.net@lists.example"
        lmtp = [e["to"] for e in s.events if e["event"] == "delivered" and "lmtp" in e["relay"]]
        assert lmtp == [f"<{LIST}>", f"<{verp_address}>"]
        # bob's copy arrived with his own VERP return path
        copies = [m for m in postfix_mx.messages() if b"Subject: [Team] minutes" in m]
        assert len(copies) == 1
        assert b"Return-Path: <team-bounces+bob=example.net@lists.example>" in copies[0]


async def test_lmtp_partial_failure_with_a_list_deleted_after_rcpt(site: ListSite) -> None:
    """One message to two lists in one LMTP transaction; the second list is deleted
    after our RCPT accepted it: Mailman takes team@ (250) and refuses the other at RCPT
    (550), so team@ is delivered and only the other recipient bounces."""
    await asyncio.to_thread(site.mailman.create_list, "doomed@lists.example")
    cache = list_cache(site.config)
    assert cache is not None
    await cache.refresh()
    post = (
        f"From: Bob <{MEMBER}>\r\nTo: {LIST}, doomed@lists.example\r\nSubject: both\r\n"
        "Message-ID: <post-4@example.net>\r\nDate: Tue, 24 Nov 2026 19:00:00 +0000\r\n\r\n"
        "to both lists\r\n"
    ).encode()
    replies = await smtp_transaction(
        site.smtp.ports()["mx"], MEMBER, [LIST, "doomed@lists.example"], post
    )
    assert replies[-1].startswith("250 ")
    await asyncio.to_thread(site.mailman.rest, "DELETE", "lists/doomed.lists.example")
    await site.run_agent()
    outcomes = {
        e["to"]: (e["event"], e["reply"])
        for e in site.events
        if e["event"] in ("delivered", "bounced", "deferred") and "lmtp" in e.get("relay", "")
    }
    # (Mailman's LMTP runner gives no enhanced status code: the DSN says 5.0.0)
    assert outcomes == {
        f"<{LIST}>": ("delivered", "250 Ok"),
        "<doomed@lists.example>": (
            "bounced",
            "550 Requested action not taken: mailbox unavailable",
        ),
    }


POSTER = "ann@strict.example"
POSTER_KEY = generate_key("rsa", 2048)


async def test_dmarc_reject_poster_is_munged_and_passes_dmarc_at_the_receiver(
    world: NsdServer,
    mailman_core: Callable[..., MailmanCore],
    tmp_path: Path,
) -> None:
    """A poster whose domain publishes p=reject: Mailman (dmarc_mitigate_action =
    munge_from, its own DMARC lookup answered by the test NSD) rewrites From to the list;
    the copy we sign for lists.example passes DMARC at a Postfix receiver that checks it
    with OpenDKIM + OpenDMARC."""
    world.set_zone(
        "strict.example",
        '@ TXT "v=spf1 ip4:127.0.0.2 -all"\n_dmarc TXT "v=DMARC1; p=reject"\n'
        f"post._domainkey TXT {zone_txt(dns_record_value(POSTER_KEY))}",
    )
    zones = {o: world.zone_text(o) for o in ("lists.example", "strict.example", "example.net")}
    milters = DmarcMilters(zones, authserv_id="mx.example.net")
    receiver = PostfixServer(
        domains=["example.net"],
        hostname="mx.example.net",
        settings={"smtpd_milters": milters.postfix_milters, "milter_default_action": "tempfail"},
    )
    await asyncio.to_thread(milters.start)
    try:
        await asyncio.to_thread(receiver.start)
        async with running_list_site(world, receiver, mailman_core, tmp_path) as site:
            list_id = LIST.replace("@", ".")
            settings = {"dmarc_mitigate_action": "munge_from", "default_nonmember_action": "accept"}
            await asyncio.to_thread(site.mailman.rest, "PATCH", f"lists/{list_id}/config", settings)
            await asyncio.to_thread(_subscribe, site, "alice@example.net")
            post = (
                f"From: Ann <{POSTER}>\r\nTo: {LIST}\r\nSubject: strict policy\r\n"
                "Message-ID: <post-5@strict.example>\r\n"
                "Date: Tue, 24 Nov 2026 19:00:00 +0000\r\n\r\nFrom a p=reject domain.\r\n"
            ).encode()
            signing = SigningKey("strict.example", "post", "rsa-sha256", POSTER_KEY)
            post = sign_message(post, [signing]) + post
            replies = await smtp_transaction(site.smtp.ports()["mx"], POSTER, [LIST], post)
            assert replies[-1].startswith("250 ")

            def copy() -> bytes | None:
                for message in receiver.messages():
                    if b"strict policy" in message:
                        return message
                return None

            stored = (await site.wait_for(copy)).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            # Mailman's own DMARC lookup was answered by the test NSD
            logs = "".join(
                p.read_text(errors="replace") for p in (site.mailman.var / "logs").glob("*.log")
            )
            assert f"DMARC lookup for {POSTER} (_dmarc.strict.example) found p=reject" in logs
    finally:
        await asyncio.to_thread(receiver.stop)
        await asyncio.to_thread(milters.stop)
    head = stored.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ")
    # our inbound checks passed the poster (Mailman kept our Authentication-Results)
    assert re.search(
        rb"(?m)^Authentication-Results: mx\.lists\.example;"
        rb".*dmarc=pass.*header\.from=strict\.example",
        head,
    ), head.decode()
    # Mailman's DMARC mitigation: From is the list, the poster in Reply-To (the list's
    # reply_goes_to_list is Mailman's default, no_munging; otherwise Cc)
    assert re.search(rb'(?m)^From: "?Ann via Team"? <team@lists\.example>\r?$', head), head
    assert re.search(rb"(?m)^Reply-To: Ann <ann@strict\.example>\r?$", head), head
    # the receiver: OpenDKIM verified our signature, OpenDMARC passed DMARC for lists.example
    assert re.search(
        rb"(?m)^Authentication-Results: mx\.example\.net;.*dkim=pass.*header\.d=lists\.example",
        head,
    ), head
    assert re.search(
        rb"(?m)^Authentication-Results: mx\.example\.net;.*dmarc=pass.*header\.from=lists\.example",
        head,
    ), head.decode()
