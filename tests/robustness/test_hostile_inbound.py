"""The inbound pipeline (SPF, DKIM, DMARC, Authentication-Results) on hostile messages:
check_message always returns a verdict with one well-formed header, within bounded work."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from robust_support import NASTY_CHARS, mutate, robust, run

from mailwright.authres import parse
from mailwright.dns import MemoryResolver
from mailwright.inbound import EnvelopeAuth, check_envelope, check_message, from_domains

AUTHSERV = "mx.example.com"
MESSAGE = (
    b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hi\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; h=from; bh=AAAA; b=AAAA\r\n"
    b"Authentication-Results: mx.example.com; spf=pass\r\n\r\nbody\r\n"
)


def world() -> MemoryResolver:
    r = MemoryResolver()
    r.add("example.com", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    r.add("_dmarc.example.com", "TXT", "v=DMARC1; p=reject; rua=mailto:d@example.com")
    return r


def envelope(r: MemoryResolver, mail_from: str = "a@example.com") -> EnvelopeAuth:
    return run(check_envelope("192.0.2.1", "mail.example.com", mail_from, r, receiver=AUTHSERV))


FROM_PIECES = [
    "a@example.com",
    "<b@example.net>",
    '"x, y" <c@example.org>',
    "=?utf-8?q?=C3=A9?= <d@example.com>",
    ",",
    ";",
    ":",
    "group:",
    "(comment)",
    "<",
    ">",
    "@",
    '"',
    "\\",
    "[1.2.3.4]",
    "é",
]


@robust(150)
@given(
    st.lists(
        st.lists(st.one_of(st.sampled_from(FROM_PIECES), st.sampled_from(NASTY_CHARS)), max_size=8)
        .map("".join)
        .map(lambda v: v.replace("\r", " ").replace("\n", " ")),
        max_size=3,
    )
)
def test_from_domains_never_raises(values: list[str]) -> None:
    message = b"".join(b"From: " + v.encode() + b"\r\n" for v in values) + b"\r\nbody"
    domains, problem = from_domains(message)
    assert domains or problem


@robust(60)
@given(mutate(MESSAGE))
def test_check_message_gives_a_verdict_with_one_parsable_header(message: bytes) -> None:
    r = world()
    verdict = run(check_message(message, envelope(r), r, authserv_id=AUTHSERV))
    assert verdict.action in ("deliver", "junk", "reject")
    assert verdict.header.endswith("\r\n")
    name, _, value = verdict.header.partition(":")
    assert name == "Authentication-Results"
    assert parse(value.replace("\r\n", "")).authserv_id == AUTHSERV


# --- regressions: found here, fixed in inbound.py -----------------------------------------


def test_from_with_deeply_nested_comments_is_not_a_crash() -> None:
    domains, problem = from_domains(b"From: " + b"(" * 10_000 + b"\r\n\r\nbody")
    assert domains == () and problem


def test_many_from_domains_are_bounded() -> None:
    r = world()
    env = envelope(r)
    before = len(r.queries)
    addrs = ", ".join(f"a@d{i}.example" for i in range(1000))
    message = f"From: {addrs}\r\nSubject: x\r\n\r\nbody\r\n".encode()
    verdict = run(check_message(message, env, r, authserv_id=AUTHSERV))
    assert len(r.queries) - before <= 200
    assert len(verdict.header) <= 8192
