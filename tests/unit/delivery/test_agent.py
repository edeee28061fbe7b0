"""The delivery agent's decisions, with an in-memory store and scripted SMTP servers."""

from __future__ import annotations

import email
import email.policy
import random
from dataclasses import replace
from pathlib import Path

import pytest

from mailwright.config import Config, DeliveryConfig, RelayConfig, RetryConfig
from mailwright.delivery.agent import DeliveryAgent
from mailwright.delivery.client import SessionError
from mailwright.delivery.replies import Reply, local_reply
from mailwright.dns import MemoryResolver, Outcome
from mailwright.log import EventLogger
from mailwright.queue import DsnRecipient, QueueError, QueueMeta

from .fakes import Clock, FakeNetwork, MemoryStore, ok, per_recipient

MESSAGE = b"From: app@example.com\r\nTo: x@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


class World:
    def __init__(self, tmp_path: Path, **delivery: object) -> None:
        self.clock = Clock()
        self.store = MemoryStore(self.clock)
        self.resolver = MemoryResolver()
        self.network = FakeNetwork()
        self.events: list[dict[str, str]] = []
        self.logger = EventLogger(stderr=False)
        self.logger.subscribe(self.events.append)
        self.announced: list[str] = []
        settings: dict[str, object] = {"mode": "direct", "outbound_port": 2525}
        settings.update(delivery)
        self.config = Config(
            hostname="mail.example.com",
            domains=("example.com",),
            data_dir=tmp_path,
            delivery=DeliveryConfig(**settings),  # type: ignore[arg-type]
        )
        self.agent = self.make_agent()

    def make_agent(self) -> DeliveryAgent:
        agent = DeliveryAgent(
            self.config,
            self.store,
            self.resolver,
            self.logger,
            worker="test",
            connector=self.network.connect,
            announce=self.announced.append,
            clock=self.clock,
            rng=random.Random(7),
        )
        agent.idle_seconds = 0.01
        return agent

    def mx(self, domain: str, *hosts: tuple[int, str]) -> None:
        for i, (pref, host) in enumerate(hosts):
            self.resolver.add(domain, "MX", (pref, host))
            self.resolver.add(host, "A", f"192.0.2.{i + 10}")

    def of(self, event: str) -> list[dict[str, str]]:
        return [e for e in self.events if e["event"] == event]

    def dsns(self) -> list[email.message.Message]:
        found = []
        for queue_id, entry in self.store.entries.items():
            if entry.sender == "":
                found.append(
                    email.message_from_bytes(
                        self.store.data[queue_id], policy=email.policy.compat32
                    )
                )
        return found


def unfold(value: str) -> str:
    return " ".join(value.split())


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.mx("example.net", (10, "mx1.example.net"), (20, "mx2.example.net"))
    w.network.servers["mx1.example.net"] = ok()
    w.network.servers["mx2.example.net"] = ok()
    return w


async def test_all_recipients_of_a_domain_in_one_transaction(world: World) -> None:
    qid = await world.store.enqueue("app@example.com", ["a@example.net", "b@example.net"], MESSAGE)
    assert await world.agent.run_once() == 1
    assert [(h, rs) for h, _, rs, _ in world.network.sends] == [
        ("mx1.example.net", ["a@example.net", "b@example.net"])
    ]
    assert qid in world.store.done
    delivered = world.of("delivered")
    assert [e["to"] for e in delivered] == ["<a@example.net>", "<b@example.net>"]
    assert delivered[0]["relay"] == "mx1.example.net[192.0.2.10]:2525"
    assert delivered[0]["dsn"] == "2.0.0"
    assert delivered[0]["reply"] == "250 2.0.0 Ok: queued"
    assert delivered[0]["id"] == qid


async def test_several_messages_share_one_connection(world: World) -> None:
    for i in range(5):
        await world.store.enqueue("app@example.com", [f"u{i}@example.net"], MESSAGE)
    await world.agent.run_once()
    assert len(world.network.sends) == 5
    assert len(world.network.connects) <= 5
    assert len(world.of("delivered")) == 5


async def test_one_session_carries_messages_in_a_row(tmp_path: Path) -> None:
    w = World(tmp_path, max_connections_per_domain=1)
    w.mx("example.net", (10, "mx1.example.net"))
    w.network.servers["mx1.example.net"] = ok()
    for i in range(4):
        await w.store.enqueue("app@example.com", [f"u{i}@example.net"], MESSAGE)
    await w.agent.run_once()
    assert len(w.network.connects) == 1
    assert len(w.network.sends) == 4


async def test_recipient_5xx_bounces_with_one_dsn_to_the_sender(world: World) -> None:
    world.network.servers["mx1.example.net"] = per_recipient(
        {
            "bad@example.net": Reply(550, ("5.1.1 <bad@example.net>: Recipient address rejected",)),
            "gone@example.net": Reply(550, ("5.1.1 gone",)),
        }
    )
    qid = await world.store.enqueue(
        "app@example.com", ["good@example.net", "bad@example.net", "gone@example.net"], MESSAGE
    )
    await world.agent.run_once()
    assert qid in world.store.done
    assert [e["to"] for e in world.of("bounced")] == ["<bad@example.net>", "<gone@example.net>"]
    assert world.of("bounced")[0]["dsn"] == "5.1.1"
    [dsn_event] = world.of("dsn")
    assert dsn_event["original"] == qid and dsn_event["kind"] == "failure"
    assert dsn_event["to"] == "<app@example.com>"
    [dsn_entry] = [e for e in world.store.entries.values() if e.sender == ""]
    assert [r.address for r in dsn_entry.recipients] == ["app@example.com"]
    [message] = world.dsns()
    report = message.get_payload()[1].get_payload()
    assert [b["Final-Recipient"] for b in report[1:]] == [
        "rfc822; bad@example.net",
        "rfc822; gone@example.net",
    ]
    assert unfold(report[1]["Diagnostic-Code"]) == (
        "smtp; 550 5.1.1 <bad@example.net>: Recipient address rejected"
    )
    assert report[1]["Remote-MTA"] == "dns; mx1.example.net"


async def test_no_dsn_for_the_null_sender(world: World) -> None:
    world.network.servers["mx1.example.net"] = ok(550, "5.1.1 no")
    qid = await world.store.enqueue("", ["x@example.net"], MESSAGE)
    await world.agent.run_once()
    assert qid in world.store.done
    assert len(world.of("bounced")) == 1
    assert world.of("dsn") == []
    assert world.store.entries == {}


async def test_a_bounced_dsn_does_not_loop(world: World) -> None:
    world.network.servers["mx1.example.net"] = ok(550, "5.1.1 no")
    await world.store.enqueue("app@example.net", ["x@example.net"], MESSAGE)
    await world.agent.run_once()  # bounce → DSN to app@example.net (queued with <>)
    await world.agent.run_once()  # the DSN bounces too → nothing more
    assert len(world.of("dsn")) == 1
    assert len(world.of("bounced")) == 2
    assert world.store.entries == {}


async def test_4xx_defers_with_postfix_backoff(world: World) -> None:
    world.network.servers["mx1.example.net"] = ok(451, "4.7.1 greylisted")
    world.network.servers["mx2.example.net"] = ok(451, "4.3.0 busy")
    qid = await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE)
    await world.agent.run_once()
    # RFC 5321 §5.1: the 4xx at mx1 sends the recipient on to mx2.
    assert [h for h, *_ in world.network.sends] == ["mx1.example.net", "mx2.example.net"]
    state = world.store.entries[qid].recipients[0]
    assert state.next_attempt == world.clock.now + 300
    assert state.last_reply == "451 4.3.0 busy"
    [event] = world.of("deferred")
    assert event["dsn"] == "4.3.0" and event["relay"] == "mx2.example.net[192.0.2.11]:2525"
    assert "next_retry" in event
    assert world.of("dsn") == []
    # not due yet: nothing happens; due: delivered
    world.network.servers["mx1.example.net"] = ok()
    world.clock.now += 299
    assert await world.agent.run_once() == 0
    world.clock.now += 1
    assert await world.agent.run_once() == 1
    assert qid in world.store.done


async def test_next_mx_on_connection_failure(world: World) -> None:
    world.network.refuse["mx1.example.net"] = SessionError(
        local_reply(421, "4.4.1", "connect to mx1: Connection refused")
    )
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE)
    await world.agent.run_once()
    [event] = world.of("delivered")
    assert event["relay"].startswith("mx2.example.net[")


async def test_all_mx_unreachable_defers_4_4_1(world: World) -> None:
    for host in ("mx1.example.net", "mx2.example.net"):
        world.network.refuse[host] = SessionError(local_reply(421, "4.4.1", "refused"))
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE)
    await world.agent.run_once()
    [event] = world.of("deferred")
    assert event["dsn"] == "4.4.1"


async def test_null_mx_bounces_at_once(world: World) -> None:
    world.resolver.add("nomail.example", "MX", (0, "."))
    qid = await world.store.enqueue("app@example.com", ["x@nomail.example"], MESSAGE)
    await world.agent.run_once()
    [event] = world.of("bounced")
    assert event["dsn"] == "5.1.10" and event["relay"] == "none"
    assert world.network.connects == []
    [message] = world.dsns()
    block = message.get_payload()[1].get_payload()[1]
    assert block["Status"] == "5.1.10"
    assert block["Remote-MTA"] is None
    assert qid in world.store.done


async def test_dns_failure_defers_4_4_3(world: World) -> None:
    world.resolver.fail("slow.example", "MX", Outcome.TIMEOUT)
    await world.store.enqueue("app@example.com", ["x@slow.example"], MESSAGE)
    await world.agent.run_once()
    [event] = world.of("deferred")
    assert event["dsn"] == "4.4.3" and event["relay"] == "none"


async def test_expiry_bounces_with_expired_event(world: World) -> None:
    world.network.servers["mx1.example.net"] = ok(451, "4.2.0 try later")
    world.network.servers["mx2.example.net"] = ok(451, "4.2.0 try later")
    qid = await world.store.enqueue(
        "app@example.com",
        ["x@example.net"],
        MESSAGE,
        created_at=world.clock.now - 5 * 86400,
    )
    await world.agent.run_once()
    [event] = world.of("expired")
    assert event["id"] == qid and event["to"] == "<x@example.net>"
    assert world.of("deferred") == []
    [message] = world.dsns()
    block = message.get_payload()[1].get_payload()[1]
    assert block["Action"] == "failed" and block["Status"] == "4.2.0"
    assert block["Diagnostic-Code"] == "smtp; 451 4.2.0 try later"


async def test_delay_warning_once(tmp_path: Path) -> None:
    w = World(tmp_path, retry=RetryConfig(delay_warning=3600))
    w.mx("example.net", (10, "mx1.example.net"))
    w.network.servers["mx1.example.net"] = ok(451, "4.2.0 later")
    qid = await w.store.enqueue(
        "app@example.com", ["x@example.net"], MESSAGE, created_at=w.clock.now - 1800
    )
    await w.agent.run_once()
    assert w.of("dsn") == []  # 30 minutes: not yet
    w.clock.now += 1800
    await w.agent.run_once()
    [event] = w.of("dsn")
    assert event["kind"] == "delay"
    assert w.store.entries[qid].meta.delay_warned is True
    [message] = w.dsns()
    assert message["Subject"] == "Delayed Mail (still being retried)"
    block = message.get_payload()[1].get_payload()[1]
    assert block["Action"] == "delayed" and block["Will-Retry-Until"]
    w.clock.now += 4000
    await w.agent.run_once()
    assert len(w.of("dsn")) == 1  # only once


async def test_bounces_across_attempts_make_one_dsn(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.mx("a.example", (10, "mx.a.example"))
    w.mx("b.example", (10, "mx.b.example"))
    w.network.servers["mx.a.example"] = ok(550, "5.1.1 no such user")
    w.network.servers["mx.b.example"] = ok(451, "4.2.0 later")
    qid = await w.store.enqueue("app@example.com", ["x@a.example", "y@b.example"], MESSAGE)
    await w.agent.run_once()
    assert w.of("dsn") == []  # y@b.example is still pending
    w.network.servers["mx.b.example"] = ok(550, "5.7.1 refused")
    w.clock.now += 300
    await w.agent.run_once()
    assert qid in w.store.done
    [event] = w.of("dsn")
    [message] = w.dsns()
    blocks = message.get_payload()[1].get_payload()[1:]
    assert [b["Final-Recipient"] for b in blocks] == ["rfc822; x@a.example", "rfc822; y@b.example"]
    assert event["original"] == qid


async def test_notify_never_suppresses_the_dsn(world: World) -> None:
    world.network.servers["mx1.example.net"] = ok(550, "5.1.1 no")
    await world.store.enqueue(
        "app@example.com",
        ["x@example.net"],
        MESSAGE,
        meta=QueueMeta(dsn={"x@example.net": DsnRecipient(notify=())}),
    )
    await world.agent.run_once()
    assert world.of("dsn") == []


async def test_per_domain_and_total_connection_limits(tmp_path: Path) -> None:
    w = World(tmp_path, max_connections_per_domain=2, max_connections=3)
    for domain in ("a.example", "b.example", "c.example"):
        w.mx(domain, (10, f"mx.{domain}"))
        w.network.servers[f"mx.{domain}"] = ok()
    w.network.latency = 0.01
    for i in range(10):
        for domain in ("a.example", "b.example", "c.example"):
            await w.store.enqueue("app@example.com", [f"u{i}@{domain}"], MESSAGE)
    await w.agent.run_once()
    assert len(w.of("delivered")) == 30
    assert w.network.peak == 3
    per_host: dict[str, int] = {}
    for host, _ in w.network.connects:
        per_host[host] = per_host.get(host, 0) + 1
    assert all(n <= 2 for n in per_host.values()), per_host


async def test_opportunistic_tls_failure_retries_in_plain_text(world: World) -> None:
    world.network.tls_broken.add("mx1.example.net")
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE)
    await world.agent.run_once()
    assert world.network.connects[:2] == [("mx1.example.net", True), ("mx1.example.net", False)]
    assert world.of("delivered")[0]["relay"].startswith("mx1.example.net[")


async def test_relay_mode_sends_everything_to_the_relay(tmp_path: Path) -> None:
    w = World(
        tmp_path,
        mode="relay",
        relay=RelayConfig("smtp://user:pw@relay.example:2587"),
    )
    w.network.servers["relay.example"] = ok()
    await w.store.enqueue("app@example.com", ["a@x.example", "b@y.example"], MESSAGE)
    await w.agent.run_once()
    assert [(h, rs) for h, _, rs, _ in w.network.sends] == [
        ("relay.example", ["a@x.example", "b@y.example"])
    ]
    assert w.resolver.queries == []
    assert w.of("delivered")[0]["relay"] == "relay.example[relay.example]:2587"  # fake: no IP


async def test_local_mode_writes_the_outbox(tmp_path: Path) -> None:
    w = World(tmp_path, mode="local")
    qid = await w.store.enqueue("app@example.com", ["a@x.example", "b@y.example"], MESSAGE)
    await w.agent.run_once()
    files = list((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 1 and files[0].read_bytes() == MESSAGE
    assert w.network.connects == []
    [line] = w.announced
    assert line.startswith(f"{qid} from <app@example.com> to <a@x.example>, <b@y.example> → ")
    assert str(files[0]) in line
    assert [e["relay"] for e in w.of("delivered")] == ["local", "local"]


async def test_own_domains_go_to_maildirs(world: World, tmp_path: Path) -> None:
    world.agent.local_targets = lambda a: {"postmaster@example.com": ["admin@example.com"]}.get(
        a, [a] if a != "nobody@example.com" else None
    )
    await world.store.enqueue(
        "app@example.net",
        ["postmaster@example.com", "Bob@Example.com", "nobody@example.com"],
        MESSAGE,
    )
    await world.agent.run_once()
    assert (tmp_path / "mail/example.com/admin/new").is_dir()
    assert len(list((tmp_path / "mail/example.com/admin/new").iterdir())) == 1
    assert len(list((tmp_path / "mail/example.com/bob/new").iterdir())) == 1
    assert [e["to"] for e in world.of("bounced")] == ["<nobody@example.com>"]
    assert world.of("bounced")[0]["dsn"] == "5.1.1"
    assert world.network.connects == []


async def test_quarantined_mail_goes_to_the_junk_folder(world: World, tmp_path: Path) -> None:
    # mailwright.inbound sets meta["folder"] for DMARC p=quarantine.
    await world.store.enqueue(
        "x@spoof.example", ["bob@example.com"], MESSAGE, meta=QueueMeta(folder=".Junk")
    )
    await world.agent.run_once()
    junk = tmp_path / "mail/example.com/bob/.Junk"
    assert len(list((junk / "new").iterdir())) == 1
    assert (junk / "maildirfolder").exists()
    assert not any((tmp_path / "mail/example.com/bob/new").iterdir())


async def test_agent_run_loop_delivers_new_mail_and_stops(world: World) -> None:
    import asyncio

    task = asyncio.create_task(world.agent.run())
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE)
    for _ in range(100):
        if world.of("delivered"):
            break
        await asyncio.sleep(0.01)
    world.agent.stop()
    await asyncio.wait_for(task, 5)
    assert len(world.of("delivered")) == 1


def test_relay_config_problems_surface_at_start(tmp_path: Path) -> None:
    w = World(tmp_path)
    bad = replace(
        w.config,
        delivery=DeliveryConfig(mode="relay", relay=RelayConfig("smtp://user@relay.example")),
    )
    with pytest.raises(Exception, match="has no password"):
        DeliveryAgent(bad, w.store, w.resolver, w.logger)


async def test_a_failing_store_call_is_logged_and_delivery_goes_on(world: World) -> None:
    import asyncio

    from mailwright.queue import QueueError

    real_claim = world.store.claim_due
    failures = [QueueError("database is locked")]

    async def flaky_claim(*args: object, **kwargs: object) -> list[object]:
        if failures:
            raise failures.pop()
        return await real_claim(*args, **kwargs)  # type: ignore[arg-type]

    world.store.claim_due = flaky_claim  # type: ignore[method-assign]
    world.agent.clock = __import__("time").time
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE, created_at=0.0)
    task = asyncio.create_task(world.agent.run())
    for _ in range(300):
        if world.of("delivered"):
            break
        await asyncio.sleep(0.01)
    world.agent.stop()
    await asyncio.wait_for(task, 5)
    [error] = world.of("error")
    assert error["what"] == "delivery" and "database is locked" in error["reason"]
    assert len(world.of("delivered")) == 1


async def test_reconfigure_switches_to_the_relay(world: World) -> None:
    world.network.servers["relay.example"] = ok()
    relay = replace(
        world.config,
        delivery=DeliveryConfig(
            mode="relay", relay=RelayConfig("smtp://relay.example:2525?tls=none")
        ),
    )
    world.agent.reconfigure(relay)
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE)
    await world.agent.run_once()
    assert [h for h, *_ in world.network.sends] == ["relay.example"]


def test_reconfigure_with_a_broken_relay_keeps_the_old_settings(world: World) -> None:
    broken = replace(
        world.config,
        delivery=DeliveryConfig(mode="relay", relay=RelayConfig("smtp://user@relay.example")),
    )
    with pytest.raises(Exception, match="has no password"):
        world.agent.reconfigure(broken)
    assert world.agent.delivery.mode == "direct" and world.agent.relay is None


async def test_a_long_wait_renews_the_lease(world: World) -> None:
    calls: list[str] = []

    async def extend(queue_id: str, worker: str, seconds: float, now: float | None = None) -> bool:
        calls.append(queue_id)
        return True

    world.store.extend_lease = extend  # type: ignore[method-assign]
    world.agent.lease_seconds = -1.0  # every job counts as having waited long
    qid = await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE)
    await world.agent.run_once()
    assert calls == [qid]
    assert len(world.of("delivered")) == 1


async def test_a_lost_lease_delivers_and_records_nothing(world: World) -> None:
    async def extend(queue_id: str, worker: str, seconds: float, now: float | None = None) -> bool:
        return False

    world.store.extend_lease = extend  # type: ignore[method-assign]
    world.agent.lease_seconds = -1.0
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE)
    await world.agent.run_once()
    assert world.network.sends == []
    assert world.store.results == []
    [error] = world.of("error")
    assert error["reason"] == "lease lost"


async def test_stop_closes_idle_sessions_at_once(world: World) -> None:
    import asyncio
    import time

    world.agent.idle_seconds = 30.0  # an idle session would otherwise wait this long
    world.agent.clock = time.time
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE, created_at=0.0)
    task = asyncio.create_task(world.agent.run())
    for _ in range(200):
        if world.of("delivered"):
            break
        await asyncio.sleep(0.01)
    started = time.monotonic()
    world.agent.stop()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 1.0
    assert world.network.closed == 1


async def test_a_stale_cached_connection_is_replaced_not_deferred(tmp_path: Path) -> None:
    w = World(tmp_path, max_connections_per_domain=1)
    w.mx("example.net", (10, "mx1.example.net"))
    w.network.servers["mx1.example.net"] = ok()
    w.network.drop_on_use = 2  # the second message on a connection finds it dead
    for i in range(2):
        await w.store.enqueue("app@example.com", [f"u{i}@example.net"], MESSAGE)
    await w.agent.run_once()
    assert [e["to"] for e in w.of("delivered")] == ["<u0@example.net>", "<u1@example.net>"]
    assert w.of("deferred") == []
    assert len(w.network.connects) == 2


async def test_a_fresh_connection_that_drops_defers(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.mx("example.net", (10, "mx1.example.net"))
    w.network.servers["mx1.example.net"] = ok()
    w.network.drop_on_use = 1
    await w.store.enqueue("app@example.com", ["u@example.net"], MESSAGE)
    await w.agent.run_once()
    [event] = w.of("deferred")
    assert event["dsn"] == "4.4.2"
    assert len(w.network.connects) == 1


async def test_claiming_pauses_while_too_many_bytes_are_in_flight(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailwright.delivery import agent as agent_module

    monkeypatch.setattr(agent_module, "MAX_INFLIGHT_BYTES", 1)
    world.agent._inflight_bytes = 1  # as if a large message were being delivered
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE)
    assert await world.agent.run_once() == 0
    world.agent._inflight_bytes = 0
    assert await world.agent.run_once() == 1


# -- events and VERP (the application's loop) --------------------------------------------------


async def test_tracked_message_events_verp_and_suppression(world: World, tmp_path: Path) -> None:
    from mailwright.queue import SqliteQueueStore
    from mailwright.queue.tracking import Tracking
    from mailwright.verp import parse_bounce_address

    events_store = await SqliteQueueStore.open(tmp_path / "events")
    tracking = Tracking(events_store)
    key = b"k" * 32
    world.agent = world.make_agent()
    world.agent.tracking, world.agent.verp_key = tracking, key
    behaviour = per_recipient(
        {
            "bad@example.net": Reply(550, ("5.1.1 <bad@example.net>: user unknown",)),
            "full@example.net": Reply(552, ("5.2.2 mailbox full",)),
            "later@example.net": Reply(451, ("4.3.0 try later",)),
        }
    )
    world.network.servers["mx1.example.net"] = behaviour
    world.network.servers["mx2.example.net"] = behaviour
    meta = QueueMeta(tracked=True, verp=True, message_id="<m1@example.com>", tags=("t",))
    rcpts = ["ok@example.net", "bad@example.net", "full@example.net", "later@example.net"]
    qid = await world.store.enqueue("app@example.com", rcpts, MESSAGE, meta=meta)
    await world.agent.run_once()
    # one transaction per recipient, each with its own verifiable return path
    sends = [(sender, to) for _host, sender, to, _data in world.network.sends]
    assert [to for _s, to in sends] == [[r] for r in rcpts] + [["later@example.net"]]  # mx2
    for sender, [to] in sends:
        token = parse_bounce_address(key, sender, now=world.clock())
        assert sender.endswith("@example.com") and token.queue_id == qid
        assert rcpts[token.recipient_index] == to
    got = {e.recipient: e for e in await tracking.read()}
    assert got["ok@example.net"].event_type == "delivered"
    bad = got["bad@example.net"]
    assert (bad.event_type, bad.bounce_type, bad.bounce_source) == ("bounced", "hard", "sync")
    assert bad.cause == "recipient-unknown" and bad.tags == ("t",)
    assert bad.message_id == "<m1@example.com>" and bad.queue_id == qid
    assert (got["full@example.net"].bounce_type, got["full@example.net"].cause) == (
        "soft",
        "mailbox-full",
    )
    assert got["later@example.net"].event_type == "deferred"
    assert set(await tracking.check(rcpts)) == {"bad@example.net"}
    assert world.dsns() == []  # VERP without NOTIFY: the events report, no DSN
    # the deferred one expires after the queue lifetime: an expired event
    world.clock.now += 6 * 86400
    await world.agent.run_once()
    assert (await tracking.read())[-1].event_type == "expired"
    await events_store.close()


async def test_untracked_message_keeps_its_sender_and_makes_no_events(
    world: World, tmp_path: Path
) -> None:
    from mailwright.queue import SqliteQueueStore
    from mailwright.queue.tracking import Tracking

    events_store = await SqliteQueueStore.open(tmp_path / "events")
    tracking = Tracking(events_store)
    world.agent.tracking, world.agent.verp_key = tracking, b"k" * 32
    await world.store.enqueue("app@example.com", ["a@example.net", "b@example.net"], MESSAGE)
    await world.agent.run_once()
    [(_host, sender, to, _data)] = world.network.sends
    assert sender == "app@example.com" and to == ["a@example.net", "b@example.net"]
    assert await tracking.read() == []
    await events_store.close()


async def test_a_store_failure_gives_the_rest_of_the_claim_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database went away between the claim and reading the first message: every
    entry of that claim is released, none stays leased (undelivered) until its lease
    runs out."""
    for i in range(3):
        await world.store.enqueue("app@example.com", [f"u{i}@example.net"], MESSAGE)

    async def unreachable(queue_id: str) -> bytes:
        raise QueueError("queue database postgresql://db/mw: connection lost")

    monkeypatch.setattr(world.store, "read_message", unreachable)
    with pytest.raises(QueueError):
        await world.agent.run_once()
    assert await world.store.lease_holders() == {}


async def test_a_big_message_is_never_read_whole(world: World, tmp_path: Path) -> None:
    """Past the spool threshold the agent hands out a StoredMessage (read from the queue a
    piece at a time): remote sessions get it as such, Maildirs get it byte for byte, and
    a DSN returns its header section only (RFC 3461 §4.3 RET=HDRS)."""
    from mailwright.queue.store import StoredMessage
    from mailwright.spool import SPOOL_THRESHOLD

    big = MESSAGE.replace(b"hello\r\n", b"x" * 76 + b"\r\n") + (b"y" * 76 + b"\r\n") * (
        SPOOL_THRESHOLD // 78 + 100
    )
    world.network.servers["mx1.example.net"] = per_recipient(
        {"bad@example.net": Reply(550, ("5.1.1 unknown",))}
    )
    world.agent.local_targets = lambda a: [a]
    read_whole = []
    original = world.store.read_message

    async def counted(queue_id: str) -> bytes:
        read_whole.append(queue_id)
        return await original(queue_id)

    async def part(queue_id: str, offset: int, length: int) -> bytes:
        return world.store.data[queue_id][offset : offset + length]

    world.store.read_message = counted  # type: ignore[method-assign]
    world.store.read_message_part = part  # type: ignore[method-assign]
    qid = await world.store.enqueue(
        "app@example.com", ["good@example.net", "bad@example.net", "bob@example.com"], big
    )
    await world.agent.run_once()
    [(_, _, _, sent)] = world.network.sends
    assert isinstance(sent, StoredMessage) and await sent.read_all() == big
    [stored] = list((tmp_path / "mail/example.com/bob/new").iterdir())
    assert stored.read_bytes() == big
    assert qid not in read_whole
    [dsn] = world.dsns()
    returned = dsn.get_payload()[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    assert "Subject: hi" in returned.as_string() and "yyyy" not in returned.as_string()
