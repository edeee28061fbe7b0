"""The ACME files in ``DATA_DIR/certificates``, shared by every worker process.

* ``current.pem``: the private key and the full chain in one file, so that replacing it
  (``os.replace``) swaps key and certificate together — no worker can load a new
  certificate with the old key;
* ``placeholder.pem``: a self-signed certificate for the time before the first issuance
  (an implicit-TLS listener must never fall back to plain text);
* ``account.key``: the ACME account key;
* ``status.json``: the last attempt and failure (backoff across workers; the doctor);
* ``challenges/TOKEN``: HTTP-01 key authorizations, served by any worker's ``http`` listener;
* ``lock``: ``flock`` held by the one worker that talks to the CA.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..config import Config
from ..files import write_atomically

DIRECTORY = "certificates"
CURRENT = "current.pem"
PLACEHOLDER = "placeholder.pem"
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
"""RFC 8555 §8.3: the token is base64url; anything else is not a file name we serve."""


@dataclass(frozen=True)
class CertificateInfo:
    names: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: int
    self_signed: bool

    def renew_at(self) -> datetime.datetime:
        """Two thirds into the lifetime (Let's Encrypt's advice for 90-day certificates:
        renew with 30 days left)."""
        return self.not_before + (self.not_after - self.not_before) * 2 / 3


def certificate_info(pem: bytes) -> CertificateInfo:
    """Of the first (leaf) certificate in ``pem``; raises ValueError if there is none."""
    cert = x509.load_pem_x509_certificates(pem)[0]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertificateInfo(
        names=names,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
        self_signed=cert.issuer == cert.subject,
    )


class CertificateStore:
    """Paths and small reads/writes; every method is blocking (call from a thread)."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / DIRECTORY
        self.current = self.directory / CURRENT
        self.placeholder = self.directory / PLACEHOLDER
        self.account_key = self.directory / "account.key"
        self.status_file = self.directory / "status.json"
        self.challenges = self.directory / "challenges"
        self.lock_file = self.directory / "lock"

    def ensure_directories(self) -> None:
        self.challenges.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        os.chmod(self.challenges, 0o755)  # key authorizations are public by design

    def serving_file(self) -> Path | None:
        """What TLS listeners load: the issued certificate, else the placeholder."""
        for path in (self.current, self.placeholder):
            if path.exists():
                return path
        return None

    def current_info(self) -> CertificateInfo | None:
        try:
            return certificate_info(self.current.read_bytes())
        except (OSError, ValueError):
            return None

    def install(self, key_and_chain: bytes) -> None:
        self.ensure_directories()
        write_atomically(self.current, key_and_chain)

    def ensure_placeholder(self, hostname: str) -> None:
        """A self-signed certificate valid for a day at a time, replaced by the first
        issued one; made before the workers start (they only read)."""
        self.ensure_directories()
        if self.placeholder.exists():
            with contextlib.suppress(OSError, ValueError):
                info = certificate_info(self.placeholder.read_bytes())
                if info.not_after > _now() + datetime.timedelta(hours=1):
                    return
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_atomically(self.placeholder, private_key_pem(key) + cert_pem(cert))

    # -- status (last attempt, failures) ---------------------------------------------------------

    def status(self) -> dict[str, Any]:
        try:
            data = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def record(self, **fields: Any) -> None:
        status = self.status()
        status.update(fields)
        self.ensure_directories()
        write_atomically(self.status_file, json.dumps(status, sort_keys=True).encode(), 0o644)

    # -- challenges ------------------------------------------------------------------------------

    def put_challenge(self, token: str, key_authorization: str) -> None:
        if not TOKEN.fullmatch(token):
            raise ValueError(f"ACME token {token!r} is not base64url")
        self.ensure_directories()
        write_atomically(self.challenges / token, key_authorization.encode(), 0o644)

    def remove_challenge(self, token: str) -> None:
        if TOKEN.fullmatch(token):
            with contextlib.suppress(OSError):
                (self.challenges / token).unlink()

    def challenge(self, token: str) -> bytes | None:
        """The key authorization for ``token``, or None (also for a token that is no name)."""
        if not TOKEN.fullmatch(token):
            return None
        try:
            return (self.challenges / token).read_bytes()
        except OSError:
            return None

    @contextlib.contextmanager
    def try_lock(self) -> Iterator[bool]:
        """True when this process holds the lock; another worker renewing means False."""
        self.ensure_directories()
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def tls_files(config: Config) -> tuple[Path, Path | None] | None:
    """(certificate file, key file or None when the key is in the same file) for the
    TLS listeners; None when there is no certificate."""
    if config.tls.acme:
        serving = CertificateStore(config.data_dir).serving_file()
        return (serving, None) if serving is not None else None
    if config.tls.certificate is None or config.tls.private_key is None:
        return None
    return config.tls.certificate, config.tls.private_key


def wanted_names(config: Config) -> tuple[str, ...]:
    names = [config.hostname, *config.tls.acme_names]
    return tuple(dict.fromkeys(n.lower().rstrip(".") for n in names))


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
