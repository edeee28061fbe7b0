"""DKIM keys: generation, PEM files, signing keys, and key records (RFC 6376 §3.6.1).

RSA public keys are published as SubjectPublicKeyInfo DER in ``p=`` (what
``opendkim-genkey`` writes); bare PKCS#1 RSAPublicKey is accepted on input as
well, since real records use it.  Ed25519 public keys are the raw 32 bytes
(RFC 8463 §4.2).  RSA keys below 1024 bits are refused (RFC 8301 §3.2).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ..dns.names import is_dns_name
from ..errors import MailwrightError, UserError
from ..files import write_atomically
from .tags import TagSyntaxError, parse_tag_list, shown

__all__ = [
    "MIN_RSA_BITS",
    "RECOMMENDED_RSA_BITS",
    "Algorithm",
    "KeyFileExistsError",
    "KeyRecord",
    "KeyRecordError",
    "PrivateKey",
    "PublicKey",
    "SigningKey",
    "dns_record_value",
    "generate_key",
    "key_bits",
    "key_size_warning",
    "load_private_key",
    "load_signing_key",
    "parse_key_record",
    "private_key_pem",
    "public_key_data",
    "public_keys_match",
    "txt_strings",
    "write_key_files",
    "zone_lines",
]

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey

MIN_RSA_BITS = 1024
"""RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits."""
RECOMMENDED_RSA_BITS = 2048
"""RFC 8301 §3.2: signers SHOULD use at least 2048 bits."""
MAX_RSA_BITS = 8192
"""Bound on what we generate (and on verification work for published keys)."""

# --- private keys -------------------------------------------------------------------


def key_size_warning(bits: int) -> str | None:
    """A warning for an RSA size that works but is weak, else None."""
    if bits < RECOMMENDED_RSA_BITS:
        return (
            f"RSA-{bits} is the minimum RFC 8301 §3.2 allows; "
            f"use {RECOMMENDED_RSA_BITS} bits unless your DNS host cannot publish it"
        )
    return None


def generate_key(algorithm: str = "rsa", bits: int = RECOMMENDED_RSA_BITS) -> PrivateKey:
    """A new private key: ``algorithm`` is "rsa" (``bits`` ≥ 1024) or "ed25519"."""
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm != "rsa":
        raise ValueError(f"unknown key algorithm {algorithm!r} (use rsa or ed25519)")
    if bits < MIN_RSA_BITS:
        raise ValueError(f"RSA keys need at least {MIN_RSA_BITS} bits (RFC 8301 §3.2), not {bits}")
    if bits > MAX_RSA_BITS:
        raise ValueError(f"RSA keys above {MAX_RSA_BITS} bits do not fit DNS records well")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: PrivateKey) -> bytes:
    """PEM: PKCS#1 for RSA (what opendkim-genkey writes), PKCS#8 for Ed25519."""
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if isinstance(key, rsa.RSAPrivateKey)
        else serialization.PrivateFormat.PKCS8
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def load_private_key(data: bytes) -> PrivateKey:
    """A private key from PEM (PKCS#1 or PKCS#8), or a base64 raw Ed25519 seed.

    The raw seed form is what dkimpy and RFC 8463 §A.1 use.  Raises ValueError.
    """
    text = data.strip()
    if not text.startswith(b"-----"):
        try:
            seed = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise ValueError("not a PEM private key nor a base64 Ed25519 seed") from None
        if len(seed) != 32:
            raise ValueError("not a PEM private key nor a base64 Ed25519 seed")
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    try:
        key = serialization.load_pem_private_key(text, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"unreadable PEM private key: {exc}") from None
    if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise ValueError(f"unsupported key type {type(key).__name__} (DKIM uses RSA or Ed25519)")


def key_bits(key: PrivateKey | PublicKey) -> int:
    """RSA modulus size, or 256 for Ed25519."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return key.key_size
    return 256


def algorithm_for(key: PrivateKey | PublicKey) -> Algorithm:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa-sha256"
    return "ed25519-sha256"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key with where its public half is published (``selector._domainkey.domain``)."""

    domain: str
    selector: str
    algorithm: Algorithm
    private_key: PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", self.domain.lower().rstrip("."))
        if not is_dns_name(self.domain):
            raise ValueError(f"invalid signing domain {self.domain!r}")
        if not is_dns_name(self.selector):
            raise ValueError(f"invalid selector {self.selector!r}")
        if algorithm_for(self.private_key) != self.algorithm:
            raise ValueError(f"algorithm {self.algorithm} does not match the key type")
        if isinstance(self.private_key, rsa.RSAPrivateKey) and (
            self.private_key.key_size < MIN_RSA_BITS
        ):
            raise ValueError(f"RSA key of {self.private_key.key_size} bits is below 1024")

    @property
    def bits(self) -> int:
        return key_bits(self.private_key)

    @classmethod
    def from_key(cls, domain: str, selector: str, key: PrivateKey) -> SigningKey:
        return cls(domain, selector, algorithm_for(key), key)


def load_signing_key(path: str | os.PathLike[str], domain: str, selector: str) -> SigningKey:
    """Read a key file (RSA or Ed25519, detected from the PEM) as a :class:`SigningKey`.

    Parsed keys are cached by (path, mtime, size): the MTA may call this for
    every message and loading RSA keys costs milliseconds.
    """
    p = Path(path)
    st = p.stat()
    key = _load_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)
    return SigningKey.from_key(domain, selector, key)


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, size: int) -> PrivateKey:
    return load_private_key(Path(path).read_bytes())


# --- publishing -----------------------------------------------------------------------


def public_key_data(key: PrivateKey | PublicKey) -> bytes:
    """The bytes ``p=`` carries: SPKI DER for RSA, the raw 32 bytes for Ed25519."""
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) else key
    )
    if isinstance(public, rsa.RSAPublicKey):
        return public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def dns_record_value(key: PrivateKey | PublicKey, testing: bool = False) -> str:
    """The TXT value to publish, e.g. ``v=DKIM1; h=sha256; k=rsa; p=MIIB...``."""
    kind = "rsa" if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) else "ed25519"
    flags = "t=y; " if testing else ""
    p = base64.b64encode(public_key_data(key)).decode("ascii")
    return f"v=DKIM1; h=sha256; k={kind}; {flags}p={p}"


def txt_strings(value: str, limit: int = 255) -> list[str]:
    """Split a TXT value into character-strings of at most ``limit`` bytes (RFC 1035 §3.3.14).

    The tags before ``p=`` form the first string, as opendkim-genkey does.
    """
    head, sep, key = value.partition("p=")
    if not sep:
        head, key = "", value
    else:
        key = sep + key
    out = [head[i : i + limit] for i in range(0, len(head), limit)]
    out.extend(key[i : i + limit] for i in range(0, len(key), limit))
    return out


def zone_lines(selector: str, domain: str, value: str) -> str:
    """The record in zone-file form, as opendkim-genkey writes ``SELECTOR.txt``."""
    strings = txt_strings(value)
    body = "\n\t  ".join(f'"{s}"' for s in strings)
    return f"{selector}._domainkey\tIN\tTXT\t( {body} )  ; ----- DKIM key {selector} for {domain}\n"


class KeyFileExistsError(UserError):
    """Refusing to overwrite a key file (a lost private key breaks signing until DNS changes)."""


def write_key_files(
    directory: str | os.PathLike[str],
    selector: str,
    domain: str,
    key: PrivateKey,
    testing: bool = False,
    force: bool = False,
) -> tuple[Path, Path]:
    """Write ``SELECTOR.private`` (PEM, mode 0600) and ``SELECTOR.txt`` (zone lines).

    Existing files are kept unless ``force``; writes go through a temporary file
    and a rename, so a crash never leaves half a key.
    """
    if not is_dns_name(selector):
        raise UserError(f"invalid selector {selector!r}", "use letters, digits and hyphens")
    d = Path(directory)
    private_path = d / f"{selector}.private"
    txt_path = d / f"{selector}.txt"
    if not force:
        for p in (private_path, txt_path):
            if p.exists():
                raise KeyFileExistsError(f"{p} already exists", "use --force to replace it")
    d.mkdir(parents=True, exist_ok=True)
    write_atomically(private_path, private_key_pem(key), 0o600)
    write_atomically(
        txt_path, zone_lines(selector, domain, dns_record_value(key, testing)).encode(), 0o644
    )
    return private_path, txt_path


# --- key records ----------------------------------------------------------------------


class KeyRecordError(MailwrightError, ValueError):
    """The key record cannot be used (RFC 6376 §6.1.2: PERMFAIL)."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A parsed ``selector._domainkey.domain`` TXT record."""

    key_type: str
    """k=: "rsa" or "ed25519"."""
    public_key: PublicKey | None
    """None when the key is revoked (empty p=)."""
    hashes: tuple[str, ...] | None
    """h=: acceptable hash algorithms, None when absent (all allowed)."""
    services: tuple[str, ...]
    flags: tuple[str, ...]
    notes: str | None = None

    @property
    def revoked(self) -> bool:
        return self.public_key is None

    @property
    def testing(self) -> bool:
        """t=y: the domain is testing DKIM (RFC 6376 §3.6.1)."""
        return "y" in self.flags

    @property
    def strict(self) -> bool:
        """t=s: i= must use exactly the d= domain, no subdomain."""
        return "s" in self.flags

    @property
    def bits(self) -> int | None:
        return None if self.public_key is None else key_bits(self.public_key)


_KEY_TYPES = ("rsa", "ed25519")


def _colon_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip(" \t\r\n") for item in value.split(":") if item.strip(" \t\r\n"))


def parse_key_record(text: str) -> KeyRecord:
    """Parse a key record (RFC 6376 §3.6.1, RFC 8463 §4); raise :class:`KeyRecordError`."""
    try:
        tags = parse_tag_list(text)
    except TagSyntaxError as exc:
        raise KeyRecordError(f"key record syntax: {exc}") from None
    names = tags.names()
    if "v" in tags:
        # RFC 6376 §3.6.1: v= is optional, but when present it is first and exactly DKIM1.
        if names[0] != "v":
            raise KeyRecordError("v= is not the first tag of the key record")
        if tags["v"] != "DKIM1":
            raise KeyRecordError(f"unsupported key record version v={shown(tags['v'], 20)}")
    key_type = tags.get("k", "rsa") or "rsa"
    if key_type not in _KEY_TYPES:
        raise KeyRecordError(f"unknown key type k={shown(key_type, 20)}")
    hashes = _colon_list(tags["h"]) if "h" in tags else None
    services = _colon_list(tags.get("s", "*") or "*")
    flags = _colon_list(tags.get("t", "") or "")
    if "p" not in tags:
        raise KeyRecordError("key record has no p= tag")
    p = re.sub(r"[ \t\r\n]", "", tags["p"])
    public: PublicKey | None = None
    if p:
        try:
            der = base64.b64decode(p, validate=True)
        except (binascii.Error, ValueError):
            raise KeyRecordError("p= is not valid base64") from None
        public = _public_key(key_type, der)
    return KeyRecord(key_type, public, hashes, services, flags, tags.get("n"))


def _public_key(key_type: str, der: bytes) -> PublicKey:
    if key_type == "ed25519":
        if len(der) != 32:
            raise KeyRecordError(f"ed25519 p= must be 32 bytes, got {len(der)}")
        return ed25519.Ed25519PublicKey.from_public_bytes(der)
    key: object
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        # Bare PKCS#1 RSAPublicKey, which some publishers use.
        pem = (
            b"-----BEGIN RSA PUBLIC KEY-----\n"
            + base64.encodebytes(der)
            + b"-----END RSA PUBLIC KEY-----\n"
        )
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm):
            raise KeyRecordError("p= is not an RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyRecordError(f"p= holds a {type(key).__name__}, not an RSA key (k=rsa)")
    if key.key_size > MAX_RSA_BITS * 2:
        raise KeyRecordError(f"RSA key of {key.key_size} bits is unreasonably large")
    return key


def public_keys_match(a: PrivateKey | PublicKey, b: PrivateKey | PublicKey) -> bool:
    """Whether two keys have the same public half."""
    return algorithm_for(a) == algorithm_for(b) and public_key_data(a) == public_key_data(b)
