"""Mailman list addresses, the LMTP client (RFC 2033) and the [mailman] config."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from mailwright.config import parse_config
from mailwright.delivery import lmtp
from mailwright.delivery.replies import Reply
from mailwright.errors import ConfigError
from mailwright.local import LocalDirectory, Lookup
from mailwright.mailman import (
    MAX_ANSWER_BYTES,
    ListAddress,
    ListCache,
    MailmanError,
    MailmanRest,
    list_address,
    mta_section,
    unanswerable,
)
from mailwright.smtp.protocol import Session, SessionPolicy

LISTS = {"team@lists.example", "a-b@lists.example"}


def exists(name: str) -> bool:
    return name in LISTS


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("team@lists.example", ListAddress("team@lists.example", "post")),
        ("Team@Lists.Example", ListAddress("team@lists.example", "post")),
        ("team-request@lists.example", ListAddress("team@lists.example", "request")),
        ("team-owner@lists.example", ListAddress("team@lists.example", "owner")),
        ("team-join@lists.example", ListAddress("team@lists.example", "join")),
        ("team-leave@lists.example", ListAddress("team@lists.example", "leave")),
        ("team-subscribe@lists.example", ListAddress("team@lists.example", "subscribe")),
        ("team-unsubscribe@lists.example", ListAddress("team@lists.example", "unsubscribe")),
        ("team-bounces@lists.example", ListAddress("team@lists.example", "bounces")),
        # Mailman's VERP: list-bounces+member=domain
        (
            "team-bounces+bob=example.net@lists.example",
            ListAddress("team@lists.example", "bounces", "bob=example.net"),
        ),
        (
            "team-confirm+0123abcd@lists.example",
            ListAddress("team@lists.example", "confirm", "0123abcd"),
        ),
        ("a-b-request@lists.example", ListAddress("a-b@lists.example", "request")),
        # not list addresses
        ("team-confirm@lists.example", None),
        ("team-confirm+@lists.example", None),
        ("team-join+x@lists.example", None),
        ("team+x@lists.example", None),
        ("other@lists.example", None),
        ("other-request@lists.example", None),
        ("team-nosuch@lists.example", None),
        ("team@other.example", None),
        ("-request@lists.example", None),
        ("lists.example", None),
    ],
)
def test_list_addresses(address: str, expected: ListAddress | None) -> None:
    assert list_address(address, exists) == expected


def test_directory_accepts_list_addresses_only_for_existing_lists() -> None:
    directory = replace(
        LocalDirectory.build(["lists.example"], ["admin@lists.example"]), lists=exists
    )
    assert directory.resolve("team-bounces+x=y.example@lists.example") == (
        "team-bounces+x=y.example@lists.example",
    )
    assert directory.is_list_address("team@lists.example")
    assert directory.resolve("ghost@lists.example") is None
    assert directory.resolve("ghost-request@lists.example") is None
    assert directory.resolve("admin@lists.example") == ("admin@lists.example",)


# --- Mailman's REST API down: "unknown", never "no such list" ----------------------------


class ScriptedCache(ListCache):
    """A ListCache whose REST answers the test gives (None: Mailman is down)."""

    def __init__(self) -> None:
        self.now = 1000.0
        super().__init__("http://127.0.0.1:1/3.1", "u", "p", max_age=30, clock=lambda: self.now)
        self.lists: list[str] | None = None

    async def get(self, path: str) -> dict[str, object]:
        if self.lists is None:
            raise MailmanError("Mailman REST: connection refused")
        return {"entries": [{"fqdn_listname": n} for n in self.lists]}


async def test_list_cache_answers_unknown_until_mailman_answers() -> None:
    cache = ScriptedCache()
    assert cache.exists("team@lists.example") is None  # never asked
    with pytest.raises(MailmanError):
        await cache.refresh()
    assert cache.exists("team@lists.example") is None  # never answered
    cache.lists = ["team@lists.example"]
    await cache.refresh()
    assert cache.exists("Team@Lists.Example") is True
    assert cache.exists("ghost@lists.example") is False


async def test_list_cache_after_mailman_went_down() -> None:
    cache = ScriptedCache()
    cache.lists = ["team@lists.example"]
    await cache.refresh()
    cache.lists = None
    cache.now += 10
    with pytest.raises(MailmanError):
        await cache.refresh()
    # the last answer is still good (younger than max_age): it decides
    assert cache.exists("ghost@lists.example") is False
    cache.now += 30
    # too old now: a name it did not have is unknown; one it had still exists (its mail
    # is queued and retried over LMTP until Mailman is back)
    assert cache.exists("ghost@lists.example") is None
    assert cache.exists("team@lists.example") is True
    cache.lists = ["team@lists.example", "ghost@lists.example"]
    await cache.refresh()
    assert cache.exists("ghost@lists.example") is True


@pytest.mark.parametrize(
    "answer",
    [{"entries": "oops"}, {"entries": [None]}, {"entries": [{"fqdn_listname": 7}]}, {"entries": 3}],
)
async def test_list_cache_takes_a_malformed_answer_for_no_answer(answer: object) -> None:
    """Not Mailman's shape (a proxy's page, another API): a MailmanError like a refused
    connection (the server logs it and starts), never an AttributeError, and the last
    good answer stays."""
    cache = ScriptedCache()
    cache.lists = ["team@lists.example"]
    await cache.refresh()

    async def garbage(path: str) -> object:
        return answer

    cache.get = garbage  # type: ignore[method-assign,assignment]
    with pytest.raises(MailmanError):
        await cache.refresh()
    assert cache.exists("team@lists.example") is True
    assert cache.error is not None


def down(name: str) -> bool | None:
    """Mailman not answering, no list known."""
    return None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("team@lists.example", True),
        ("team-request@lists.example", True),
        ("team-bounces+bob=example.net@lists.example", True),
        ("team-confirm+0123abcd@lists.example", True),
        # the posting address of a list "team-confirm", perhaps
        ("team-confirm@lists.example", True),
        # not shaped like any list address
        ("team-join+x@lists.example", False),
        ("team+x@lists.example", False),
        ("lists.example", False),
    ],
)
def test_unanswerable(address: str, expected: bool) -> None:
    assert unanswerable(address, down) is expected
    assert list_address(address, down) is None


DOWN = replace(
    LocalDirectory.build(
        ["lists.example"],
        ["admin@lists.example"],
        {"info@lists.example": ["admin@lists.example"], "@lists.example": ["admin@lists.example"]},
    ),
    lists=down,
)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("team@lists.example", Lookup.UNKNOWN),
        ("team-leave@lists.example", Lookup.UNKNOWN),
        # mailboxes and aliases still work (the catch-all does not take list addresses)
        ("admin@lists.example", Lookup.FOUND),
        ("admin+tag@lists.example", Lookup.FOUND),
        ("info@lists.example", Lookup.FOUND),
        ("postmaster@lists.example", Lookup.FOUND),
        # never a list address: the catch-all's
        ("team+x@lists.example", Lookup.FOUND),
        # not ours at all
        ("team@other.example", Lookup.NOT_FOUND),
    ],
)
def test_directory_lookup_while_mailman_is_down(address: str, expected: Lookup) -> None:
    assert DOWN.lookup(address) is expected
    assert DOWN.exists(address) is (expected is Lookup.FOUND)
    if expected is Lookup.UNKNOWN:
        assert DOWN.resolve(address) is None and not DOWN.is_list_address(address)


def rcpt(directory: LocalDirectory, address: str) -> str:
    session = Session(
        SessionPolicy(hostname="mx.lists.example", size_limit=10_000, directory=directory),
        client_ip="198.51.100.7",
        trusted=False,
    )
    session.feed(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\n")
    session.next_event()
    session.next_event()
    session.feed(f"RCPT TO:<{address}>\r\n".encode())
    return str(session.next_event().text)  # type: ignore[union-attr]


def test_rcpt_while_mailman_cannot_be_asked() -> None:
    directory = LocalDirectory.build(["lists.example"], ["admin@lists.example"])
    directory = replace(directory, lists=down)
    assert rcpt(directory, "team@lists.example") == (
        "451 4.3.0 <team@lists.example>: list service unavailable, try again later"
    )
    assert rcpt(directory, "team-bounces+bob=example.net@lists.example").startswith("451 4.3.0")
    assert rcpt(directory, "admin@lists.example").startswith("250 2.1.5")
    assert rcpt(directory, "team+x@lists.example").startswith("550 5.1.1")
    assert rcpt(directory, "team@example.net").startswith("554 5.7.1")
    # Mailman answers: the same address is a list's, or nobody's
    assert rcpt(replace(directory, lists=exists), "team@lists.example").startswith("250 2.1.5")
    assert rcpt(replace(directory, lists=exists), "ghost@lists.example").startswith("550 5.1.1")


def test_mta_section_points_mailman_at_us() -> None:
    text = mta_section(smtp_host="127.0.0.1", smtp_port=587, lmtp_host="127.0.0.1", lmtp_port=8024)
    assert "incoming: mailman.mta.null.NullMTA\n" in text
    assert "smtp_port: 587\n" in text and "lmtp_port: 8024\n" in text


def test_mailman_config(tmp_path: Path) -> None:
    config = parse_config(
        {"mailman": {"lmtp_port": 9024, "rest_password_file": "pw"}},
        tmp_path / "mailwright.toml",
    )
    assert config.mailman is not None
    assert (config.mailman.lmtp_host, config.mailman.lmtp_port) == ("127.0.0.1", 9024)
    assert config.mailman.rest_password_file == tmp_path / "pw"
    assert parse_config({}, tmp_path / "m.toml").mailman is None
    with pytest.raises(ConfigError, match="lmtp_port"):
        parse_config({"mailman": {"lmtp_port": 0}}, tmp_path / "m.toml")
    with pytest.raises(ConfigError, match="is not an http URL"):
        parse_config({"mailman": {"rest_url": "ftp://x"}}, tmp_path / "m.toml")


# --- LMTP ----------------------------------------------------------------------------------


class LmtpServer:
    """A scripted LMTP server: RCPT and per-recipient DATA replies chosen by the test."""

    def __init__(self, rcpt: dict[str, str], data: dict[str, str]) -> None:
        self.rcpt, self.data = rcpt, data
        self.received: list[bytes] = []
        self.commands: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 lmtp ready\r\n")
        accepted: list[str] = []
        while line := await reader.readline():
            command = line.decode().strip()
            self.commands.append(command.split(" ")[0].split(":")[0].upper())
            verb = command.upper()
            if verb.startswith("LHLO"):
                writer.write(b"250-lmtp\r\n250 PIPELINING\r\n")
            elif verb.startswith("MAIL"):
                writer.write(b"250 ok\r\n")
            elif verb.startswith("RCPT"):
                address = command[command.index("<") + 1 : command.index(">")]
                reply = self.rcpt.get(address, "250 2.1.5 ok")
                if reply.startswith("250"):
                    accepted.append(address)
                writer.write(reply.encode() + b"\r\n")
            elif verb == "DATA":
                writer.write(b"354 go\r\n")
                body = b""
                while (chunk := await reader.readline()) != b".\r\n":
                    body += chunk
                self.received.append(body)
                for address in accepted:
                    writer.write(self.data.get(address, "250 2.0.0 ok").encode() + b"\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            await writer.drain()
        writer.close()


@pytest.fixture
async def lmtp_server() -> AsyncIterator[tuple[LmtpServer, int]]:
    script = LmtpServer(
        {"gone@lists.example": "550 5.1.1 no such list"},
        {"busy@lists.example": "452 4.2.2 try later"},
    )
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    yield script, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_lmtp_per_recipient_replies(lmtp_server: tuple[LmtpServer, int]) -> None:
    script, port = lmtp_server
    recipients = ["team@lists.example", "gone@lists.example", "busy@lists.example"]
    replies = await lmtp.deliver(
        "127.0.0.1", port, "a@x.example", recipients, b"Subject: x\n\n.dot\nhi\n", lhlo="mx"
    )
    assert {r: (reply.code, reply.local) for r, reply in replies.items()} == {
        "team@lists.example": (250, False),
        "gone@lists.example": (550, False),
        "busy@lists.example": (452, False),
    }
    # dot-stuffed, CRLF line ends
    assert script.received == [b"Subject: x\r\n\r\n..dot\r\nhi\r\n"]
    assert script.commands[:2] == ["LHLO", "MAIL"]


async def test_lmtp_down_is_451_for_everyone(unused_tcp_port: int) -> None:
    replies = await lmtp.deliver(
        "127.0.0.1", unused_tcp_port, "", ["team@lists.example"], b"x\r\n", lhlo="mx", timeout=2
    )
    reply = replies["team@lists.example"]
    assert (reply.code, reply.local) == (451, True)
    assert reply.status() == "4.4.1"


def test_data_replies_missing_ones_are_temporary() -> None:
    ok = Reply(250, ("2.0.0 ok",))
    replies = lmtp.data_replies(["a", "b"], [ok])
    assert replies["a"] is ok and replies["b"].code == 451


def test_unsubscribe_url_config(tmp_path: Path) -> None:
    config = parse_config(
        {"mailman": {"unsubscribe_url": "https://lists.example/unsubscribe"}},
        tmp_path / "mailwright.toml",
    )
    assert config.mailman is not None
    assert config.mailman.unsubscribe_url == "https://lists.example/unsubscribe"
    assert config.mailman.unsubscribe_max_age_days == 180
    with pytest.raises(ConfigError, match="not an https:// URL") as caught:
        parse_config(
            {"mailman": {"unsubscribe_url": "http://lists.example/unsubscribe"}},
            tmp_path / "m.toml",
        )
    assert "mailman.unsubscribe_url" in str(caught.value)
    with pytest.raises(ConfigError, match="unsubscribe_max_age_days"):
        parse_config({"mailman": {"unsubscribe_max_age_days": 0}}, tmp_path / "m.toml")


def test_config_check_names_a_bad_unsubscribe_url_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mailwright.cli.main import main

    path = tmp_path / "mailwright.toml"
    path.write_text('[mailman]\nunsubscribe_url = "http://lists.example/unsubscribe"\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(path), "config", "check"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "mailman.unsubscribe_url" in err and "https://lists.example/unsubscribe" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "not JSON"),  # nesting past the recursion limit
        (b'{"entries": []}' + b" " * (MAX_ANSWER_BYTES + 1), "answer over"),
    ],
)
async def test_a_hostile_rest_answer_is_a_mailman_error(body: bytes, problem: str) -> None:
    from aiohttp import web

    async def lists(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/3.1/lists", lists)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        rest = MailmanRest(f"http://127.0.0.1:{port}/3.1", "restadmin", "pw")
        with pytest.raises(MailmanError, match=problem):
            await rest.get("lists")
    finally:
        await runner.cleanup()
