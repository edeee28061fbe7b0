"""Password hashes and the AUTH failure limiter."""

from __future__ import annotations

import pytest

from mailwright.smtp.auth import (
    AuthLimiter,
    BadHash,
    Credentials,
    hash_password,
    parse_hash,
    verify_password,
)


def test_hash_round_trip_and_format() -> None:
    stored = hash_password("correct horse", ln=10)
    assert stored.startswith("$scrypt$ln=10,r=8,p=1$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert hash_password("x", ln=10) != hash_password("x", ln=10)  # salted


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain",
        "$argon2id$v=19$x$y",
        "$scrypt$ln=10$salt",
        "$scrypt$ln=99,r=8,p=1$YQ$YQ",
        "$scrypt$ln=10,r=8,p=1$!!$!!",
        "$scrypt$n=10$YWJj$YWJj",
    ],
)
def test_bad_hashes(bad: str) -> None:
    with pytest.raises(BadHash):
        parse_hash(bad)
    assert not verify_password("x", bad)


def test_credentials_unknown_user_fails() -> None:
    creds = Credentials([("bob", hash_password("pw", ln=10))])
    assert creds.check("bob", "pw")
    assert not creds.check("bob", "nope")
    assert not creds.check("alice", "pw")


def test_limiter_slows_then_blocks_per_ip() -> None:
    limiter = AuthLimiter(max_failures=3, window=60, delay=1.0)
    assert [limiter.failed("192.0.2.1", now=t) for t in (0, 1, 2)] == [1.0, 2.0, 3.0]
    assert limiter.blocked("192.0.2.1", now=3)
    assert not limiter.blocked("192.0.2.2", now=3)  # per client IP
    assert not limiter.blocked("192.0.2.1", now=61)  # the window passed
    limiter.failed("192.0.2.3", now=0)
    limiter.succeeded("192.0.2.3")
    assert limiter.failed("192.0.2.3", now=1) == 1.0
