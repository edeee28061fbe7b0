"""``mailwright serve`` as a real process: development mode, send-test, queue commands,
SIGTERM and SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailwright.testing.ports import free_port
from mailwright.testing.serve import MAILWRIGHT, start_serve, stop_serve, write_config

pytestmark = pytest.mark.integration


def wait_log(path: Path, text: str, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count(text) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} did not appear {count} times in {path}")


def cli(
    *args: str, cwd: Path, config: Path | None = None, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [str(MAILWRIGHT)]
    if config is not None:
        argv += ["--config", str(config)]
    result = subprocess.run(
        [*argv, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        input=input,
        env={**os.environ, "MAILWRIGHT_CONFIG": ""},
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int, subprocess.Popen[bytes]]]:
    """A server with a config file: local domain, outbox delivery, one worker."""
    port = free_port()
    config = write_config(tmp_path, port)
    proc = start_serve(port, config=config, cwd=tmp_path)
    yield config, port, proc
    stop_serve(proc)


def test_send_test_follows_the_message_to_delivery(
    served: tuple[Path, int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    config, _port, _ = served
    result = cli("send-test", "someone@example.net", "--json", cwd=tmp_path, config=config)
    report = json.loads(result.stdout)
    assert report["result"] == "delivered"
    assert report["relay"] == "local"
    assert report["reply"].startswith("250 2.0.0")
    assert report["from"] == "mailwright-test@example.com"
    outbox = list((tmp_path / "data" / "outbox" / "new").iterdir())
    assert len(outbox) == 1
    assert b"Subject: mailwright send-test" in outbox[0].read_bytes()
    human = cli("send-test", "admin@example.com", cwd=tmp_path, config=config)
    assert "queued as" in human.stdout and "delivered" in human.stdout


def test_queue_commands_while_the_server_runs(
    served: tuple[Path, int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    config, port, _ = served
    import smtplib

    listing = json.loads(cli("queue", "list", "--json", cwd=tmp_path, config=config).stdout)
    assert listing == {"count": 0, "entries": []}
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail("app@example.com", ["admin@example.com"], b"Subject: q\r\n\r\nx\r\n")
    # delivered at once by the running agent: the queue is empty again
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listing = json.loads(cli("queue", "list", "--json", cwd=tmp_path, config=config).stdout)
        if listing["count"] == 0:
            break
        time.sleep(0.2)
    assert listing["count"] == 0
    bad = cli("queue", "show", "nope", cwd=tmp_path, config=config, check=False)
    assert bad.returncode == 2 and "is not a queue ID" in bad.stderr
    missing = cli("queue", "hold", "0000000000ZZZZ", cwd=tmp_path, config=config, check=False)
    assert missing.returncode == 2 and "no message" in missing.stderr
    both = cli("queue", "retry", cwd=tmp_path, config=config, check=False)
    assert both.returncode == 2


def test_queue_commands_on_a_stopped_server(tmp_path: Path) -> None:
    import asyncio

    from mailwright.queue import RecipientUpdate, SqliteQueueStore

    config = tmp_path / "mailwright.toml"
    config.write_text('data_dir = "data"\n')

    async def fill() -> tuple[str, str]:
        store = await SqliteQueueStore.open(tmp_path / "data")
        a = await store.enqueue("a@example.com", ["x@example.net"], b"Subject: one\r\n\r\n1\r\n")
        b = await store.enqueue(
            "", ["y@example.net", "z@example.org"], b"Subject: two\r\n\r\n2\r\n"
        )
        await store.record_results(
            b, [RecipientUpdate("y@example.net", "deferred", "451 4.3.0 try later", 4e9)]
        )
        await store.close()
        return a, b

    a, b = asyncio.run(fill())
    listing = json.loads(cli("queue", "list", "--json", cwd=tmp_path, config=config).stdout)
    assert [e["id"] for e in listing["entries"]] == [a, b]
    assert listing["entries"][1]["recipients"][0]["last_reply"] == "451 4.3.0 try later"
    assert listing["entries"][0]["status"] == "due"
    human = cli("queue", "list", cwd=tmp_path, config=config).stdout
    assert a in human and b in human
    shown = json.loads(cli("queue", "show", b, "--json", cwd=tmp_path, config=config).stdout)
    assert shown["header"] == "Subject: two"
    assert shown["sender"] == ""
    assert cli("queue", "hold", a, cwd=tmp_path, config=config).stdout.strip() == f"{a} held."
    listing = json.loads(cli("queue", "list", "--json", cwd=tmp_path, config=config).stdout)
    assert listing["entries"][0]["status"] == "held"
    cli("queue", "release", a.lower(), cwd=tmp_path, config=config)  # IDs are case-insensitive
    assert (
        "2 message(s) due now" in cli("queue", "retry", "--all", cwd=tmp_path, config=config).stdout
    )
    cli("queue", "delete", b, cwd=tmp_path, config=config)
    listing = json.loads(cli("queue", "list", "--json", cwd=tmp_path, config=config).stdout)
    assert [e["id"] for e in listing["entries"]] == [a]
    log = (tmp_path / "data" / "mailwright.log").read_text()
    for event in ("held", "released", "retry", "deleted"):
        assert f"event={event}" in log


def test_no_queue_is_a_user_error(tmp_path: Path) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text('data_dir = "nothing-here"\n')
    result = cli("queue", "list", cwd=tmp_path, config=config, check=False)
    assert result.returncode == 2 and "no queue in" in result.stderr


def test_development_mode_signs_and_saves_to_the_outbox(tmp_path: Path) -> None:
    import smtplib

    import dkim

    port = free_port()
    proc = start_serve(
        port,
        "--listen",
        f"127.0.0.1:{port}",
        cwd=tmp_path,
        env={**os.environ, "MAILWRIGHT_CONFIG": ""},
    )
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail(
                "app@myapp.example",
                ["user@elsewhere.example"],
                b"From: App <app@myapp.example>\r\nTo: user@elsewhere.example\r\n"
                b"Subject: dev\r\n\r\nHello from development mode.\r\n",
            )
            # nothing silent: a refused submission shows on the console too
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail(
                    "app@myapp.example",
                    ["user@elsewhere.example"],
                    b"From: App <app@myapp.example>\r\nX-Mailwright-Metadata: nope\r\n\r\nx\r\n",
                )
            assert refused.value.smtp_code == 554
        outbox = tmp_path / "mailwright-data" / "outbox" / "new"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (outbox.exists() and any(outbox.iterdir())):
            time.sleep(0.1)
        [saved] = list(outbox.iterdir())
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0
    data = saved.read_bytes()
    assert data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    assert b"d=myapp.example" in data and b"s=mailwright-dev" in data
    from mailwright.dkim import dns_record_value, load_private_key

    key = load_private_key((tmp_path / "mailwright-data" / "dkim" / "dev-rsa.private").read_bytes())
    record = dns_record_value(key).encode()
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)
    assert "development mode" in output
    assert f"→ {Path('mailwright-data/outbox/new') / saved.name}" in output  # one line per message
    assert (
        "refused <user@elsewhere.example> (data): 554 5.6.0 Error: X-Mailwright-Metadata" in output
    )


def test_sigterm_finishes_and_sighup_reloads(
    served: tuple[Path, int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    import smtplib

    config, port, proc = served
    client = smtplib.SMTP("127.0.0.1", port)
    client.ehlo()
    client.mail("app@example.com")
    client.rcpt("new@example.com")
    assert client.rcpt("new@example.com")[0] == 550  # not a mailbox yet
    config.write_text(
        config.read_text().replace(
            'mailboxes = ["admin@example.com"]',
            'mailboxes = ["admin@example.com", "new@example.com"]',
        )
    )
    proc.send_signal(signal.SIGHUP)
    wait_log(tmp_path / "data" / "mailwright.log", "event=reloaded", 1)
    with smtplib.SMTP("127.0.0.1", port) as other:
        other.ehlo()
        other.mail("app@example.com")
        assert other.rcpt("new@example.com")[0] == 250  # the reload took effect
    # SIGTERM while `client` is in a transaction: it still gets its 250
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert client.rcpt("admin@example.com")[0] == 250
    code, reply = client.data(b"Subject: last\r\n\r\nin flight\r\n")
    assert code == 250 and b"queued as" in reply
    client.close()
    assert proc.wait(30) == 0
    log = (tmp_path / "data" / "mailwright.log").read_text()
    assert "event=reloaded" in log and "event=stopped" in log


def test_a_busy_port_is_a_one_line_error(
    served: tuple[Path, int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    config, _port, _ = served
    second = cli("serve", cwd=tmp_path, config=config, check=False)
    assert second.returncode == 2
    assert "cannot listen" in second.stderr


def test_a_dead_worker_is_replaced_with_the_reloaded_config(tmp_path: Path) -> None:
    import smtplib

    port = free_port()
    config = tmp_path / "mailwright.toml"
    base = 'data_dir = "data"\nallow_root = true\nworkers = 2\ndomains = ["example.com"]\n'
    listener = f'[[listeners]]\nname = "s"\nport = {port}\n'
    config.write_text(base + 'mailboxes = ["admin@example.com"]\n' + listener)
    proc = start_serve(port, config=config, cwd=tmp_path)

    def children() -> set[int]:
        path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        return {int(p) for p in path.read_text().split()}

    try:
        deadline = time.monotonic() + 10
        while len(children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        before = children()
        assert len(before) == 2
        # SIGHUP first: the replacement worker must start with the reloaded config
        config.write_text(
            base + 'mailboxes = ["admin@example.com", "new@example.com"]\n' + listener
        )
        proc.send_signal(signal.SIGHUP)
        wait_log(tmp_path / "data" / "mailwright.log", "event=reloaded", 2)  # both workers
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = children()
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.1)
        assert len(children()) == 2 and victim not in children()
        for _ in range(6):  # every worker serves, all with the new mailbox
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.ehlo()
                client.mail("someone@example.org")
                assert client.rcpt("new@example.com")[0] == 250
    finally:
        stop_serve(proc)
    assert proc.returncode == 0
    log = (tmp_path / "data" / "mailwright.log").read_text()
    assert f"worker {victim} exited" in log


def test_send_test_reports_a_bounce_with_the_remote_reply(tmp_path: Path) -> None:
    from mailwright.testing.postfix import SmtpSink

    port = free_port()
    with SmtpSink(hard=["RCPT"], hard_reply="550 5.1.1 No such user here") as sink:
        config = write_config(tmp_path, port, relay_port=sink.port)
        proc = start_serve(port, config=config, cwd=tmp_path)
        try:
            result = cli(
                "send-test",
                "nobody@example.net",
                "--json",
                cwd=tmp_path,
                config=config,
                check=False,
            )
        finally:
            stop_serve(proc)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["result"] == "bounced"
    assert report["reply"] == "550 5.1.1 No such user here"
    assert report["dsn"] == "5.1.1"
    assert report["relay"].startswith("127.0.0.1[127.0.0.1]:")


def test_managing_a_deferred_message_while_the_server_runs(tmp_path: Path) -> None:
    import smtplib

    port, dead_port = free_port(), free_port()  # nothing listens on dead_port
    config = write_config(tmp_path, port, relay_port=dead_port)
    proc = start_serve(port, config=config, cwd=tmp_path)
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("app@example.com", ["x@example.net"], b"Subject: d\r\n\r\nx\r\n")

        def listing() -> dict[str, Any]:
            out = cli("queue", "list", "--json", cwd=tmp_path, config=config).stdout
            return dict(json.loads(out))

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            entries = listing()["entries"]
            if entries and entries[0]["status"] == "deferred":
                break
            time.sleep(0.2)
        [entry] = listing()["entries"]
        assert entry["status"] == "deferred"
        assert entry["recipients"][0]["attempts"] == 1
        assert "4.4.1" in entry["recipients"][0]["last_reply"]
        queue_id = entry["id"]
        cli("queue", "hold", queue_id, cwd=tmp_path, config=config)
        assert listing()["entries"][0]["status"] == "held"
        cli("queue", "release", queue_id, cwd=tmp_path, config=config)
        assert (
            "1 message(s) due now"
            in cli("queue", "retry", queue_id, cwd=tmp_path, config=config).stdout
        )
        # the running agent picks it up again (within its poll interval) and defers again
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            attempts = listing()["entries"][0]["recipients"][0]["attempts"]
            if attempts >= 2:
                break
            time.sleep(0.2)
        assert attempts >= 2
        cli("queue", "delete", queue_id, cwd=tmp_path, config=config)
        assert listing() == {"count": 0, "entries": []}
    finally:
        stop_serve(proc)
    assert proc.returncode == 0


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_the_workers_serve_on_either_event_loop(tmp_path: Path, loop: str) -> None:
    """uvloop by default; MAILWRIGHT_EVENT_LOOP=asyncio: the standard library's."""
    import smtplib

    port = free_port()
    config = write_config(tmp_path, port, workers=2)
    env = {**os.environ, "MAILWRIGHT_EVENT_LOOP": "" if loop == "uvloop" else loop}
    proc = start_serve(port, config=config, cwd=tmp_path, env=env)
    try:
        for _ in range(4):  # both workers answer
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.sendmail(
                    "app@example.com", ["admin@example.com"], b"Subject: x\r\n\r\nx\r\n"
                )
    finally:
        stop_serve(proc)
    assert proc.returncode == 0
    log = (tmp_path / "data" / "mailwright.log").read_text()
    assert f"event=started workers=2 loop={loop} " in log
    assert log.count("event=accepted") == 4


def test_an_unknown_event_loop_stops_serve_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port())
    result = subprocess.run(
        [str(MAILWRIGHT), "--config", str(config), "serve"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MAILWRIGHT_EVENT_LOOP": "trio"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: MAILWRIGHT_EVENT_LOOP='trio' in the environment is not an event loop"
        " (set it to one of uvloop, asyncio, or unset it)"
    ]
