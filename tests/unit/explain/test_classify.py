"""The classifier on its own: status-text forms, rule order, RFC codes, the cache key."""

from __future__ import annotations

import time

import pytest

from mailwright.causes.classify import (
    cache_key,
    classify,
    classify_text,
    mask,
    split_status_text,
)


def test_said_form_splits_host_reply_and_stage() -> None:
    st = split_status_text(
        "host mx.example.net[2001:db8::25] said: 550 5.1.1 <a@example.net>: no such user "
        "(in reply to RCPT TO command)"
    )
    assert (st.form, st.host, st.stage) == ("said", "mx.example.net[2001:db8::25]", "RCPT TO")
    assert st.reply == "550 5.1.1 <a@example.net>: no such user"


def test_greeting_form() -> None:
    st = split_status_text("host mx.example.net[203.0.113.5] refused to talk to me: 554 go away")
    assert (st.form, st.host, st.reply) == (
        "greeting",
        "mx.example.net[203.0.113.5]",
        "554 go away",
    )


@pytest.mark.parametrize(
    ("text", "form", "host"),
    [
        (
            "connect to mx.example.net[203.0.113.5]:25: Connection refused",
            "connect",
            "mx.example.net[203.0.113.5]",
        ),
        (
            "delivery temporarily suspended: connect to mx.example.net[2001:db8::1]:25: No route "
            "to host",
            "connect",
            "mx.example.net[2001:db8::1]",
        ),
        (
            "lost connection with mx.example.net[203.0.113.5] while sending RCPT TO",
            "lost",
            "mx.example.net[203.0.113.5]",
        ),
        (
            "conversation with mx.example.net[203.0.113.5] timed out while sending MAIL FROM",
            "timeout",
            "mx.example.net[203.0.113.5]",
        ),
        (
            "Host or domain name not found. Name service error for name=x.example type=MX: Host "
            "not found, try again",
            "dns",
            None,
        ),
        ("mail for example.org loops back to myself", "local", None),
    ],
)
def test_forms(text: str, form: str, host: str | None) -> None:
    st = split_status_text(text)
    assert (st.form, st.host) == (form, host)


@pytest.mark.parametrize(
    ("reply", "dsn", "cause", "rule"),
    [
        # enhanced codes alone (RFC 3463, RFC 7372, RFC 7505, RFC 8689) when no words match
        ("550 5.1.1 nope", "5.1.1", "recipient-unknown", "recipient"),
        ("550 5.1.10 nope", "5.1.10", "recipient-domain-dns", "code"),
        ("452 4.2.2 nope", "4.2.2", "mailbox-full", "mailbox-full"),
        ("552 5.3.4 nope", "5.3.4", "message-too-large", "too-large"),
        ("550 5.7.20 nope", "5.7.20", "dkim", "dkim"),
        ("550 5.7.24 nope", "5.7.24", "spf", "spf"),
        ("550 5.7.25 nope", "5.7.25", "reverse-dns", "ptr"),
        ("550 5.7.26 nope", "5.7.26", "dmarc", "code"),
        ("550 5.7.27 nope", "5.7.27", "spf", "gmail-spf"),
        ("550 5.7.30 nope", "5.7.30", "tls-required", "code"),
        ("421 4.4.1 nope", "4.4.1", "connection-failed", "code"),
        ("451 4.4.3 nope", "4.4.3", "recipient-domain-dns", "code"),
        ("553 5.1.8 nope", "5.1.8", "sender-domain", "sender-domain"),
        # dsn= is the fallback when the reply carries no enhanced code
        ("550 nope", "5.1.1", "recipient-unknown", "code"),
        # X.7.1 says nothing specific: unknown rather than a guess
        ("550 5.7.1 nope", "5.7.1", "unknown", "none"),
        ("", "", "unknown", "none"),
    ],
)
def test_code_fallback(reply: str, dsn: str, cause: str, rule: str) -> None:
    verdict = classify_text("said", reply, dsn)
    assert (verdict.cause, verdict.rule) == (cause, rule)


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        # a Spamhaus listing says "spam": blocklisted, not spam-content
        (
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
            "blocklisted",
        ),
        # Gmail's rate limit says "unsolicited" and names the SPF domain: rate-limited
        ("421-4.7.28 unusual rate of unsolicited mail from your SPF domain", "rate-limited"),
        # greylisting is worded as a recipient rejection
        ("450 4.2.0 <a@b>: Recipient address rejected: Greylisted", "greylisted"),
        # a null-MX sender is worded as a sender rejection
        (
            "550 5.7.27 <a@b>: Sender address rejected: Domain b does not accept mail (nullMX)",
            "sender-null-mx",
        ),
        # "mailbox size limit" is a full mailbox, not a big message
        ("552 5.2.2 Mailbox size limit exceeded", "mailbox-full"),
        # DMARC named wins over the SPF and DKIM results it quotes
        ("550 5.7.1 SPF fail, DKIM none: rejected by DMARC policy", "dmarc"),
        # SPF failure reported through a recipient rejection (policyd-spf)
        ("550 5.7.23 <a@b>: Recipient address rejected: SPF fail - not authorized", "spf"),
        ("554 5.7.1 <a@b>: Relay access denied", "recipient-domain-dns"),
        ("421 4.7.0 TLS required for RCPT domain", "tls-required"),
    ],
)
def test_rule_order(reply: str, cause: str) -> None:
    assert classify_text("said", reply, "").cause == cause


def test_connection_texts_made_up_by_mailwright() -> None:
    verdict, _ = classify("421 4.4.1 connect to mx.example.net[203.0.113.5]:25: timed out")
    assert verdict.cause == "connection-failed"


def test_list_named_in_the_reply_and_its_check_id() -> None:
    for zone in ("zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org"):
        verdict, _ = classify(
            f"host mx.example.net[203.0.113.5] said: 554 5.7.1 Service unavailable; Client host "
            f"[192.0.2.1] blocked using {zone}; see the list (in reply to RCPT TO command)"
        )
        assert (verdict.cause, verdict.listname, verdict.check) == (
            "blocklisted",
            zone,
            f"dnsbl:{zone}",
        )


def test_cached_verdict_still_names_each_list() -> None:
    # same words, different list and IP: the cache must not hand out the first list
    a, _ = classify("554 5.7.1 Client host [192.0.2.1] blocked using bl.spamcop.net")
    b, _ = classify("554 5.7.1 Client host [192.0.2.2] blocked using bl.spamcop.org")
    assert a.listname == "bl.spamcop.net"
    assert b.listname == "bl.spamcop.org"


def test_cache_key_masks_what_varies() -> None:
    one = "550 5.1.1 <bob@example.net>: unknown [192.0.2.1] d9443c01a7336-1ce5f9c7dbdsi95.8 gsmtp"
    two = "550 5.1.1 <eve@example.org>: unknown [198.51.100.7] d2e1a72fcca58-71e5a5f1b0bsi1.5 gsmtp"
    assert cache_key(one) == cache_key(two)
    assert cache_key("550 user unknown") != cache_key("550 mailbox full")


def test_mask_keeps_url_hosts_and_codes() -> None:
    masked = mask("550-5.7.26 see https://support.google.com/mail/?p=Dmarc [192.0.2.1] <a@b.c>")
    assert masked == "550-5.7.26 see https://support.google.com/* [*] *"


@pytest.mark.parametrize(
    ("reply", "masked"),
    [
        # a bare address is its whole run between separators, wherever its @ are
        ("550 a@b@c user:x@y.example, (z@w) @@ a@", "550 * user:*, (*) @@ a@"),
        ("550 <a@b@c> <x> [2001:db8::1]", "550 * <x> *"),
        # an id keeps the "-" in front of it; one glued to an IPv4 address is masked too
        (
            "451 4.7.1 --t5si1234abcd.7 and 192.0.2.1-abcdef123456 10.0.0.1-web",
            "451 4.7.1 --*.7 and ** *-web",
        ),
        # ids need a digit and a letter in 12+ characters; trailing "-" stay
        ("421 session 1234567 abc-123456789xyz- ab-cd-ef-gh-ij", "421 session * *- ab-cd-ef-gh-ij"),
    ],
)
def test_mask_tokens(reply: str, masked: str) -> None:
    assert mask(reply) == masked


@pytest.mark.parametrize(
    "unit",
    ["a-", "ab", "a@", "@a", "a1-", "-a1", "1-", "1.", "x.", "1.2.3.4-", "é٥-", "<a@", "[a:"],
)
def test_mask_is_linear_on_hostile_tokens(unit: str) -> None:
    # 20 KB of one token shape: milliseconds when linear, many seconds when an
    # alternative rescans the token from every position
    reply = unit * (20_000 // len(unit))
    start = time.perf_counter()
    mask(reply)
    assert time.perf_counter() - start < 0.5
