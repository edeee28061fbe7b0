"""Issue 12 item 10: what a new user ran into on a first try; each test failed before its fix."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import time
from pathlib import Path

import pytest

from mailwright.config import Config, ListenerConfig
from mailwright.delivery.client import os_error_text
from mailwright.listeners import bind_error
from mailwright.queue import RecipientUpdate, open_store
from mailwright.testing.ports import free_port

from .helpers import CliRun, Run, assert_one_line_error


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def test_a_missing_dkim_key_names_genkey(cli_run: CliRun, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "mailwright.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nallow_root = true\n'
        '[[dkim]]\ndomain = "example.com"\nselector = "s1"\nprivate_key = "nope.private"\n'
        f'[[listeners]]\nname = "s"\nport = {port}\n'
    )
    result = cli_run("--config", str(config), "serve")
    assert_one_line_error(result, "nope.private", "'mailwright dkim genkey'")
    assert "keygen" not in result.err


def test_a_busy_port_in_development_mode_suggests_listen_before_any_key(
    cli_run: CliRun, tmp_path: Path
) -> None:
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        data = tmp_path / "data"
        result = cli_run("serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data))
    assert_one_line_error(
        result, f"cannot listen on 127.0.0.1:{port}", "address already in use", "--listen"
    )
    assert "[[listeners]]" not in result.err
    assert not (data / "dkim").exists()  # detected before the development key is made


def test_a_busy_port_with_a_config_names_the_file(cli_run: CliRun, tmp_path: Path) -> None:
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        config = tmp_path / "mailwright.toml"
        config.write_text(
            f'data_dir = "{tmp_path / "data"}"\nallow_root = true\n'
            f'[[listeners]]\nname = "sub"\nport = {port}\n'
        )
        result = cli_run("--config", str(config), "serve")
    assert_one_line_error(result, f"127.0.0.1:{port} (sub)", "[[listeners]]", str(config))


def test_permission_denied_below_1024_explains_both_ways() -> None:
    listener = ListenerConfig("inbound", "0.0.0.0", 25, "inbound")
    error = bind_error(
        listener, PermissionError(errno.EACCES, "Permission denied"), Config(), False
    )
    text = str(error)
    assert "\n" not in text
    assert "0.0.0.0:25" in text and "permission denied" in text
    assert "as root with user =" in text and "CAP_NET_BIND_SERVICE" in text


def test_ipv6_endpoint_is_bracketed() -> None:
    listener = ListenerConfig("s", "::1", 2525)
    error = bind_error(listener, OSError(errno.EADDRINUSE, "in use"), Config(), True)
    assert "[::1]:2525" in str(error)


async def test_a_refused_connection_reads_as_postfix_says_it() -> None:
    port = free_port()
    with pytest.raises(OSError) as caught:
        await asyncio.open_connection("127.0.0.1", port)
    assert "Connect call failed" in str(caught.value)  # asyncio's words ...
    assert os_error_text(caught.value) == "Connection refused"  # ... and ours


def _queue_with(tmp_path: Path, message: bytes, reply: str | None = None) -> tuple[Path, str]:
    data_dir = tmp_path / "data"
    config = tmp_path / "mailwright.toml"
    config.write_text(f'data_dir = "{data_dir}"\n')

    async def fill() -> str:
        store = await open_store(data_dir)
        try:
            queue_id = await store.enqueue("app@example.com", ["rcpt@example.net"], message)
            if reply is not None:
                update = RecipientUpdate("rcpt@example.net", "deferred", reply, time.time() + 600)
                await store.record_results(queue_id, [update])
            return queue_id
        finally:
            await store.close()

    return config, asyncio.run(fill())


def test_queue_list_cuts_a_long_reply_with_an_ellipsis(cli_run: CliRun, tmp_path: Path) -> None:
    reply = "451 4.7.1 " + "greylisted, please try again later " * 5 + "THE-END"
    config, _ = _queue_with(tmp_path, b"Subject: x\r\n\r\nbody\r\n", reply)
    result = cli_run("--config", str(config), "queue", "list")
    assert result.code == 0, result
    assert "…" in result.out and "THE-END" not in result.out
    listed = json.loads(cli_run("--config", str(config), "queue", "list", "--json").out)
    assert any(
        r.get("last_reply") == reply for e in listed["entries"] for r in e["recipients"]
    )  # the JSON keeps it whole


def test_queue_show_prints_folded_header_lines(cli_run: CliRun, tmp_path: Path) -> None:
    message = (
        b"Subject: a long\r\n\tfolded subject\r\nTo: <x@example.net>,\r\n <y@example.net>\r\n\r\n."
    )
    config, queue_id = _queue_with(tmp_path, message)
    result = cli_run("--config", str(config), "queue", "show", queue_id)
    assert result.code == 0, result
    assert "\\x09" not in result.out
    assert "Subject: a long\n    folded subject\n" in result.out
    assert "To: <x@example.net>,\n <y@example.net>" in result.out


def _signed(cli_run: CliRun, tmp_path: Path) -> tuple[bytes, Path]:
    keys = tmp_path / "keys"
    assert cli_run("dkim", "genkey", "-d", "example.com", "-s", "s1", "-D", str(keys)).code == 0
    message = tmp_path / "msg.eml"
    message.write_bytes(b"From: <app@example.com>\r\nSubject: hi\r\n\r\nhello\r\n")
    return message.read_bytes(), keys


def _verify(cli_run: CliRun, monkeypatch: pytest.MonkeyPatch, data: bytes, *args: str) -> Run:
    import io
    import sys

    class Stdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr(sys, "stdin", Stdin)
    return cli_run("dkim", "verify", "--json", *args)


def test_dkim_verify_against_a_local_key_file(
    cli_run: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    message, keys = _signed(cli_run, tmp_path)

    class Stdin:
        buffer = io.BytesIO(message)

    monkeypatch.setattr(sys, "stdin", Stdin)
    private = str(keys / "s1.private")
    signed = cli_run("dkim", "sign", "-d", "example.com", "-s", "s1", "-k", private)
    assert signed.code == 0, signed
    signed_bytes = signed.out.encode()
    for key_file in (keys / "s1.private", keys / "s1.txt"):
        result = _verify(cli_run, monkeypatch, signed_bytes, "--key-file", str(key_file))
        assert result.code == 0, (key_file, result)
        assert json.loads(result.out)["result"] == "pass"
    _signed(cli_run, tmp_path / "other")
    other_key = str(tmp_path / "other" / "keys" / "s1.private")
    wrong = _verify(cli_run, monkeypatch, signed_bytes, "--key-file", other_key)
    assert wrong.code == 1
    assert json.loads(wrong.out)["result"] == "fail"
    junk = tmp_path / "junk"
    junk.write_text("hello")
    bad = _verify(cli_run, monkeypatch, signed_bytes, "--key-file", str(junk))
    assert_one_line_error(bad, "--key-file", "not a DKIM key")
