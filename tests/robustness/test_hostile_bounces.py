"""Hostile inbound reports at scale: a flood of bounces, a huge DSN, forged tokens."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from pathlib import Path

from mailwright.feedback import FeedbackProcessor, queued_events
from mailwright.queue import SqliteQueueStore
from mailwright.queue.tracking import Tracking
from mailwright.verp import bounce_address

KEY = b"k" * 32

DSN = (
    "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail Returned to Sender\r\n"
    'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"'
    "\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
    "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
    "{blocks}--b--\r\n"
)


def block(address: str) -> str:
    return f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"


async def test_a_flood_of_10000_bounces_is_all_recorded(tmp_path: Path) -> None:
    store = await SqliteQueueStore.open(tmp_path / "data")
    tracking = Tracking(store)
    recipients = [f"u{i}@example.net" for i in range(10_000)]
    await tracking.record(
        queued_events("0ABCDEFGHJK123", recipients, sender="a@app.example", message_id="<m@x>")
    )
    processor = FeedbackProcessor(tracking, KEY)
    now = time.time()
    work = [
        (
            bounce_address(KEY, "0ABCDEFGHJK123", i, "app.example", now=now)
            if i % 2
            else f"bounces+forged{i}@app.example",
            DSN.format(blocks=block(r)).encode(),
        )
        for i, r in enumerate(recipients)
    ]
    tracemalloc.start()
    started = time.monotonic()

    async def worker(chunk: list[tuple[str, bytes]]) -> None:
        for rcpt, data in chunk:
            await processor.process(rcpt, data, mail_from="")

    await asyncio.gather(*(worker(work[i::50]) for i in range(50)))  # 50 sessions at once
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 120, elapsed  # well under a minute unloaded
    assert peak < 200 * 1024 * 1024
    bounced = await tracking.read(limit=100_000, types=["bounced"])
    assert len(bounced) == 10_000  # nothing lost
    verified = [e for e in bounced if e.details.get("verified")]
    assert len(verified) == 5_000
    suppressed = await tracking.suppressions()
    assert {s.address for s in suppressed} == {recipients[i] for i in range(1, 10_000, 2)}
    await store.close()


async def test_a_10000_recipient_dsn_at_postmaster_is_bounded(tmp_path: Path) -> None:
    store = await SqliteQueueStore.open(tmp_path / "data")
    tracking = Tracking(store)
    processor = FeedbackProcessor(tracking, KEY)
    data = DSN.format(blocks="".join(block(f"u{i}@example.net") for i in range(10_000))).encode()
    started = time.monotonic()
    events = await processor.process("postmaster@app.example", data)
    assert time.monotonic() - started < 30
    # unknown message: at most 1,000 recipients reported, none verified, nobody suppressed
    assert len(events) == 1000 and not any(e.details["verified"] for e in events)
    assert await tracking.suppressions() == []
    await store.close()
