"""Every vector of ../shared/testdata/dkim/manifest.json, and deterministic RFC 8463 signing."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from mailwright.dkim import DkimStatus, SigningKey, load_signing_key, verify_message
from mailwright.dkim.message import split_message
from mailwright.dkim.signer import sign_data as _sign
from mailwright.dkim.verifier import header_hash_input, parse_signature
from mailwright.dns import MemoryResolver

# The manifest names vectors by file; loaded lazily so that a missing data dir fails loudly.
_VECTOR_FILES = [
    "rfc8463/signed.eml",
    "stalwart-mail-auth/001.txt",
    "stalwart-mail-auth/002.txt",
    "stalwart-mail-auth/003.txt",
    "stalwart-mail-auth/004.txt",
    "stalwart-mail-auth/005.txt",
    "stalwart-mail-auth/006.txt",
    "dkimpy/test2.message",
    "dkimpy/ed25519test2.msg",
    "dkimpy/rfc6376.signed.msg",
    "dkimpy/rfc6376.signed.rsa.msg",
    "dkimpy/rfc6376.signed.no_t.msg",
    "dkimpy/test.message.baddomain",
]

# What the manifest's boolean "fail" means precisely for us (RFC 8601 result words).
_EXACT_FAILURES = {
    # b= was not recomputed after t= was dropped: a real signature mismatch
    "dkimpy/rfc6376.signed.no_t.msg": (DkimStatus.FAIL, "signature mismatch"),
    # d= is not a domain name: the signature is unusable, nothing is looked up
    "dkimpy/test.message.baddomain": (DkimStatus.PERMERROR, "is not a domain name"),
}


def _load(dkim_data: Path, vector: dict[str, Any]) -> tuple[bytes, MemoryResolver]:
    resolver = MemoryResolver()
    data = (dkim_data / vector["file"]).read_bytes()
    lines: list[str] = []
    if vector.get("format") == "stalwart":
        dns, _, data = data.partition(b"\n\n")
        lines = dns.decode().splitlines()
    elif "dns_file" in vector:
        lines = (dkim_data / vector["dns_file"]).read_text().splitlines()
    for line in lines:
        name, _, value = line.partition(" ")
        resolver.add(name, "TXT", value)
    for name, value in vector.get("dns", {}).items():
        if value.startswith("@"):
            value = (dkim_data / value[1:]).read_text().strip()
        resolver.add(name, "TXT", value)
    return data, resolver


def test_manifest_lists_these_vectors(manifest: dict[str, Any]) -> None:
    assert [v["file"] for v in manifest["vectors"]] == _VECTOR_FILES


@pytest.mark.parametrize("file", _VECTOR_FILES)
async def test_vector(dkim_data: Path, manifest: dict[str, Any], file: str) -> None:
    vector = next(v for v in manifest["vectors"] if v["file"] == file)
    message, resolver = _load(dkim_data, vector)
    results = await verify_message(message, resolver, now=vector.get("now"))
    assert results
    if "signatures" in vector:
        assert len(results) == len(vector["signatures"])
        for spec in vector["signatures"]:
            r = results[spec["index"]]
            assert (r.algorithm, r.canonicalization) == (spec["a"], spec["c"])
            assert str(r.status) == spec["expect"], r.reason
            if "key_bits" in spec:
                assert r.key_bits == spec["key_bits"]
    elif vector["expect_all"] == "pass":
        assert [str(r.status) for r in results] == ["pass"] * len(results), results
        assert all(r.body_hash_ok for r in results)
    else:
        status, reason = _EXACT_FAILURES[file]
        assert [r.status for r in results] == [status] * len(results)
        assert all(reason in r.reason for r in results)


async def test_x_expiry_vector_fails_now(dkim_data: Path, manifest: dict[str, Any]) -> None:
    vector = next(v for v in manifest["vectors"] if "now" in v)
    message, resolver = _load(dkim_data, vector)
    results = await verify_message(message, resolver)  # verified at the current time
    assert [r.status for r in results] == [DkimStatus.FAIL]
    assert results[0].reason.startswith("signature expired")


async def test_rfc8463_example_details(dkim_data: Path, manifest: dict[str, Any]) -> None:
    vector = manifest["vectors"][0]
    message, resolver = _load(dkim_data, vector)
    ed, rsa = await verify_message(message, resolver)
    assert (ed.domain, ed.selector, ed.identity) == (
        "football.example.com",
        "brisbane",
        "@football.example.com",
    )
    assert ed.timestamp == 1528637909
    assert ed.signed_headers == (
        "from", "to", "subject", "date", "message-id", "from", "subject", "date"
    )  # fmt: skip
    assert rsa.key_bits == 1024 and ed.key_bits == 256
    assert ed.header_b == "/gCrinpc"


@pytest.mark.parametrize(
    ("selector", "key_file"),
    [("brisbane", "rfc8463/ed25519.private.b64"), ("test", "rfc8463/rsa.private.pem")],
)
def test_rfc8463_signatures_reproduced(dkim_data: Path, selector: str, key_file: str) -> None:
    """Our canonicalization + hashing + signing gives byte-identical b= (both are deterministic)."""
    parsed = split_message((dkim_data / "rfc8463/signed.eml").read_bytes())
    fields = [f.raw for f in parsed.headers if f.key == "dkim-signature"]
    sig = next(
        s
        for s in (parse_signature(i, raw) for i, raw in enumerate(fields))
        if s.selector == selector
    )
    key: SigningKey = load_signing_key(dkim_data / key_file, "football.example.com", selector)
    produced = _sign(key, header_hash_input(parsed, sig))
    assert base64.b64encode(produced) == base64.b64encode(sig.signature)
