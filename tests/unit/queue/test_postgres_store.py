"""What only the PostgreSQL store has: commits shared by sessions, NOTIFY across nodes,
synchronous commit whatever the server says, the versioned schema, a server that goes
away and comes back. (The QueueStore contract itself: test_store_contract.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from mailwright.queue import QueueError
from mailwright.queue.postgres import (
    SCHEMA_VERSION,
    PostgresQueueStore,
    SchemaMismatch,
    migrate,
    schema_version,
)
from mailwright.testing.postgres import PostgresCluster, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresQueueStore]:
    s = await PostgresQueueStore.open(postgres_url, migrate_schema=True)
    yield s
    await s.close()


async def test_sessions_share_commits(store: PostgresQueueStore) -> None:
    ids = await asyncio.gather(
        *(store.enqueue("a@x.example", [f"r{i}@y.example"], b"m%d" % i) for i in range(300))
    )
    assert len(set(ids)) == 300
    assert store.batches <= 30  # one commit for many enqueues, not one each
    assert [e.id for e in await store.list_entries()] == sorted(ids)


async def test_a_failing_operation_does_not_fail_its_batch(store: PostgresQueueStore) -> None:
    async def broken(conn: Any) -> None:
        await conn.execute("SELECT no_such_column FROM queue_entries")

    results = await asyncio.gather(
        store.enqueue("a@x.example", ["b@y.example"], b"one"),
        store._write(broken),
        store.enqueue("a@x.example", ["b@y.example"], b"two"),
        return_exceptions=True,
    )
    assert isinstance(results[1], QueueError) and "no_such_column" in str(results[1])
    assert [await store.read_message(str(r)) for r in (results[0], results[2])] == [b"one", b"two"]


async def test_commits_are_synchronous_even_if_the_server_says_otherwise(
    postgres_url: str,
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        dbname = postgres_url.rsplit("/", 1)[1]
        conn.execute(f"ALTER DATABASE {dbname} SET synchronous_commit = off")
    s = await PostgresQueueStore.open(postgres_url, migrate_schema=True)
    try:

        async def show(conn: Any) -> str:
            cur = await conn.execute("SHOW synchronous_commit")
            return str((await cur.fetchone())[0])

        assert await s._write(show) == "on"
    finally:
        await s.close()


async def _synchronous_commit(conn: Any) -> str:
    cur = await conn.execute("SHOW synchronous_commit")
    return str((await cur.fetchone())[0])


async def test_only_a_batch_of_reports_commits_without_waiting_for_its_flush(
    store: PostgresQueueStore,
) -> None:
    """Claims, leases and delivery results (durable=False) may be forgotten in a crash of
    the database (a duplicate delivery, never a loss): alone they commit with
    synchronous_commit off. A batch that holds anything else waits for its flush."""
    assert await store._write(_synchronous_commit, durable=False) == "off"
    assert await store._write(_synchronous_commit) == "on"
    report, enqueued, together = await asyncio.gather(
        store._write(_synchronous_commit, durable=False),
        store.enqueue("a@x.example", ["b@y.example"], b"m"),
        store._write(_synchronous_commit, durable=False),
    )
    assert (report, together) == ("on", "on")  # shared the enqueue's durable commit
    assert await store.read_message(enqueued) == b"m"
    # and the setting does not outlive its transaction (SET LOCAL) on the pooled connection
    assert await store._write(_synchronous_commit) == "on"


async def test_enqueue_on_one_node_wakes_the_other(postgres_url: str) -> None:
    a = await PostgresQueueStore.open(postgres_url, migrate_schema=True)
    b = await PostgresQueueStore.open(postgres_url)
    try:
        assert not await b.wait_for_work(0.05)
        started = time.monotonic()
        await a.enqueue("a@x.example", ["b@y.example"], b"x")
        assert await b.wait_for_work(5)
        assert time.monotonic() - started < 1.0  # NOTIFY, not the agent's polling
        await b.retry(None)
        assert await a.wait_for_work(5)
    finally:
        await a.close()
        await b.close()


async def test_migrate_is_idempotent_and_concurrent(postgres_url: str) -> None:
    assert await schema_version(postgres_url) == 0
    results = await asyncio.gather(*(migrate(postgres_url) for _ in range(4)))
    assert sorted(results) == [(0, SCHEMA_VERSION)] + [(SCHEMA_VERSION, SCHEMA_VERSION)] * 3
    assert await migrate(postgres_url) == (SCHEMA_VERSION, SCHEMA_VERSION)


async def test_an_unmigrated_database_is_refused(postgres_url: str) -> None:
    with pytest.raises(SchemaMismatch) as caught:
        await PostgresQueueStore.open(postgres_url)
    assert caught.value.hint == "run 'mailwright db migrate'"


async def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    await migrate(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO mailwright_schema (version, description) VALUES (99, 'x')")
    for attempt in (migrate(postgres_url), PostgresQueueStore.open(postgres_url)):
        with pytest.raises(SchemaMismatch) as caught:
            await attempt
        assert "schema 99, newer" in caught.value.message
        assert caught.value.hint == "upgrade mailwright on this node"


async def test_an_unreachable_server_is_one_line_soon() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    started = time.monotonic()
    with pytest.raises(QueueError) as caught:
        await PostgresQueueStore.open(url)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cannot reach the queue database postgresql://postgres@127.0.0.1")


async def test_the_store_survives_a_server_restart(
    postgres_cluster: PostgresCluster, store: PostgresQueueStore
) -> None:
    first = await store.enqueue("a@x.example", ["b@y.example"], b"before")
    postgres_cluster.stop("fast")
    try:
        started = time.monotonic()
        with pytest.raises(QueueError):
            await store.enqueue("a@x.example", ["b@y.example"], b"while down")
        assert time.monotonic() - started < 15
    finally:
        postgres_cluster.start()
    deadline = time.monotonic() + 30
    while True:  # the pool reconnects by itself
        try:
            second = await store.enqueue("a@x.example", ["b@y.example"], b"after")
            break
        except QueueError:
            assert time.monotonic() < deadline, "the store did not recover"
            await asyncio.sleep(0.2)
    assert await store.read_message(first) == b"before"
    assert await store.read_message(second) == b"after"
    for _ in range(100):  # the listener is back too
        if store.listening.is_set():
            break
        await asyncio.sleep(0.1)
    assert store.listening.is_set()
