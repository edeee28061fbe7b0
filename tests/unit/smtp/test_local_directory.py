"""Local address resolution: mailboxes, aliases, catch-alls, postmaster/abuse."""

from __future__ import annotations

from mailwright.local import LocalDirectory


def test_mailboxes_aliases_and_catch_all() -> None:
    d = LocalDirectory.build(
        ["example.com", "example.org"],
        ["admin@example.com", "bob@example.com", "carol@example.org"],
        {
            "sales@example.com": ["bob@example.com", "carol@example.org"],
            "team@example.com": ["sales@example.com", "admin@example.com"],
            "ext@example.com": ["someone@elsewhere.example"],
            "@example.org": ["carol@example.org"],
        },
    )
    assert d.resolve("bob@example.com") == ("bob@example.com",)
    assert d.resolve("BOB@Example.COM") == ("bob@example.com",)
    assert d.resolve("sales@example.com") == ("bob@example.com", "carol@example.org")
    assert d.resolve("team@example.com") == (
        "bob@example.com",
        "carol@example.org",
        "admin@example.com",
    )
    assert d.resolve("ext@example.com") == ("someone@elsewhere.example",)
    assert d.resolve("anything@example.org") == ("carol@example.org",)
    assert d.resolve("nobody@example.com") is None
    assert d.resolve("bob+news@example.com") == ("bob@example.com",)
    assert d.resolve("bob@elsewhere.example") is None  # not ours: not resolved here
    assert d.is_local("x@EXAMPLE.org") and not d.is_local("x@sub.example.org")


def test_postmaster_and_abuse_default_to_the_first_mailbox_of_the_domain() -> None:
    d = LocalDirectory.build(
        ["example.com", "example.org"], ["bob@example.org", "admin@example.com"]
    )
    assert d.resolve("postmaster@example.com") == ("admin@example.com",)
    assert d.resolve("abuse@example.org") == ("bob@example.org",)
    assert d.resolve("postmaster") == ("admin@example.com",)  # RFC 5321 §4.5.1
    assert "postmaster@example.com is not configured: delivering it to admin@example.com" in (
        d.notes
    )
    assert d.problems == ()


def test_configured_postmaster_is_kept() -> None:
    d = LocalDirectory.build(
        ["example.com"], ["admin@example.com"], {"postmaster@example.com": ["ops@example.net"]}
    )
    assert d.resolve("postmaster@example.com") == ("ops@example.net",)
    assert not any(n.startswith("postmaster") for n in d.notes)


def test_a_domain_without_mailboxes_is_a_problem() -> None:
    d = LocalDirectory.build(["example.com"])
    assert d.problems == ("postmaster@example.com", "abuse@example.com")
    assert d.resolve("postmaster@example.com") is None


def test_alias_loops_resolve_to_nobody() -> None:
    d = LocalDirectory.build(
        ["example.com"],
        ["admin@example.com"],
        {"a@example.com": ["b@example.com"], "b@example.com": ["a@example.com"]},
    )
    assert d.resolve("a@example.com") is None


def test_config_mailboxes_setting_is_validated() -> None:
    import pytest

    from mailwright.config import parse_config
    from mailwright.errors import ConfigError

    config = parse_config({"domains": ["example.com"], "mailboxes": ["Admin@Example.com"]})
    assert config.mailboxes == ("admin@example.com",)
    assert LocalDirectory.from_config(config).resolve("postmaster") == ("admin@example.com",)
    with pytest.raises(ConfigError, match=r"mailboxes: 'a@other\.example' is not in one of"):
        parse_config({"domains": ["example.com"], "mailboxes": ["a@other.example"]})
    with pytest.raises(ConfigError, match="is not an address"):
        parse_config({"domains": ["example.com"], "mailboxes": ["example.com"]})


def test_bounce_addresses_exist_only_with_verp() -> None:
    from mailwright.config import parse_config

    on = LocalDirectory.from_config(parse_config({"domains": ["example.com"]}))
    assert on.is_bounce_address("bounces+abc@example.com") and on.exists("bounces@Example.com")
    assert not on.is_bounce_address("bounces+abc@elsewhere.example")
    assert not on.is_bounce_address("bouncesx@example.com")
    off = LocalDirectory.from_config(
        parse_config({"domains": ["example.com"], "bounces": {"verp": False}})
    )
    assert not off.is_bounce_address("bounces+abc@example.com")
    assert not off.exists("bounces+abc@example.com")
