"""Our own domain: MTA-STS, TLS-RPT and TLSA records, and the policy the http listener serves."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509

from mailwright.certificates import CertificateStore
from mailwright.config import Config, MtaStsConfig, TlsConfig
from mailwright.dane import record_for
from mailwright.delivery.policies import fetch_policy, https_context
from mailwright.dns import MemoryResolver
from mailwright.http import make_app
from mailwright.mtasts import parse_policy, policy_id
from mailwright.setup.records import build_records, mta_sts_policy, render_zone
from mailwright.testing.ports import free_port
from mailwright.testing.tls import make_certificate


def _config(tmp_path: Path, mode: str | None = "testing") -> Config:
    files = make_certificate(tmp_path / "tls", "mail.example.com")
    return Config(
        hostname="mail.example.com",
        domains=("example.com",),
        ipv4=("192.0.2.10",),
        data_dir=tmp_path / "data",
        tls=TlsConfig(certificate=files.certificate, private_key=files.private_key),
        mta_sts=MtaStsConfig(mode=mode),  # type: ignore[arg-type]
    )


def test_records_for_transport_security(tmp_path: Path) -> None:
    config = _config(tmp_path)
    records = {(r.name, r.rdtype): r for r in build_records(config).records}
    policy = mta_sts_policy(config)
    assert policy is not None
    assert records[("_mta-sts.example.com", "TXT")].value == f"v=STSv1; id={policy_id(policy)}"
    assert records[("mta-sts.example.com", "A")].value == "192.0.2.10"
    assert records[("_smtp._tls.example.com", "TXT")].value == (
        "v=TLSRPTv1; rua=mailto:tls-reports@example.com"
    )
    assert config.tls.certificate is not None
    cert = x509.load_pem_x509_certificate(config.tls.certificate.read_bytes())
    tlsa = records[("_25._tcp.mail.example.com", "TLSA")]
    assert tlsa.value == str(record_for(cert)) and tlsa.value.startswith("3 1 1 ")
    assert "_25._tcp.mail.example.com. 3600 IN TLSA 3 1 1 " in render_zone(build_records(config))


def test_policy_id_follows_the_policy(tmp_path: Path) -> None:
    testing = mta_sts_policy(_config(tmp_path / "a"))
    enforce = mta_sts_policy(_config(tmp_path / "b", "enforce"))
    assert testing and enforce and policy_id(testing) != policy_id(enforce)
    assert parse_policy(enforce).mx == ("mail.example.com",)


def test_without_mode_no_mta_sts_record(tmp_path: Path) -> None:
    plan = build_records(_config(tmp_path, None))
    assert not [r for r in plan.records if r.group == "mta-sts"]
    assert any("[mta_sts] mode" in n for n in plan.notes)


async def test_http_listener_serves_the_policy_by_host(tmp_path: Path) -> None:
    config = _config(tmp_path)
    policy = mta_sts_policy(config)

    def policy_for(host: str) -> str | None:
        return policy if host == "mta-sts.example.com" else None

    app = make_app(CertificateStore(tmp_path), mta_sts=policy_for)
    async with TestClient(TestServer(app)) as client:
        ok = await client.get("/.well-known/mta-sts.txt", headers={"Host": "mta-sts.example.com"})
        assert ok.status == 200 and ok.content_type == "text/plain"
        assert parse_policy(await ok.text()).mode == "testing"
        other = await client.get("/.well-known/mta-sts.txt", headers={"Host": "example.com"})
        assert other.status == 404


async def test_our_fetcher_reads_our_served_policy_over_https(tmp_path: Path) -> None:
    """The two halves together: RFC 8461 §3.3 fetch (verified HTTPS) of what we serve."""
    config = _config(tmp_path, "enforce")
    policy = mta_sts_policy(config)
    files = make_certificate(tmp_path / "web", "mta-sts.example.com")
    app = make_app(CertificateStore(tmp_path), mta_sts=lambda host: policy)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(files.certificate, files.private_key)
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context).start()
    try:
        dns = MemoryResolver().add("mta-sts.example.com", "A", "127.0.0.1")
        fetched = await fetch_policy(
            "example.com", dns, https_context(files.ca), port=port, timeout=5
        )
        assert fetched.mode == "enforce" and fetched.allows_mx("mail.example.com")
    finally:
        await runner.cleanup()
    await asyncio.sleep(0)
