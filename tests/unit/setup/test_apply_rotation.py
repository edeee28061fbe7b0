"""Pure parts of ``records apply`` and ``dkim rotate`` (issue 17 items 11, 12)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailwright.errors import UsageError
from mailwright.setup.apply import Change, parse_server, read_tsig_key
from mailwright.setup.rotation import (
    Rotation,
    new_selector_name,
    parse_duration,
    rewrite_config,
)

DEC_2026 = datetime(2026, 12, 4, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "name", "algorithm", "secret"),
    [
        ("key:\n  - id: upd\n    algorithm: hmac-sha256\n    secret: c2VjcmV0\n", "upd",
         "hmac-sha256", "c2VjcmV0"),
        ('key "upd" {\n\talgorithm hmac-sha512;\n\tsecret "c2VjcmV0";\n};\n', "upd",
         "hmac-sha512", "c2VjcmV0"),
        ("HMAC-SHA256:upd:c2VjcmV0\n", "upd", "hmac-sha256", "c2VjcmV0"),
    ],
)  # fmt: skip
def test_tsig_key_forms(text: str, name: str, algorithm: str, secret: str) -> None:
    key = read_tsig_key(text)
    assert (key.name, key.algorithm, key.secret) == (name, algorithm, secret)


def test_no_tsig_key() -> None:
    with pytest.raises(UsageError, match="no TSIG key found"):
        read_tsig_key("hello")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("192.0.2.53", ("192.0.2.53", 53)), ("127.0.0.1:5300", ("127.0.0.1", 5300)),
     ("[2001:db8::53]:5300", ("2001:db8::53", 5300)), ("ns1.example.net", ("ns1.example.net", 53))],
)  # fmt: skip
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:0", "127.0.0.1:99999", ":53", "h:x"])
def test_bad_server(text: str) -> None:
    with pytest.raises(UsageError):
        parse_server(text)


def test_new_selector_names() -> None:
    assert new_selector_name("mail", DEC_2026, {"mail"}) == "mail202612"
    assert new_selector_name("mail202606", DEC_2026, set()) == "mail202612"
    assert new_selector_name("mail", DEC_2026, {"mail202612"}) == "mail202612b"
    assert new_selector_name("mail-ed", DEC_2026, set()) == "mail-ed202612"


@pytest.mark.parametrize(("text", "seconds"), [("7d", 604800), ("12h", 43200), ("0s", 0),
                                                ("2w", 1209600), ("180d", 15552000)])  # fmt: skip
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration() -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration("7 days")


CONFIG = """\
# top comment
[[dkim]]
# The d= domain of the signature.
domain = "example.com"
# The s= selector: published at mail._domainkey.
selector = "mail"
private_key = "keys/example.com.mail.rsa.pem"
algorithm = "rsa"

[[dkim]]
domain = "example.com"
selector = "mail-ed"
private_key = "keys/example.com.mail-ed.ed25519.pem"
algorithm = "ed25519"
"""


def test_rewrite_config_changes_only_that_entry(tmp_path: Path) -> None:
    rotation = Rotation("example.com", "mail", str(tmp_path / "keys/old.pem"), "mail202612",
                        str(tmp_path / "keys/example.com.mail202612.rsa.pem"), "rsa",
                        "published", DEC_2026)  # fmt: skip
    text = rewrite_config(CONFIG, rotation, tmp_path)
    assert 'selector = "mail202612"' in text
    assert 'private_key = "keys/example.com.mail202612.rsa.pem"' in text
    assert "published at mail202612._domainkey." in text
    assert 'selector = "mail-ed"' in text and "mail-ed.ed25519.pem" in text
    assert text.startswith("# top comment\n")
    other = Rotation("example.org", "mail", "", "x", "", "rsa", "published", 0.0)
    with pytest.raises(UsageError, match="no \\[\\[dkim\\]\\] entry"):
        rewrite_config(CONFIG, other, tmp_path)


def test_change_descriptions() -> None:
    change = Change(
        "change", "example.com", "MX", ("10 old.example.net.",), ("10 mail.example.com.",)
    )
    assert change.describe() == (
        "~ change example.com MX 10 old.example.net.  →  10 mail.example.com."
    )
