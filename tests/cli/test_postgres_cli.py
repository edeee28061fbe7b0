"""``mailwright db migrate``, ``mailwright queue migrate --to`` and the queue commands on
a PostgreSQL queue (the session's private cluster)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import psycopg
import pytest

from mailwright.queue import QueueMeta, RecipientUpdate, SqliteQueueStore
from mailwright.queue.postgres import SCHEMA_VERSION, PostgresQueueStore
from mailwright.testing.postgres import PostgresCluster, free_port

from .helpers import CliRun, assert_one_line_error

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, url: str | None, extra: str = "") -> Path:
    path = tmp_path / "mailwright.toml"
    queue = f'[queue]\nurl = "{url}"\n{extra}' if url else ""
    path.write_text(f'hostname = "mta.example.com"\ndata_dir = "data"\nallow_root = true\n{queue}')
    return path


def test_db_migrate_is_idempotent(cli_run: CliRun, tmp_path: Path, postgres_url: str) -> None:
    config = str(write_config(tmp_path, postgres_url))
    first = cli_run("--config", config, "db", "migrate")
    assert first.code == 0, first
    assert f"schema 0 -> {SCHEMA_VERSION}" in first.out
    again = cli_run("--config", config, "db", "migrate", "--json")
    assert again.code == 0, again
    data = json.loads(again.out)
    assert data["before"] == data["after"] == SCHEMA_VERSION
    assert data["database"].startswith("postgresql://postgres@127.0.0.1:")


def test_db_migrate_needs_a_url(cli_run: CliRun, tmp_path: Path) -> None:
    result = cli_run("--config", str(write_config(tmp_path, None)), "db", "migrate")
    assert_one_line_error(result, "no [queue] url")


def test_an_unreachable_database_is_one_line(cli_run: CliRun, tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/mailwright"
    config = str(write_config(tmp_path, url))
    for command in (["db", "migrate"], ["queue", "list"], ["serve"]):
        result = cli_run("--config", config, *command)
        assert_one_line_error(result, "cannot reach the queue database postgresql://postgres@")


def test_password_from_a_missing_environment_variable(cli_run: CliRun, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, "postgresql://mw@127.0.0.1/mw", 'password_env = "MW_NO_SUCH_VARIABLE"\n'
    )
    result = cli_run("--config", str(config), "db", "migrate")
    assert_one_line_error(result, "queue.password_env", "MW_NO_SUCH_VARIABLE is not set")


def test_not_a_postgresql_url(cli_run: CliRun, tmp_path: Path) -> None:
    config = write_config(tmp_path, "mysql://db/x")
    result = cli_run("--config", str(config), "db", "migrate")
    assert_one_line_error(result, "queue.url", "is not a postgresql:// URL")


def test_serve_refuses_a_newer_schema(cli_run: CliRun, tmp_path: Path, postgres_url: str) -> None:
    config = str(write_config(tmp_path, postgres_url))
    assert cli_run("--config", config, "db", "migrate").code == 0
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO mailwright_schema (version, description) VALUES (99, 'x')")
    result = cli_run("--config", config, "serve")
    assert_one_line_error(result, "schema 99, newer than this mailwright's", "upgrade mailwright")


async def _fill_sqlite(data_dir: Path) -> dict[str, bytes]:
    store = await SqliteQueueStore.open(data_dir)
    bodies: dict[str, bytes] = {}
    try:
        for i in range(40):
            body = b"Subject: %d\r\n\r\n" % i + bytes([i]) * 3000
            queue_id = await store.enqueue(
                "a@example.com",
                ["b@example.net", "c@example.org"],
                body,
                meta=QueueMeta(client="192.0.2.1", envid=f"e{i}"),
            )
            bodies[queue_id] = body
        first, second = sorted(bodies)[:2]
        await store.hold(first)
        await store.record_results(
            second,
            [
                RecipientUpdate("b@example.net", "delivered", "250 ok"),
                RecipientUpdate("c@example.org", "deferred", "451 later", time.time() + 600),
            ],
        )
    finally:
        await store.close()
    return bodies


async def _snapshot(store: SqliteQueueStore | PostgresQueueStore) -> dict[str, object]:
    return {e.id: (e.to_json(), await store.read_message(e.id)) for e in await store.list_entries()}


def test_queue_migrate_moves_everything_once(
    cli_run: CliRun, tmp_path: Path, postgres_url: str
) -> None:
    config = str(write_config(tmp_path, None))
    data_dir = tmp_path / "data"
    bodies = asyncio.run(_fill_sqlite(data_dir))

    async def before() -> dict[str, object]:
        store = await SqliteQueueStore.open(data_dir)
        try:
            return await _snapshot(store)
        finally:
            await store.close()

    expected = asyncio.run(before())
    # An earlier run died after committing part of the copy: those rows are in both.
    from mailwright.queue.postgres import migrate

    asyncio.run(migrate(postgres_url))
    some = sorted(bodies)[:5]
    with psycopg.connect(postgres_url) as conn:
        for queue_id in some:
            conn.execute(
                "INSERT INTO queue_entries (id, sender, recipients, size, created_at,"
                " next_attempt) VALUES (%s, 'a@example.com', '[]', 1, 0, 0)",
                (queue_id,),
            )
            conn.execute("INSERT INTO queue_messages VALUES (%s, %s)", (queue_id, bodies[queue_id]))

    result = cli_run("--config", config, "queue", "migrate", "--to", postgres_url, "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["moved"] == 40
    assert json.loads(result.out)["already_there"] == 5

    async def after() -> tuple[dict[str, object], int]:
        store = await PostgresQueueStore.open(postgres_url)
        sqlite_store = await SqliteQueueStore.open(data_dir)
        try:
            return await _snapshot(store), len(await sqlite_store.list_entries())
        finally:
            await store.close()
            await sqlite_store.close()

    moved, left = asyncio.run(after())
    assert left == 0
    assert set(moved) == set(expected)
    for queue_id in set(expected) - set(some):
        assert moved[queue_id] == expected[queue_id]
    again = cli_run("--config", config, "queue", "migrate", "--to", postgres_url, "--json")
    assert json.loads(again.out)["moved"] == 0

    pg_config = str(write_config(tmp_path, postgres_url))
    listed = cli_run("--config", pg_config, "queue", "list", "--json")
    assert listed.code == 0, listed
    assert json.loads(listed.out)["count"] == 40


def test_queue_migrate_refuses_while_delivering(
    cli_run: CliRun, tmp_path: Path, postgres_url: str
) -> None:
    config = str(write_config(tmp_path, None))

    async def fill() -> None:
        store = await SqliteQueueStore.open(tmp_path / "data")
        await store.enqueue("a@example.com", ["b@example.net"], b"x")
        await store.claim_due("host:1")
        await store.close()

    asyncio.run(fill())
    result = cli_run("--config", config, "queue", "migrate", "--to", postgres_url)
    assert_one_line_error(result, "being delivered right now", "stop 'mailwright serve'")


def test_queue_commands_when_the_database_goes_away(
    cli_run: CliRun, tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    config = str(write_config(tmp_path, postgres_url))
    assert cli_run("--config", config, "db", "migrate").code == 0
    assert cli_run("--config", config, "queue", "list").code == 0
    postgres_cluster.stop("fast")
    try:
        result = cli_run("--config", config, "queue", "retry", "--all")
    finally:
        postgres_cluster.start()
    assert_one_line_error(result, "cannot reach the queue database", "database is up")


def test_queue_migrate_moves_events_and_suppressions_once(
    cli_run: CliRun, tmp_path: Path, postgres_url: str
) -> None:
    from mailwright.queue.events import Event
    from mailwright.queue.eventstore import WebhookCursor
    from mailwright.queue.postgres import migrate
    from mailwright.queue.tracking import SuppressionPolicy, Tracking

    config = str(write_config(tmp_path, None))
    data_dir = tmp_path / "data"
    now = time.time()
    hook = "http://127.0.0.1:9/hook"

    async def fill() -> list[Event]:
        store = await SqliteQueueStore.open(data_dir)
        tracking = Tracking(store, SuppressionPolicy(soft_limit=5))
        try:
            await tracking.record(
                [Event("delivered", now + i, recipient=f"r{i}@x.example") for i in range(1200)]
            )
            await tracking.record(
                [
                    Event(
                        "bounced",
                        now,
                        recipient="dead@x.example",
                        bounce_type="hard",
                        bounce_source="sync",
                        mta_response="550 5.1.1 no such user",
                    ),
                    Event(
                        "bounced",
                        now,
                        recipient="full@x.example",
                        bounce_type="soft",
                        bounce_source="sync",
                    ),
                ]
            )
            await tracking.suppress("manual@x.example", detail="asked us", now=now)
            events = await tracking.read(limit=10_000)
            # the webhook has been given the first 700 events
            await store.save_webhook_cursor(hook, WebhookCursor(events[699].seq or 0))
            return events
        finally:
            await store.close()

    events = asyncio.run(fill())
    # An earlier run died after copying some events and a suppression.
    asyncio.run(migrate(postgres_url))
    with psycopg.connect(postgres_url) as conn:
        for event in events[:3]:
            conn.execute(
                "INSERT INTO events (event_id, event_type, timestamp, data)"
                " VALUES (%s, %s, %s, %s::jsonb)",
                (event.event_id, event.event_type, event.timestamp, json.dumps(event.to_json())),
            )
        conn.execute(
            "INSERT INTO suppressions (address, reason, created_at) VALUES"
            " ('dead@x.example', 'hard-bounce', %s)",
            (now,),
        )
        conn.execute(
            "INSERT INTO soft_bounces (address, at, event_id) VALUES ('full@x.example', %s, %s)",
            (now, events[1201].event_id),
        )

    result = cli_run("--config", config, "queue", "migrate", "--to", postgres_url, "--json")
    assert result.code == 0, result
    out = json.loads(result.out)
    assert (out["events"], out["suppressions"]) == (1202, 2)

    async def after() -> tuple[list[Event], list[str], WebhookCursor, int, int]:
        store = await PostgresQueueStore.open(postgres_url)
        local = await SqliteQueueStore.open(data_dir)
        try:
            moved = await store.read_events(limit=10_000)
            listed = [s.address for s in await store.list_suppressions(now=now)]
            cursor = await store.load_webhook_cursor(hook)
            left = len(await local.read_events(limit=10_000))
            left += len(await local.list_suppressions(now=now))
            return moved, listed, cursor, left, 0
        finally:
            await store.close()
            await local.close()

    moved, listed, cursor, left, _ = asyncio.run(after())
    assert [e.event_id for e in moved] == [e.event_id for e in events]  # once each, in order
    assert [e.to_json() | {"seq": 0} for e in moved[3:]] == [
        e.to_json() | {"seq": 0} for e in events[3:]
    ]
    assert sorted(listed) == ["dead@x.example", "manual@x.example"]
    # the cursor still stands right after the 700th event: nothing missed, nothing again
    assert cursor.seq == moved[699].seq
    assert left == 0
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT count(*) FROM soft_bounces").fetchone()
        assert row is not None and row[0] == 1

    again = cli_run("--config", config, "queue", "migrate", "--to", postgres_url, "--json")
    assert again.code == 0, again
    assert (json.loads(again.out)["events"], json.loads(again.out)["suppressions"]) == (0, 0)
    moved_again, *_ = asyncio.run(after())
    assert [e.event_id for e in moved_again] == [e.event_id for e in events]


def test_suppress_and_events_read_the_shared_database(
    cli_run: CliRun, tmp_path: Path, postgres_url: str
) -> None:
    """Two nodes' configs, one database: what one node's CLI adds, the other sees."""
    from mailwright.queue.events import Event
    from mailwright.queue.tracking import Tracking

    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one_dir.mkdir()
    two_dir.mkdir()
    one, two = str(write_config(one_dir, postgres_url)), str(write_config(two_dir, postgres_url))
    assert cli_run("--config", one, "db", "migrate").code == 0
    assert cli_run("--config", one, "suppress", "add", "Bob@example.net").code == 0
    checked = cli_run("--config", two, "suppress", "check", "bob@example.net", "--json")
    assert checked.code == 1 and json.loads(checked.out)["suppressed"] is True

    async def record() -> None:
        store = await PostgresQueueStore.open(postgres_url)
        try:
            await Tracking(store).record(
                [Event("delivered", time.time(), recipient="ann@example.net")]
            )
        finally:
            await store.close()

    asyncio.run(record())
    shown = cli_run("--config", two, "events", "--json")
    assert shown.code == 0, shown
    [event] = [json.loads(line) for line in shown.out.splitlines()]
    assert (event["event_type"], event["recipient"]) == ("delivered", "ann@example.net")
    assert not (two_dir / "data" / "queue.sqlite3").exists()  # nothing local
    assert cli_run("--config", two, "suppress", "remove", "bob@example.net").code == 0
    assert json.loads(cli_run("--config", one, "suppress", "list", "--json").out)["count"] == 0


def test_suppress_with_an_unreachable_database_is_one_line(cli_run: CliRun, tmp_path: Path) -> None:
    config = write_config(tmp_path, f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    result = cli_run("--config", str(config), "suppress", "list")
    assert_one_line_error(result, "cannot reach the queue database")
    assert result.code == 2
