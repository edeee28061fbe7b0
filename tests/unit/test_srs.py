"""SRS (mailwright.srs): rewriting forwarded senders, reversing bounces, refusing forgeries."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwright.local import LocalDirectory
from mailwright.smtp.intake import IntakePolicy, Refused, forward
from mailwright.srs import Srs, SrsError, is_srs, load_or_create_secrets

SECRET = b"0123456789abcdef-secret"
NOW = 1_790_000_000.0
DAY = 86400
SRS = Srs((SECRET,))


def test_srs0_round_trip() -> None:
    address = SRS.forward("Alice.Smith@origin.example", "fwd.example", now=NOW)
    assert address.startswith("SRS0=") and address.endswith("@fwd.example")
    assert address.split("=")[3] == "origin.example"
    assert SRS.reverse(address, now=NOW) == "Alice.Smith@origin.example"


def test_case_folding_on_the_way_back_is_harmless() -> None:
    address = SRS.forward("alice@origin.example", "fwd.example", now=NOW)
    assert SRS.reverse(address.upper(), now=NOW).lower() == "alice@origin.example"


def test_local_part_with_equals_signs() -> None:
    address = SRS.forward("a=b=c@origin.example", "fwd.example", now=NOW)
    assert SRS.reverse(address, now=NOW) == "a=b=c@origin.example"


def test_null_sender_and_our_own_addresses_are_kept() -> None:
    assert SRS.forward("", "fwd.example", now=NOW) == ""
    assert SRS.forward("info@fwd.example", "fwd.example", now=NOW) == "info@fwd.example"


def test_srs0_of_another_forwarder_becomes_srs1() -> None:
    theirs = Srs((b"another-forwarders-secret",)).forward(
        "alice@origin.example", "first.example", now=NOW
    )
    ours = SRS.forward(theirs, "fwd.example", now=NOW)
    assert ours.startswith("SRS1=") and "=first.example==" in ours
    # a bounce goes back to the first forwarder, which reverses its own part
    assert SRS.reverse(ours, now=NOW) == theirs
    # and an SRS1 sender forwarded again keeps naming the first hop
    again = SRS.forward(ours.replace("@fwd.example", "@hop2.example"), "fwd.example", now=NOW)
    assert again.startswith("SRS1=") and "=first.example==" in again


def test_expired_address_is_refused() -> None:
    address = SRS.forward("alice@origin.example", "fwd.example", now=NOW)
    assert SRS.reverse(address, now=NOW + 21 * DAY) == "alice@origin.example"
    with pytest.raises(SrsError, match=r"expired \(22 days old, limit 21\)"):
        SRS.reverse(address, now=NOW + 22 * DAY)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("SRS0=aaaaaaaa=zz=origin.example=alice@fwd.example", "wrong hash"),
        ("SRS0=zz=origin.example=alice@fwd.example", "malformed SRS0"),
        ("SRS0====@fwd.example", "malformed SRS0"),
        ("SRS1=aaaaaaaa=first.example==x=y=z=w@fwd.example", "wrong hash"),
        ("SRS1=aaaaaaaa=first.example=x@fwd.example", "malformed SRS1"),
        ("bob@fwd.example", "not an SRS address"),
    ],
)
def test_forged_and_malformed_addresses_are_refused(address: str, reason: str) -> None:
    with pytest.raises(SrsError, match=reason):
        SRS.reverse(address, now=NOW)


def test_a_victim_cannot_be_substituted() -> None:
    good = SRS.forward("alice@origin.example", "fwd.example", now=NOW)
    forged = good.replace("=alice@", "=victim@")
    with pytest.raises(SrsError, match="wrong hash"):
        SRS.reverse(forged, now=NOW)


def test_key_rotation_old_secret_still_reverses() -> None:
    old = SRS.forward("alice@origin.example", "fwd.example", now=NOW)
    rotated = Srs((b"the-new-secret-of-16+", SECRET))
    assert rotated.reverse(old, now=NOW) == "alice@origin.example"
    assert Srs((b"the-new-secret-of-16+",)).forward("a@o.example", "f.example", now=NOW) == (
        rotated.forward("a@o.example", "f.example", now=NOW)
    )


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Srs((b"short",))


def test_secret_file_is_made_private_once(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "srs-secret"
    first = load_or_create_secrets(path)
    assert len(first) == 1 and len(first[0]) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_secrets(path) == first


def test_is_srs() -> None:
    assert is_srs("srs0=x=y=z=w@d.example") and is_srs("SRS1=x@d.example")
    assert not is_srs("srs@d.example") and not is_srs("SRS0@d.example")


# --- the directory: bounces to SRS addresses resolve to the original sender -------------


def _directory(srs: Srs | None = SRS) -> LocalDirectory:
    return LocalDirectory.build(
        ["fwd.example"],
        ["admin@fwd.example"],
        {"info@fwd.example": ["someone@gmail.example", "admin@fwd.example"]},
        srs,
    )


def test_directory_reverses_valid_srs_and_refuses_forgeries() -> None:
    directory = _directory()
    assert directory.forwards_outside()
    address = SRS.forward("alice@origin.example", "fwd.example")
    assert directory.resolve(address) == ("alice@origin.example",)
    assert directory.resolve(address.replace("alice", "mallory")) is None
    # an SRS address at someone else's domain is not ours to reverse
    assert directory.resolve(address.replace("@fwd.example", "@other.example")) is None
    assert _directory(None).resolve(address) is None


# --- intake: the forwarded copy ------------------------------------------------------------


MESSAGE = b"From: alice@origin.example\r\nSubject: hi\r\n\r\nhello\r\n"


def test_forward_rewrites_the_sender_and_seals() -> None:
    policy = IntakePolicy(
        "mx.fwd.example", sealer=lambda m, d: f"X-Seal: {d}\r\n".encode(), srs=SRS
    )
    accepted = forward(
        "alice@origin.example",
        ["someone@gmail.example"],
        MESSAGE,
        policy,
        queue_id="Q2",
        alias="info@fwd.example",
        original="Q1",
        now=NOW,
    )
    assert not isinstance(accepted, Refused)
    assert SRS.reverse(accepted.sender, now=NOW) == "alice@origin.example"
    assert accepted.sender.endswith("@fwd.example")
    assert accepted.recipients == ("someone@gmail.example",)
    assert accepted.message == b"X-Seal: fwd.example\r\n" + MESSAGE
    assert (accepted.meta.origin, accepted.meta.original, accepted.signing) == (
        "forward",
        "Q1",
        None,
    )


def test_forward_of_a_bounce_keeps_the_null_sender() -> None:
    accepted = forward(
        "",
        ["alice@origin.example"],
        MESSAGE,
        IntakePolicy("mx"),
        queue_id="Q",
        alias="x@fwd.example",
    )
    assert not isinstance(accepted, Refused)
    assert accepted.sender == ""
    assert (
        accepted.signing is not None and accepted.signing.reason == "no DKIM key to ARC-seal with"
    )


def test_forward_without_srs_is_deferred() -> None:
    refused = forward(
        "alice@origin.example",
        ["s@g.example"],
        MESSAGE,
        IntakePolicy("mx"),
        queue_id="Q",
        alias="x@f.example",
    )
    assert isinstance(refused, Refused)
    assert refused.reply.code == 451


def test_config_check_creates_nothing_the_secret_comes_on_first_use(tmp_path: Path) -> None:
    from mailwright.config import parse_config
    from mailwright.server import build_runtime

    config = parse_config(
        {
            "hostname": "mx.fwd.example",
            "domains": ["fwd.example"],
            "mailboxes": ["admin@fwd.example"],
            "aliases": {"info@fwd.example": ["someone@gmail.example"]},
            "data_dir": str(tmp_path / "data"),
        },
        tmp_path / "mailwright.toml",
    )
    runtime, _ = build_runtime(config, dev_mode=False)
    # started as root, the server builds this before dropping privileges: nothing on disk yet
    assert not (tmp_path / "data").exists()
    srs = runtime.directory.srs
    assert srs is not None
    address = srs.forward("alice@origin.example", "fwd.example")
    assert (tmp_path / "data" / "srs-secret").stat().st_mode & 0o777 == 0o600
    assert runtime.directory.resolve(address) == ("alice@origin.example",)
    # a restart reads the same secret
    again, _ = build_runtime(config, dev_mode=False)
    assert again.directory.resolve(address) == ("alice@origin.example",)


def test_a_bad_secret_file_is_a_config_error(tmp_path: Path) -> None:
    from mailwright.config import parse_config
    from mailwright.errors import UserError
    from mailwright.server import build_runtime

    secret = tmp_path / "srs-secret"
    secret.write_text("short\n")
    config = parse_config(
        {
            "domains": ["fwd.example"],
            "mailboxes": ["a@fwd.example"],
            "srs": {"secret_file": str(secret)},
        },
        tmp_path / "mailwright.toml",
    )
    with pytest.raises(UserError, match="16 bytes"):
        build_runtime(config, dev_mode=False)
