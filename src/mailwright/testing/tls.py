"""A throw-away test CA and a server certificate it signs, for TLS on loopback.

One helper for every test that needs a certificate (Postfix's STARTTLS, our own
listeners, the relay and MX stand-ins, ``doctor``'s certificate checks), so that all
of them build the same kind of chain: an EC P-256 CA and a leaf for one host name
(and 127.0.0.1) with the extensions a verifying client expects.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateFiles", "make_certificate"]

CA_NAME = "mailwright test CA"


@dataclass(frozen=True)
class CertificateFiles:
    """A CA and a server certificate signed by it (PEM files)."""

    ca: Path
    certificate: Path
    private_key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificate, self.private_key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts the test CA (and verifies the host name)."""
        return ssl.create_default_context(cafile=str(self.ca))

    def certificate_der(self) -> bytes:
        """The server certificate in DER, as a TLS peer sends it."""
        pem = self.certificate.read_bytes()
        return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def make_certificate(
    directory: Path,
    name: str = "localhost",
    *,
    days: float = 2,
    ip: str | None = "127.0.0.1",
) -> CertificateFiles:
    """Write ``ca.pem``, ``server.pem`` and ``server.key`` into ``directory``.

    The server certificate names ``name`` (and ``ip`` when given) and expires in
    ``days`` days; a negative number gives a certificate that has already expired.
    The key file is world-readable: Postfix's smtpd reads it after dropping privileges.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=days)
    not_before = min(now, not_after) - datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(max(not_after, now + datetime.timedelta(days=2)))
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
    alt_names: list[x509.GeneralName] = [x509.DNSName(name)]
    if ip is not None:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(ip)))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
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
    result.private_key.chmod(0o644)
    return result
