"""DANE for SMTP (RFC 7672) over TLSA records (RFC 6698, RFC 7671): the matching, no I/O.

A sending MTA looks up ``_25._tcp.MX`` only when the MX answer and the MX host's
addresses are DNSSEC-secure (RFC 7672 §2.2), and then authenticates the server's
certificate against the secure TLSA records instead of against a CA list. Only the
usages RFC 7672 §3.1 recommends for SMTP are usable: DANE-EE(3) (the server's own
certificate or key; names and dates are not checked, §3.1.1) and DANE-TA(2) (a
trust anchor the server sends in its chain; the chain below it and the name are
checked, §3.1.2, §3.2.3). PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (§3.1.3).
When every record is unusable, TLS is still mandatory but not authenticated (§2.2).
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from .errors import MailwrightError

DANE_TA = 2
DANE_EE = 3
SELECTOR_CERT = 0
SELECTOR_SPKI = 1
MATCH_FULL = 0
MATCH_SHA256 = 1
MATCH_SHA512 = 2


class TlsaError(MailwrightError):
    """A TLSA record that cannot be read (presentation format of RFC 6698 §2.2)."""


@dataclass(frozen=True, slots=True)
class TlsaRecord:
    usage: int
    selector: int
    matching: int
    data: bytes

    @classmethod
    def parse(cls, text: str) -> TlsaRecord:
        """``3 1 1 ab12...`` (the hex may contain spaces, as dig splits it)."""
        words = text.split()
        if len(words) < 4 or not all(w.isdigit() for w in words[:3]):
            raise TlsaError(f"not a TLSA record: {text!r}")
        usage, selector, matching = (int(w) for w in words[:3])
        try:
            data = bytes.fromhex("".join(words[3:]))
        except ValueError:
            raise TlsaError(f"TLSA data is not hex: {text!r}") from None
        if max(usage, selector, matching) > 255:
            raise TlsaError(f"TLSA field out of range: {text!r}")
        return cls(usage, selector, matching, data)

    @property
    def usable(self) -> bool:
        """RFC 7672 §3.1: DANE-TA/DANE-EE, Cert/SPKI, Full/SHA2-256/SHA2-512; with the
        digest the right length (RFC 7671 §10.1.2: a wrong length cannot match)."""
        if self.usage not in (DANE_TA, DANE_EE) or self.selector not in (0, 1):
            return False
        expected = {MATCH_SHA256: 32, MATCH_SHA512: 64}.get(self.matching)
        if self.matching == MATCH_FULL:
            return bool(self.data)
        return expected is not None and len(self.data) == expected

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.matching} {self.data.hex()}"


def tlsa_name(host: str, port: int = 25) -> str:
    """RFC 7672 §2.2.3: the TLSA records of an MX host are at ``_25._tcp.HOST``."""
    return f"_{port}._tcp.{host.lower().rstrip('.')}"


def associated_data(certificate: x509.Certificate, selector: int, matching: int) -> bytes:
    """What a TLSA record with this selector and matching type holds for ``certificate``."""
    if selector == SELECTOR_CERT:
        blob = certificate.public_bytes(serialization.Encoding.DER)
    else:
        blob = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if matching == MATCH_SHA256:
        return hashlib.sha256(blob).digest()
    if matching == MATCH_SHA512:
        return hashlib.sha512(blob).digest()
    return blob


def record_for(
    certificate: x509.Certificate, usage: int = DANE_EE, selector: int = 1, matching: int = 1
) -> TlsaRecord:
    """The TLSA record (``3 1 1`` by default, RFC 7671 §5.1) that matches ``certificate``."""
    return TlsaRecord(usage, selector, matching, associated_data(certificate, selector, matching))


def _matches(record: TlsaRecord, certificate: x509.Certificate) -> bool:
    return associated_data(certificate, record.selector, record.matching) == record.data


def name_matches(certificate: x509.Certificate, names: Iterable[str]) -> bool:
    """RFC 7672 §3.2.3 with RFC 6125 rules: a DNS-ID equal to one of ``names`` or a
    wildcard as the whole left-most label; the CN only when there is no DNS-ID."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        presented = [n.lower().rstrip(".") for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        presented = []
    if not presented:
        presented = [
            str(a.value).lower()
            for a in certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        ]
    wanted = [n.lower().rstrip(".") for n in names]
    for identity in presented:
        for name in wanted:
            if identity == name:
                return True
            if identity.startswith("*.") and "." in name:
                first, _, rest = name.partition(".")
                if first and rest == identity[2:]:
                    return True
    return False


def verify(
    records: Sequence[TlsaRecord],
    chain: Sequence[bytes],
    names: Sequence[str],
    now: datetime.datetime | None = None,
) -> str | None:
    """Authenticate the server's certificate ``chain`` (DER, leaf first) by ``records``.

    Returns None when it is authenticated (or when no record is usable: then TLS is
    required but not authenticated, RFC 7672 §2.2), else the reason it is not.
    """
    usable = [r for r in records if r.usable]
    if not usable:
        return None
    if not chain:
        return "the server sent no certificate"
    try:
        certificates = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError as exc:
        return f"unreadable certificate from the server: {exc}"
    leaf = certificates[0]
    # RFC 7672 §3.1.1: DANE-EE(3) binds the key itself; names and dates do not matter.
    if any(_matches(r, leaf) for r in usable if r.usage == DANE_EE):
        return None
    anchors = [r for r in usable if r.usage == DANE_TA]
    if not anchors:
        return "the certificate matches no TLSA record (DANE-EE)"
    for depth, candidate in enumerate(certificates):
        if not any(_matches(r, candidate) for r in anchors):
            continue
        # RFC 7672 §3.1.2: the chain from the leaf up to the trust anchor must be valid.
        for lower, upper in itertools.pairwise(certificates[: depth + 1]):
            try:
                lower.verify_directly_issued_by(upper)
            except (ValueError, TypeError, InvalidSignature) as exc:
                return f"certificate chain broken below the trust anchor: {exc or 'bad signature'}"
        moment = now or datetime.datetime.now(datetime.UTC)
        for certificate in certificates[:depth]:
            if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
                subject = certificate.subject.rfc4514_string()
                return f"certificate {subject} is expired or not yet valid"
        if not name_matches(leaf, names):
            return f"the certificate does not name {', '.join(names)} (DANE-TA)"
        return None
    return "no certificate in the chain matches a TLSA record"
