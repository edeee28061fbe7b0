"""ACME pieces without a CA: the config keys, the renewal schedule, the challenge files
and the ``http`` listener's routes (the end-to-end test against Pebble is in
tests/integration/test_acme_pebble.py)."""

from __future__ import annotations

import datetime
import ssl
import time
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from mailwright.certificates.manager import renew_if_due, retry_delay
from mailwright.certificates.store import CertificateInfo, CertificateStore, tls_files
from mailwright.certificates.tls import make_ssl_context, switching_context
from mailwright.config import LETS_ENCRYPT_DIRECTORY, Config, parse_config
from mailwright.doctor.certificates import check_acme
from mailwright.doctor.context import Context, DoctorOptions
from mailwright.doctor.model import Status
from mailwright.errors import ConfigError
from mailwright.http import make_app

HTTP = [{"name": "http", "role": "http", "port": 8080}]


def test_acme_config_defaults_to_lets_encrypt() -> None:
    config = parse_config(
        {"hostname": "mail.example.com", "tls": {"acme": True}, "listeners": HTTP}
    )
    assert config.tls.acme and config.tls.acme_directory == LETS_ENCRYPT_DIRECTORY
    assert config.listeners[0].role == "http"


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        ({"tls": {"acme": True}}, "tls.acme", 'role = "http"'),
        (
            {"tls": {"acme": True, "certificate": "c", "private_key": "k"}, "listeners": HTTP},
            "tls.certificate",
            "obtains the certificate itself",
        ),
        (
            {"tls": {"acme": True, "acme_directory": "http://ca.example/dir"}, "listeners": HTTP},
            "tls.acme_directory",
            "not an https:// URL",
        ),
        (
            {"tls": {"acme": True, "acme_contact": "nobody"}, "listeners": HTTP},
            "tls.acme_contact",
            "not an address",
        ),
        (
            {"tls": {"acme": True}, "listeners": [{"role": "http", "tls": "starttls"}]},
            "listeners[0].tls",
            "no STARTTLS",
        ),
        ({"tls": {"acme_names": ["a..example"]}}, "tls.acme_names", "a..example"),
    ],
)
def test_bad_acme_config_names_the_key(data: dict[str, object], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.key == key
    assert problem in caught.value.message


def test_renewal_is_due_two_thirds_into_the_lifetime() -> None:
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    info = CertificateInfo(("a.example",), start, start + datetime.timedelta(days=90), 1, False)
    assert info.renew_at() == start + datetime.timedelta(days=60)


def test_retry_backoff_doubles_and_is_capped() -> None:
    day = datetime.timedelta(days=90)
    assert retry_delay(1, None) == 60
    assert retry_delay(2, None) == 120
    assert retry_delay(1, datetime.timedelta(seconds=20)) == 5  # never below 5 s
    assert retry_delay(10, day) == 3600


def test_challenge_tokens_are_base64url_only(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path)
    store.put_challenge("abc_DEF-1", "abc_DEF-1.thumbprint")
    assert store.challenge("abc_DEF-1") == b"abc_DEF-1.thumbprint"
    assert store.challenge("../status.json") is None
    assert store.challenge("missing") is None
    with pytest.raises(ValueError):
        store.put_challenge("../x", "y")


def test_placeholder_is_served_until_a_certificate_is_issued(tmp_path: Path) -> None:
    config = parse_config(
        {
            "hostname": "mail.example.com",
            "data_dir": str(tmp_path),
            "tls": {"acme": True},
            "listeners": HTTP,
        }
    )
    assert tls_files(config) is None
    assert make_ssl_context(config) is not None  # makes the placeholder: never plain text
    assert tls_files(config) == (tmp_path / "certificates" / "placeholder.pem", None)


def test_switching_context_hands_the_handshake_to_the_current_one(tmp_path: Path) -> None:
    """The SNI callback moves each new connection to whatever ``current()`` returns."""
    first, second = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    current = [second]
    context = switching_context(first, lambda: current[0])
    assert context is first and context.sni_callback is not None

    class Connection:
        context = first

    conn = Connection()
    context.sni_callback(conn, None, first)  # type: ignore[arg-type]
    assert conn.context is second


async def test_http_app_answers_challenges_and_healthz(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path)
    store.put_challenge("tok_en", "tok_en.key-authorization")
    async with TestClient(TestServer(make_app(store))) as client:
        response = await client.get("/.well-known/acme-challenge/tok_en")
        assert response.status == 200
        assert await response.read() == b"tok_en.key-authorization"
        assert response.content_type == "application/octet-stream"
        assert (await client.get("/.well-known/acme-challenge/unknown")).status == 404
        assert (await client.get("/.well-known/acme-challenge/..%2Fstatus.json")).status == 404
        health = await client.get("/healthz")
        assert health.status == 200 and await health.text() == "ok\n"
        assert (await client.post("/healthz")).status == 405
        assert (await client.get("/nothing")).status == 404


def _acme_config(tmp_path: Path, directory: str = "https://127.0.0.1:9/dir") -> Config:
    return parse_config(
        {
            "hostname": "mail.example.com",
            "data_dir": str(tmp_path),
            "tls": {"acme": True, "acme_directory": directory},
            "listeners": HTTP,
        }
    )


def test_an_unreachable_ca_is_a_recorded_failure_with_backoff(tmp_path: Path) -> None:
    """Port 9 on loopback refuses: the attempt fails, is recorded for the doctor and
    the other workers, and is not repeated before the backoff ends."""
    config = _acme_config(tmp_path)
    store = CertificateStore(tmp_path)
    outcome = renew_if_due(config, store)
    assert outcome is not None and outcome.event == "certificate-failed"
    assert outcome.fields["kept"] == "placeholder (self-signed)"
    assert "ConnectionError" in str(outcome.fields["reason"])
    assert outcome.fields["retry_in"] == "60s"
    status = store.status()
    assert status["failures"] == 1 and status["next_attempt"] > time.time() + 50
    assert renew_if_due(config, store) is None  # backing off
    assert store.current_info() is None


async def test_doctor_acme_check(tmp_path: Path) -> None:
    ctx = Context("example.com", DoctorOptions(acme_data_dir=tmp_path), cast(Any, None))
    store = CertificateStore(tmp_path)
    assert (await check_acme(ctx)).status == Status.WARN  # nothing issued yet
    store.record(failures=2, reason="challenge failed: mail.example.com: connection refused")
    finding = await check_acme(ctx)
    assert finding.status == Status.FAIL
    assert "failed 2 time(s)" in finding.observed and "connection refused" in finding.observed
    assert "port 80" in finding.fix
    store.record(failures=0, reason=None)
    store.ensure_placeholder("mail.example.com")
    store.install(store.placeholder.read_bytes())  # a day-long certificate
    finding = await check_acme(ctx)
    assert finding.status == Status.WARN and "expires in" in finding.observed
