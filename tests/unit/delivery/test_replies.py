"""SMTP reply parsing and classification (RFC 5321 §4.2, RFC 3463, RFC 2034)."""

from __future__ import annotations

import pytest

from mailwright.delivery.replies import (
    MAX_LINE,
    MAX_LINES,
    Kind,
    Reply,
    ReplyError,
    ReplyParser,
    local_reply,
)


def parse(data: bytes) -> list[Reply]:
    return ReplyParser().feed(data)


def test_single_line_reply() -> None:
    [reply] = parse(b"250 2.1.0 Ok\r\n")
    assert reply.code == 250
    assert reply.lines == ("2.1.0 Ok",)
    assert reply.enhanced == "2.1.0"
    assert reply.positive and reply.kind is Kind.POSITIVE
    assert str(reply) == "250 2.1.0 Ok"


def test_multi_line_reply_is_one_reply_joined_with_spaces() -> None:
    # RFC 5321 §4.2.1: "250-" continues, "250 " ends.
    [reply] = parse(b"550-5.1.1 The email account does not exist.\r\n550 5.1.1 Try again.\r\n")
    assert reply.code == 550
    assert reply.permanent
    assert reply.enhanced == "5.1.1"
    assert reply.text == "5.1.1 The email account does not exist. 5.1.1 Try again."


def test_replies_split_across_feeds_and_several_in_one_feed() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250-mx.example\r\n250-PIPE") == []
    assert parser.pending
    replies = parser.feed(b"LINING\r\n250 SIZE 1000\r\n354 go\r\n")
    assert [r.code for r in replies] == [250, 354]
    assert replies[0].extensions == {"PIPELINING": "", "SIZE": "1000"}
    assert not parser.pending


def test_bare_code_and_lf_only_lines() -> None:
    [a, b] = parse(b"250\n421 bye\n")
    assert a.code == 250 and a.text == "" and str(a) == "250"
    assert b.transient and b.kind is Kind.TRANSIENT


def test_intermediate_reply() -> None:
    [reply] = parse(b"354 End data with <CR><LF>.<CR><LF>\r\n")
    assert reply.kind is Kind.INTERMEDIATE and not reply.positive


@pytest.mark.parametrize(
    ("line", "enhanced", "status"),
    [
        (b"550 5.1.1 no such user\r\n", "5.1.1", "5.1.1"),
        (b"450 4.2.0 greylisted\r\n", "4.2.0", "4.2.0"),
        (b"550 5.7.001 leading zeros\r\n", "5.7.1", "5.7.1"),
        # RFC 2034 §3: the class must match the reply code; otherwise it is ignored.
        (b"450 5.1.1 inconsistent\r\n", None, "4.0.0"),
        (b"550 no enhanced code\r\n", None, "5.0.0"),
        (b"550 5.1.1.1 not a code\r\n", None, "5.0.0"),
        (b"550 3.1.1 bad class\r\n", None, "5.0.0"),
        (b"550 5.1234.1 too long\r\n", None, "5.0.0"),
        ("550 5.\u0667.1 not ASCII\r\n".encode(), None, "5.0.0"),
    ],
)
def test_enhanced_status_codes(line: bytes, enhanced: str | None, status: str) -> None:
    [reply] = parse(line)
    assert reply.enhanced == enhanced
    assert reply.status() == status


def test_status_uses_the_given_default_detail() -> None:
    [reply] = parse(b"550 user unknown\r\n")
    assert reply.status("1.1") == "5.1.1"


@pytest.mark.parametrize(
    "data",
    [
        b"hello\r\n",
        b"25\r\n",
        b"650 nope\r\n",
        b"150 nope\r\n",
        b"250+x\r\n",
        b"250-a\r\n251 b\r\n",  # code changes within a multi-line reply
        "2\u00b2\u00b2 superscript digits\r\n".encode(),  # RFC 5321 §4.2: ASCII digits
        "2\u0665\u0660 Arabic-Indic digits\r\n".encode(),
    ],
)
def test_malformed_replies_raise_reply_error(data: bytes) -> None:
    with pytest.raises(ReplyError):
        parse(data)


def test_overlong_line_is_an_error_even_without_newline() -> None:
    parser = ReplyParser()
    with pytest.raises(ReplyError, match="longer than"):
        parser.feed(b"250 " + b"x" * MAX_LINE)


def test_too_many_lines_is_an_error() -> None:
    with pytest.raises(ReplyError, match="lines"):
        parse(b"250-x\r\n" * (MAX_LINES + 1) + b"250 end\r\n")


def test_non_utf8_text_is_replaced_not_fatal() -> None:
    [reply] = parse(b"550 5.1.1 caf\xe9\r\n")
    assert reply.text == "5.1.1 caf\ufffd"


def test_local_reply() -> None:
    reply = local_reply(550, "5.1.10", "null MX")
    assert reply.enhanced == "5.1.10"
    assert str(reply) == "550 5.1.10 null MX"
