"""``mailwright suppress`` and ``mailwright events``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from mailwright.queue import SqliteQueueStore
from mailwright.queue.events import Event
from mailwright.queue.tracking import Tracking

from .helpers import CliRun, assert_one_line_error


def _config(tmp_path: Path) -> str:
    path = tmp_path / "mailwright.toml"
    path.write_text(f'hostname = "mx.example.com"\ndata_dir = "{tmp_path / "data"}"\n')
    return str(path)


def _record(tmp_path: Path, events: list[Event]) -> None:
    async def go() -> None:
        store = await SqliteQueueStore.open(tmp_path / "data")
        await Tracking(store).record(events)
        await store.close()

    asyncio.run(go())


def test_suppress_add_check_list_remove(cli_run: CliRun, tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert cli_run("-c", config, "suppress", "check", "bob@example.net").code == 0
    added = cli_run(
        "-c", config, "suppress", "add", "Bob@Example.net", "--reason", "asked", "--days", "30"
    )
    assert added.code == 0 and "bob@example.net suppressed" in added.out
    checked = cli_run(
        "-c", config, "suppress", "check", "bob@example.net", "x@example.net", "--json"
    )
    assert checked.code == 1
    data = json.loads(checked.out)
    assert data["suppressed"] is True
    first, second = data["addresses"]
    assert first["suppression"]["reason"] == "manual" and first["suppression"]["detail"] == "asked"
    assert first["suppression"]["expires_at"].endswith("Z") and second["suppression"] is None
    listed = json.loads(cli_run("-c", config, "suppress", "list", "--json").out)
    assert listed["count"] == 1 and listed["suppressions"][0]["address"] == "bob@example.net"
    assert "bob@example.net" in cli_run("-c", config, "suppress", "list").out
    assert cli_run("-c", config, "suppress", "remove", "bob@example.net").code == 0
    assert_one_line_error(
        cli_run("-c", config, "suppress", "remove", "bob@example.net"), "is not suppressed"
    )


def test_suppress_bad_address_is_a_usage_error(cli_run: CliRun, tmp_path: Path) -> None:
    assert_one_line_error(
        cli_run("-c", _config(tmp_path), "suppress", "add", "not an address"),
        "is not an email address",
    )


def test_reads_without_a_database_do_not_create_one(cli_run: CliRun, tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert cli_run("-c", config, "suppress", "list").out.startswith("No address")
    assert cli_run("-c", config, "events", "--json").out == ""
    assert not (tmp_path / "data").exists()


def test_events_json_lines_since_and_type(cli_run: CliRun, tmp_path: Path) -> None:
    config = _config(tmp_path)
    now = time.time()
    _record(
        tmp_path,
        [
            Event("queued", now - 7200, recipient="a@x.example", queue_id="Q1", tags=("t",)),
            Event(
                "delivered", now - 10, recipient="a@x.example", queue_id="Q1", mta_response="250 ok"
            ),
            Event(
                "bounced",
                now - 5,
                recipient="b@x.example",
                queue_id="Q1",
                bounce_type="hard",
                bounce_source="sync",
                mta_response="550 5.1.1 unknown",
            ),
        ],
    )
    lines = cli_run("-c", config, "events", "--json").out.splitlines()
    assert [json.loads(line)["event_type"] for line in lines] == ["queued", "delivered", "bounced"]
    assert json.loads(lines[0])["tags"] == ["t"]
    recent = cli_run("-c", config, "events", "--since", "1h", "--json").out.splitlines()
    assert [json.loads(line)["event_type"] for line in recent] == ["delivered", "bounced"]
    only = cli_run("-c", config, "events", "--type", "bounced", "--json").out.splitlines()
    assert [json.loads(line)["recipient"] for line in only] == ["b@x.example"]
    assert len(cli_run("-c", config, "events", "--limit", "1", "--json").out.splitlines()) == 1
    human = cli_run("-c", config, "events").out
    assert "bounced" in human and "hard/sync" in human and "550 5.1.1 unknown" in human


def test_events_bad_since_is_a_usage_error(cli_run: CliRun, tmp_path: Path) -> None:
    assert_one_line_error(cli_run("-c", _config(tmp_path), "events", "--since", "soon"), "--since")


def test_events_follow_prints_new_events_as_they_happen(tmp_path: Path) -> None:
    import os
    import selectors
    import signal
    import subprocess
    import sys

    config = _config(tmp_path)
    _record(tmp_path, [Event("queued", time.time(), recipient="old@x.example")])
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mailwright"),
            *("-c", config, "events", "--follow", "--json", "--limit", "1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAILWRIGHT")},
    )
    assert proc.stdout is not None
    lines: list[dict[str, object]] = []
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    try:
        recorded = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(lines) < 2:
            if selector.select(timeout=0.5):
                lines.append(json.loads(proc.stdout.readline()))
            if lines and not recorded:
                _record(tmp_path, [Event("delivered", time.time(), recipient="new@x.example")])
                recorded = True
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    assert [(e["event_type"], e["recipient"]) for e in lines] == [
        ("queued", "old@x.example"),
        ("delivered", "new@x.example"),
    ]


def test_events_show_hostile_replies_literally(cli_run: CliRun, tmp_path: Path) -> None:
    config = _config(tmp_path)
    evil = "550 [bold]x[/bold] \x1b[31mred"
    _record(tmp_path, [Event("bounced", time.time(), recipient="b@x.example", mta_response=evil)])
    out = cli_run("-c", config, "events").out
    assert "550 [bold]x[/bold] \\x1b[31mred" in out
