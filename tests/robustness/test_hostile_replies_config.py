"""The delivery client's reply parser (RFC 5321 §4.2) under hostile servers, and the
config parser under hostile TOML documents: each raises only its documented error."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from robust_support import NASTY_CHARS, chunked, robust

from mailwright.config import parse_config
from mailwright.delivery.replies import MAX_LINE, MAX_LINES, Reply, ReplyError, ReplyParser
from mailwright.errors import ConfigError

REPLY_PIECES = [
    "250",
    "250-",
    "250 ",
    "220 mx.example ESMTP",
    "550 5.1.1 no such user",
    "451-4.3.0 try",
    "421 4.7.0 bye",
    "2.0.0",
    "5.7.1",
    "199",
    "600",
    "25",
    "-",
    " ",
    "\r\n",
    "\n",
    "\r",
    "SIZE 1000",
    "x" * 300,
]


@st.composite
def server_bytes(draw: st.DrawFn) -> list[bytes]:
    pieces = draw(
        st.lists(
            st.one_of(st.sampled_from(REPLY_PIECES), st.sampled_from(NASTY_CHARS)), max_size=30
        )
    )
    data = "".join(pieces).encode()
    if draw(st.booleans()):
        data += draw(st.binary(max_size=100))
    return draw(chunked(data))


@robust(300)
@given(server_bytes())
def test_reply_parser_gives_replies_or_reply_error(chunks: list[bytes]) -> None:
    parser = ReplyParser()
    for chunk in chunks:
        try:
            replies = parser.feed(chunk)
        except ReplyError:
            return  # the client turns it into a transient failure
        for reply in replies:
            assert isinstance(reply, Reply)
            assert 200 <= reply.code <= 599
            assert 1 <= len(reply.lines) <= MAX_LINES
            assert all(len(line) <= MAX_LINE for line in reply.lines)
            assert reply.status().count(".") == 2
            assert reply.enhanced is None or reply.enhanced[0] == str(reply.code)[0]
            assert isinstance(reply.extensions, dict)
            assert str(reply).startswith(str(reply.code))


def test_endless_line_is_refused_without_buffering_it() -> None:
    parser = ReplyParser()
    with pytest.raises(ReplyError):
        for _ in range(1000):
            parser.feed(b"2" * 1024)


def test_endless_multiline_reply_is_refused() -> None:
    parser = ReplyParser()
    with pytest.raises(ReplyError):
        parser.feed(b"250-x\r\n" * (MAX_LINES + 5))


def test_superscript_digits_in_reply_code_are_a_reply_error() -> None:
    with pytest.raises(ReplyError):
        ReplyParser().feed("2²² hi\r\n".encode())


def test_non_ascii_digits_are_not_a_positive_reply() -> None:
    with pytest.raises(ReplyError):
        ReplyParser().feed("2\u0665\u0660 ok\r\n".encode())


# --- config -------------------------------------------------------------------------------

KEYS = [
    "hostname",
    "domains",
    "ipv4",
    "ipv6",
    "data_dir",
    "trusted_networks",
    "message_size_limit",
    "workers",
    "mailboxes",
    "dns",
    "nameserver",
    "timeout",
    "dkim",
    "domain",
    "selector",
    "private_key",
    "algorithm",
    "tls",
    "certificate",
    "listeners",
    "name",
    "address",
    "port",
    "role",
    "auth",
    "delivery",
    "mode",
    "relay",
    "url",
    "retry",
    "first_retry",
    "users",
    "password_hash",
    "aliases",
    "inbound",
    "dmarc_enforcement",
    "check",
    "dnsbls",
    "log",
    "file",
    "unknown",
]
SCALARS = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "127.0.0.1",
            "::1",
            "10.0.0.0/8",
            "127.0.0.1:5353",
            "[::1]:53",
            "a@example.com",
            "smtp://relay.example:587",
            "rsa",
            "ed25519",
            "starttls",
            "relay",
            "direct",
            "keys/a.pem",
            "",
            "..",
            "é.example",
            "x" * 300,
        ]
    ),
    st.text(max_size=12),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from([math.inf, -0.0, 0, 1, 25, 65536]),
)


def _toml_value(depth: int) -> st.SearchStrategy[Any]:
    if depth <= 0:
        return SCALARS
    return st.one_of(
        SCALARS,
        st.lists(_toml_value(depth - 1), max_size=3),
        st.dictionaries(st.sampled_from(KEYS), _toml_value(depth - 1), max_size=4),
    )


@robust(600)
@given(st.dictionaries(st.sampled_from(KEYS), _toml_value(2), max_size=6))
def test_parse_config_raises_only_config_error(data: dict[str, Any]) -> None:
    try:
        parse_config(data, Path("/etc/mailwright.toml"))
    except ConfigError as exc:
        assert str(exc)


def test_nameserver_with_superscript_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_config({"dns": {"nameserver": "127.0.0.1:²"}})


def test_unknown_user_home_in_a_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_config({"data_dir": "~nosuchuser_mw/x"})


def test_nul_in_a_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_config({"data_dir": "a\0b"})


@pytest.mark.parametrize("line", ["²²² hi\r\n", "\u0662\u0665\u0660 ok\r\n"])
async def test_doctor_reads_non_ascii_reply_codes_as_garbage(line: str) -> None:
    import asyncio

    from mailwright.doctor.ports import _reply

    reader = asyncio.StreamReader()
    reader.feed_data(line.encode())
    reader.feed_eof()
    code, _ = await _reply(reader)
    assert code == 0
