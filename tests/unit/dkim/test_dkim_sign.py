"""Signing (RFC 6376 §5, RFC 8463) and round trips through our verifier."""

from __future__ import annotations

import base64
import hashlib

import pytest
from dkim_helpers import MESSAGE, world

from mailwright.dkim import DkimSignError, DkimStatus, SigningKey, sign_message, verify_message
from mailwright.dkim.canonicalization import canonicalize_body
from mailwright.dkim.message import split_message
from mailwright.dkim.signer import signed_header_names
from mailwright.dkim.tags import parse_tag_list

CANONS = [
    ("simple", "simple"),
    ("simple", "relaxed"),
    ("relaxed", "simple"),
    ("relaxed", "relaxed"),
]


def _tags(field: bytes) -> dict[str, str]:
    value = field.split(b":", 1)[1].decode()
    return parse_tag_list(value).tags


@pytest.mark.parametrize("canon", CANONS)
@pytest.mark.parametrize("which", ["rsa", "ed25519"])
async def test_round_trip(
    rsa_key: SigningKey, ed_key: SigningKey, which: str, canon: tuple[str, str]
) -> None:
    key = rsa_key if which == "rsa" else ed_key
    signed = sign_message(MESSAGE, [key], canonicalization=canon, timestamp=1700000000) + MESSAGE
    [result] = await verify_message(signed, world(key), now=1700000001)
    assert result.status is DkimStatus.PASS, result.reason
    assert result.algorithm == key.algorithm
    assert result.canonicalization == "/".join(canon)
    assert result.timestamp == 1700000000
    assert result.key_bits == (2048 if which == "rsa" else 256)


def test_default_header_list_oversigns_from() -> None:
    parsed = split_message(
        b"From: a@example.com\r\nTo: b\r\nTo: c\r\nX-Other: 1\r\nList-Id: <l>\r\n"
        b"List-Unsubscribe: <mailto:u>\r\nReceived: x\r\nMIME-Version: 1.0\r\n\r\n"
    )
    assert signed_header_names(parsed) == [
        "from", "to", "to", "mime-version", "list-id", "list-unsubscribe",
        "list-unsubscribe", "from",  # RFC 8058 §4's field oversigned too
    ]  # fmt: skip


def test_field_format(rsa_key: SigningKey, ed_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key, ed_key], timestamp=1700000000)
    assert fields.endswith(b"\r\n")
    lines = fields.split(b"\r\n")[:-1]
    assert all(len(line) <= 78 for line in lines)
    assert b"\n" not in fields.replace(b"\r\n", b"")
    starts = [i for i, line in enumerate(lines) if line.startswith(b"DKIM-Signature:")]
    assert len(starts) == 2 and starts[0] == 0
    first = b"\r\n".join(lines[: starts[1]]) + b"\r\n"
    tags = _tags(first)
    assert tags["v"] == "1" and tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
    assert tags["d"] == "example.com" and tags["s"] == "rsa1" and tags["t"] == "1700000000"
    assert tags["h"].replace("\r\n ", "") == "from:to:subject:date:message-id:from"
    assert "l" not in tags and "x" not in tags
    body = canonicalize_body(split_message(MESSAGE).body, "relaxed")
    assert tags["bh"] == base64.b64encode(hashlib.sha256(body).digest()).decode()


async def test_several_signatures_verify(rsa_key: SigningKey, ed_key: SigningKey) -> None:
    signed = sign_message(MESSAGE, [rsa_key, ed_key]) + MESSAGE
    results = await verify_message(signed, world(rsa_key, ed_key))
    assert [(r.status, r.selector) for r in results] == [
        (DkimStatus.PASS, "rsa1"),
        (DkimStatus.PASS, "ed1"),
    ]


def test_lf_and_crlf_input_sign_identically(ed_key: SigningKey, rsa_key: SigningKey) -> None:
    lf = MESSAGE.replace(b"\r\n", b"\n")
    for key in (ed_key, rsa_key):  # both algorithms are deterministic
        assert sign_message(lf, [key], timestamp=1) == sign_message(MESSAGE, [key], timestamp=1)


def test_refusals(rsa_key: SigningKey) -> None:
    with pytest.raises(DkimSignError, match="no From"):
        sign_message(b"To: b@example.net\r\nSubject: x\r\n\r\nhi\r\n", [rsa_key])
    with pytest.raises(DkimSignError, match="must include From"):
        sign_message(MESSAGE, [rsa_key], headers=["to", "subject"])
    with pytest.raises(DkimSignError, match="invalid header field name"):
        sign_message(MESSAGE, [rsa_key], headers=["from", "to;x"])
    with pytest.raises(DkimSignError, match="unknown canonicalization"):
        sign_message(MESSAGE, [rsa_key], canonicalization=("relaxed", "loose"))


async def test_explicit_header_list(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key], headers=["From", "Subject", "X-Absent"])
    assert _tags(fields)["h"] == "from:subject:x-absent"
    [result] = await verify_message(fields + MESSAGE, world(rsa_key))
    assert result.status is DkimStatus.PASS


async def test_tampering_is_told_apart(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key])
    body_changed = fields + MESSAGE.replace(b"noon", b"nine")
    [r] = await verify_message(body_changed, world(rsa_key))
    assert (r.status, r.body_hash_ok) == (DkimStatus.FAIL, False)
    assert r.reason == "body hash mismatch (the body was altered)"
    header_changed = fields + MESSAGE.replace(b"Subject: Lunch", b"Subject: Dinner")
    [r] = await verify_message(header_changed, world(rsa_key))
    assert (r.status, r.body_hash_ok) == (DkimStatus.FAIL, True)
    assert r.reason.startswith("signature mismatch")
    # Oversigned From: a From added on top makes the signature fail.
    added_from = b"From: Mallory <m@evil.example>\r\n" + fields + MESSAGE
    [r] = await verify_message(added_from, world(rsa_key))
    assert r.status is DkimStatus.FAIL
    # Unsigned header fields may change freely.
    extra = fields + b"X-Spam: no\r\n" + MESSAGE.replace(b"Received: from x", b"Received: from z")
    [r] = await verify_message(extra, world(rsa_key))
    assert r.status is DkimStatus.PASS
