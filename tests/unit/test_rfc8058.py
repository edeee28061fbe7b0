"""RFC 8058 one-click unsubscribe: the per-member token, the URL check, which mail is a
list post, and the header fields added before signing."""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import pytest

from mailwright import message as rfc5322
from mailwright.dkim import SigningKey, dns_record_value, generate_key, sign_message
from mailwright.rfc8058 import (
    POST_VALUE,
    OneClick,
    TokenError,
    TokenExpired,
    add_one_click,
    is_list_post,
    load_or_create_key,
    make_token,
    url_problem,
    verify_token,
)

KEY = b"k" * 32
NOW = 1_800_000_000.0
LIST = "team@lists.example"

POST = (
    b"From: Bob <bob@example.net>\r\n"
    b"To: team@lists.example\r\n"
    b"Subject: [Team] lunch\r\n"
    b"List-Id: Team talk <team.lists.example>\r\n"
    b"List-Help: <mailto:team-request@lists.example?subject=help>\r\n"
    b"List-Post: <mailto:team@lists.example>\r\n"
    b"List-Subscribe: <mailto:team-join@lists.example>\r\n"
    b"List-Unsubscribe: <mailto:team-leave@lists.example>\r\n"
    b"Message-ID: <p1@example.net>\r\n"
    b"\r\n"
    b"Shall we?\r\n"
)


def test_token_round_trip() -> None:
    token = make_token(KEY, "Team@Lists.Example", "Alice+x@example.net", now=NOW)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}", token)  # URL-safe as is
    found = verify_token(KEY, token, now=NOW + 86400)
    assert (found.fqdn_listname, found.member, found.issued) == (
        LIST,
        "Alice+x@example.net",
        int(NOW),
    )
    assert found.list_id == "team.lists.example"


def test_forged_token_other_key_or_list_is_refused() -> None:
    token = make_token(KEY, LIST, "alice@example.net", now=NOW)
    with pytest.raises(TokenError, match="bad MAC"):
        verify_token(b"other key" * 4, token, now=NOW)
    # the payload of another list (or member) with this token's MAC
    other = make_token(KEY, "board@lists.example", "alice@example.net", now=NOW)
    spliced = other.split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(TokenError, match="bad MAC"):
        verify_token(KEY, spliced, now=NOW)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(TokenError):
        verify_token(KEY, flipped, now=NOW)


@pytest.mark.parametrize(
    "garbage", ["", ".", "abc", "abc.def", "a" * 2000, "ü.ü", "%%%.@@@", "x.y.z", "==.=="]
)
def test_garbage_tokens_are_token_errors(garbage: str) -> None:
    with pytest.raises(TokenError) as caught:
        verify_token(KEY, garbage, now=NOW)
    assert not isinstance(caught.value, TokenExpired)


def test_expired_and_future_tokens() -> None:
    token = make_token(KEY, LIST, "alice@example.net", now=NOW)
    assert verify_token(KEY, token, now=NOW + 10 * 86400, max_age_days=10).member
    with pytest.raises(TokenExpired, match="11 days old"):
        verify_token(KEY, token, now=NOW + 11 * 86400, max_age_days=10)
    with pytest.raises(TokenExpired):
        verify_token(KEY, token, now=NOW - 2 * 86400)


def test_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    assert len(key) == 32 and load_or_create_key(tmp_path) == key
    path = tmp_path / "unsubscribe.key"
    assert path.stat().st_mode & 0o777 == 0o600
    from mailwright.verp import load_or_create_key as verp_key

    assert verp_key(tmp_path) != key  # its own key: a link cannot help forge a bounce


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://lists.example/unsubscribe", None),
        ("https://lists.example:8443/mail/unsubscribe/", None),
        ("https://127.0.0.1:4443/unsubscribe", None),
        ("http://lists.example/unsubscribe", "not an https:// URL"),
        ("lists.example/unsubscribe", "not an https:// URL"),
        ("https:///unsubscribe", "no host name"),
        ("https://u:p@lists.example/unsubscribe", "user name or password"),
        ("https://lists.example/unsubscribe?x=1", "query or fragment"),
        ("https://lists.example/unsubscribe#x", "query or fragment"),
        ("https://lists.example/un subscribe", "spaces"),
        ("https://lists.example/", "does not end in /unsubscribe"),
        ("https://lists.example:99999/unsubscribe", "not a URL"),
    ],
)
def test_url_problem(url: str, problem: str | None) -> None:
    found = url_problem(url)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_only_a_post_of_that_list_is_a_list_post() -> None:
    assert is_list_post(POST, "team.lists.example")
    assert is_list_post(POST, "TEAM.lists.example")
    assert not is_list_post(POST, "board.lists.example")
    # Mailman's notices (confirmation, welcome) carry List-Id but no List-Post
    notice = POST.replace(b"List-Post: <mailto:team@lists.example>\r\n", b"")
    assert not is_list_post(notice, "team.lists.example")
    # announce-only list: List-Post: NO is still a post
    assert is_list_post(POST.replace(b"<mailto:team@lists.example>", b"NO"), "team.lists.example")
    # one-click already there (a later Mailman, a plugin): kept as it is
    own = POST.replace(
        b"\r\n\r\n", b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n"
    )
    assert not is_list_post(own, "team.lists.example")
    assert not is_list_post(b"From: a@example.com\r\n\r\nhi\r\n", "team.lists.example")


def test_add_one_click_puts_ours_first_and_keeps_mailto() -> None:
    url = "https://lists.example/unsubscribe/TOKEN"
    out = add_one_click(POST, url)
    assert rfc5322.field_values(out, "List-Unsubscribe") == [
        "<https://lists.example/unsubscribe/TOKEN>, <mailto:team-leave@lists.example>"
    ]
    assert rfc5322.field_values(out, "List-Unsubscribe-Post") == [POST_VALUE]
    # in the old field's place, the rest of the message as it was
    names = [f.name for f in rfc5322.fields(out)]
    assert names.index("list-unsubscribe") == 7 and names.index("list-unsubscribe-post") == 8
    assert out.endswith(b"\r\n\r\nShall we?\r\n")
    assert (
        out.replace(
            b"List-Unsubscribe: <https://lists.example/unsubscribe/TOKEN>,\r\n <mailto:",
            b"List-Unsubscribe: <mailto:",
        ).replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"")
        == POST
    )


def test_add_one_click_drops_other_http_uris_and_adds_when_missing() -> None:
    two = POST.replace(
        b"List-Unsubscribe: <mailto:team-leave@lists.example>",
        b"List-Unsubscribe: <https://lists.example/postorius/team>,\r\n"
        b"\t<mailto:team-leave@lists.example>\r\nList-Unsubscribe: <http://x.example/>",
    )
    out = add_one_click(two, "https://l.example/unsubscribe/T")
    assert rfc5322.field_values(out, "List-Unsubscribe") == [
        "<https://l.example/unsubscribe/T>, <mailto:team-leave@lists.example>"
    ]
    bare = b"From: a@example.com\r\nList-Id: <team.lists.example>\r\n\r\nhi\r\n"
    out = add_one_click(bare, "https://l.example/unsubscribe/T")
    assert out == (
        b"From: a@example.com\r\nList-Id: <team.lists.example>\r\n"
        b"List-Unsubscribe: <https://l.example/unsubscribe/T>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nhi\r\n"
    )


def test_one_click_url_is_per_member() -> None:
    one_click = OneClick(KEY, "https://lists.example/unsubscribe/")
    alice = one_click.url(LIST, "alice@example.net", NOW)
    bob = one_click.url(LIST, "bob@example.net", NOW)
    assert alice.startswith("https://lists.example/unsubscribe/") and alice != bob
    token = alice.rsplit("/", 1)[1]
    assert verify_token(KEY, token, now=NOW).member == "alice@example.net"


def test_the_signature_covers_both_fields_and_dkimpy_verifies() -> None:
    # RFC 8058 §4: a valid DKIM signature covering List-Unsubscribe and -Post
    key = SigningKey("lists.example", "sel", "rsa-sha256", generate_key("rsa", 1024))
    out = add_one_click(POST, OneClick(KEY, "https://lists.example/unsubscribe").url(LIST, "a@x"))
    signed = sign_message(out, [key]) + out
    value = rfc5322.field_value(signed, "DKIM-Signature") or ""
    h = re.search(r"h=([^;]+);", value)
    assert h is not None
    names = [n.strip() for n in h.group(1).replace(" ", "").split(":")]
    assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(names)
    record = dns_record_value(key.private_key).encode()
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    # and a changed link breaks it
    forged = signed.replace(b"/unsubscribe/", b"/unsubscribe/x")
    assert not dkim.verify(forged, dnsfunc=lambda name, timeout=5: record)
    # so does one added above ours (both fields are oversigned, RFC 6376 §8.15)
    assert names.count("list-unsubscribe") == 2 and names.count("list-unsubscribe-post") == 2
    for added in (
        b"List-Unsubscribe: <https://evil.example/u>\r\n",
        b"List-Unsubscribe-Post: x\r\n",
    ):
        assert not dkim.verify(added + signed, dnsfunc=lambda name, timeout=5: record)
