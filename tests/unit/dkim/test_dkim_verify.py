"""Verification results for every bad-input class of issue 3, each with its exact outcome."""

from __future__ import annotations

import base64
import contextlib
import random
import re
import subprocess
import time
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dkim_helpers import MESSAGE, world

from mailwright.dkim import (
    DkimSignError,
    DkimStatus,
    SigningKey,
    dns_record_value,
    generate_key,
    private_key_pem,
    sign_message,
    verify_message,
)
from mailwright.dkim.message import split_message
from mailwright.dkim.signer import sign_parsed
from mailwright.dns import MemoryResolver, Outcome


def _replace_tag(fields: bytes, tag: str, value: str) -> bytes:
    """Set one tag's value in a (single) signature field, keeping everything else."""
    pattern = re.compile(rb"(?<![a-z])" + tag.encode() + rb"=[^;\r\n]*(?:\r\n[ \t][^;\r\n]*)*")
    return pattern.sub(lambda _m: tag.encode() + b"=" + value.encode(), fields, count=1)


async def _verify_one(message: bytes, resolver: MemoryResolver, **kw: float) -> tuple[str, str]:
    [r] = await verify_message(message, resolver, **kw)  # type: ignore[arg-type]
    return str(r.status), r.reason


async def test_unsigned_message_has_no_results() -> None:
    assert await verify_message(MESSAGE, MemoryResolver()) == []


async def test_no_from(rsa_key: SigningKey) -> None:
    # A signer that (wrongly) signed a message without From: h= names From, none exists.
    message = b"To: b@example.net\r\nSubject: x\r\n\r\nhi\r\n"
    fields = sign_parsed(
        split_message(message), [rsa_key], ["from", "subject"], "relaxed", "relaxed", 1
    )
    status, reason = await _verify_one(fields + message, world(rsa_key))
    assert (status, reason) == (
        "policy",
        "signature verifies but the message has 0 From fields (RFC 5322 §3.6: one)",
    )


async def test_h_without_from_is_permerror(rsa_key: SigningKey) -> None:
    fields = sign_parsed(split_message(MESSAGE), [rsa_key], ["subject"], "relaxed", "relaxed", 1)
    assert await _verify_one(fields + MESSAGE, world(rsa_key)) == (
        "permerror",
        "h= does not include From",
    )


async def test_several_from(rsa_key: SigningKey) -> None:
    message = b"From: a@example.com\r\nFrom: b@example.com\r\nSubject: x\r\n\r\nhi\r\n"
    fields = sign_message(message, [rsa_key])
    assert b"h=from:from:subject:from;" in fields  # both signed, plus one oversigned
    status, reason = await _verify_one(fields + message, world(rsa_key))
    assert (status, reason) == (
        "policy",
        "signature verifies but the message has 2 From fields (RFC 5322 §3.6: one)",
    )


@pytest.mark.parametrize("canon", [("simple", "simple"), ("relaxed", "relaxed")])
async def test_folded_and_8bit_headers(rsa_key: SigningKey, canon: tuple[str, str]) -> None:
    message = (
        b"From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\r\n"
        + "Subject: Grüße aus Köln,\r\n\tfolded  twice\r\n   and again\r\n".encode()
        + b"To: caf\xe9 <c@example.net>\r\n\r\nBody\r\n"
    )
    fields = sign_message(message, [rsa_key], canonicalization=canon)
    assert await _verify_one(fields + message, world(rsa_key)) == ("pass", "signature verified")
    # Relaxed tolerates refolding; simple does not.
    refolded = message.replace(b",\r\n\tfolded  twice", b", folded twice")
    status, _ = await _verify_one(fields + refolded, world(rsa_key))
    assert status == ("pass" if canon[0] == "relaxed" else "fail")


async def test_windows_1258_message(rsa_key: SigningKey, dkim_data: Path) -> None:
    message = (dkim_data / "dkimpy/rfc6376.w1258.msg").read_bytes()
    fields = sign_message(message, [rsa_key])
    assert await _verify_one(fields + message, world(rsa_key)) == ("pass", "signature verified")


async def test_header_line_over_998_bytes(rsa_key: SigningKey) -> None:
    # RFC 5322 §2.1.1 limits what is generated; a verifier still checks what it got.
    message = b"From: a@example.com\r\nSubject: " + b"x" * 5000 + b"\r\n\r\nhi\r\n"
    fields = sign_message(message, [rsa_key])
    assert await _verify_one(fields + message, world(rsa_key)) == ("pass", "signature verified")


async def test_bare_cr_lf_mixes(rsa_key: SigningKey) -> None:
    mixed = b"From: a@example.com\nTo: b@example.net\r\nSubject: x\n\nline1\r\nline2\nbare\rcr\r\n"
    fields = sign_message(mixed, [rsa_key])
    # as received (mixed), after an MTA turned every LF into CRLF, and with LF-only fields
    crlf = re.sub(rb"(?<!\r)\n", b"\r\n", mixed)
    for message in (fields + mixed, fields + crlf, fields.replace(b"\r\n", b"\n") + mixed):
        assert await _verify_one(message, world(rsa_key)) == ("pass", "signature verified")
    # the bare CR is content: removing it breaks the body hash
    [r] = await verify_message(fields + crlf.replace(b"\rcr", b"cr"), world(rsa_key))
    assert (r.status, r.body_hash_ok) == (DkimStatus.FAIL, False)


@pytest.mark.parametrize("body_c", ["simple", "relaxed"])
async def test_body_without_final_crlf(rsa_key: SigningKey, body_c: str) -> None:
    message = b"From: a@example.com\r\n\r\nno newline at the end"
    fields = sign_message(message, [rsa_key], canonicalization=("relaxed", body_c))
    expected_bh = base64.b64encode(
        __import__("hashlib").sha256(b"no newline at the end\r\n").digest()
    ).decode()
    assert f"bh={expected_bh};".encode() in fields.replace(b"\r\n ", b" ")
    assert await _verify_one(fields + message, world(rsa_key)) == ("pass", "signature verified")
    # and the same message after a transport added the final CRLF
    assert await _verify_one(fields + message + b"\r\n", world(rsa_key)) == (
        "pass",
        "signature verified",
    )


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        ("b", "!!!not*base64", "b= is not valid base64"),
        ("b", "QUJD=A", "b= is not valid base64"),
        ("bh", "@@@", "bh= is not valid base64"),
        ("bh", "", "bh= is not valid base64"),
        ("v", "2", "unsupported signature version v=2"),
        ("a", "rsa-sha512", "unsupported algorithm a=rsa-sha512"),
        ("c", "fancy/simple", "unsupported c=fancy/simple"),
        ("d", "exa mple.com", "d='exa mple.com' is not a domain name"),
        ("s", "a/b", "s='a/b' is not a valid selector"),
        ("t", "soon", "t= is not a number"),
    ],
)
async def test_bad_signature_tags(rsa_key: SigningKey, tag: str, value: str, reason: str) -> None:
    fields = _replace_tag(sign_message(MESSAGE, [rsa_key]), tag, value)
    assert await _verify_one(fields + MESSAGE, world(rsa_key)) == ("permerror", reason)


async def test_missing_required_tag(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key]).replace(b" s=rsa1;", b"")
    assert await _verify_one(fields + MESSAGE, world(rsa_key)) == (
        "permerror",
        "signature lacks the required s= tag",
    )


async def test_duplicate_tags(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key]).replace(b"v=1;", b"v=1; d=example.com;")
    [r] = await verify_message(fields + MESSAGE, world(rsa_key))
    assert (r.status, r.reason) == (DkimStatus.PERMERROR, "signature syntax: duplicate tag d=")
    # what could be read is still reported
    assert (r.domain, r.selector, r.algorithm) == ("example.com", "rsa1", "rsa-sha256")


async def test_duplicate_tags_in_key_record(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key])
    record = dns_record_value(rsa_key.private_key).replace("k=rsa;", "k=rsa; k=rsa;")
    resolver = MemoryResolver().add("rsa1._domainkey.example.com", "TXT", record)
    assert await _verify_one(fields + MESSAGE, resolver) == (
        "permerror",
        "bad key record at rsa1._domainkey.example.com: key record syntax: duplicate tag k=",
    )


async def test_garbage_base64_in_p(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key])
    resolver = MemoryResolver().add("rsa1._domainkey.example.com", "TXT", "v=DKIM1; p=MIIB*garbage")
    assert await _verify_one(fields + MESSAGE, resolver) == (
        "permerror",
        "bad key record at rsa1._domainkey.example.com: p= is not valid base64",
    )
    resolver = MemoryResolver().add("rsa1._domainkey.example.com", "TXT", "v=DKIM1; p=QUJDRA==")
    assert await _verify_one(fields + MESSAGE, resolver) == (
        "permerror",
        "bad key record at rsa1._domainkey.example.com: p= is not an RSA public key",
    )


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        ("@example.com", ("pass", "signature verified")),
        ("alice@mail.example.com", ("pass", "signature verified")),
        ("@example.org", ("permerror", "i= domain example.org is not within d=example.com")),
        ("@badexample.com", ("permerror", "i= domain badexample.com is not within d=example.com")),
        ("nobody", ("permerror", "i='nobody' has no @")),
    ],
)
async def test_identity_must_be_within_d(
    rsa_key: SigningKey, identity: str, expected: tuple[str, str]
) -> None:
    # i= is signed, so build signatures that carry it through the header list machinery
    fields = sign_message(MESSAGE, [rsa_key]).replace(b"v=1;", f"v=1; i={identity};".encode())
    status, reason = await _verify_one(fields + MESSAGE, world(rsa_key))
    if expected[0] == "pass":  # i= was added after signing: syntax fine, signature mismatch
        assert status == "fail" and reason.startswith("signature mismatch")
    else:
        assert (status, reason) == expected


async def test_strict_key_flag(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key]).replace(b"v=1;", b"v=1; i=@sub.example.com;")
    record = dns_record_value(rsa_key.private_key).replace("k=rsa;", "k=rsa; t=s;")
    resolver = MemoryResolver().add("rsa1._domainkey.example.com", "TXT", record)
    assert await _verify_one(fields + MESSAGE, resolver) == (
        "permerror",
        "key record t=s requires i= to use exactly the d= domain",
    )


async def test_hundred_signatures_bounded(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key])
    message = fields * 100 + MESSAGE
    resolver = world(rsa_key)
    start = time.perf_counter()
    results = await verify_message(message, resolver, max_signatures=10)
    assert time.perf_counter() - start < 2.0
    assert len(results) == 100
    assert [r.status for r in results[:10]] == [DkimStatus.PASS] * 10
    assert {(r.status, r.reason) for r in results[10:]} == {
        (DkimStatus.NEUTRAL, "not evaluated: more than 10 DKIM-Signature fields")
    }
    assert resolver.queries == [("rsa1._domainkey.example.com", "TXT")]  # one shared lookup


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (
            Outcome.NXDOMAIN,
            ("permerror", "no key record at rsa1._domainkey.example.com (nxdomain)"),
        ),
        (Outcome.TIMEOUT, ("temperror", "key lookup for rsa1._domainkey.example.com: timeout")),
        (Outcome.SERVFAIL, ("temperror", "key lookup for rsa1._domainkey.example.com: servfail")),
    ],
)
async def test_dns_outcomes(
    rsa_key: SigningKey, outcome: Outcome, expected: tuple[str, str]
) -> None:
    fields = sign_message(MESSAGE, [rsa_key])
    resolver = MemoryResolver().fail("rsa1._domainkey.example.com", "TXT", outcome)
    assert await _verify_one(fields + MESSAGE, resolver) == expected


async def test_nodata(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key])
    resolver = MemoryResolver().add("rsa1._domainkey.example.com", "A", "192.0.2.1")
    assert await _verify_one(fields + MESSAGE, resolver) == (
        "permerror",
        "no key record at rsa1._domainkey.example.com (nodata)",
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("p=", "p=; x="), ("permerror", "key revoked (empty p= in the key record)")),
        (("h=sha256", "h=sha1"), ("permerror", "key record h= does not allow sha256")),
        (("k=rsa;", "k=rsa; s=tlsrpt;"), ("permerror", "key record s=tlsrpt excludes email")),
        (("k=rsa;", "k=rsa; s=email:*;"), ("pass", "signature verified")),
        (("k=rsa;", "k=ed25519;"), ("permerror", "bad key record at rsa1._domainkey.example.com: "
                                    "ed25519 p= must be 32 bytes, got 294")),
    ],
)  # fmt: skip
async def test_key_record_rules(
    rsa_key: SigningKey, edit: tuple[str, str], expected: tuple[str, str]
) -> None:
    fields = sign_message(MESSAGE, [rsa_key])
    record = dns_record_value(rsa_key.private_key).replace(*edit, 1)
    resolver = MemoryResolver().add("rsa1._domainkey.example.com", "TXT", record)
    assert await _verify_one(fields + MESSAGE, resolver) == expected


async def test_key_type_mismatch(rsa_key: SigningKey, ed_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [ed_key])
    resolver = MemoryResolver().add(
        "ed1._domainkey.example.com", "TXT", dns_record_value(rsa_key.private_key)
    )
    assert await _verify_one(fields + MESSAGE, resolver) == (
        "permerror",
        "key type k=rsa does not match a=ed25519-sha256",
    )


async def test_testing_flag(ed_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [ed_key])
    [r] = await verify_message(fields + MESSAGE, world(ed_key, testing=True))
    assert (r.status, r.testing) == (DkimStatus.PASS, True)
    assert r.reason == "signature verified (key in testing mode, t=y)"


async def test_expiry(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key], timestamp=1000).replace(
        b"t=1000;", b"t=1000; x=2000;"
    )
    assert await _verify_one(fields + MESSAGE, world(rsa_key), now=2001) == (
        "fail",
        "signature expired at x=2000",
    )
    early = sign_message(MESSAGE, [rsa_key], timestamp=3000).replace(b"t=3000;", b"t=3000; x=2000;")
    assert await _verify_one(early + MESSAGE, world(rsa_key), now=1) == (
        "permerror",
        "x= is before t= (RFC 6376 §3.5)",
    )


async def test_rsa_sha1_is_policy_even_when_valid(rsa_key: SigningKey) -> None:
    pem = private_key_pem(rsa_key.private_key)
    fields = dkim.sign(
        MESSAGE, b"rsa1", b"example.com", pem, signature_algorithm=b"rsa-sha1"
    )  # an independent signer makes a genuine rsa-sha1 signature
    # our own records say h=sha256, which already rules sha1 out
    [r] = await verify_message(fields + MESSAGE, world(rsa_key))
    assert (r.status, r.reason) == (DkimStatus.PERMERROR, "key record h= does not allow sha1")
    record = dns_record_value(rsa_key.private_key).replace("h=sha256; ", "")
    resolver = MemoryResolver().add("rsa1._domainkey.example.com", "TXT", record)
    [r] = await verify_message(fields + MESSAGE, resolver)
    assert (r.status, r.reason, r.body_hash_ok) == (
        DkimStatus.POLICY,
        "rsa-sha1 signatures are not acceptable (RFC 8301 §3.1); the signature itself verifies",
        True,
    )
    [r] = await verify_message(fields + MESSAGE.replace(b"Lunch", b"Brunch"), resolver)
    assert (r.status, r.reason) == (
        DkimStatus.FAIL,
        "signature mismatch (signed header fields altered, or the wrong key)",
    )


async def test_small_rsa_key_is_policy() -> None:
    pem = subprocess.run(["openssl", "genrsa", "512"], capture_output=True, check=True).stdout
    small = serialization.load_pem_private_key(pem, None)
    assert isinstance(small, rsa.RSAPrivateKey) and small.key_size == 512
    key = SigningKey.from_key("example.com", "small", generate_key("rsa", 1024))
    object.__setattr__(key, "private_key", small)  # SigningKey itself refuses < 1024 bits
    fields = sign_message(MESSAGE, [key])
    [r] = await verify_message(fields + MESSAGE, world(key))
    assert (r.status, r.reason, r.key_bits) == (
        DkimStatus.POLICY,
        "RSA key of 512 bits is too small (RFC 8301 §3.2); the signature itself verifies",
        512,
    )


async def test_length_tag_beyond_body(rsa_key: SigningKey) -> None:
    fields = sign_message(MESSAGE, [rsa_key]).replace(b"v=1;", b"v=1; l=99999;")
    [r] = await verify_message(fields + MESSAGE, world(rsa_key))
    assert (r.status, r.reason, r.body_hash_ok) == (
        DkimStatus.FAIL,
        "l=99999 is longer than the body",
        False,
    )


async def test_resolver_that_raises_is_temperror(rsa_key: SigningKey) -> None:
    class Broken(MemoryResolver):
        async def query(self, name: str, rdtype: str):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    fields = sign_message(MESSAGE, [rsa_key])
    assert await _verify_one(fields + MESSAGE, Broken()) == (
        "temperror",
        "key lookup for rsa1._domainkey.example.com failed: boom",
    )


@pytest.mark.parametrize(
    "junk",
    [
        b"DKIM-Signature:\r\n",
        b"DKIM-Signature: ;;;\r\n",
        b"DKIM-Signature: v=1; a=rsa-sha256; b=\xff\xfe; bh=; d=; h=; s=\r\n",
        b"DKIM-Signature: " + b"x=" * 50_000 + b"\r\n",
        b"DKIM-Signature: v=1; a=ed25519-sha256; b=QUJD; bh=QUJD; d=example.com; h=from; s=ed1\r\n",
    ],
)
async def test_junk_fields_never_raise(junk: bytes, ed_key: SigningKey) -> None:
    [r] = await verify_message(junk + MESSAGE, world(ed_key))
    assert r.status in (DkimStatus.PERMERROR, DkimStatus.FAIL)
    assert r.reason


def test_generate_key_warns_not_for_ed25519() -> None:
    assert generate_key("ed25519") is not None


async def test_mutated_messages_never_raise(rsa_key: SigningKey, ed_key: SigningKey) -> None:
    """Seeded random damage to a signed message: always a defined result, never an exception."""
    rng = random.Random(6376)
    signed = sign_message(MESSAGE, [rsa_key, ed_key]) + MESSAGE
    resolver = world(rsa_key, ed_key)
    alphabet = b"\r\n\t ;=:@.\x00\xff\x80abcAZ09+/-_()[]"
    outcomes: set[DkimStatus] = set()
    for _ in range(300):
        data = bytearray(signed)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[pos] = rng.choice(alphabet)
            elif action < 0.7:
                data[pos:pos] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            else:
                del data[pos : pos + rng.randint(1, 8)]
        message = bytes(data)
        results = await verify_message(message, resolver)
        for r in results:
            assert isinstance(r.status, DkimStatus) and r.reason
            # one line, no terminal escapes: results go into one-line logs
            assert r.reason.isprintable(), r.reason
            assert all(v is None or v.isprintable() for v in (r.domain, r.selector, r.algorithm))
            outcomes.add(r.status)
        with contextlib.suppress(DkimSignError):  # no From left: the one refusal allowed
            sign_message(message, [rsa_key])
    # the damage reached every stage: parsing, key lookup and crypto
    assert {DkimStatus.PASS, DkimStatus.FAIL, DkimStatus.PERMERROR} <= outcomes


async def test_reasons_are_one_printable_line(rsa_key: SigningKey) -> None:
    fields = _replace_tag(sign_message(MESSAGE, [rsa_key]), "a", "rsa-\r\n \x1b[31msha")
    [r] = await verify_message(fields + MESSAGE, world(rsa_key))
    assert (r.status, r.reason) == (
        DkimStatus.PERMERROR,
        "unsupported algorithm a=rsa-\\x0d\\x0a \\x1b[31msha",
    )


async def test_length_tag_partial_body_is_reported(rsa_key: SigningKey) -> None:
    """l= signatures (made by dkimpy here) pass, and say how much of the body is unsigned."""
    pem = private_key_pem(rsa_key.private_key)
    fields = dkim.sign(MESSAGE, b"rsa1", b"example.com", pem, length=True)
    [r] = await verify_message(fields + MESSAGE, world(rsa_key))
    assert (r.status, r.reason) == (DkimStatus.PASS, "signature verified")
    appended = fields + MESSAGE + b"Appended by someone else\r\n"
    [r] = await verify_message(appended, world(rsa_key))
    assert r.status is DkimStatus.PASS
    assert r.reason.startswith("signature verified, but l= covers only ")
    assert r.reason.endswith(" body bytes (the rest is unsigned)")


async def test_huge_h_list_is_bounded(rsa_key: SigningKey) -> None:
    fields = _replace_tag(sign_message(MESSAGE, [rsa_key]), "h", "from" + ":x" * 200_000)
    start = time.perf_counter()
    results = await verify_message(fields * 10 + MESSAGE, world(rsa_key))
    assert time.perf_counter() - start < 2.0
    assert {(r.status, r.reason) for r in results} == {
        (DkimStatus.PERMERROR, "h= names more than 1000 header fields")
    }
    assert len(results) == 10
