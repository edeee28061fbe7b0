"""ARC (RFC 8617): sealing, validation, structure rules and bounds, without sockets."""

from __future__ import annotations

import re

import pytest

from mailwright import authres
from mailwright.arc import ArcStatus, collect, seal_message, verify_chain
from mailwright.dkim import SigningKey, dns_record_value, generate_key
from mailwright.dkim.message import split_message
from mailwright.dns import MemoryResolver, Outcome

MESSAGE = (
    b"Authentication-Results: mx.forward.example; spf=pass smtp.mailfrom=alice@origin.example;\r\n"
    b"\tdkim=none; dmarc=pass header.from=origin.example; arc=none\r\n"
    b"From: Alice <alice@origin.example>\r\n"
    b"To: list@forward.example\r\n"
    b"Subject: Hello\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <1@origin.example>\r\n"
    b"\r\n"
    b"Hi,  all.\r\n"
)


@pytest.fixture(scope="module")
def keys() -> list[SigningKey]:
    return [
        SigningKey.from_key(f"hop{i}.example", "arc", generate_key("rsa", 1024)) for i in range(3)
    ]


def _world(*keys: SigningKey) -> MemoryResolver:
    resolver = MemoryResolver()
    for key in keys:
        resolver.add(
            f"{key.selector}._domainkey.{key.domain}", "TXT", dns_record_value(key.private_key)
        )
    return resolver


def _hop(message: bytes, key: SigningKey, result: str, authserv_id: str) -> bytes:
    """What one ARC-enabled intermediary does: record its verdict, then seal."""
    header = f"Authentication-Results: {authserv_id}; arc={result}\r\n".encode()
    message = header + message
    return seal_message(message, key, authserv_id, timestamp=1_700_000_000) + message


async def test_no_chain_is_none(keys: list[SigningKey]) -> None:
    result = await verify_chain(MESSAGE, _world())
    assert (result.status, result.reason) == (ArcStatus.NONE, "no ARC Sets")


async def test_first_seal_has_cv_none_and_verifies(keys: list[SigningKey]) -> None:
    sealed = seal_message(MESSAGE, keys[0], "mx.forward.example", timestamp=1) + MESSAGE
    assert re.search(rb"ARC-Seal: i=1; a=rsa-sha256; cv=none;", sealed)
    # §4.1.1: the AAR carries our Authentication-Results value.
    assert b"ARC-Authentication-Results: i=1; mx.forward.example; spf=pass" in sealed
    result = await verify_chain(sealed, _world(*keys))
    assert (result.status, result.instances, result.oldest_pass) == (ArcStatus.PASS, 1, 0)
    assert result.sealers == ("hop0.example",)


async def test_three_hops_pass_and_oldest_pass(keys: list[SigningKey]) -> None:
    message = seal_message(MESSAGE, keys[0], "mx.forward.example") + MESSAGE
    message = _hop(message, keys[1], "pass", "mx.hop1.example")
    message = message.replace(b"Subject: Hello", b"Subject: [list] Hello")  # a list's change
    message = _hop(message, keys[2], "pass", "mx.hop2.example")
    assert b"cv=pass" in message
    result = await verify_chain(message, _world(*keys))
    assert result.status is ArcStatus.PASS
    assert result.instances == 3
    # AMS 1 and 2 signed the old Subject: the oldest AMS that still validates is 3.
    assert result.oldest_pass == 3
    assert result.sealers == ("hop2.example", "hop1.example", "hop0.example")


async def test_body_change_after_seal_fails(keys: list[SigningKey]) -> None:
    sealed = seal_message(MESSAGE, keys[0], "mx.forward.example") + MESSAGE
    result = await verify_chain(sealed.replace(b"all.", b"everyone."), _world(*keys))
    assert result.status is ArcStatus.FAIL
    assert result.reason == "ARC-Message-Signature i=1: body hash mismatch (the body was altered)"


async def test_altered_aar_breaks_the_seal(keys: list[SigningKey]) -> None:
    sealed = seal_message(MESSAGE, keys[0], "mx.forward.example") + MESSAGE
    forged = sealed.replace(
        b"i=1; mx.forward.example; spf=pass", b"i=1; mx.forward.example; spf=fail"
    )
    result = await verify_chain(forged, _world(*keys))
    assert (result.status, result.reason) == (ArcStatus.FAIL, "ARC-Seal i=1 did not verify")


async def test_dns_failure_is_fail(keys: list[SigningKey]) -> None:
    sealed = seal_message(MESSAGE, keys[0], "mx.forward.example") + MESSAGE
    resolver = MemoryResolver().fail("arc._domainkey.hop0.example", "TXT", Outcome.TIMEOUT)
    result = await verify_chain(sealed, resolver)
    # RFC 8617 §5.2.1: all failures are permanent.
    assert result.status is ArcStatus.FAIL
    assert result.reason.startswith("ARC-Message-Signature i=1: key lookup for arc._domainkey")


async def test_missing_set_member_fails(keys: list[SigningKey]) -> None:
    sealed = seal_message(MESSAGE, keys[0], "mx.forward.example") + MESSAGE
    no_aar = re.sub(rb"ARC-Authentication-Results: [^\r]*\r\n(?:[ \t][^\r]*\r\n)*", b"", sealed)
    result = await verify_chain(no_aar, _world(*keys))
    assert (result.status, result.reason) == (
        ArcStatus.FAIL,
        "ARC Set i=1 has no ARC-Authentication-Results",
    )


async def test_gap_in_instances_fails(keys: list[SigningKey]) -> None:
    message = seal_message(MESSAGE, keys[0], "mx.forward.example") + MESSAGE
    message = _hop(message, keys[1], "pass", "mx.hop1.example")
    gap = re.sub(rb"\bi=1;", b"i=7;", message)
    result = await verify_chain(gap, _world(*keys))
    assert (result.status, result.reason) == (ArcStatus.FAIL, "ARC Set i=1 is missing")


async def test_wrong_cv_on_later_set_fails(keys: list[SigningKey]) -> None:
    message = seal_message(MESSAGE, keys[0], "mx.forward.example") + MESSAGE
    message = _hop(message, keys[1], "none", "mx.hop1.example")
    # a message with a chain and arc=none recorded cannot be sealed as "none": it says fail
    assert b"i=2; a=rsa-sha256; cv=fail" in message
    result = await verify_chain(message, _world(*keys))
    assert (result.status, result.reason) == (ArcStatus.FAIL, "ARC-Seal i=2 says cv=fail")


async def test_cv_fail_chain_is_fail_and_not_sealed_again(keys: list[SigningKey]) -> None:
    message = seal_message(MESSAGE, keys[0], "mx.forward.example") + MESSAGE
    message = _hop(message, keys[1], "fail", "mx.hop1.example")
    assert b"cv=fail" in message
    result = await verify_chain(message, _world(*keys))
    assert result.status is ArcStatus.FAIL
    # RFC 8617 §5.1 step 2: nothing to add after cv=fail.
    assert seal_message(message, keys[2], "mx.hop2.example") == b""


async def test_cv_fail_seal_covers_only_its_own_set(keys: list[SigningKey]) -> None:
    message = seal_message(MESSAGE, keys[0], "mx.forward.example") + MESSAGE
    broken = message.replace(b"all.", b"everyone.")
    sealed = _hop(broken, keys[1], "fail", "mx.hop1.example")
    parsed = split_message(sealed)
    chain = collect(parsed)
    assert chain.newest_cv == "fail" and chain.highest == 2
    # §5.1.2: the seal signs only the new set; check it with the verifier's own rule.
    from mailwright.arc.chain import AAR, AMS, AS, ArcSet, tag_field
    from mailwright.arc.verify import seal_input
    from mailwright.dkim.keys import parse_key_record
    from mailwright.dkim.verifier import signature_verifies

    fields = {}
    for k, raw in parsed.headers:
        if k in (AAR, AMS, AS):
            fields.setdefault(k, tag_field(k, raw))  # the topmost: instance 2
    ours = ArcSet(2, fields[AAR], fields[AMS], fields[AS])
    record = parse_key_record(dns_record_value(keys[1].private_key))
    import base64

    assert fields[AS].tags is not None
    signature = base64.b64decode(re.sub(r"\s", "", fields[AS].tags["b"]))
    assert signature_verifies(record, "sha256", signature, seal_input([ours], fields[AS].blanked()))


async def test_over_fifty_sets_fails(keys: list[SigningKey]) -> None:
    fields = b"".join(
        f"ARC-Seal: i={i}; a=rsa-sha256; cv=pass; d=x.example; s=s; b=AA==\r\n".encode()
        for i in range(51, 0, -1)
    )
    result = await verify_chain(fields + MESSAGE, _world())
    assert (result.status, result.reason) == (ArcStatus.FAIL, "more than 50 ARC Sets (i=51)")
    assert seal_message(fields + MESSAGE, keys[0], "mx.forward.example") == b""


async def test_seal_with_h_tag_fails(keys: list[SigningKey]) -> None:
    sealed = seal_message(MESSAGE, keys[0], "mx.forward.example") + MESSAGE
    bad = sealed.replace(b"ARC-Seal: i=1;", b"ARC-Seal: i=1; h=from;")
    result = await verify_chain(bad, _world(*keys))
    assert (result.status, result.reason) == (ArcStatus.FAIL, "ARC-Seal i=1 has an h= tag")


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        (b"ARC-Seal: cv=none; b=AA==\r\n", "ARC-Seal without a valid i= instance tag"),
        (b"ARC-Seal: i=1; i=1; b=\r\n", "ARC-Seal syntax: duplicate tag i="),
        (
            b"ARC-Authentication-Results: mx; none\r\n",
            "ARC-Authentication-Results without an i= instance tag",
        ),
        (
            b"ARC-Message-Signature: i=x; b=\r\n",
            "ARC-Message-Signature without a valid i= instance tag",
        ),
    ],
)
async def test_unreadable_fields_fail(field: bytes, reason: str) -> None:
    result = await verify_chain(field + MESSAGE, _world())
    assert (result.status, result.reason) == (ArcStatus.FAIL, reason)


def test_authentication_results_word() -> None:
    info = authres.arc_result(ArcStatus.PASS, "ok", oldest_pass=0, remote_ip="192.0.2.1")
    assert info.format() == "arc=pass smtp.remote-ip=192.0.2.1 header.oldest-pass=0"
    info = authres.arc_result(ArcStatus.FAIL, "ARC-Seal i=1 did not verify")
    assert info.format() == 'arc=fail reason="ARC-Seal i=1 did not verify"'
