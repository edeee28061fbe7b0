"""Intake and RFC 8058: which of Mailman's messages get a one-click link, one per member."""

from __future__ import annotations

from mailwright import message as rfc5322
from mailwright.queue import DsnRecipient
from mailwright.rfc8058 import OneClick, verify_token
from mailwright.smtp.address import Mailbox
from mailwright.smtp.intake import Accepted, Arrival, IntakePolicy, per_member, prepare
from mailwright.smtp.protocol import Envelope

KEY = b"k" * 32
NOW = 1_800_000_000.0
MAILMAN = Arrival(client_ip="127.0.0.1", listener="mailman", helo="lists", trusted=True)
WORLD = Arrival(client_ip="198.51.100.7", listener="mx", helo="mx.example.net", inbound=True)
USER = Arrival(client_ip="203.0.113.9", listener="submission", helo="app", user="app")
"""An authenticated submitter, not Mailman: its mail never gets one-click links minted."""
POST = (
    b"From: Bob <bob@example.net>\r\nTo: team@lists.example\r\nSubject: [Team] lunch\r\n"
    b"Message-ID: <p1@example.net>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n"
    b"List-Id: <team.lists.example>\r\nList-Post: <mailto:team@lists.example>\r\n"
    b"List-Unsubscribe: <mailto:team-leave@lists.example>\r\n\r\nShall we?\r\n"
)
NOTICE = POST.replace(b"List-Post: <mailto:team@lists.example>\r\n", b"")


class ListSigner:
    """Records what it signed: the one-click fields must be in it."""

    def selectors(self, domain: str) -> list[str]:
        return ["sel"] if domain == "lists.example" else []

    def __call__(
        self, message: bytes, domain: str, body_hashes: object = None
    ) -> tuple[bytes, list[str]] | None:
        if domain != "lists.example":
            return None
        SIGNED.append(message)
        return b"DKIM-Signature: d=lists.example\r\n", ["sel"]


def seal(message: bytes, domain: str) -> bytes:
    """List mail is ARC-sealed (and so DKIM-signed) at intake, as with real keys."""
    return b"ARC-Seal: d=" + domain.encode() + b"\r\n"


sign = ListSigner()
SIGNED: list[bytes] = []
POLICY = IntakePolicy(
    hostname="mx.lists.example",
    signer=sign,
    sealer=seal,
    lists=lambda name: name == "team@lists.example",
    one_click=OneClick(KEY, "https://lists.example/unsubscribe"),
)


def envelope(sender: str, *recipients: str) -> Envelope:
    local, domain = sender.split("@")
    env = Envelope(Mailbox(local, domain))
    env.recipients = [Mailbox(*r.split("@")) for r in recipients]
    env.dsn = {r: DsnRecipient(notify=("failure",)) for r in recipients}
    return env


def queued(env: Envelope, data: bytes = POST, arrival: Arrival = MAILMAN) -> Accepted:
    result = prepare(env, data, arrival, POLICY, queue_id="Q1", now=NOW)
    assert isinstance(result, Accepted), result
    return result


def link(message: bytes) -> str | None:
    value = rfc5322.field_value(message, "List-Unsubscribe") or ""
    return value[1 : value.index(">")] if value.startswith("<https://") else None


def test_a_post_for_one_member_gets_its_link_before_signing() -> None:
    SIGNED.clear()
    result = queued(envelope("team-bounces@lists.example", "alice@example.net"))
    url = link(result.message)
    assert url is not None and url.startswith("https://lists.example/unsubscribe/")
    token = verify_token(KEY, url.rsplit("/", 1)[1], now=NOW)
    assert (token.fqdn_listname, token.member) == ("team@lists.example", "alice@example.net")
    assert rfc5322.field_values(result.message, "List-Unsubscribe") == [
        f"<{url}>, <mailto:team-leave@lists.example>"
    ]
    assert rfc5322.field_values(result.message, "List-Unsubscribe-Post") == [
        "List-Unsubscribe=One-Click"
    ]
    # what the signer saw already had both fields (RFC 8058 §4)
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in SIGNED[-1]
    assert result.message.startswith(
        b"ARC-Seal: d=lists.example\r\nDKIM-Signature: d=lists.example\r\n"
    )
    assert result.meta.sign_domain is None  # signed here: not again when it leaves


def test_mailmans_verp_sender_counts_too() -> None:
    env = envelope("team-bounces+alice=example.net@lists.example", "alice@example.net")
    assert link(queued(env).message) is not None


def test_no_link_for_notices_strangers_and_shared_copies() -> None:
    member = "alice@example.net"
    # Mailman's own notices (no List-Post): for one person, not list mail
    assert link(queued(envelope("team-bounces@lists.example", member), NOTICE).message) is None
    # a List-Id of another list, or a sender that is not the list's -bounces address
    other = POST.replace(b"<team.lists.example>", b"<board.lists.example>")
    assert link(queued(envelope("team-bounces@lists.example", member), other).message) is None
    assert link(queued(envelope("team-owner@lists.example", member)).message) is None
    assert link(queued(envelope("ghost-bounces@lists.example", member)).message) is None
    # mail from the world that carries list fields: not ours to change
    world = queued(envelope("team-bounces@lists.example", member), arrival=WORLD)
    assert link(world.message) is None
    # an authenticated user (or API client) sending as the list: no links minted for it
    user = queued(envelope("team-bounces@lists.example", member), arrival=USER)
    assert link(user.message) is None
    # one copy for two members cannot carry one member's link
    two = queued(envelope("team-bounces@lists.example", member, "bob@example.net"))
    assert link(two.message) is None
    # without [mailman] unsubscribe_url
    plain = IntakePolicy(hostname="mx", signer=sign, sealer=seal, lists=POLICY.lists)
    env = envelope("team-bounces@lists.example", member)
    result = prepare(env, POST, MAILMAN, plain, queue_id="Q", now=NOW)
    assert isinstance(result, Accepted) and link(result.message) is None


def test_per_member_splits_a_post_only() -> None:
    members = ("alice@example.net", "bob@example.net", "carol@example.org")
    env = envelope("team-bounces@lists.example", *members)
    split = per_member(env, POST, MAILMAN, POLICY)
    assert [[m.address for m in e.recipients] for e in split] == [[m] for m in members]
    assert [list(e.dsn) for e in split] == [[m] for m in members]  # each its own DSN request
    assert all(e.reverse_path == "team-bounces@lists.example" for e in split)
    links = {link(queued(e).message) for e in split}
    assert len(links) == 3 and None not in links
    assert per_member(env, NOTICE, MAILMAN, POLICY) == [env]
    assert per_member(env, POST, WORLD, POLICY) == [env]
    assert per_member(env, POST, USER, POLICY) == [env]
    one = envelope("team-bounces@lists.example", "alice@example.net")
    assert per_member(one, POST, MAILMAN, POLICY) == [one]
