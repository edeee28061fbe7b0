"""Inbound reports matched by VERP token or Message-ID, turned into events and suppressions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailwright.feedback import FeedbackProcessor, queued_events
from mailwright.queue import SqliteQueueStore
from mailwright.queue.tracking import Tracking
from mailwright.verp import bounce_address

from . import samples

KEY = b"k" * 32
NOW = 1_790_000_000.0
QID = "0ABCDEFGHJK123"


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[FeedbackProcessor, Tracking]]:
    store = await SqliteQueueStore.open(tmp_path / "data")
    tracking = Tracking(store)
    await tracking.record(
        queued_events(
            QID,
            ["alice@remote.example", "nobody@remote.example"],
            sender="noreply@app.example",
            message_id="<welcome.1@app.example>",
            tags=("welcome",),
            metadata={"user": 7},
            now=NOW - 60,
        )
    )
    yield FeedbackProcessor(tracking, KEY), tracking
    await store.close()


def verp(index: int) -> str:
    return bounce_address(KEY, QID, index, "app.example", now=NOW)


async def test_verp_dsn_is_a_verified_hard_bounce_that_suppresses(
    setup: tuple[FeedbackProcessor, Tracking],
) -> None:
    processor, tracking = setup
    [event] = await processor.process(verp(1), samples.dsn(samples.UNKNOWN_USER_BLOCK), now=NOW)
    assert (event.event_type, event.bounce_type, event.bounce_source) == (
        "bounced",
        "hard",
        "async",
    )
    assert event.recipient == "nobody@remote.example" and event.queue_id == QID
    assert event.message_id == "<welcome.1@app.example>"
    assert event.tags == ("welcome",) and event.metadata == {"user": 7}
    assert event.cause == "recipient-unknown" and event.details["verified"] is True
    assert event.mta_response is not None and event.mta_response.startswith("550 5.1.1")
    assert set(await tracking.check(["nobody@remote.example"], now=NOW)) == {
        "nobody@remote.example"
    }


async def test_the_token_names_the_recipient_not_the_report(
    setup: tuple[FeedbackProcessor, Tracking],
) -> None:
    # a bounce for recipient 0 whose text names someone else: recipient 0 bounced
    processor, _tracking = setup
    [event] = await processor.process(verp(0), samples.dsn(samples.UNKNOWN_USER_BLOCK), now=NOW)
    assert event.recipient == "alice@remote.example"
    assert event.details["reported_recipients"] == ["nobody@remote.example"]


async def test_malformed_bounce_at_a_verp_address_is_still_matched(
    setup: tuple[FeedbackProcessor, Tracking],
) -> None:
    processor, _tracking = setup
    garbage = b"Subject: ???\r\n\r\n\xff\xfe not a report\r\n"
    [event] = await processor.process(verp(0), garbage, mail_from="", now=NOW)
    assert (event.event_type, event.bounce_type, event.cause) == ("bounced", "soft", "unknown")
    assert event.recipient == "alice@remote.example" and event.details["verified"] is True


@pytest.mark.parametrize(
    "address",
    [
        "bounces@app.example",  # no token
        "bounces+0abcdefghjk123-1-zz-aaaaaaaaaa@app.example",  # bad HMAC
        bounce_address(KEY, QID, 1, "app.example", now=NOW - 40 * 86400),  # expired
        bounce_address(KEY, "0ZZZZZZZZZZZZZ", 0, "app.example", now=NOW),  # unknown message
        bounce_address(b"x" * 32, QID, 1, "app.example", now=NOW),  # another key
    ],
)
async def test_forged_bounces_suppress_nobody(
    setup: tuple[FeedbackProcessor, Tracking], address: str
) -> None:
    processor, tracking = setup
    [event] = await processor.process(address, samples.dsn(samples.UNKNOWN_USER_BLOCK), now=NOW)
    assert event.event_type == "bounced" and event.details["verified"] is False
    assert event.details["unverified_reason"]
    assert await tracking.check(["nobody@remote.example", "alice@remote.example"], now=NOW) == {}


async def test_autoreply_at_verp_address_is_not_a_bounce(
    setup: tuple[FeedbackProcessor, Tracking],
) -> None:
    processor, tracking = setup
    [event] = await processor.process(verp(0), samples.AUTO_REPLY, mail_from="", now=NOW)
    assert event.event_type == "autoreplied" and event.recipient == "alice@remote.example"
    assert await tracking.check(["alice@remote.example"], now=NOW) == {}


async def test_human_reply_at_verp_address_is_inbound(
    setup: tuple[FeedbackProcessor, Tracking],
) -> None:
    processor, _ = setup
    [event] = await processor.process(
        verp(0), samples.PLAIN_MAIL, mail_from="someone@provider.example", now=NOW
    )
    assert event.event_type == "inbound"


async def test_arf_at_abuse_verified_by_quoted_verp_sender(
    setup: tuple[FeedbackProcessor, Tracking],
) -> None:
    processor, tracking = setup
    arf = samples.ARF_REDACTED.replace(b"bounces+0abc-1-2-xyz@app.example", verp(0).encode())
    [event] = await processor.process("abuse@app.example", arf, now=NOW)
    assert event.event_type == "complained" and event.recipient == "alice@remote.example"
    assert event.details["verified"] is True and event.details["feedback_type"] == "abuse"
    [entry] = (await tracking.check(["alice@remote.example"], now=NOW)).values()
    assert entry.reason == "complaint"


async def test_arf_verified_by_message_id_and_recipient(
    setup: tuple[FeedbackProcessor, Tracking],
) -> None:
    processor, _tracking = setup
    arf = samples.ARF.replace(b"<welcome.2@app.example>", b"<welcome.1@app.example>").replace(
        b"reader@provider.example", b"alice@remote.example"
    )
    [event] = await processor.process("abuse@app.example", arf, now=NOW)
    assert event.details["verified"] is True and event.queue_id == QID


async def test_arf_for_unknown_message_suppresses_nobody(
    setup: tuple[FeedbackProcessor, Tracking],
) -> None:
    processor, tracking = setup
    [event] = await processor.process("abuse@app.example", samples.ARF, now=NOW)
    assert event.event_type == "complained" and event.details["verified"] is False
    assert await tracking.check(["reader@provider.example"], now=NOW) == {}


async def test_dsn_at_postmaster_verified_by_message_id(
    setup: tuple[FeedbackProcessor, Tracking],
) -> None:
    processor, tracking = setup
    events = await processor.process(
        "postmaster@app.example", samples.dsn(samples.UNKNOWN_USER_BLOCK), now=NOW
    )
    [event] = events
    assert event.details["verified"] is True and event.queue_id == QID
    assert await tracking.check(["nobody@remote.example"], now=NOW)


async def test_flood_of_bounces_is_bounded(setup: tuple[FeedbackProcessor, Tracking]) -> None:
    processor, tracking = setup
    data = samples.dsn(samples.UNKNOWN_USER_BLOCK)
    for _ in range(200):
        await processor.process("bounces+junk@app.example", data, now=NOW)
    assert len(await tracking.read(limit=10_000)) == 202
