"""VERP bounce addresses: per message and recipient, HMAC-protected, expiring."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailwright.verp import (
    DEFAULT_MAX_AGE_DAYS,
    BounceToken,
    VerpError,
    bounce_address,
    is_bounce_address,
    load_or_create_key,
    parse_bounce_address,
)

KEY = b"k" * 32
NOW = 1_790_000_000.0
QID = "0ABCDEFGHJK123"


def test_round_trip_names_message_and_recipient() -> None:
    address = bounce_address(KEY, QID, 7, "app.example", now=NOW)
    assert address.startswith("bounces+0abcdefghjk123-7-") and address.endswith("@app.example")
    assert len(address.partition("@")[0]) <= 64  # RFC 5321 §4.5.3.1.1
    token = parse_bounce_address(KEY, address, now=NOW)
    assert token == BounceToken(QID, 7, int(NOW // 86400))


def test_case_folded_by_a_remote_mta_still_verifies() -> None:
    address = bounce_address(KEY, QID, 0, "app.example", now=NOW)
    assert parse_bounce_address(KEY, address.upper(), now=NOW).queue_id == QID


@pytest.mark.parametrize(
    "mutate",
    [
        lambda a: a.replace("-7-", "-8-"),  # another recipient
        lambda a: a.replace("0abcdefghjk123", "0abcdefghjk124"),  # another message
        lambda a: (
            a[: a.index("@") - 1] + ("a" if a[a.index("@") - 1] != "a" else "b") + a[a.index("@") :]
        ),
        lambda a: "bounces+@app.example",
        lambda a: "bounces@app.example",
        lambda a: "bounces+" + "x" * 500 + "@app.example",
        lambda a: "bounces+a-b-c-\u00e9\u00e9@app.example",
    ],
)
def test_forged_tokens_are_refused(mutate: object) -> None:
    address = bounce_address(KEY, QID, 7, "app.example", now=NOW)
    with pytest.raises(VerpError):
        parse_bounce_address(KEY, mutate(address), now=NOW)  # type: ignore[operator]


def test_another_key_is_refused() -> None:
    address = bounce_address(KEY, QID, 1, "app.example", now=NOW)
    with pytest.raises(VerpError, match="HMAC"):
        parse_bounce_address(b"x" * 32, address, now=NOW)


def test_old_tokens_expire() -> None:
    address = bounce_address(KEY, QID, 1, "app.example", now=NOW)
    later = NOW + (DEFAULT_MAX_AGE_DAYS + 1) * 86400
    with pytest.raises(VerpError, match="days old"):
        parse_bounce_address(KEY, address, now=later)
    assert parse_bounce_address(KEY, address, now=NOW + 29 * 86400).recipient_index == 1


def test_is_bounce_address() -> None:
    assert is_bounce_address("bounces+abc@app.example")
    assert is_bounce_address("Bounces@app.example")
    assert not is_bounce_address("bouncesx@app.example")
    assert not is_bounce_address("alice@app.example")


def test_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "data")
    assert len(key) == 32
    assert os.stat(tmp_path / "data" / "verp.key").st_mode & 0o777 == 0o600
    assert load_or_create_key(tmp_path / "data") == key


def test_truncated_key_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "verp.key").write_bytes(b"short")
    with pytest.raises(VerpError, match="too short"):
        load_or_create_key(tmp_path)
