"""RFC 3461 end to end in the agent: NOTIFY, RET, ENVID and ORCPT honoured in the DSNs
we write, passed on to a next hop that offers DSN, and every DSN signed through intake."""

from __future__ import annotations

import email.message
from pathlib import Path

import pytest

from mailwright.config import RetryConfig
from mailwright.delivery.replies import Reply
from mailwright.queue import DsnRecipient, QueueMeta
from mailwright.smtp.intake import IntakePolicy

from .fakes import ok, per_recipient
from .test_agent import MESSAGE, World


def status_blocks(message: email.message.Message) -> list[email.message.Message]:
    report = message.get_payload()[1]  # type: ignore[index]
    return list(report.get_payload())  # type: ignore[union-attr]


def wants(*words: str, orcpt: str | None = None) -> DsnRecipient:
    return DsnRecipient(notify=tuple(words), orcpt=orcpt)  # type: ignore[arg-type]


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.mx("example.net", (10, "mx1.example.net"))
    w.network.servers["mx1.example.net"] = ok()
    return w


async def test_success_dsn_when_the_next_hop_cannot_carry_the_request(world: World) -> None:
    # RFC 3461 §5.2.2: relayed to a server without DSN: we report "relayed".
    meta = QueueMeta(
        envid="order-42",
        dsn={"x@example.net": wants("SUCCESS", orcpt="rfc822;x@example.net")},
    )
    qid = await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE, meta=meta)
    await world.agent.run_once()
    [event] = world.of("dsn")
    assert event["kind"] == "success" and event["original"] == qid
    [message] = world.dsns()
    assert message["Subject"] == "Successful Mail Delivery Report"
    per_message, block = status_blocks(message)
    assert per_message["Original-Envelope-Id"] == "order-42"  # RFC 3464 §2.2.1
    assert block["Action"] == "relayed" and block["Status"] == "2.0.0"
    assert block["Original-Recipient"] == "rfc822; x@example.net"
    # a success report never returns the content
    assert message.get_payload()[2].get_content_type() == "text/rfc822-headers"  # type: ignore[index]


async def test_no_success_dsn_when_the_next_hop_offers_dsn(world: World) -> None:
    world.network.offers_dsn.add("mx1.example.net")
    meta = QueueMeta(ret="HDRS", dsn={"x@example.net": wants("SUCCESS")})
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE, meta=meta)
    await world.agent.run_once()
    assert world.of("dsn") == []
    [passed] = world.network.metas
    assert passed is not None and passed.ret == "HDRS"
    assert passed.recipient_dsn("x@example.net").notify == ("SUCCESS",)


async def test_success_for_local_delivery_is_delivered(tmp_path: Path) -> None:
    w = World(tmp_path)
    meta = QueueMeta(dsn={"bob@example.com": wants("SUCCESS")})
    await w.store.enqueue("app@example.net", ["bob@example.com"], MESSAGE, meta=meta)
    await w.agent.run_once()
    [message] = w.dsns()
    assert status_blocks(message)[1]["Action"] == "delivered"


async def test_without_success_nothing_is_reported_for_delivered_mail(world: World) -> None:
    meta = QueueMeta(dsn={"x@example.net": wants("FAILURE", "DELAY")})
    await world.store.enqueue("app@example.com", ["x@example.net"], MESSAGE, meta=meta)
    await world.agent.run_once()
    assert world.of("dsn") == []


async def test_notify_is_per_recipient(world: World) -> None:
    world.network.servers["mx1.example.net"] = ok(550, "5.1.1 no such user")
    meta = QueueMeta(
        dsn={
            "x@example.net": wants(),
            "y@example.net": wants("FAILURE", orcpt="rfc822;Y@example.net"),
        }
    )
    await world.store.enqueue(
        "app@example.com", ["x@example.net", "y@example.net"], MESSAGE, meta=meta
    )
    await world.agent.run_once()
    [message] = world.dsns()
    [_, block] = status_blocks(message)
    assert block["Final-Recipient"] == "rfc822; y@example.net"
    assert block["Original-Recipient"] == "rfc822; Y@example.net"


@pytest.mark.parametrize(
    ("ret", "returned"),
    [("HDRS", "text/rfc822-headers"), ("FULL", "message/rfc822"), (None, "message/rfc822")],
)
async def test_ret_decides_what_a_failure_returns(
    world: World, ret: str | None, returned: str
) -> None:
    # RFC 3461 §4.3
    world.network.servers["mx1.example.net"] = ok(550, "5.1.1 no")
    await world.store.enqueue(
        "app@example.com", ["x@example.net"], MESSAGE, meta=QueueMeta(ret=ret)
    )  # type: ignore[arg-type]
    await world.agent.run_once()
    [message] = world.dsns()
    assert message.get_payload()[2].get_content_type() == returned  # type: ignore[index]


async def test_failure_only_gets_no_delay_notice(tmp_path: Path) -> None:
    w = World(tmp_path, retry=RetryConfig(delay_warning=60))
    w.mx("example.net", (10, "mx1.example.net"))
    w.network.servers["mx1.example.net"] = ok(451, "4.2.0 later")
    meta = QueueMeta(dsn={"x@example.net": wants("FAILURE")})
    await w.store.enqueue(
        "app@example.com", ["x@example.net"], MESSAGE, meta=meta, created_at=w.clock.now - 600
    )
    await w.agent.run_once()
    assert w.of("deferred") and w.of("dsn") == []


async def test_delay_notice_names_only_recipients_that_asked(tmp_path: Path) -> None:
    w = World(tmp_path, retry=RetryConfig(delay_warning=60))
    w.mx("example.net", (10, "mx1.example.net"))
    w.network.servers["mx1.example.net"] = ok(451, "4.2.0 later")
    meta = QueueMeta(dsn={"x@example.net": wants("DELAY"), "y@example.net": wants("FAILURE")})
    await w.store.enqueue(
        "app@example.com",
        ["x@example.net", "y@example.net"],
        MESSAGE,
        meta=meta,
        created_at=w.clock.now - 600,
    )
    await w.agent.run_once()
    [message] = w.dsns()
    [_, block] = status_blocks(message)
    assert block["Action"] == "delayed" and block["Final-Recipient"] == "rfc822; x@example.net"


async def test_dsn_goes_through_intake_signed_and_asking_for_no_dsn(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.mx("example.net", (10, "mx1.example.net"))
    w.network.servers["mx1.example.net"] = per_recipient(
        {"x@example.net": Reply(550, ("5.1.1 no",))}
    )

    class Sign:
        def selectors(self, domain: str) -> list[str]:
            return ["s"] if domain == "example.com" else []

        def __call__(
            self, message: bytes, domain: str, body_hashes: object = None
        ) -> tuple[bytes, list[str]] | None:
            return (
                (f"DKIM-Signature: d={domain}\r\n".encode(), ["s"])
                if domain == "example.com"
                else None
            )

    w.agent.intake = lambda: IntakePolicy(hostname="mail.example.com", signer=Sign())
    await w.store.enqueue("app@example.com", ["x@example.net"], MESSAGE)
    await w.agent.run_once()
    [event] = w.of("dsn")
    entry = w.store.entries[event["id"]]
    # intake chose the key; the DSN is signed when it leaves (here: into app's Maildir)
    assert entry.meta.sign_domain == "example.com"
    assert entry.sender == "" and entry.meta.origin == "dsn"
    assert entry.meta.recipient_dsn("app@example.com").notify == ()
    await w.agent.run_once()
    [delivered] = (tmp_path / "mail" / "example.com" / "app" / "new").iterdir()
    assert delivered.read_bytes().startswith(b"DKIM-Signature: d=example.com\r\n")


async def test_requiretls_without_an_authenticated_path_bounces_headers_only(
    world: World,
) -> None:
    # RFC 8689 §4.2.1: the MX is neither DNSSEC-secure nor covered by MTA-STS: no host
    # may be tried, 5.7.10; §5: the bounce returns the header only and is REQUIRETLS too.
    qid = await world.store.enqueue(
        "app@example.com", ["x@example.net"], MESSAGE, meta=QueueMeta(requiretls=True)
    )
    await world.agent.run_once()
    [bounced] = world.of("bounced")
    assert bounced["dsn"] == "5.7.10" and "REQUIRETLS" in bounced["reply"]
    assert world.network.metas == []  # nothing was sent
    [message] = world.dsns()
    assert message.get_payload()[2].get_content_type() == "text/rfc822-headers"  # type: ignore[index]
    [dsn_id] = [i for i, e in world.store.entries.items() if e.sender == "" and i != qid]
    assert world.store.entries[dsn_id].meta.requiretls


async def test_tls_required_no_is_delivered_normally(world: World) -> None:
    await world.store.enqueue(
        "app@example.com", ["x@example.net"], MESSAGE, meta=QueueMeta(tls_optional=True)
    )
    await world.agent.run_once()
    assert world.of("delivered")
