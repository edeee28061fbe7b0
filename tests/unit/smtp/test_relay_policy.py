"""Never an open relay: every address trick is refused or stays a local part.

An unauthenticated client outside trusted_networks (the Session's ``trusted=False``,
no AUTH) may only send to existing local addresses.
"""

from __future__ import annotations

import pytest

from mailwright.local import LocalDirectory
from mailwright.smtp.address import AddressError, Mailbox, parse_path
from mailwright.smtp.protocol import Reply, Session, SessionPolicy
from mailwright.srs import Srs

SRS = Srs((b"a-secret-of-sixteen-bytes",))
DIRECTORY = LocalDirectory.build(
    ["example.com"],
    ["admin@example.com", "bob@example.com"],
    {"info@example.com": ["someone@gmail.example"], "team@example.com": ["bob@example.com"]},
    SRS,
)


def rcpt(address: str, *, trusted: bool = False, user: str | None = None) -> str:
    session = Session(
        SessionPolicy(hostname="mx.example.com", size_limit=10_000, directory=DIRECTORY),
        client_ip="198.51.100.7",
        trusted=trusted,
    )
    session.user = user
    session.feed(b"EHLO c\r\nMAIL FROM:<a@example.org> SMTPUTF8\r\n")
    session.next_event()
    session.next_event()
    session.feed(f"RCPT TO:{address}\r\n".encode())
    reply = session.next_event()
    assert isinstance(reply, Reply)
    return reply.text


RELAY_DENIED = "554 5.7.1"
UNKNOWN = "550 5.1.1"
SYNTAX = "501 5.1.3"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        # the plain cases
        ("<victim@example.net>", RELAY_DENIED),
        ("<bob@example.com>", "250 2.1.5"),
        ("<nobody@example.com>", UNKNOWN),
        # percent hack: the part after the last @ is the domain; "bob%x" is a local part
        ("<victim%example.net@example.com>", UNKNOWN),
        ("<bob%example.com@example.net>", RELAY_DENIED),
        # bang path (UUCP)
        ("<example.net!victim@example.com>", UNKNOWN),
        # quoted local part holding an @
        ('<"victim@example.net"@example.com>', UNKNOWN),
        ('<"victim@example.net">', SYNTAX),
        ('<"bob\\@x"@example.com>', UNKNOWN),
        # source routes: accepted and ignored (RFC 5321 §4.1.1.3), the mailbox decides
        ("<@example.com,@example.com:victim@example.net>", RELAY_DENIED),
        ("<@example.net:bob@example.com>", "250 2.1.5"),
        # trailing dots and other domain syntax tricks
        ("<victim@example.net.>", SYNTAX),
        ("<bob@example.com.>", SYNTAX),
        ("<victim@example.net@example.com>", SYNTAX),
        ("<victim@example.com@example.net>", SYNTAX),
        ("<victim@[example.net]>", SYNTAX),
        ("<victim@example..com>", SYNTAX),
        ("<victim@-example.com>", SYNTAX),
        ("<victim@example.com%example.net>", SYNTAX),
        # mixed case: the same local domain and mailbox
        ("<BOB@EXAMPLE.COM>", "250 2.1.5"),
        ("<Victim@Example.NET>", RELAY_DENIED),
        # IP literals: never accepted
        ("<victim@[192.0.2.1]>", "553 5.1.3"),
        ("<victim@[IPv6:2001:db8::1]>", "553 5.1.3"),
        ("<victim@[127.0.0.1]>", "553 5.1.3"),
        ("<victim@[300.1.1.1]>", SYNTAX),
        # angle bracket and whitespace games
        ("victim@example.net", SYNTAX),
        ("<<victim@example.net>>", SYNTAX),
        ("<victim@example.net", SYNTAX),
        ("<victim @example.net>", SYNTAX),
        ("<victim@example.net> <bob@example.com>", "501 5.5.4"),
        ("<bob@example.com>,<victim@example.net>", SYNTAX),
        # no domain: only postmaster (RFC 5321 §4.5.1)
        ("<victim>", SYNTAX),
        ("<postmaster>", "250 2.1.5"),
        ("<Postmaster@Example.com>", "250 2.1.5"),
        ("<abuse@example.com>", "250 2.1.5"),
        # plus extensions reach the base mailbox, never another domain
        ("<bob+tag@example.com>", "250 2.1.5"),
        ("<bob+victim@example.net>", RELAY_DENIED),
        # subdomains and look-alikes are not local
        ("<victim@sub.example.com>", RELAY_DENIED),
        ("<victim@example.com.example.net>", RELAY_DENIED),
        ("<victim@examplecom>", RELAY_DENIED),
        # UTF-8 look-alike domain (SMTPUTF8 given)
        ("<victim@ex\u00e4mple.com>", RELAY_DENIED),
        # control characters and oversize parts
        ("<victim\t@example.net>", SYNTAX),
        ("<" + "a" * 65 + "@example.com>", SYNTAX),
        ("<a@" + "b" * 64 + ".example.com>", SYNTAX),
    ],
)
def test_unauthenticated_outside_trusted_networks(address: str, expected: str) -> None:
    assert rcpt(address).startswith(expected)


@pytest.mark.parametrize(
    "address",
    [
        "<victim%example.net@example.com>",
        "<example.net!victim@example.com>",
        '<"victim@example.net"@example.com>',
        "<@example.com:victim@example.net>",
        "<victim@example.net.>",
        "<victim@[192.0.2.1]>",
        "<VICTIM@EXAMPLE.NET>",
    ],
)
def test_no_trick_is_ever_accepted_for_relay(address: str) -> None:
    assert not rcpt(address).startswith("250")


def test_trusted_clients_and_authenticated_users_may_relay() -> None:
    assert rcpt("<victim@example.net>", trusted=True).startswith("250")
    assert rcpt("<victim@example.net>", user="bob").startswith("250")
    # ...but unknown local users are still unknown, and literals still refused
    assert rcpt("<nobody@example.com>", trusted=True).startswith(UNKNOWN)
    assert rcpt("<victim@[192.0.2.1]>", user="bob").startswith("553")


VALID_SRS = SRS.forward("alice@origin.example", "example.com")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        # an alias may point outside: mail to the alias is accepted (it is forwarded)...
        ("<info@example.com>", "250 2.1.5"),
        ("<INFO+tag@example.com>", "250 2.1.5"),
        # ...but its target is not ours: no relaying to it directly
        ("<someone@gmail.example>", RELAY_DENIED),
        ("<someone%gmail.example@example.com>", UNKNOWN),
        ('<"someone@gmail.example"@example.com>', UNKNOWN),
        # bounces to a sender we rewrote are accepted and go back to it...
        (f"<{VALID_SRS}>", "250 2.1.5"),
        # ...forged ones (a victim substituted, a made-up hash, wrong shape) are unknown
        (f"<{VALID_SRS.replace('=alice@', '=victim@')}>", UNKNOWN),
        (f"<{VALID_SRS.replace('=origin.example=', '=victim.example=')}>", UNKNOWN),
        ("<SRS0=aaaaaaaa=aa=victim.example=v@example.com>", UNKNOWN),
        ("<SRS0=victim.example=v@example.com>", UNKNOWN),
        ("<SRS1=aaaaaaaa=victim.example==x=y=z=w@example.com>", UNKNOWN),
        # an SRS address of another domain is only relay
        (f"<{VALID_SRS.replace('@example.com', '@example.net')}>", RELAY_DENIED),
    ],
)
def test_forwarding_aliases_and_srs_are_no_relay(address: str, expected: str) -> None:
    assert rcpt(address).startswith(expected)


def test_expired_srs_address_is_unknown() -> None:
    old = SRS.forward("alice@origin.example", "example.com", now=0.0)
    assert rcpt(f"<{old}>") == (
        f"550 5.1.1 <{old}>: Recipient address rejected: User unknown in local recipient table"
    )


def test_relay_denied_reply_text() -> None:
    assert rcpt("<victim@example.net>") == "554 5.7.1 <victim@example.net>: Relay access denied"


@pytest.mark.parametrize(
    ("text", "mailbox"),
    [
        ("<a@b.example>", Mailbox("a", "b.example")),
        (" <a@b.example>", Mailbox("a", "b.example")),
        ('<"a b"@b.example>', Mailbox("a b", "b.example")),
        ('<"a\\"b"@b.example>', Mailbox('a"b', "b.example")),
        ("<@x.example:a@b.example>", Mailbox("a", "b.example")),
        ("<a@[IPv6:::1]>", Mailbox("a", "[IPv6:::1]")),
    ],
)
def test_parse_path(text: str, mailbox: Mailbox) -> None:
    assert parse_path(text, smtputf8=False, null_ok=False) == (mailbox, "")


def test_canonical_address_requotes_only_when_needed() -> None:
    assert Mailbox("a b", "B.Example").address == '"a b"@b.example'
    assert Mailbox("a.b", "b.example").address == "a.b@b.example"
    assert Mailbox('a"b', "x").address == '"a\\"b"@x'


def test_path_too_long() -> None:
    long_domain = ".".join(["d" * 60] * 4) + ".example"
    with pytest.raises(AddressError) as info:
        parse_path(f"<{'a' * 60}@{long_domain}>", smtputf8=False, null_ok=False)
    assert info.value.code == 501
