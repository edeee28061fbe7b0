"""pytest fixtures for delivery tests: a real Postfix MX, ``smtp-sink`` and test TLS certs.

``postfix_mx`` is function scoped over one session-wide Postfix (starting Postfix
takes seconds): each test gets an empty Maildir and no per-recipient rules. It is
the MX for ``example.net`` and ``example.org`` on ``127.0.0.1:postfix_mx.port``,
offering STARTTLS with a throw-away certificate.

``smtp_sink`` is a factory: ``smtp_sink(soft=["RCPT"])`` starts an ``smtp-sink`` that
answers RCPT with 4xx; all are stopped after the test.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .postfix import PostfixServer, SmtpSink

MX_DOMAINS = ("example.net", "example.org")


@dataclass(frozen=True)
class CertificateFiles:
    """A CA and a server certificate for ``localhost``/127.0.0.1 signed by it (PEM files)."""

    ca: Path
    certificate: Path
    private_key: Path


def make_certificate(directory: Path, name: str = "localhost") -> CertificateFiles:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailwright test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    result = CertificateFiles(
        directory / "ca.pem", directory / "server.pem", directory / "server.key"
    )
    result.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    result.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result.private_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    result.private_key.chmod(0o644)  # Postfix's smtpd reads it after dropping privileges
    return result


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def postfix_session(tls_files: CertificateFiles) -> Iterator[PostfixServer]:
    """The session's Postfix MX; use ``postfix_mx`` in tests."""
    server = PostfixServer(
        domains=MX_DOMAINS,
        tls_cert=(tls_files.certificate, tls_files.private_key),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postfix_mx(postfix_session: PostfixServer) -> Iterator[PostfixServer]:
    """A real Postfix, MX for example.net/example.org, with an empty Maildir."""
    _empty(postfix_session)
    if postfix_session.recipient_access:
        postfix_session.set_recipient_access({})
    yield postfix_session
    if postfix_session.recipient_access:
        postfix_session.set_recipient_access({})


def _empty(server: PostfixServer) -> None:
    for sub in ("new", "cur", "tmp"):
        folder = server.maildir / sub
        if folder.is_dir():
            for path in folder.iterdir():
                path.unlink(missing_ok=True)
    if server.log_file.exists():
        server.log_file.write_text("")


@pytest.fixture
def smtp_sink() -> Iterator[Callable[..., SmtpSink]]:
    """Factory: ``smtp_sink(soft=["RCPT"], port=...)`` → a started :class:`SmtpSink`."""
    sinks: list[SmtpSink] = []

    def start(**kwargs: Any) -> SmtpSink:
        sink = SmtpSink(**kwargs)
        sink.start()
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.stop()


__all__ = ["CertificateFiles", "make_certificate"]
