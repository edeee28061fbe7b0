"""Inbound ARC: arc= in our Authentication-Results, and trusted_arc_sealers (local policy)."""

from __future__ import annotations

from pathlib import Path

from test_inbound import AUTHSERV, BAD_IP, KEY, _checker, message, world

from mailwright import authres
from mailwright.arc import seal_message
from mailwright.dkim import SigningKey, dns_record_value, generate_key, sign_message
from mailwright.dmarc_reports.parse import reports_from_message
from mailwright.dmarc_reports.sender import send_due_reports
from mailwright.dns import MemoryResolver
from mailwright.inbound import check_envelope, check_message

FORWARDER_KEY = generate_key("rsa", 1024)
FORWARDER = SigningKey.from_key("lists.example", "arc", FORWARDER_KEY)


def _resolver() -> MemoryResolver:
    resolver = world()
    resolver.add("arc._domainkey.lists.example", "TXT", dns_record_value(FORWARDER_KEY))
    return resolver


def forwarded(dmarc_at_forwarder: str = "pass") -> bytes:
    """alice@example.org (p=reject, DKIM-signed) through a list that alters the body
    and seals: DKIM breaks, SPF is the list's, DMARC fails at the final receiver."""
    original = sign_message(
        message(False), [SigningKey("example.org", "sel", "ed25519-sha256", KEY)]
    )
    received = original + message(False)
    ar = (
        f"Authentication-Results: mx.lists.example; spf=pass smtp.mailfrom=example.org;"
        f" dkim=pass header.d=example.org; dmarc={dmarc_at_forwarder} header.from=example.org;"
        " arc=none\r\n"
    ).encode()
    changed = (ar + received).replace(b"Hi Bob.", b"Hi Bob.\r\n-- \r\nThe list footer")
    return seal_message(changed, FORWARDER, "mx.lists.example") + changed


async def _verdict(msg: bytes, trusted: tuple[str, ...]):  # type: ignore[no-untyped-def]
    resolver = _resolver()
    envelope = await check_envelope(
        BAD_IP, "mail.lists.example", "bounces@lists.example", resolver, receiver=AUTHSERV
    )
    return await check_message(
        msg, envelope, resolver, authserv_id=AUTHSERV, trusted_arc_sealers=trusted
    )


async def test_arc_pass_is_reported_with_oldest_pass_and_remote_ip() -> None:
    v = await _verdict(forwarded(), ())
    (arc,) = authres.parse(v.header.split(":", 1)[1]).find("arc")
    assert arc.result == "pass"
    assert arc.get("header", "oldest-pass") == "0"
    assert arc.get("smtp", "remote-ip") == BAD_IP


async def test_no_chain_is_arc_none() -> None:
    v = await _verdict(message(False), ())
    (arc,) = authres.parse(v.header.split(":", 1)[1]).find("arc")
    assert arc.result == "none"


async def test_broken_chain_is_arc_fail_with_reason() -> None:
    v = await _verdict(forwarded().replace(b"The list footer", b"Altered later"), ())
    (arc,) = authres.parse(v.header.split(":", 1)[1]).find("arc")
    assert (arc.result, arc.reason) == (
        "fail",
        "ARC-Message-Signature i=1: body hash mismatch (the body was altered)",
    )


async def test_untrusted_sealer_changes_nothing() -> None:
    v = await _verdict(forwarded(), ("other.example",))
    assert (v.dmarc_word, v.action, v.trusted_sealer) == ("fail", "junk", None)


async def test_trusted_sealer_delivers_mail_failing_dmarc() -> None:
    v = await _verdict(forwarded(), ("lists.example",))
    assert (v.dmarc_word, v.action, v.trusted_sealer) == ("fail", "deliver", "lists.example")
    assert any("trusted sealer" in n for n in v.notes)


async def test_trusted_sealer_that_saw_dmarc_fail_does_not_help() -> None:
    v = await _verdict(forwarded(dmarc_at_forwarder="fail"), ("lists.example",))
    assert (v.action, v.trusted_sealer) == ("junk", None)


async def test_trusted_sealer_with_a_broken_chain_does_not_help() -> None:
    v = await _verdict(forwarded().replace(b"footer", b"f00ter"), ("lists.example",))
    # no passing identity of any domain is left: a forgery as far as we can tell
    assert (v.action, v.trusted_sealer) == ("reject", None)


async def test_trusted_forwarding_is_local_policy_in_aggregate_reports(tmp_path: Path) -> None:
    # RFC 9990 §3.1.1.9: p=reject not applied because of our local policy.
    events: list[dict[str, str]] = []
    checker = _checker(
        tmp_path, events, send_aggregate_reports=True, trusted_arc_sealers=["lists.example"]
    )
    checker.resolver = _resolver()
    decision = await checker(
        forwarded(),
        queue_id="Q",
        client_ip=BAD_IP,
        helo="mail.lists.example",
        mail_from="bounces@lists.example",
        recipients=["bob@example.net"],
    )
    assert (decision.reply, decision.folder) == (None, None)
    (event,) = [e for e in events if e.get("event") == "inbound"]
    assert event["arc"] == "pass"
    queued: list[bytes] = []

    async def enqueue(sender: str, recipients: list[str], data: bytes) -> str:
        queued.append(data)
        return "R"

    await send_due_reports(
        data_dir=tmp_path,
        hostname=AUTHSERV,
        from_address="dmarc-noreply@example.net",
        resolver=checker.resolver,
        enqueue=enqueue,
    )
    (report,) = reports_from_message(queued[0])
    assert not isinstance(report, Exception)
    (row,) = report.records
    assert (row.disposition, row.reasons) == ("none", ("local_policy",))
