"""RFC 7672/7671/6698: TLSA records and certificate matching."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509

from mailwright.dane import TlsaError, TlsaRecord, record_for, tlsa_name, verify
from mailwright.testing.tls import make_certificate

Pki = dict[str, tuple[x509.Certificate, bytes]]


def _load(path: Path) -> tuple[x509.Certificate, bytes]:
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert, cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("dane")
    good = make_certificate(base / "good", "mx.example.net")
    other = make_certificate(base / "other", "mx.example.net")
    expired = make_certificate(base / "expired", "mx.example.net", days=-1)
    return {
        "leaf": _load(good.certificate),
        "ca": _load(good.ca),
        "other_leaf": _load(other.certificate),
        "other_ca": _load(other.ca),
        "expired": _load(expired.certificate),
        "expired_ca": _load(expired.ca),
    }


def test_tlsa_name() -> None:
    assert tlsa_name("MX.example.net.") == "_25._tcp.mx.example.net"


def test_parse_presentation_format() -> None:
    record = TlsaRecord.parse("3 1 1 " + "ab" * 16 + " " + "cd" * 16)
    assert (record.usage, record.selector, record.matching) == (3, 1, 1)
    assert len(record.data) == 32
    assert record.usable


@pytest.mark.parametrize("text", ["3 1", "x 1 1 00", "3 1 1 zz", "300 1 1 00"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(TlsaError):
        TlsaRecord.parse(text)


@pytest.mark.parametrize(
    ("text", "usable"),
    [
        ("0 0 1 " + "00" * 32, False),  # PKIX-TA: RFC 7672 §3.1.3
        ("1 0 1 " + "00" * 32, False),  # PKIX-EE
        ("3 2 1 " + "00" * 32, False),  # selector 2 undefined
        ("3 1 3 " + "00" * 32, False),  # matching 3 undefined
        ("3 1 1 " + "00" * 31, False),  # SHA-256 of the wrong length
        ("3 1 2 " + "00" * 64, True),
        ("2 0 0 00", True),
    ],
)
def test_usable(text: str, usable: bool) -> None:
    assert TlsaRecord.parse(text).usable is usable


@pytest.mark.parametrize(("selector", "matching"), [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)])
def test_dane_ee_every_selector_and_matching_type(pki: Pki, selector: int, matching: int) -> None:
    leaf, der = pki["leaf"]
    record = record_for(leaf, 3, selector, matching)
    assert verify([record], [der], ["mx.example.net"]) is None


def test_dane_ee_ignores_name_and_expiry(pki: Pki) -> None:
    # RFC 7672 §3.1.1: with DANE-EE the key is what is authenticated.
    expired, der = pki["expired"]
    assert verify([record_for(expired)], [der], ["other.example"]) is None


def test_dane_ee_mismatch(pki: Pki) -> None:
    other, _ = pki["other_leaf"]
    _, der = pki["leaf"]
    assert "matches no TLSA record" in (
        verify([record_for(other)], [der], ["mx.example.net"]) or ""
    )


def test_dane_ta_chain_and_name(pki: Pki) -> None:
    ca, ca_der = pki["ca"]
    _, der = pki["leaf"]
    record = record_for(ca, 2, 1, 1)
    assert verify([record], [der, ca_der], ["mx.example.net"]) is None
    assert "does not name" in (verify([record], [der, ca_der], ["mx.example.org"]) or "")


def test_dane_ta_must_be_in_the_chain(pki: Pki) -> None:
    ca, _ = pki["ca"]
    _, der = pki["leaf"]
    assert "no certificate in the chain" in (
        verify([record_for(ca, 2, 0, 1)], [der], ["mx.example.net"]) or ""
    )


def test_dane_ta_broken_chain(pki: Pki) -> None:
    # The TA matches but did not sign the leaf: the chain must be valid below it.
    other_ca, other_ca_der = pki["other_ca"]
    _, der = pki["leaf"]
    problem = verify([record_for(other_ca, 2, 1, 1)], [der, other_ca_der], ["mx.example.net"])
    assert problem is not None and "chain broken" in problem


def test_dane_ta_expired_leaf(pki: Pki) -> None:
    ca, ca_der = pki["expired_ca"]
    _, der = pki["expired"]
    problem = verify([record_for(ca, 2, 1, 1)], [der, ca_der], ["mx.example.net"])
    assert problem is not None and "expired" in problem
    later = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=30)
    assert verify([record_for(ca, 2, 1, 1)], [der, ca_der], ["mx.example.net"], later) is None


def test_no_usable_records_means_unauthenticated_tls(pki: Pki) -> None:
    # RFC 7672 §2.2: TLS is still required (the client's job) but not authenticated.
    _, der = pki["leaf"]
    assert verify([TlsaRecord.parse("1 0 1 " + "00" * 32)], [der], ["x"]) is None


def test_garbage_certificate() -> None:
    record = TlsaRecord.parse("3 1 1 " + "00" * 32)
    assert "unreadable" in (verify([record], [b"junk"], ["x"]) or "")
    assert "no certificate" in (verify([record], [], ["x"]) or "")
