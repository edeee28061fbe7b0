"""Qualification of the machine's own addresses (myorigin, mydestination, masquerading)."""

from __future__ import annotations

from mailwright.local import LocalDirectory
from mailwright.sendmail.qualify import (
    LocalNames,
    add_from,
    qualify,
    rewrite_addresses,
    route_recipient,
)

NAMES = LocalNames.build(
    ["example.com", "example.org"],
    "mail.example.com",
    machine_names=["web1", "web1.internal"],
    system_users=["www-data", "nobody"],
)


def test_origin_is_the_first_domain_else_the_hostname() -> None:
    assert NAMES.origin == "example.com"
    assert LocalNames.build([], "box.example.net").origin == "box.example.net"


def test_unqualified_and_own_names_get_the_origin() -> None:
    assert qualify("root", NAMES) == "root@example.com"
    assert qualify("webmaster@localhost", NAMES) == "webmaster@example.com"
    assert qualify("cron@localhost.localdomain", NAMES) == "cron@example.com"
    assert qualify("www-data@mail.example.com", NAMES) == "www-data@example.com"
    assert qualify("alice@WEB1", NAMES) == "alice@example.com"
    assert qualify("bob@web1.internal.", NAMES) == "bob@example.com"


def test_other_addresses_stay() -> None:
    assert qualify("alice@example.net", NAMES) == "alice@example.net"
    assert qualify("bob@example.org", NAMES) == "bob@example.org"
    assert qualify("", NAMES) == ""


DIRECTORY = LocalDirectory.build(
    ["example.com"],
    mailboxes=["admin@example.com"],
    aliases={"root@example.com": ["admin@gmail.example"], "alice@example.com": ["a@x.example"]},
)


def test_system_users_without_an_alias_go_to_root() -> None:
    assert route_recipient("www-data", NAMES, DIRECTORY) == "root@example.com"
    assert route_recipient("nobody@localhost", NAMES, DIRECTORY) == "root@example.com"
    assert route_recipient("root", NAMES, DIRECTORY) == "root@example.com"
    assert DIRECTORY.resolve("root@example.com") == ("admin@gmail.example",)


def test_configured_and_unknown_users_are_kept() -> None:
    assert route_recipient("alice", NAMES, DIRECTORY) == "alice@example.com"
    assert route_recipient("stranger", NAMES, DIRECTORY) == "stranger@example.com"
    assert route_recipient("x@example.net", NAMES, DIRECTORY) == "x@example.net"


def test_without_root_system_users_go_to_postmaster() -> None:
    directory = LocalDirectory.build(["example.com"], mailboxes=["admin@example.com"])
    assert route_recipient("www-data", NAMES, directory) == "postmaster@example.com"


def test_address_fields_are_qualified_and_names_kept() -> None:
    message = (
        b"Received: from x\r\n"
        b"From: Web Master <webmaster@localhost>\r\n"
        b"To: root,\r\n alice@example.net\r\n"
        b"Subject: root@localhost stays in the subject\r\n"
        b"\r\n"
        b"From: body lines are not touched\r\n"
    )
    assert rewrite_addresses(message, NAMES) == (
        b"Received: from x\r\n"
        b"From: Web Master <webmaster@example.com>\r\n"
        b"To: root@example.com,\r\n alice@example.net\r\n"
        b"Subject: root@localhost stays in the subject\r\n"
        b"\r\n"
        b"From: body lines are not touched\r\n"
    )


def test_fields_that_need_nothing_are_byte_for_byte() -> None:
    message = b'From: "A, B" <a@example.net>\r\nTo: =?utf-8?q?J=C3=B6rg?= <j@x.example>\r\n\r\n'
    assert rewrite_addresses(message, NAMES) == message


def test_encoded_names_survive_a_rewrite() -> None:
    message = b"From: =?utf-8?q?J=C3=B6rg?= <joerg@localhost>\r\n\r\nx\r\n"
    assert rewrite_addresses(message, NAMES) == (
        b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.com>\r\n\r\nx\r\n"
    )


def test_add_from_when_missing() -> None:
    assert add_from(b"Subject: x\r\n\r\n", "root@example.com", "Cron Daemon") == (
        b"From: Cron Daemon <root@example.com>\r\nSubject: x\r\n\r\n"
    )
    assert add_from(b"\r\nbody\r\n", "root@example.com", None) == (
        b"From: root@example.com\r\n\r\nbody\r\n"
    )
    assert add_from(b"\r\n", "root@example.com", "Jörg") == (
        b"From: =?utf-8?b?SsO2cmc=?= <root@example.com>\r\n\r\n"
    )
    present = b"from: a@example.net\r\n\r\n"
    assert add_from(present, "root@example.com", "X") == present


def test_a_configured_domain_is_never_an_own_name() -> None:
    names = LocalNames.build(["example.com", "example.org"], "example.org")
    assert qualify("a@example.org", names) == "a@example.org"
    assert qualify("a@localhost", names) == "a@example.com"
