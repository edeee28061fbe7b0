"""Events and suppressions in the queue database: durable, ordered, policy applied."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailwright.config import load_config
from mailwright.errors import ConfigError
from mailwright.queue import QueueMeta, SqliteQueueStore
from mailwright.queue.events import EVENT_TYPES, Event
from mailwright.queue.sqlite import SCHEMA_VERSION
from mailwright.queue.tracking import SuppressionPolicy, Tracking

NOW = 1_790_000_000.0


@pytest.fixture
async def tracking(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = await SqliteQueueStore.open(tmp_path / "data")
    yield Tracking(store, SuppressionPolicy(soft_limit=3, soft_window=86400))
    await store.close()


def bounce(rcpt: str, kind: str, source: str = "sync", at: float = NOW, **details: object) -> Event:
    return Event(
        "bounced",
        at,
        recipient=rcpt,
        queue_id="0ABCDEFGHJK123",
        bounce_type=kind,  # type: ignore[arg-type]
        bounce_source=source,  # type: ignore[arg-type]
        mta_response="550 5.1.1 no such user" if kind == "hard" else "452 4.2.2 full",
        details=dict(details),
    )


def test_config_and_event_vocabulary_agree(tmp_path: Path) -> None:
    """A webhook may name every event type and nothing else (the config checks against
    EVENT_TYPES itself; it used to keep a copy of the list)."""
    path = tmp_path / "mailwright.toml"
    hook = '[[webhooks]]\nurl = "https://app.example/hook"\nsecret = "0123456789abcdef"\n'
    names = ", ".join(f'"{name}"' for name in EVENT_TYPES)
    path.write_text(hook + f"events = [{names}]\n")
    assert set(load_config(path).webhooks[0].events) == set(EVENT_TYPES)
    path.write_text(hook + 'events = ["opened"]\n')
    with pytest.raises(ConfigError, match="'opened' is not an event type"):
        load_config(path)


async def test_events_are_ordered_and_read_back(tracking: Tracking) -> None:
    first = Event(
        "queued",
        NOW,
        recipient="a@x.example",
        queue_id="Q1",
        message_id="<m@x>",
        tags=("welcome",),
        metadata={"user_id": 42},
    )
    second = Event(
        "delivered", NOW + 1, recipient="a@x.example", queue_id="Q1", mta_response="250 2.0.0 Ok"
    )
    await tracking.record([first, second])
    got = await tracking.read()
    assert [e.event_type for e in got] == ["queued", "delivered"]
    assert got[0].seq is not None and got[1].seq == got[0].seq + 1
    data = got[0].to_json()
    assert data["schema"] == 1 and data["timestamp"] == "2026-09-21T14:13:20.000000Z"
    assert data["tags"] == ["welcome"] and data["metadata"] == {"user_id": 42}
    assert (await tracking.read(after=got[0].seq))[0].event_id == second.event_id
    assert [e.event_type for e in await tracking.read(since=NOW + 0.5)] == ["delivered"]
    assert [e.event_type for e in await tracking.read(types=["queued"])] == ["queued"]
    assert await tracking.message_known("<m@x>", "a@x.example") == "Q1"
    assert await tracking.message_known("<other@x>", "a@x.example") is None


async def test_hard_bounce_suppresses(tracking: Tracking) -> None:
    [added] = await tracking.record([bounce("Dead@X.example", "hard")])
    assert (added.address, added.reason) == ("dead@x.example", "hard-bounce")
    found = await tracking.check(["dead@x.example", "DEAD@x.example", "alive@x.example"])
    assert set(found) == {"dead@x.example", "DEAD@x.example"}
    assert found["dead@x.example"].detail == "550 5.1.1 no such user"


async def test_soft_bounces_suppress_after_the_limit_within_the_window(
    tracking: Tracking,
) -> None:
    assert await tracking.record([bounce("full@x.example", "soft", at=NOW)]) == []
    # one falls out of the window (a day) before the third arrives
    assert await tracking.record([bounce("full@x.example", "soft", at=NOW + 1000)]) == []
    assert await tracking.record([bounce("full@x.example", "soft", at=NOW + 87_000)]) == []
    [added] = await tracking.record([bounce("full@x.example", "soft", at=NOW + 87_200)])
    assert added.reason == "soft-bounces" and added.detail.startswith("3 soft bounces in 1 days")


async def test_unverified_async_bounces_and_complaints_suppress_nobody(
    tracking: Tracking,
) -> None:
    forged = [
        bounce("victim@x.example", "hard", source="async"),
        bounce("victim@x.example", "hard", source="async", verified=False),
        Event("complained", NOW, recipient="victim@x.example"),
    ]
    assert await tracking.record(forged) == []
    assert await tracking.check(["victim@x.example"]) == {}
    assert len(await tracking.read()) == 3  # still logged


async def test_verified_async_bounce_and_complaint_suppress(tracking: Tracking) -> None:
    added = await tracking.record(
        [
            bounce("gone@x.example", "hard", source="async", verified=True),
            Event(
                "complained",
                NOW,
                recipient="angry@x.example",
                details={"verified": True, "feedback_type": "abuse"},
            ),
        ]
    )
    assert [(s.address, s.reason) for s in added] == [
        ("gone@x.example", "hard-bounce"),
        ("angry@x.example", "complaint"),
    ]
    assert added[1].detail == "feedback-type abuse"


async def test_manual_entries_expire_and_can_be_removed(tracking: Tracking) -> None:
    await tracking.suppress("x@x.example", detail="asked us", expires_at=NOW + 10, now=NOW)
    assert await tracking.check(["x@x.example"], now=NOW + 5)
    assert await tracking.check(["x@x.example"], now=NOW + 11) == {}
    assert [s.address for s in await tracking.suppressions(now=NOW + 11)] == []
    assert len(await tracking.suppressions(now=NOW + 11, include_expired=True)) == 1
    assert await tracking.unsuppress("X@x.example")
    assert not await tracking.unsuppress("X@x.example")


async def test_many_addresses_are_checked_in_chunks(tracking: Tracking) -> None:
    await tracking.suppress("u1999@x.example")
    found = await tracking.check([f"u{i}@x.example" for i in range(3000)])
    assert list(found) == ["u1999@x.example"]


async def test_schema_version_and_survives_reopen(tmp_path: Path) -> None:
    store = await SqliteQueueStore.open(tmp_path / "d")
    await Tracking(store).record([Event("queued", NOW, recipient="a@x.example")])
    await store.close()
    with sqlite3.connect(tmp_path / "d" / "queue.sqlite3") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    store = await SqliteQueueStore.open(tmp_path / "d")
    assert [e.event_type for e in await Tracking(store).read()] == ["queued"]
    await store.close()


async def test_version_1_database_is_upgraded(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with sqlite3.connect(tmp_path / "d" / "queue.sqlite3") as conn:
        conn.execute(
            "CREATE TABLE entries (id TEXT PRIMARY KEY, sender TEXT NOT NULL,"
            " recipients TEXT NOT NULL, size INTEGER NOT NULL, created_at REAL NOT NULL,"
            " held INTEGER NOT NULL DEFAULT 0, next_attempt REAL, claimed_by TEXT,"
            " lease_until REAL, meta TEXT NOT NULL DEFAULT '{}')"
        )
        conn.execute("PRAGMA user_version = 1")
    store = await SqliteQueueStore.open(tmp_path / "d")
    assert await Tracking(store).suppressions() == []
    await store.close()


async def test_prune_keeps_what_a_reader_has_not_passed(tracking: Tracking) -> None:
    await tracking.record([Event("queued", NOW + i, recipient="a@x.example") for i in range(5)])
    seqs = [e.seq for e in await tracking.read()]
    assert await tracking.prune(before=NOW + 10, keep_after_seq=seqs[1] or 0) == 2
    assert [e.seq for e in await tracking.read()] == seqs[2:]


async def test_expiries_count_as_soft_bounces(tracking: Tracking) -> None:
    for i in range(2):
        assert await tracking.record([Event("expired", NOW + i, recipient="slow@x.example")]) == []
    [added] = await tracking.record([bounce("slow@x.example", "soft", at=NOW + 3)])
    assert added.reason == "soft-bounces"


async def test_the_suppression_check_inside_the_enqueue_transaction(tracking: Tracking) -> None:
    """The SMTP server's check (``refuse_suppressed``) runs in the enqueue's own transaction:
    a suppressed recipient undoes the whole enqueue (nothing queued, no events) and says
    which; without one the message is queued with its events."""
    from mailwright.queue.suppressions import RecipientsSuppressed

    store = tracking.store
    assert isinstance(store, SqliteQueueStore)
    await tracking.suppress("gone@x.example", now=NOW)
    rcpts = ["ok@x.example", "gone@x.example"]
    assert tracking.checks_suppressions_at_enqueue

    def events_for(queue_id: str) -> list[Event]:
        return [Event("queued", NOW, recipient=r, queue_id=queue_id) for r in rcpts]

    with pytest.raises(RecipientsSuppressed) as caught:
        await tracking.enqueue(
            "a@x.example",
            rcpts,
            b"m",
            meta=QueueMeta(),
            queue_id="Q1",
            events_for=events_for,
            refuse_suppressed=rcpts,
        )
    assert list(caught.value.found) == ["gone@x.example"]
    assert caught.value.found["gone@x.example"].reason == "manual"
    assert await store.list_entries() == [] and await tracking.read(types=["queued"]) == []
    ok = ["ok@x.example"]
    queued = await tracking.enqueue(
        "a@x.example",
        ok,
        b"m",
        meta=QueueMeta(),
        queue_id="Q2",
        events_for=lambda qid: [Event("queued", NOW, recipient="ok@x.example", queue_id=qid)],
        refuse_suppressed=ok,
    )
    assert [e.id for e in await store.list_entries()] == [queued]
    assert [e.recipient for e in await tracking.read(types=["queued"])] == ok
