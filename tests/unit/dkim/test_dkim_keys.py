"""Keys: generation, PEM files, opendkim-genkey style records, key record parsing (§3.6.1)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwright.dkim import (
    KeyFileExistsError,
    KeyRecordError,
    SigningKey,
    dns_record_value,
    generate_key,
    load_private_key,
    load_signing_key,
    parse_key_record,
    txt_strings,
    write_key_files,
    zone_lines,
)
from mailwright.dkim.keys import key_size_warning, public_keys_match


def _dns_value(path: Path) -> str:
    return path.read_text().strip()


def test_rfc8463_records(dkim_data: Path) -> None:
    records = dict(
        line.split(" ", 1) for line in (dkim_data / "rfc8463/dns.txt").read_text().splitlines()
    )
    ed = parse_key_record(records["brisbane._domainkey.football.example.com"])
    assert ed.key_type == "ed25519"
    assert isinstance(ed.public_key, ed25519.Ed25519PublicKey)
    assert ed.bits == 256
    rsa_record = parse_key_record(records["test._domainkey.football.example.com"])
    assert rsa_record.key_type == "rsa"
    assert rsa_record.bits == 1024


def test_implicit_rsa_and_bare_pkcs1(dkim_data: Path) -> None:
    assert parse_key_record(_dns_value(dkim_data / "dkimpy/test2.txt")).key_type == "rsa"
    for name in ("1024_testkey_wo_markers.pub.rsa.txt", "2048_testkey_wo_markers.pub.rsa.txt"):
        text = _dns_value(dkim_data / "dkimpy" / name)
        record = parse_key_record(text if "p=" in text else f"v=DKIM1; k=rsa; p={text}")
        assert record.bits in (1024, 2048)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("badk.txt", "unknown key type"),
        ("badversion.txt", "unsupported key record version"),
        ("test_bad.txt", "not an RSA public key"),
    ],
)
def test_bad_records_from_dkimpy(dkim_data: Path, name: str, message: str) -> None:
    with pytest.raises(KeyRecordError, match=message):
        parse_key_record(_dns_value(dkim_data / "dkimpy" / name))


def test_service_type_and_flags(dkim_data: Path) -> None:
    record = parse_key_record(_dns_value(dkim_data / "dkimpy/test_tlsrpt.txt"))
    assert record.services == ("tlsrpt",)
    record = parse_key_record(
        "v=DKIM1; k=ed25519; t=y:s; p=" + dns_record_value(generate_key("ed25519"))[-44:]
    )
    assert record.flags == ("y", "s")
    assert record.testing and record.strict


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k=rsa; v=DKIM1; p=AAAA", "v= is not the first tag"),
        ("v=DKIM1; k=rsa", "no p= tag"),
        ("v=DKIM1; p=@@@notbase64", "not valid base64"),
        ("v=DKIM1; k=ed25519; p=AAAA", "32 bytes"),
        ("v=DKIM1; k=rsa; k=rsa; p=", "duplicate tag k="),
    ],
)
def test_malformed_records(text: str, message: str) -> None:
    with pytest.raises(KeyRecordError, match=message):
        parse_key_record(text)


def test_revoked_key() -> None:
    record = parse_key_record("v=DKIM1; k=rsa; p=")
    assert record.revoked
    assert record.bits is None


def test_generate_sizes() -> None:
    with pytest.raises(ValueError, match="at least 1024"):
        generate_key("rsa", 768)
    assert isinstance(generate_key("ed25519"), ed25519.Ed25519PrivateKey)
    assert key_size_warning(1024) is not None
    assert key_size_warning(2048) is None


def test_record_value_and_zone_lines(rsa_key: SigningKey) -> None:
    value = dns_record_value(rsa_key.private_key, testing=True)
    assert value.startswith("v=DKIM1; h=sha256; k=rsa; t=y; p=MIIB")
    assert parse_key_record(value).testing
    strings = txt_strings(value)
    assert "".join(strings) == value
    assert all(len(s.encode()) <= 255 for s in strings)
    assert strings[0] == "v=DKIM1; h=sha256; k=rsa; t=y; "
    text = zone_lines("rsa1", "example.com", value)
    assert re.fullmatch(
        r'rsa1\._domainkey\tIN\tTXT\t\( "v=DKIM1; h=sha256; k=rsa; t=y; "'
        r'(\n\t  "[^"]{1,255}")+ \)  ; ----- DKIM key rsa1 for example\.com\n',
        text,
    )


def test_write_key_files(tmp_path: Path) -> None:
    key = generate_key("ed25519")
    private, txt = write_key_files(tmp_path, "sel", "example.com", key)
    assert private == tmp_path / "sel.private" and txt == tmp_path / "sel.txt"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public_keys_match(load_private_key(private.read_bytes()), key)
    assert "k=ed25519" in txt.read_text()
    with pytest.raises(KeyFileExistsError, match="already exists"):
        write_key_files(tmp_path, "sel", "example.com", generate_key("ed25519"))
    assert public_keys_match(load_private_key(private.read_bytes()), key)  # untouched
    other = generate_key("ed25519")
    write_key_files(tmp_path, "sel", "example.com", other, force=True)
    assert public_keys_match(load_private_key(private.read_bytes()), other)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_load_key_formats(dkim_data: Path) -> None:
    for name in ("test.private", "2048_testkey.key", "2048_testkey_PKCS8.key"):
        key = load_signing_key(dkim_data / "dkimpy" / name, "example.com", "s")
        assert isinstance(key.private_key, rsa.RSAPrivateKey)
        assert key.algorithm == "rsa-sha256"
    ed = load_signing_key(dkim_data / "rfc8463/ed25519.private.b64", "example.com", "s")
    assert ed.algorithm == "ed25519-sha256"
    # the parsed key is cached: the MTA loads it per message
    again = load_signing_key(dkim_data / "rfc8463/ed25519.private.b64", "example.com", "t")
    assert again.private_key is ed.private_key
    with pytest.raises(ValueError):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError):
        load_private_key(b"not a key")


def test_signing_key_validation() -> None:
    key = generate_key("ed25519")
    with pytest.raises(ValueError, match="does not match"):
        SigningKey("example.com", "s", "rsa-sha256", key)
    with pytest.raises(ValueError, match="invalid signing domain"):
        SigningKey("exa mple.com", "s", "ed25519-sha256", key)
    with pytest.raises(ValueError, match="invalid selector"):
        SigningKey("example.com", "s;x", "ed25519-sha256", key)
    assert SigningKey("Example.COM.", "s", "ed25519-sha256", key).domain == "example.com"


def test_txt_strings_limits() -> None:
    long_head = "v=DKIM1; n=" + "x" * 300 + "; p=" + "A" * 600
    strings = txt_strings(long_head)
    assert "".join(strings) == long_head
    assert all(len(s) <= 255 for s in strings)
    assert strings[2].startswith("p=")  # the key still starts its own string
    assert txt_strings("no key here") == ["no key here"]
