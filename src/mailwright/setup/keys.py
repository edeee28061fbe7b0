"""DKIM key pairs for ``mailwright init`` and the public-key values for ``records``.

The key handling itself belongs to :mod:`mailwright.dkim` (generation, PEM form,
the published record); this module only adds what setup needs around it: a
file name per domain and selector (``keys/DOMAIN.SELECTOR.ALG.pem``, so several
domains share one ``keys/`` directory, where ``dkim.write_key_files`` would
write ``SELECTOR.private``), owner-only permissions, and load errors that are
one-line :class:`UserError`s for the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from .. import dkim
from ..dkim.keys import PrivateKey
from ..errors import UserError

Algorithm = Literal["rsa", "ed25519"]

RSA_BITS = 2048
"""RFC 8301 §3.2: signers MUST use at least 1024 bits and SHOULD use 2048."""


def generate_private_key(algorithm: Algorithm) -> PrivateKey:
    """A new signing key: RSA-2048 (RFC 8301) or Ed25519 (RFC 8463)."""
    return dkim.generate_key(algorithm, RSA_BITS)


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write the key readable by its owner only (0600), creating the directory (0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, dkim.private_key_pem(key))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_private_key(path: Path) -> PrivateKey:
    """Read a DKIM private key file; a missing or bad file is a one-line :class:`UserError`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"DKIM key {path} not found", "run 'mailwright init' or fix [[dkim]] private_key"
        ) from None
    except OSError as exc:
        raise UserError(f"DKIM key {path}: cannot read ({exc.strerror})") from None
    try:
        return dkim.load_private_key(data)
    except ValueError as exc:
        raise UserError(f"DKIM key {path}: {exc}") from None


def dns_record_value(key: PrivateKey) -> str:
    """The TXT value to publish at ``SELECTOR._domainkey.DOMAIN`` (RFC 6376 §3.6.1)."""
    return dkim.dns_record_value(key)
