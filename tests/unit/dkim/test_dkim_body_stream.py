"""The body canonicalized a piece at a time (spooled messages, RFC 6376 §3.4.3/§3.4.4)
equals the one-shot canonicalization however the body is cut, and signing with the
hash computed that way gives the same signature."""

from __future__ import annotations

import itertools
import random

import pytest

from mailwright.dkim.canonicalization import BodyCanonicalizer, canonicalize_body
from mailwright.dkim.keys import SigningKey
from mailwright.dkim.signer import sign_message
from mailwright.spool import Spool

METHODS = ("simple", "relaxed")
BODIES = [
    b"",
    b"\r\n",
    b"\r\n\r\n\r\n",
    b"a\r\n",
    b"a",
    b"a \t b  \r\n\r\n",
    b"line one \r\n\tline two\t\r\n \r\n\r\n",
    b"x\r\n \r\n\t\r\n",  # relaxed: lines of only WSP become empty and are trailing
    b"a\r\n\r\nb\r\n\r\n\r\n",
    b"  \r\n  a",
    b"trailing space at the end ",
    b"bare\rcr\r\n\r",
]


def pieces_at(body: bytes, cuts: tuple[int, ...]) -> list[bytes]:
    edges = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


def streamed(method: str, pieces: list[bytes]) -> bytes:
    canon = BodyCanonicalizer(method)  # type: ignore[arg-type]
    return b"".join(canon.update(p) for p in pieces) + canon.finish()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("body", BODIES)
def test_every_single_and_double_cut(method: str, body: bytes) -> None:
    want = canonicalize_body(body, method)  # type: ignore[arg-type]
    positions = range(len(body) + 1)
    for cuts in itertools.chain(
        ((),), ((i,) for i in positions), itertools.combinations(positions, 2)
    ):
        assert streamed(method, pieces_at(body, cuts)) == want, (body, cuts)


@pytest.mark.parametrize("method", METHODS)
def test_random_bodies_random_cuts(method: str) -> None:
    rng = random.Random(16)
    alphabet = [b"a", b" ", b"\t", b"\r\n", b"\r\n", b"."]
    for _ in range(3000):
        body = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        cuts = tuple(sorted(rng.sample(range(len(body) + 1), min(3, len(body) + 1))))
        want = canonicalize_body(body, method)  # type: ignore[arg-type]
        assert streamed(method, pieces_at(body, cuts)) == want, (body, cuts)


def test_many_empty_lines_are_counted_not_held() -> None:
    canon = BodyCanonicalizer("simple")
    assert canon.update(b"text\r\n") == b"text"
    for _ in range(1000):
        assert canon.update(b"\r\n" * 1000) == b""  # a million empty lines: nothing held
    assert len(canon.update(b"more\r\n")) == 2 * 1_000_001 + 4
    assert canon.finish() == b"\r\n"


def test_signing_with_a_spooled_body_hash(rsa_key: SigningKey, tmp_path) -> None:  # type: ignore[no-untyped-def]
    head = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: big\r\n\r\n"
    body = b"some  text \t\r\n" * 100_000 + b"\r\n\r\n"
    spool = Spool(tmp_path)
    spool.write(head + body)
    spooled = spool.finish()
    assert spooled is not None
    spooled = spooled.hash_body(("simple", "relaxed"))
    for c in (("relaxed", "relaxed"), ("simple", "simple")):
        whole = sign_message(head + body, [rsa_key], canonicalization=c, timestamp=1)
        streamed_sig = sign_message(
            spooled.head,
            [rsa_key],
            canonicalization=c,
            timestamp=1,
            body_hashes=spooled.body_hashes,
        )
        assert streamed_sig == whole


async def _verify_both_ways(message: bytes, resolver: object) -> tuple[list[str], str]:
    from mailwright.arc import verify_chain
    from mailwright.dkim.body import digest_body
    from mailwright.dkim.verifier import verify_message, wanted_digests

    head, _, body = message.partition(b"\r\n\r\n")
    head += b"\r\n\r\n"
    pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    digests = digest_body(pieces, wanted_digests(head))
    whole = await verify_message(message, resolver)  # type: ignore[arg-type]
    streamed_results = await verify_message(head, resolver, body=digests)  # type: ignore[arg-type]
    assert whole and [(r.status, r.reason) for r in streamed_results] == [
        (r.status, r.reason) for r in whole
    ]
    arc_whole = await verify_chain(message, resolver)  # type: ignore[arg-type]
    arc_streamed = await verify_chain(head, resolver, body=digests)  # type: ignore[arg-type]
    assert (arc_streamed.status, arc_streamed.reason) == (arc_whole.status, arc_whole.reason)
    return [str(r.status) for r in whole], str(arc_whole.status)


async def test_verifying_with_streamed_body_digests(
    rsa_key: SigningKey, ed_key: SigningKey
) -> None:
    """A spooled inbound message is verified from its header section and the digests of
    its body (DKIM with and without l=, simple and relaxed; ARC): the same results as
    verifying it whole, pass and fail alike."""
    import dkim as dkimpy

    from mailwright.arc import seal_message
    from mailwright.dkim import dns_record_value
    from mailwright.dns import MemoryResolver

    resolver = MemoryResolver()
    for key in (rsa_key, ed_key):
        resolver.add(
            f"{key.selector}._domainkey.example.com", "TXT", dns_record_value(key.private_key)
        )
    head = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: s\r\n\r\n"
    body = b"text  with \t spaces \r\n" * 5000 + b"\r\n\r\n"
    message = head + body
    for c in (("relaxed", "relaxed"), ("simple", "simple")):
        message = sign_message(message, [rsa_key, ed_key], canonicalization=c) + message
    from cryptography.hazmat.primitives import serialization

    pem = rsa_key.private_key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    message = (
        dkimpy.sign(message, b"rsa1", b"example.com", pem, length=True, include_headers=[b"from"])
        + message
    )
    message = seal_message(message, rsa_key, "mx.example.net") + message
    assert await _verify_both_ways(message, resolver) == (["pass"] * 5, "pass")
    appended = message + b"appended after l=\r\n"
    statuses, arc = await _verify_both_ways(appended, resolver)
    assert statuses == ["pass"] + ["fail"] * 4 and arc == "fail"  # l= covers the old body
    tampered = message.replace(b"text  with", b"TEXT  with", 1)
    assert await _verify_both_ways(tampered, resolver) == (["fail"] * 5, "fail")
