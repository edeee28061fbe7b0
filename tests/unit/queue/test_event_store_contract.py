"""The EventStore contract (mailwright.queue.eventstore): the event log, the suppression
list and webhook cursors, run against every store — the embedded SQLite one and the
PostgreSQL one (on the private test cluster, integration-marked)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailwright.queue import QueueError, QueueMeta, RecipientUpdate, idempotency
from mailwright.queue.events import Event
from mailwright.queue.eventstore import EventStore, WebhookCursor
from mailwright.queue.postgres import PostgresQueueStore
from mailwright.queue.sqlite import SqliteQueueStore
from mailwright.queue.tracking import SuppressionPolicy, Tracking

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)]
NOW = 1_790_000_000.0
POLICY = SuppressionPolicy(soft_limit=3, soft_window=86400)


async def open_kind(kind: str, location: str) -> SqliteQueueStore | PostgresQueueStore:
    if kind == "sqlite":
        return await SqliteQueueStore.open(Path(location))
    return await PostgresQueueStore.open(location, migrate_schema=True)


@pytest.fixture(params=KINDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "data")
    return "postgres", str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(location: tuple[str, str]) -> AsyncIterator[EventStore]:
    s = await open_kind(*location)
    yield s
    await s.close()


@pytest.fixture
def tracking(store: EventStore) -> Tracking:
    return Tracking(store, POLICY)


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


async def test_events_are_ordered_and_read_back(tracking: Tracking) -> None:
    first = Event(
        "queued",
        NOW,
        recipient="A@x.example",
        queue_id="Q1",
        message_id="<m@x>",
        tags=("welcome",),
        metadata={"user_id": 42, "name": "café"},
        details={"rcpt_index": 0},
    )
    second = Event(
        "delivered", NOW + 1, recipient="a@x.example", queue_id="Q1", mta_response="250 2.0.0 Ok"
    )
    await tracking.record([first, second])
    got = await tracking.read()
    assert [e.event_type for e in got] == ["queued", "delivered"]
    assert got[0].seq is not None and got[1].seq is not None and got[1].seq > got[0].seq
    assert got[0].to_json() == {**first.to_json(), "seq": got[0].seq}
    assert await tracking.last_seq() == got[1].seq
    assert [e.event_id for e in await tracking.read(after=got[0].seq)] == [second.event_id]
    assert [e.event_type for e in await tracking.read(since=NOW + 0.5)] == ["delivered"]
    assert [e.event_type for e in await tracking.read(types=["queued"])] == ["queued"]
    assert [e.event_type for e in await tracking.read(queue_id="Q2")] == []
    assert [e.event_type for e in await tracking.latest(1)] == ["delivered"]
    assert [e.event_type for e in await tracking.latest(5, ["queued"])] == ["queued"]
    assert await tracking.message_known("<m@x>", "a@X.example") == "Q1"
    assert await tracking.message_known("<other@x>", "a@x.example") is None
    found = await tracking.store.queued_event("Q1", 0)
    assert found is not None and found.event_id == first.event_id
    assert await tracking.store.queued_event("Q1", 1) is None


async def test_enqueue_with_events_uses_the_stored_queue_id(tracking: Tracking) -> None:
    def events_for(queue_id: str) -> list[Event]:
        return [
            Event("queued", NOW, recipient=r, queue_id=queue_id, details={"rcpt_index": i})
            for i, r in enumerate(["a@x.example", "b@x.example"])
        ]

    stored = await tracking.enqueue(
        "app@example.com",
        ["a@x.example", "b@x.example"],
        b"Subject: hi\r\n\r\nhello\r\n",
        meta=QueueMeta(),
        queue_id="0ABCDEFGHJK999",
        events_for=events_for,
    )
    got = await tracking.read(queue_id=stored)
    assert [(e.event_type, e.recipient) for e in got] == [
        ("queued", "a@x.example"),
        ("queued", "b@x.example"),
    ]
    entry = await tracking.store.get(stored)  # type: ignore[attr-defined]
    assert entry is not None and [r.address for r in entry.recipients] == [
        "a@x.example",
        "b@x.example",
    ]


async def test_hard_bounce_suppresses(tracking: Tracking) -> None:
    [added] = await tracking.record([bounce("Dead@X.example", "hard")])
    assert (added.address, added.reason) == ("dead@x.example", "hard-bounce")
    found = await tracking.check(["dead@x.example", "DEAD@x.example", "alive@x.example"])
    assert set(found) == {"dead@x.example", "DEAD@x.example"}
    assert found["dead@x.example"].detail == "550 5.1.1 no such user"
    assert found["dead@x.example"].source_event is not None


async def test_soft_bounces_suppress_after_the_limit_within_the_window(
    tracking: Tracking,
) -> None:
    assert await tracking.record([bounce("full@x.example", "soft", at=NOW)]) == []
    assert await tracking.record([bounce("full@x.example", "soft", at=NOW + 1000)]) == []
    assert await tracking.record([bounce("full@x.example", "soft", at=NOW + 87_000)]) == []
    [added] = await tracking.record([bounce("full@x.example", "soft", at=NOW + 87_200)])
    assert added.reason == "soft-bounces" and added.detail.startswith("3 soft bounces in 1 days")
    # already suppressed: a further soft bounce adds nothing
    assert await tracking.record([bounce("full@x.example", "soft", at=NOW + 87_300)]) == []


async def test_forged_reports_suppress_nobody(tracking: Tracking) -> None:
    forged = [
        bounce("victim@x.example", "hard", source="async"),
        bounce("victim@x.example", "hard", source="async", verified=False),
        Event("complained", NOW, recipient="victim@x.example"),
    ]
    assert await tracking.record(forged) == []
    assert await tracking.check(["victim@x.example"]) == {}
    assert len(await tracking.read()) == 3


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


async def test_manual_entries_expire_and_can_be_removed(tracking: Tracking) -> None:
    await tracking.suppress("x@x.example", detail="asked us", expires_at=NOW + 10, now=NOW)
    await tracking.suppress("y@x.example", detail="later", now=NOW + 1)
    assert await tracking.check(["x@x.example"], now=NOW + 5)
    assert await tracking.check(["x@x.example"], now=NOW + 11) == {}
    assert [s.address for s in await tracking.suppressions(now=NOW + 11)] == ["y@x.example"]
    everything = await tracking.suppressions(now=NOW + 11, include_expired=True)
    assert [s.address for s in everything] == ["x@x.example", "y@x.example"]
    # a new entry replaces the old one
    await tracking.suppress("x@x.example", "complaint", detail="again", now=NOW + 20)
    [again] = (await tracking.check(["x@x.example"], now=NOW + 21)).values()
    assert (again.reason, again.detail, again.expires_at) == ("complaint", "again", None)
    assert await tracking.unsuppress("X@x.example")
    assert not await tracking.unsuppress("X@x.example")


async def test_many_addresses_are_checked(tracking: Tracking) -> None:
    await tracking.suppress("u1999@x.example")
    found = await tracking.check([f"u{i}@x.example" for i in range(3000)])
    assert list(found) == ["u1999@x.example"]


async def test_prune_keeps_what_a_reader_has_not_passed(tracking: Tracking) -> None:
    await tracking.record([Event("queued", NOW + i, recipient="a@x.example") for i in range(5)])
    seqs = [e.seq for e in await tracking.read()]
    assert await tracking.prune(before=NOW + 10, keep_after_seq=seqs[1] or 0) == 2
    assert [e.seq for e in await tracking.read()] == seqs[2:]


async def test_soft_bounces_outside_the_window_are_pruned(tracking: Tracking) -> None:
    await tracking.record([bounce("once@x.example", "soft", at=NOW)])
    for at in (NOW + 90_000, NOW + 90_100):
        await tracking.record([bounce("twice@x.example", "soft", at=at)])
    assert await tracking.store.prune_soft_bounces(NOW + 86_400) == 1
    assert await tracking.store.prune_soft_bounces(NOW + 86_400) == 0
    # the rows inside the window still count: a third one suppresses
    [added] = await tracking.record([bounce("twice@x.example", "soft", at=NOW + 90_200)])
    assert added.reason == "soft-bounces"


async def test_webhook_cursors(tracking: Tracking) -> None:
    store = tracking.store
    await tracking.record([Event("queued", NOW, recipient="a@x.example")])
    end = await store.last_event_seq()
    cursor = await store.load_webhook_cursor("http://127.0.0.1:9/a")
    assert cursor == WebhookCursor(end)  # a new webhook starts at the end of the log
    await tracking.record([Event("delivered", NOW, recipient="a@x.example")])
    saved = WebhookCursor(end, end + 5, 2, NOW, NOW + 30, "HTTP 500")
    await store.save_webhook_cursor("http://127.0.0.1:9/a", saved)
    assert await store.load_webhook_cursor("http://127.0.0.1:9/a") == saved
    last = await store.last_event_seq()
    assert await store.min_webhook_seq(["http://127.0.0.1:9/a"]) == end
    assert await store.min_webhook_seq([]) == last
    assert await store.min_webhook_seq(["http://other/"]) == last  # removed webhook


async def test_shared_secret(store: EventStore) -> None:
    first = await store.shared_secret("verp", b"a" * 32)
    assert first == b"a" * 32
    again = await store.shared_secret("verp", b"b" * 32)
    # SQLite: one node, its own file's key; PostgreSQL: the first key kept, for every node
    assert again == (b"a" * 32 if isinstance(store, PostgresQueueStore) else b"b" * 32)


async def test_a_lost_commit_answer_does_not_double_an_event(tracking: Tracking) -> None:
    """Recording the same event twice (a batch retried after a lost commit answer) keeps
    one copy on PostgreSQL. SQLite has no such retry: a local commit's answer is not lost."""
    event = Event("delivered", NOW, recipient="a@x.example")
    await tracking.record([event])
    if isinstance(tracking.store, PostgresQueueStore):
        await tracking.record([event])
    assert [e.event_id for e in await tracking.read()] == [event.event_id]


def _queued(queue_id: str) -> list[Event]:
    return [Event("queued", NOW, recipient="a@x.example", queue_id=queue_id)]


def _claim(key: str, body_hash: str = "h1") -> idempotency.Claim:
    return idempotency.Claim("shop", key, body_hash, 202, lambda qid: {"queue_id": qid})


async def _enqueue_claimed(tracking: Tracking, claim: idempotency.Claim) -> str:
    return await tracking.enqueue(
        "app@example.com",
        ["a@x.example"],
        b"Subject: hi\r\n\r\nhello\r\n",
        meta=QueueMeta(),
        queue_id="",
        events_for=_queued,
        claim=claim,
    )


async def test_an_idempotency_claim_is_stored_with_its_message(tracking: Tracking) -> None:
    stored = await _enqueue_claimed(tracking, _claim("order-1"))
    found = await tracking.find_idempotency("shop", "order-1", time.time())
    assert found == idempotency.Stored("h1", 202, {"queue_id": stored})
    assert await tracking.find_idempotency("other-app", "order-1", time.time()) is None
    # the same key again: Replay, and nothing of the second request is stored
    with pytest.raises(idempotency.Replay) as replay:
        await _enqueue_claimed(tracking, _claim("order-1", "h2"))
    assert replay.value.stored.response == {"queue_id": stored}
    assert [e.queue_id for e in await tracking.read(types=["queued"])] == [stored]
    # events without a message (every recipient suppressed) remember a key the same way
    await tracking.record(
        _queued("0ABCDEFGHJK777"), claim=_claim("order-2"), queue_id="0ABCDEFGHJK777"
    )
    found = await tracking.find_idempotency("shop", "order-2", time.time())
    assert found is not None and found.response == {"queue_id": "0ABCDEFGHJK777"}


async def test_concurrent_requests_with_one_key_queue_one_message(tracking: Tracking) -> None:
    results = await asyncio.gather(
        *(_enqueue_claimed(tracking, _claim("order-9")) for _ in range(8)),
        return_exceptions=True,
    )
    stored = [r for r in results if isinstance(r, str)]
    replays = [r for r in results if isinstance(r, idempotency.Replay)]
    assert len(stored) == 1 and len(replays) == 7
    assert {r.stored.response["queue_id"] for r in replays} == set(stored)
    assert len(await tracking.read(types=["queued"])) == 1


# -- several nodes on one PostgreSQL ---------------------------------------------------------


@pytest.mark.integration
async def test_two_nodes_share_the_log_and_the_list(postgres_url: str) -> None:
    one = await PostgresQueueStore.open(postgres_url, migrate_schema=True)
    two = await PostgresQueueStore.open(postgres_url)
    try:
        # one VERP key for all: a bounce reaching node 2 verifies a token node 1 made
        assert await one.shared_secret("verp", b"k" * 32) == b"k" * 32
        assert await two.shared_secret("verp", b"z" * 32) == b"k" * 32
        await Tracking(one, POLICY).record([bounce("dead@x.example", "hard")])
        assert set(await Tracking(two, POLICY).check(["Dead@x.example"])) == {"Dead@x.example"}
        assert [e.event_type for e in await Tracking(two).read()] == ["bounced"]
    finally:
        await one.close()
        await two.close()


@pytest.mark.integration
async def test_one_node_sends_a_webhook_at_a_time(postgres_url: str) -> None:
    one = await PostgresQueueStore.open(postgres_url, migrate_schema=True)
    two = await PostgresQueueStore.open(postgres_url)
    url = "http://127.0.0.1:9/hook"
    try:
        assert await one.take_webhook_turn(url, "n1:1", 60, now=NOW)
        assert await one.take_webhook_turn(url, "n1:1", 60, now=NOW + 30)  # renewed
        assert not await two.take_webhook_turn(url, "n2:1", 60, now=NOW + 60)
        assert await two.take_webhook_turn(url, "n2:1", 60, now=NOW + 91)  # n1 went quiet
        assert not await one.take_webhook_turn(url, "n1:1", 60, now=NOW + 92)
        assert await two.load_webhook_cursor(url) == WebhookCursor(0)
    finally:
        await one.close()
        await two.close()


@pytest.mark.integration
async def test_a_reader_never_skips_an_event_written_concurrently(postgres_url: str) -> None:
    """Two nodes write events while a third follows the log with a cursor (as a webhook
    does): it must see every event, although sequence numbers are taken in one order
    and transactions may commit in another."""
    writers = [await PostgresQueueStore.open(postgres_url, migrate_schema=True) for _ in range(2)]
    reader = await PostgresQueueStore.open(postgres_url)
    written: set[str] = set()
    seen: list[str] = []
    done = asyncio.Event()

    async def write(store: PostgresQueueStore, n: int) -> None:
        tracking = Tracking(store)
        for i in range(40):
            batch = [Event("queued", NOW, recipient=f"w{n}-{i}-{j}@x.example") for j in range(3)]
            written.update(e.event_id for e in batch)
            await asyncio.gather(*(tracking.record([e]) for e in batch))

    async def follow() -> None:
        cursor = 0
        while True:
            stop = done.is_set()
            for event in await reader.read_events(after=cursor, limit=50):
                assert event.seq is not None and event.seq > cursor
                cursor = event.seq
                seen.append(event.event_id)
            if stop:
                return
            await asyncio.sleep(0.001)

    try:
        follower = asyncio.create_task(follow())
        await asyncio.gather(*(write(s, n) for n, s in enumerate(writers)))
        done.set()
        await follower
        assert len(seen) == len(set(seen)) == len(written)
        assert set(seen) == written
    finally:
        for store in (*writers, reader):
            await store.close()


@pytest.mark.integration
async def test_soft_bounces_counted_on_two_nodes_at_once(postgres_url: str) -> None:
    """The limit is reached whichever node counts the bounces, even at the same time."""
    nodes = [await PostgresQueueStore.open(postgres_url, migrate_schema=True) for _ in range(2)]
    try:
        trackings = [Tracking(store, POLICY) for store in nodes]
        added = await asyncio.gather(
            *(
                trackings[i % 2].record([bounce("full@x.example", "soft", at=NOW + i)])
                for i in range(3)
            )
        )
        assert [s.reason for batch in added for s in batch] == ["soft-bounces"]
        assert set(await trackings[1].check(["full@x.example"], now=NOW + 10))
    finally:
        for store in nodes:
            await store.close()


@pytest.mark.integration
async def test_one_idempotency_key_on_two_nodes_queues_once(postgres_url: str) -> None:
    one = await PostgresQueueStore.open(postgres_url, migrate_schema=True)
    two = await PostgresQueueStore.open(postgres_url)
    try:
        nodes = [Tracking(one, POLICY), Tracking(two, POLICY)] * 4
        results = await asyncio.gather(
            *(_enqueue_claimed(node, _claim("order-n")) for node in nodes),
            return_exceptions=True,
        )
        stored = [r for r in results if isinstance(r, str)]
        assert len(stored) == 1, results
        assert all(isinstance(r, idempotency.Replay) for r in results if r not in stored)
        assert len(await Tracking(two).read(types=["queued"])) == 1
    finally:
        await one.close()
        await two.close()


async def test_enqueue_all_is_all_or_none(tracking: Tracking) -> None:
    """A list post split per member: every copy and its events in one transaction."""
    from mailwright.queue.eventstore import NewMessage

    def copy(member: str, queue_id: str = "") -> NewMessage:
        return NewMessage(
            "team-bounces@lists.example",
            [member] if member else [],
            b"Subject: post\r\n\r\nhello\r\n",
            QueueMeta(),
            queue_id,
            lambda qid: [Event("queued", NOW, recipient=member or "gone@x.example", queue_id=qid)],
        )

    ids = await tracking.enqueue_all(
        [copy("a@x.example"), copy("", "0ABCDEFGHJK555"), copy("b@x.example")]
    )
    assert ids[1] == "0ABCDEFGHJK555" and len(set(ids)) == 3
    entries = await tracking.store.list_entries()  # type: ignore[attr-defined]
    assert sorted(e.id for e in entries) == sorted([ids[0], ids[2]])
    assert [e.queue_id for e in await tracking.read(types=["queued"])] == ids

    def broken(queue_id: str) -> list[Event]:
        raise QueueError("disk full")

    bad = NewMessage("s@x.example", ["c@x.example"], b"x", QueueMeta(), "", broken)
    with pytest.raises(QueueError):
        await tracking.enqueue_all([copy("d@x.example"), bad])
    assert len(await tracking.store.list_entries()) == 2  # type: ignore[attr-defined]
    assert len(await tracking.read(types=["queued"])) == 3


async def _queued_entry(tracking: Tracking, queue_id: str, recipients: list[str]) -> None:
    await tracking.enqueue(
        "app@example.com",
        recipients,
        b"Subject: hi\r\n\r\nhello\r\n",
        meta=QueueMeta(),
        queue_id=queue_id,
        events_for=lambda stored: [],
    )


async def test_an_outcome_is_events_suppressions_and_results_in_one_write(
    tracking: Tracking,
) -> None:
    await _queued_entry(tracking, "0ABCDEFGHJK201", ["a@x.example", "b@x.example"])
    delivered = Event("delivered", NOW, recipient="a@x.example", queue_id="0ABCDEFGHJK201")
    bounced = bounce("b@x.example", "hard")
    added = await tracking.record_outcome(
        "0ABCDEFGHJK201",
        [
            RecipientUpdate("a@x.example", "delivered", "250 2.0.0 Ok"),
            RecipientUpdate("b@x.example", "bounced", "550 5.1.1 no such user"),
        ],
        [delivered, bounced],
        now=NOW,
    )
    assert [(s.address, s.reason) for s in added] == [("b@x.example", "hard-bounce")]
    assert [e.event_id for e in await tracking.read()] == [delivered.event_id, bounced.event_id]
    assert await tracking.store.get("0ABCDEFGHJK201") is None  # type: ignore[attr-defined]
    assert set(await tracking.check(["b@x.example"])) == {"b@x.example"}


async def test_a_deferred_outcome_keeps_the_entry_and_releases_its_lease(
    tracking: Tracking,
) -> None:
    await _queued_entry(tracking, "0ABCDEFGHJK202", ["a@x.example"])
    store = tracking.store
    [claimed] = await store.claim_due("w1", now=time.time() + 1)  # type: ignore[attr-defined]
    assert claimed.claimed_by == "w1"
    retry = NOW + 600
    await tracking.record_outcome(
        "0ABCDEFGHJK202",
        [RecipientUpdate("a@x.example", "deferred", "451 4.3.0 later", retry)],
        [Event("deferred", NOW, recipient="a@x.example", queue_id="0ABCDEFGHJK202")],
        worker="w1",
        now=NOW,
    )
    entry = await store.get("0ABCDEFGHJK202")  # type: ignore[attr-defined]
    assert entry is not None and entry.claimed_by is None
    assert [(r.status, r.next_attempt) for r in entry.recipients] == [("pending", retry)]
    assert [e.event_type for e in await tracking.read()] == ["deferred"]


async def test_a_failed_outcome_write_records_nothing(tracking: Tracking) -> None:
    await _queued_entry(tracking, "0ABCDEFGHJK203", ["a@x.example"])
    unwritable = Event("delivered", NOW, recipient="a@x.example", metadata={"not json": object()})
    with pytest.raises(TypeError):
        await tracking.record_outcome(
            "0ABCDEFGHJK203",
            [RecipientUpdate("a@x.example", "delivered", "250 2.0.0 Ok")],
            [unwritable],
            now=NOW,
        )
    entry = await tracking.store.get("0ABCDEFGHJK203")  # type: ignore[attr-defined]
    assert entry is not None and [r.status for r in entry.recipients] == ["pending"]
    assert await tracking.read() == []
