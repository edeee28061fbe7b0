"""SMTP AUTH credentials: stored hashes come from the config (untrusted input, checked at
startup by parse_hash) and passwords from clients. parse_hash raises only BadHash, and
what it accepts verifies in bounded time and memory without raising."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from robust_support import mixed_text, robust

from mailwright.smtp.auth import BadHash, parse_hash, verify_password

SALT = "AAAAAAAAAAAAAAAAAAAAAA"


@robust(800)
@given(
    mixed_text(
        ["$", "scrypt", "ln=", "r=", "p=", "10", "15", "8", "1", "99", "-1", ",", "=", SALT, "Zm9v"]
    )
)
def test_parse_hash_raises_only_bad_hash(text: str) -> None:
    try:
        parsed = parse_hash(text)
    except BadHash as exc:
        assert str(exc)
        return
    assert 10 <= parsed.ln <= 20 and parsed.salt and len(parsed.digest) >= 16


@robust(100)
@given(st.text(max_size=50), st.sampled_from(["", "$", "$scrypt$", "$scrypt$ln=10,r=1,p=1$$"]))
def test_verify_password_with_a_bad_hash_is_false(password: str, stored: str) -> None:
    assert verify_password(password, stored) is False


@pytest.mark.parametrize(
    "params", ["ln=20,r=32,p=1", "ln=17,r=32,p=16", "ln=19,r=8,p=1", "ln=16,r=16,p=9"]
)
def test_hash_parameters_are_bounded_as_a_whole(params: str) -> None:
    """ln, r and p each in range, but together beyond 256 MiB (128·r·N, RFC 7914 §6) or
    16 times the default cost: BadHash at startup, not a ValueError or a 45 s AUTH."""
    with pytest.raises(BadHash):
        parse_hash(f"$scrypt${params}${SALT}${SALT}")


@pytest.mark.parametrize("params", ["ln=18,r=8,p=2", "ln=15,r=8,p=16", "ln=16,r=16,p=4"])
def test_hash_parameters_at_the_limits_are_accepted(params: str) -> None:
    """256 MiB and 16 times the default cost are still readable (stronger than default)."""
    parsed = parse_hash(f"$scrypt${params}${SALT}${SALT}")
    assert (parsed.r * parsed.p) << parsed.ln == 16 << 18
