"""Shared helpers for the DKIM unit tests: the shared test data and in-memory DNS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailwright.dkim import SigningKey, generate_key

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "testdata" / "dkim"


@pytest.fixture(scope="session")
def dkim_data() -> Path:
    assert (DATA / "manifest.json").is_file(), f"missing shared test data at {DATA}"
    return DATA


@pytest.fixture(scope="session")
def manifest(dkim_data: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((dkim_data / "manifest.json").read_text())
    return data


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return SigningKey.from_key("example.com", "rsa1", generate_key("rsa", 2048))


@pytest.fixture(scope="session")
def ed_key() -> SigningKey:
    return SigningKey.from_key("example.com", "ed1", generate_key("ed25519"))
