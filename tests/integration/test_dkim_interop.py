"""DKIM interop with independent implementations, through the real test DNS server.

- dkimpy verifies what mailwright signs (its ``dnsfunc`` asks our NSD) and signs
  what mailwright verifies;
- OpenDKIM: ``opendkim-testmsg`` verifies what mailwright signs, and libopendkim
  (the library behind the OpenDKIM milter and tools, called through ctypes because
  ``opendkim-testmsg`` can only make rsa-sha1 relaxed/simple signatures) signs what
  mailwright verifies.

Every pair: RSA-2048 and Ed25519, each of the four canonicalization pairs.

libopendkim resolves keys through the C library resolver, which only talks to
port 53 of the servers in /etc/resolv.conf, while the ``dns_world`` NSD listens on
a high port.  So ``opendkim-testmsg`` runs in a private user + network + mount
namespace (``unshare -r -n -m``, no root needed), where a second NSD serves the
very zone file ``dns_world`` serves, on 127.0.0.1:53, and a bind-mounted
resolv.conf points there.  Nothing outside the namespace changes.
"""

from __future__ import annotations

import asyncio
import base64
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from mailwright.dkim import (
    DkimStatus,
    SigningKey,
    generate_key,
    private_key_pem,
    sign_message,
    txt_strings,
    verify_message,
)
from mailwright.dkim.keys import dns_record_value
from mailwright.testing.nsd import NsdServer
from mailwright.testing.opendkim import libopendkim_sign
from mailwright.testing.port53 import NAMESPACE, NO_DNS, dns_script

pytestmark = pytest.mark.integration

ORIGIN = "interop.example"
CANONS = [
    ("simple", "simple"),
    ("simple", "relaxed"),
    ("relaxed", "simple"),
    ("relaxed", "relaxed"),
]
ALGS = ["rsa", "ed25519"]

MESSAGE = (
    b"Received: from client.interop.example ([192.0.2.7]) by mx.interop.example\r\n"
    b"\twith ESMTPS; Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    b"From: Interop Sender <sender@interop.example>\r\n"
    b"To: Someone <someone@example.net>, Other <other@example.net>\r\n"
    b"Subject: Interop   test\r\n"
    b"  with a folded subject\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <interop-1@interop.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello,  this body has\t tabs and  double spaces   \r\n"
    b"and trailing whitespace on lines.\t\r\n"
    b"\r\n" + "Non-ASCII: Grüße.\r\n".encode() + b"\r\n\r\n"
)


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {
        "rsa": SigningKey.from_key(ORIGIN, "rsa2048", generate_key("rsa", 2048)),
        "ed25519": SigningKey.from_key(ORIGIN, "ed1", generate_key("ed25519")),
    }


@pytest.fixture
def world(dns_world: NsdServer, keys: dict[str, SigningKey]) -> NsdServer:
    lines = []
    for key in keys.values():
        strings = " ".join(f'"{s}"' for s in txt_strings(dns_record_value(key.private_key)))
        lines.append(f"{key.selector}._domainkey TXT {strings}")
    dns_world.set_zone(ORIGIN, "\n".join(lines) + "\n")
    return dns_world


def _dnsfunc(world: NsdServer) -> Callable[..., bytes]:
    """dkimpy's DNS hook, answered by our NSD through mailwright's resolver."""

    def lookup(name: bytes | str, timeout: float = 5) -> bytes:
        qname = name.decode() if isinstance(name, bytes) else name
        result = asyncio.run(world.resolver().txt(qname.rstrip(".")))
        return result.records[0].encode() if result.ok else b""

    return lookup


def _dkimpy_key(key: SigningKey) -> bytes:
    """dkimpy takes RSA keys as PEM and Ed25519 keys as the base64 32-byte seed."""
    if key.algorithm == "rsa-sha256":
        return private_key_pem(key.private_key)
    raw = key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw)


# --- mailwright → dkimpy ------------------------------------------------------------


@pytest.mark.parametrize("canon", CANONS, ids="/".join)
@pytest.mark.parametrize("alg", ALGS)
def test_dkimpy_verifies_mailwright(
    world: NsdServer, keys: dict[str, SigningKey], alg: str, canon: tuple[str, str]
) -> None:
    signed = sign_message(MESSAGE, [keys[alg]], canonicalization=canon) + MESSAGE
    assert dkim.verify(signed, dnsfunc=_dnsfunc(world)) is True
    tampered = signed.replace(b"tabs and", b"tabs or")
    assert dkim.verify(tampered, dnsfunc=_dnsfunc(world)) is False


# --- dkimpy → mailwright ------------------------------------------------------------


@pytest.mark.parametrize("canon", CANONS, ids="/".join)
@pytest.mark.parametrize("alg", ALGS)
async def test_mailwright_verifies_dkimpy(
    world: NsdServer, keys: dict[str, SigningKey], alg: str, canon: tuple[str, str]
) -> None:
    key = keys[alg]
    fields = dkim.sign(
        MESSAGE,
        key.selector.encode(),
        key.domain.encode(),
        _dkimpy_key(key),
        canonicalize=(canon[0].encode(), canon[1].encode()),
        signature_algorithm=key.algorithm.encode(),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"from"],
    )
    [result] = await verify_message(fields + MESSAGE, world.resolver())
    assert (result.status, result.reason) == (DkimStatus.PASS, "signature verified")
    assert (result.algorithm, result.canonicalization) == (key.algorithm, "/".join(canon))


# --- mailwright → OpenDKIM (opendkim-testmsg) -----------------------------------------


def in_opendkim_namespace(
    world: NsdServer, command: list[str], tmp_path: Path, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    """Run an OpenDKIM tool whose DNS is answered by NSD serving ``world``'s zone on port 53."""
    d = tmp_path / "ns"
    d.mkdir(exist_ok=True)
    (d / "stdin").write_bytes(stdin)
    script = f"""{dns_script(d, {ORIGIN: world.zone_text(ORIGIN)})}
{shlex.join(command)} < {shlex.quote(str(d))}/stdin; rc=$?
kill $nsd_pid; wait $nsd_pid
exit $rc
"""
    proc = subprocess.run(
        [*NAMESPACE, script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != NO_DNS, proc.stderr + (d / "nsd.log").read_text(errors="replace")
    return proc


def opendkim_testmsg_verify(world: NsdServer, message: bytes, tmp_path: Path) -> tuple[int, str]:
    """``opendkim-testmsg`` in verify mode: exit status and its complaint, if any."""
    proc = in_opendkim_namespace(world, ["opendkim-testmsg"], tmp_path, message)
    return proc.returncode, proc.stderr


def test_opendkim_testkey_accepts_our_record_and_key(
    world: NsdServer, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    """``opendkim-testkey`` finds the record we publish and matches it to our key file.

    It resolves through libunbound (not the C library), configured here with a stub
    zone pointing at the namespace's NSD. It handles RSA keys only
    (``EVP_PKEY_get1_RSA() failed`` on Ed25519), so only RSA is tested.
    """
    key = keys["rsa"]
    key_file = tmp_path / f"{key.selector}.private"
    key_file.write_bytes(private_key_pem(key.private_key))
    key_file.chmod(0o600)
    unbound = tmp_path / "unbound.conf"
    unbound.write_text(
        'server:\n    do-not-query-localhost: no\n    local-zone: "example." nodefault\n'
        f'stub-zone:\n    name: "{ORIGIN}"\n    stub-addr: 127.0.0.1@53\n'
    )
    conf = tmp_path / "opendkim.conf"
    conf.write_text(f"ResolverConfiguration {unbound}\n")
    cmd = ["opendkim-testkey", "-x", str(conf), "-d", ORIGIN, "-s", key.selector, "-vvv", "-k"]
    proc = in_opendkim_namespace(world, [*cmd, str(key_file)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "key OK" in proc.stdout + proc.stderr
    # and a key that is not the published one is caught
    other = tmp_path / "other.private"
    other.write_bytes(private_key_pem(generate_key("rsa", 2048)))
    other.chmod(0o600)
    proc = in_opendkim_namespace(world, [*cmd, str(other)], tmp_path)
    assert proc.returncode != 0
    assert "keys do not match" in proc.stdout + proc.stderr
    assert "key OK" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("canon", CANONS, ids="/".join)
@pytest.mark.parametrize("alg", ALGS)
def test_opendkim_verifies_mailwright(
    world: NsdServer, keys: dict[str, SigningKey], alg: str, canon: tuple[str, str], tmp_path: Path
) -> None:
    signed = sign_message(MESSAGE, [keys[alg]], canonicalization=canon) + MESSAGE
    rc, stderr = opendkim_testmsg_verify(world, signed, tmp_path)
    assert (rc, stderr) == (0, "")


def test_opendkim_rejects_tampered_mailwright_signature(
    world: NsdServer, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    """The control: the same harness does report a bad signature."""
    signed = sign_message(MESSAGE, [keys["rsa"]]) + MESSAGE
    rc, stderr = opendkim_testmsg_verify(world, signed.replace(b"Hello", b"Howdy"), tmp_path)
    assert rc != 0
    assert "Bad signature" in stderr


# --- OpenDKIM → mailwright ------------------------------------------------------------


# libopendkim constants (dkim.h): canonicalizations and signing algorithms.
@pytest.mark.parametrize("canon", CANONS, ids="/".join)
@pytest.mark.parametrize("alg", ALGS)
async def test_mailwright_verifies_libopendkim(
    world: NsdServer, keys: dict[str, SigningKey], alg: str, canon: tuple[str, str], tmp_path: Path
) -> None:
    key = keys[alg]
    fields = libopendkim_sign(key, MESSAGE, canon)
    assert f"a={key.algorithm};".encode() in fields
    assert f"c={canon[0]}/{canon[1]};".encode() in fields
    [result] = await verify_message(fields + MESSAGE, world.resolver())
    if alg == "ed25519" and canon[0] == "simple":
        # libopendkim 2.11.0~beta2 makes Ed25519 signatures over simple-canonicalized
        # headers that nobody verifies, OpenDKIM included: all three verifiers agree.
        assert (result.status, result.body_hash_ok) == (DkimStatus.FAIL, True)
        assert (
            await asyncio.to_thread(dkim.verify, fields + MESSAGE, dnsfunc=_dnsfunc(world)) is False
        )
        rc, stderr = opendkim_testmsg_verify(world, fields + MESSAGE, tmp_path)
        assert (rc, stderr) == (70, "opendkim-testmsg: dkim_eom(): Bad signature\n")
    else:
        assert (result.status, result.reason) == (DkimStatus.PASS, "signature verified")
        assert await asyncio.to_thread(dkim.verify, fields + MESSAGE, dnsfunc=_dnsfunc(world))


async def test_mailwright_on_opendkim_testmsg_signature(
    world: NsdServer, keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    """``opendkim-testmsg`` signs with rsa-sha1 (relaxed/simple): RFC 8301 makes that policy.

    Our published records say h=sha256, which rules sha1 out before any crypto, so
    this test publishes the same key without h= to show the signature does verify.
    """
    key = keys["rsa"]
    no_h = dns_record_value(key.private_key).replace("h=sha256; ", "")
    strings = " ".join(f'"{s}"' for s in txt_strings(no_h))
    world.set_zone(ORIGIN, f"{key.selector}._domainkey TXT {strings}\n")
    key_file = tmp_path / "rsa.private"
    key_file.write_bytes(private_key_pem(key.private_key))
    proc = subprocess.run(
        ["opendkim-testmsg", "-C", "-d", ORIGIN, "-s", key.selector, "-k", str(key_file)],
        input=MESSAGE,
        capture_output=True,
        timeout=60,
        check=True,
    )
    signed = proc.stdout
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha1; c=relaxed/simple;")
    [result] = await verify_message(signed, world.resolver())
    assert (result.status, result.reason) == (
        DkimStatus.POLICY,
        "rsa-sha1 signatures are not acceptable (RFC 8301 §3.1); the signature itself verifies",
    )
    [result] = await verify_message(signed.replace(b"Hello", b"Howdy"), world.resolver())
    assert (result.status, result.body_hash_ok) == (DkimStatus.FAIL, False)
