"""DKIM key pairs for ``mailwright init`` and the public-key values for ``records``.

The DKIM package (:mod:`mailwright.dkim`) owns key handling; this module is the
small seam between it and setup. When ``mailwright.dkim`` provides
``generate_key``/``dns_record_value``/``load_signing_key`` they are used; until
then (and as a fallback if their shape differs) the same thing is done with
``cryptography`` directly, so that init works either way.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ..errors import UserError

Algorithm = Literal["rsa", "ed25519"]

RSA_BITS = 2048
"""RFC 8301 §3.2: signers MUST use at least 1024 bits and SHOULD use 2048."""

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def generate_private_key(algorithm: Algorithm) -> PrivateKey:
    """A new signing key: RSA-2048 (RFC 8301) or Ed25519 (RFC 8463)."""
    if algorithm == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return ed25519.Ed25519PrivateKey.generate()


def private_key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, the form OpenDKIM, dkimpy and our signer all read."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write the key readable by its owner only (0600), creating the directory (0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = private_key_pem(key)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def load_private_key(path: Path) -> PrivateKey:
    """Read a PEM private key (PKCS#8 or traditional RSA); a bad file is a :class:`UserError`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"DKIM key {path} not found", "run 'mailwright init' or fix [[dkim]] private_key"
        ) from None
    except OSError as exc:
        raise UserError(f"DKIM key {path}: cannot read ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UserError(f"DKIM key {path}: not a PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise UserError(f"DKIM key {path}: only RSA and Ed25519 keys sign DKIM")
    return key


def public_key_base64(key: PrivateKey) -> str:
    """The ``p=`` value: RSA as DER SubjectPublicKeyInfo (RFC 6376 §3.6.1), Ed25519 as
    the raw 32-octet public key (RFC 8463 §4.2)."""
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return base64.b64encode(raw).decode("ascii")


def key_algorithm(key: PrivateKey) -> Algorithm:
    return "ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "rsa"


def dns_record_value(key: PrivateKey) -> str:
    """The TXT value to publish at ``SELECTOR._domainkey.DOMAIN`` (RFC 6376 §3.6.1)."""
    return f"v=DKIM1; k={key_algorithm(key)}; p={public_key_base64(key)}"
