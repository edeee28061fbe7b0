"""MTA-STS (RFC 8461) and DANE (RFC 7672) against real parts: the failure matrix.

The world: a signed test root and a signed ``example.net`` (``ldns-signzone``) served
by NSD, validated by Unbound on loopback whose trust anchor is the root key; an
unsigned ``example.org`` (insecure delegation); an HTTPS policy server with a
certificate from a test CA; one Postfix on 127.0.0.1 that presents, by SNI, a good,
a wrong-name, an expired and an untrusted (self-issued CA) certificate for the MX
names ``mx-good``, ``mx-wrong``, ``mx-expired`` and ``mx-self``; and ``smtp-sink`` on
127.0.0.2 (same port) as ``mx-plain``, an MX without STARTTLS.
"""

from __future__ import annotations

import datetime
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailwright.config import Config, DeliveryConfig
from mailwright.dane import record_for
from mailwright.delivery.agent import DeliveryAgent
from mailwright.delivery.policies import PolicyCache, PolicySource, https_context
from mailwright.delivery.security import TransportSecurity
from mailwright.delivery.tls_results import TlsResultStore, post_report, send_due_tls_reports
from mailwright.dns import DnspythonResolver
from mailwright.doctor import DoctorOptions, run_checks
from mailwright.log import EventLogger
from mailwright.queue import QueueMeta, SqliteQueueStore
from mailwright.testing.dnssec import UnboundServer, ZoneSigner, tamper
from mailwright.testing.https import PolicyWebServer
from mailwright.testing.nsd import NsdServer
from mailwright.testing.postfix import PostfixServer, SmtpSink
from mailwright.testing.tls import CertificateFiles, make_certificate
from mailwright.tlsrpt import parse_report

pytestmark = pytest.mark.integration

MESSAGE = (
    b"From: app@mail.example.com\r\nTo: alice@example.net\r\nSubject: tls\r\n"
    b"Message-ID: <tls-1@mail.example.com>\r\n\r\nHello over TLS\r\n"
)
HOSTS = """\
mx-good A 127.0.0.1
mx-wrong A 127.0.0.1
mx-expired A 127.0.0.1
mx-self A 127.0.0.1
mx-selfsigned A 127.0.0.1
mx-plain A 127.0.0.2
mta-sts A 127.0.0.1
"""
_ids = itertools.count(1)


@dataclass
class World:
    nsd: NsdServer
    signer: ZoneSigner
    unbound: UnboundServer
    web: PolicyWebServer
    postfix: PostfixServer
    plain: SmtpSink
    certs: dict[str, CertificateFiles]
    bundle: Path
    selfsigned: Path
    """The certificate of mx-selfsigned (its own issuer)."""

    def example_net(self, body: str, *, corrupt: tuple[str, str, str] | None = None) -> None:
        """Serve example.net (signed); ``corrupt`` changes a record after signing (bogus)."""

        def sign(origin: str, text: str) -> str:
            signed = self.signer(origin, text)
            return tamper(signed, *corrupt) if corrupt else signed

        self.nsd.set_zone("example.net", HOSTS + body, signer=sign)

    def policy(self, mode: str, *mx: str, **answer: object) -> None:
        """Publish an MTA-STS policy for example.net (a new id each time)."""
        body = f"version: STSv1\nmode: {mode}\n" + "".join(f"mx: {m}\n" for m in mx)
        body += "max_age: 86400\n"
        self.web.set("mta-sts.example.net", str(answer.pop("body", body)), **answer)

    def tlsa(self, name: str, usage: int = 3) -> str:
        files = self.certs[name]
        path = files.ca if usage == 2 else files.certificate
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        return str(record_for(cert, usage, 1, 1))


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A leaf that signs itself (no CA at all): (certificate, key) files."""
    directory.mkdir(parents=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(directory, 0o755)
    key_file.chmod(0o644)
    return cert_file, key_file


def _chain(files: CertificateFiles) -> Path:
    """Leaf and CA in one file: the server sends its chain (DANE-TA needs the TA in it)."""
    chain = files.certificate.with_name("chain.pem")
    chain.write_bytes(files.certificate.read_bytes() + files.ca.read_bytes())
    return chain


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    base = Path(tempfile.mkdtemp(prefix="mailwright-tls-world-"))
    os.chmod(base, 0o755)
    certs = {
        "good": make_certificate(base / "good", "mx-good.example.net", days=90),
        "wrong": make_certificate(base / "wrong", "mx.example.com", days=90),
        "expired": make_certificate(base / "expired", "mx-expired.example.net", days=-1),
        "self": make_certificate(base / "self", "mx-self.example.net", days=90),
        "policy": make_certificate(base / "policy", "mta-sts.example.net"),
    }
    for sub in base.iterdir():
        os.chmod(sub, 0o755)
    bundle = base / "trusted.pem"  # every CA but the one of "self"
    bundle.write_bytes(
        b"".join(certs[n].ca.read_bytes() for n in ("good", "wrong", "expired", "policy"))
    )
    sni = base / "sni"
    selfsigned_cert, selfsigned_key = _self_signed(base / "selfsigned", "mx-selfsigned.example.net")
    sni.write_text(
        "".join(
            f"mx-{name}.example.net {certs[name].private_key} {_chain(certs[name])}\n"
            for name in ("good", "wrong", "expired", "self")
        )
        + f"mx-selfsigned.example.net {selfsigned_key} {selfsigned_cert}\n"
    )
    conf = base / "postmap"
    conf.mkdir()
    (conf / "main.cf").write_text("")
    subprocess.run(["postmap", "-c", str(conf), "-F", f"hash:{sni}"], check=True)
    os.chmod(f"{sni}.db", 0o644)
    nsd = NsdServer().start()
    signer = ZoneSigner(base / "keys")
    postfix = PostfixServer(
        domains=["example.net", "example.org"],
        hostname="mx-good.example.net",
        tls_cert=(_chain(certs["good"]), certs["good"].private_key),
        settings={"tls_server_sni_maps": f"hash:{sni}"},
    )
    postfix.start()
    plain = SmtpSink(host="127.0.0.2", port=postfix.port)
    plain.start()
    web = PolicyWebServer(certs["policy"].server_context()).start()
    try:
        nsd.set_zone("example.net", HOSTS, signer=signer)
        nsd.set_zone("example.org", "@ MX 10 mx-self.example.net.\n")
        root = signer.delegation("example.net") + signer.delegation("example.org", secure=False)
        nsd.set_zone(".", root, signer=signer)
        unbound = UnboundServer(
            nsd.port, [".", "example.net", "example.org"], signer.trust_anchor()
        )
        unbound.start()
        try:
            yield World(nsd, signer, unbound, web, postfix, plain, certs, bundle, selfsigned_cert)
        finally:
            unbound.stop()
    finally:
        web.stop()
        plain.stop()
        postfix.stop()
        nsd.stop()
        shutil.rmtree(base, ignore_errors=True)


class Harness:
    def __init__(self, world: World, data: Path, *, dnssec: bool = True) -> None:
        self.world = world
        self.events: list[dict[str, str]] = []
        self.logger = EventLogger(stderr=False)
        self.logger.subscribe(self.events.append)
        self.resolver = DnspythonResolver(world.unbound.nameserver, timeout=3.0, dnssec=dnssec)
        self.config = Config(
            hostname="mail.example.com",
            domains=("example.com",),
            data_dir=data,
            delivery=DeliveryConfig(
                mode="direct",
                outbound_port=world.postfix.port,
                connect_timeout=5.0,
                command_timeout=20.0,
                ca_file=world.bundle,
            ),
        )

    async def deliver(
        self, to: str = "alice@example.net", meta: QueueMeta | None = None
    ) -> dict[str, str]:
        """One message through a fresh agent; the delivered/deferred event of ``to``."""
        store = await SqliteQueueStore.open(self.config.data_dir)
        cache = PolicyCache(self.config.data_dir / "queue.sqlite3")
        policies = PolicySource(
            self.resolver, cache, ca_file=self.world.bundle, port=self.world.web.port, timeout=1.0
        )
        security = TransportSecurity(self.resolver, policies, ca_file=self.world.bundle)
        agent = DeliveryAgent(
            self.config, store, self.resolver, self.logger, worker="t", security=security
        )
        agent.idle_seconds = 0.05
        try:
            await store.enqueue("app@mail.example.com", [to], MESSAGE, meta=meta)
            await agent.run_once()
        finally:
            await store.close()
            cache.close()
        [event] = [e for e in self.events if e["event"] in ("delivered", "deferred", "bounced")][
            -1:
        ]
        return event

    def tls_results(self) -> dict[str, tuple[int, dict[tuple[str, str, str], int]]]:
        """What the agent counted for the TLS reports (RFC 8460), per policy type."""
        store = TlsResultStore(self.config.data_dir / "queue.sqlite3")
        try:
            days = store.take_finished_days(now=time.time() + 2 * 86_400)
        finally:
            store.close()
        return {p.policy_type: (p.successes, p.failures) for d in days.values() for p in d}

    def notes(self) -> list[str]:
        return [e["result"] for e in self.events if e["event"] == "tls-policy"]


@pytest.fixture
def harness(world: World, tmp_path: Path) -> Harness:
    world.web.answers.clear()
    world.postfix.log_file.write_text("")
    return Harness(world, tmp_path / "data")


def sts(world: World, mx: str, mode: str = "enforce", *policy_mx: str, **answer: object) -> None:
    world.example_net(f'@ MX 10 {mx}\n_mta-sts TXT "v=STSv1; id=p{next(_ids)}"\n')
    world.policy(mode, *(policy_mx or (mx + ".example.net",)), **answer)


def postfix_got_mail(world: World) -> bool:
    world.postfix.wait_for_log(r"disconnect from", timeout=3)
    return bool(re.search(r"\bmail=1\b", world.postfix.log()))


# -- MTA-STS ------------------------------------------------------------------


async def test_sts_enforce_good_certificate_delivers(world: World, harness: Harness) -> None:
    sts(world, "mx-good")
    event = await harness.deliver()
    assert event["event"] == "delivered", event
    assert world.web.requests["mta-sts.example.net"] == 1
    assert world.postfix.wait_for_log(r"disconnect from .* starttls=1", timeout=5)
    assert harness.tls_results() == {"sts": (1, {})}


@pytest.mark.parametrize(
    ("mx", "reason", "result"),
    [
        ("mx-wrong", "Hostname mismatch", "certificate-host-mismatch"),
        ("mx-expired", "certificate has expired", "certificate-expired"),
        ("mx-self", "self-signed certificate in certificate chain", "certificate-not-trusted"),
        ("mx-selfsigned", "self-signed certificate", "certificate-not-trusted"),
    ],
)
async def test_sts_enforce_bad_certificate_defers_without_plain_text(
    world: World, harness: Harness, mx: str, reason: str, result: str
) -> None:
    sts(world, mx)
    event = await harness.deliver()
    assert event["event"] == "deferred", event
    assert event["dsn"] == "4.7.5"
    assert reason in event["reply"] and "required by MTA-STS for example.net" in event["reply"]
    assert harness.notes() == [result]
    assert not postfix_got_mail(world)  # no fallback to plain text


async def test_sts_enforce_starttls_stripped_defers(world: World, harness: Harness) -> None:
    sts(world, "mx-plain")
    before = world.plain.count
    event = await harness.deliver()
    assert event["event"] == "deferred" and event["dsn"] == "4.7.4", event
    assert "does not offer STARTTLS" in event["reply"]
    assert harness.notes() == ["starttls-not-supported"]
    time.sleep(0.2)
    assert world.plain.count == before


async def test_sts_enforce_mx_not_in_policy_defers(world: World, harness: Harness) -> None:
    sts(world, "mx-good", "enforce", "mx-other.example.net")
    event = await harness.deliver()
    assert event["event"] == "deferred" and event["dsn"] == "4.7.0", event
    assert "does not match the MTA-STS policy" in event["reply"]


async def test_sts_wildcard_pattern_matches_one_label(world: World, harness: Harness) -> None:
    sts(world, "mx-good", "enforce", "*.example.net")
    assert (await harness.deliver())["event"] == "delivered"


async def test_sts_testing_mode_delivers_and_records(world: World, harness: Harness) -> None:
    sts(world, "mx-wrong", "testing")
    event = await harness.deliver()
    assert event["event"] == "delivered", event
    assert harness.notes() == ["certificate-host-mismatch"]
    failure = ("certificate-host-mismatch", "mx-wrong.example.net", "127.0.0.1")
    assert harness.tls_results() == {"sts": (0, {failure: 1})}


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 404},
        {"delay": 3.0},  # the fetch times out after 1 s
        {"body": "mode: enforce\n" + "x" * 70_000},  # larger than 64 KB
        {"status": 302, "location": "https://mta-sts.example.net/other"},  # never followed
        {"content_type": "text/html"},
        {"body": "<html>no policy</html>"},
    ],
    ids=["404", "timeout", "oversized", "redirect", "html", "invalid"],
)
async def test_sts_unusable_policy_means_no_policy(
    world: World, harness: Harness, answer: dict[str, object]
) -> None:
    # §3.3: a TXT record but no policy (and nothing cached): deliver as without MTA-STS;
    # mx-plain proves it: plain text is then allowed.
    sts(world, "mx-plain", "enforce", **answer)
    before = world.plain.count
    event = await harness.deliver()
    assert event["event"] == "delivered", event
    assert world.plain.wait_for(before + 1, timeout=5) == before + 1


async def test_sts_cached_policy_applies_when_fetch_fails_and_survives_restart(
    world: World, harness: Harness
) -> None:
    sts(world, "mx-good")
    assert (await harness.deliver())["event"] == "delivered"
    # The policy host now fails and the MX record points to a plain-text host; the
    # TXT id changes too (an attacker's doing): the cached policy (new process, same
    # database) still applies, so mx-plain is refused.
    world.example_net(f'@ MX 10 mx-plain\n_mta-sts TXT "v=STSv1; id=p{next(_ids)}"\n')
    world.policy("enforce", "mx-plain.example.net", status=500)
    event = await harness.deliver()
    assert event["event"] == "deferred" and "does not match the MTA-STS policy" in event["reply"]


# -- DANE ---------------------------------------------------------------------


async def test_dane_ee_match_delivers(world: World, harness: Harness) -> None:
    world.example_net(f"@ MX 10 mx-good\n_25._tcp.mx-good TLSA {world.tlsa('good')}\n")
    event = await harness.deliver()
    assert event["event"] == "delivered", event
    assert harness.tls_results() == {"tlsa": (1, {})}


async def test_dane_ee_ignores_name_and_dates(world: World, harness: Harness) -> None:
    # RFC 7672 §3.1.1: the expired certificate is fine when its key is pinned.
    world.example_net(f"@ MX 10 mx-expired\n_25._tcp.mx-expired TLSA {world.tlsa('expired')}\n")
    assert (await harness.deliver())["event"] == "delivered"


async def test_dane_ee_authenticates_a_self_signed_certificate(
    world: World, harness: Harness
) -> None:
    # The point of DANE-EE: no CA needed, the key is pinned in DNSSEC.
    cert = x509.load_pem_x509_certificate(world.selfsigned.read_bytes())
    world.example_net(f"@ MX 10 mx-selfsigned\n_25._tcp.mx-selfsigned TLSA {record_for(cert)}\n")
    assert (await harness.deliver())["event"] == "delivered"


async def test_dane_ta_delivers_with_chain(world: World, harness: Harness) -> None:
    world.example_net(f"@ MX 10 mx-good\n_25._tcp.mx-good TLSA {world.tlsa('good', 2)}\n")
    assert (await harness.deliver())["event"] == "delivered"


async def test_dane_ta_wrong_name_defers(world: World, harness: Harness) -> None:
    world.example_net(f"@ MX 10 mx-wrong\n_25._tcp.mx-wrong TLSA {world.tlsa('wrong', 2)}\n")
    event = await harness.deliver()
    assert event["event"] == "deferred" and "does not name mx-wrong.example.net" in event["reply"]


async def test_dane_tlsa_mismatch_defers(world: World, harness: Harness) -> None:
    world.example_net(f"@ MX 10 mx-good\n_25._tcp.mx-good TLSA {world.tlsa('self')}\n")
    event = await harness.deliver()
    assert event["event"] == "deferred" and event["dsn"] == "4.7.5", event
    assert "DANE" in event["reply"] and "matches no TLSA record" in event["reply"]
    assert harness.notes() == ["tlsa-invalid"]
    assert not postfix_got_mail(world)


async def test_dane_bogus_tlsa_defers(world: World, harness: Harness) -> None:
    record = world.tlsa("good")
    world.example_net(
        f"@ MX 10 mx-good\n_25._tcp.mx-good TLSA {record}\n",
        corrupt=("_25._tcp.mx-good.example.net.", "TLSA", "3 1 1 " + "00" * 32),
    )
    event = await harness.deliver()
    assert event["event"] == "deferred" and event["dsn"] == "4.7.5", event
    assert "TLSA lookup for _25._tcp.mx-good.example.net failed" in event["reply"]


async def test_dane_starttls_stripped_defers(world: World, harness: Harness) -> None:
    world.example_net(f"@ MX 10 mx-plain\n_25._tcp.mx-plain TLSA {world.tlsa('good')}\n")
    event = await harness.deliver()
    assert event["event"] == "deferred" and event["dsn"] == "4.7.4", event
    assert "required by DANE" in event["reply"]


async def test_insecure_mx_means_no_dane(world: World, harness: Harness) -> None:
    # example.org is unsigned: its MX (mx-self.example.net) is insecure, so the
    # (mismatching) TLSA record of mx-self is not used: opportunistic TLS as before.
    world.example_net(f"_25._tcp.mx-self TLSA {world.tlsa('good')}\n")
    event = await harness.deliver("bob@example.org")
    assert event["event"] == "delivered", event


async def test_without_dnssec_trust_there_is_no_dane(world: World, tmp_path: Path) -> None:
    harness = Harness(world, tmp_path / "plain", dnssec=False)
    world.example_net(f"@ MX 10 mx-good\n_25._tcp.mx-good TLSA {world.tlsa('self')}\n")
    assert (await harness.deliver())["event"] == "delivered"


async def test_dane_takes_precedence_over_mta_sts(world: World, harness: Harness) -> None:
    world.example_net(
        f"@ MX 10 mx-wrong\n_25._tcp.mx-wrong TLSA {world.tlsa('wrong')}\n"
        f'_mta-sts TXT "v=STSv1; id=p{next(_ids)}"\n'
    )
    world.policy("enforce", "mx-good.example.net")
    event = await harness.deliver()
    assert event["event"] == "delivered", event


# -- REQUIRETLS (RFC 8689) ------------------------------------------------------


async def test_requiretls_to_a_host_without_the_extension_bounces_5_7_30(
    world: World, harness: Harness
) -> None:
    # DANE authenticates mx-good, but Postfix does not offer REQUIRETLS.
    world.example_net(f"@ MX 10 mx-good\n_25._tcp.mx-good TLSA {world.tlsa('good')}\n")
    event = await harness.deliver(meta=QueueMeta(requiretls=True))
    assert event["event"] == "bounced" and event["dsn"] == "5.7.30", event
    assert not postfix_got_mail(world)


async def test_requiretls_with_a_secure_mx_checks_the_certificate(
    world: World, harness: Harness
) -> None:
    # A DNSSEC-secure MX without TLSA: the certificate must be valid for the MX name.
    world.example_net("@ MX 10 mx-wrong\n")
    event = await harness.deliver(meta=QueueMeta(requiretls=True))
    assert event["event"] == "bounced" and event["dsn"] == "5.7.10", event
    assert "Hostname mismatch" in event["reply"]


async def test_requiretls_with_an_insecure_mx_and_no_policy_bounces(
    world: World, harness: Harness
) -> None:
    event = await harness.deliver("bob@example.org", QueueMeta(requiretls=True))
    assert event["event"] == "bounced" and event["dsn"] == "5.7.10", event
    assert "neither DNSSEC-secure nor covered by an MTA-STS policy" in event["reply"]


async def test_tls_required_no_ignores_the_policy(world: World, harness: Harness) -> None:
    # RFC 8689 §4.2.2: e.g. a report about a broken certificate still gets through.
    sts(world, "mx-wrong")
    event = await harness.deliver(meta=QueueMeta(tls_optional=True))
    assert event["event"] == "delivered", event


# -- the doctor's transport checks, on the same world ------------------------------


async def doctor(world: World, *, dnssec: bool = True, **overrides: object) -> dict[str, object]:
    options = DoctorOptions(
        hostname="mx-good.example.net",
        transport=True,
        skip=frozenset({"host", "rdns", "spf", "dkim", "dmarc", "blocklists"}),
        local_ports=(),
        smtp_port=world.postfix.port,
        tls_ca_file=world.bundle,
        mta_sts_port=world.web.port,
        submission_ports=((world.postfix.port, "starttls"),),
        connect_timeout=2.0,
        **overrides,  # type: ignore[arg-type]
    )
    resolver = DnspythonResolver(world.unbound.nameserver, timeout=3.0, dnssec=dnssec)
    report = await run_checks("example.net", options, resolver)
    transport = ("mta-sts", "tls-rpt", "tlsa", "starttls:", "cert:")
    return {c.id: (str(c.status), c.observed) for c in report.checks if c.id.startswith(transport)}


def healthy(world: World, mx: str = "mx-good", tlsa: str | None = None, **answer: object) -> None:
    record = tlsa if tlsa is not None else world.tlsa("good")
    world.example_net(
        f"@ MX 10 {mx}\n_25._tcp.mx-good TLSA {record}\n"
        f'_mta-sts TXT "v=STSv1; id=p{next(_ids)}"\n'
        '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tls@example.net"\n'
    )
    world.policy("enforce", "mx-good.example.net", **answer)


async def test_doctor_healthy_transport(world: World) -> None:
    healthy(world)
    rows = await doctor(world)
    port = world.postfix.port
    assert {k: v[0] for k, v in rows.items()} == {
        "mta-sts": "ok",
        "tls-rpt": "ok",
        "tlsa": "ok",
        "starttls:mx-good.example.net": "ok",
        f"cert:{port}": "ok",
    }
    assert "TLSv1." in str(rows["starttls:mx-good.example.net"][1])


@pytest.mark.parametrize(
    ("fault", "check", "status", "text"),
    [
        ({"mx": "mx-wrong"}, "mta-sts", "fail", "MX not in the policy: mx-wrong.example.net"),
        ({"status": 404}, "mta-sts", "fail", "HTTP 404"),
        ({"tlsa": "3 1 1 " + "00" * 32}, "tlsa", "fail", "does not match the certificate"),
        ({"mx": "mx-wrong"}, "starttls:mx-wrong.example.net", "fail", "Hostname mismatch"),
        ({"mx": "mx-expired"}, "starttls:mx-expired.example.net", "fail", "expired"),
        ({"mx": "mx-self"}, "starttls:mx-self.example.net", "fail", "self-signed"),
        ({"mx": "mx-selfsigned"}, "starttls:mx-selfsigned.example.net", "fail", "self-signed"),
        ({"mx": "mx-plain"}, "starttls:mx-plain.example.net", "fail", "does not offer STARTTLS"),
    ],
    ids=[
        "sts-mx",
        "sts-404",
        "tlsa-mismatch",
        "wrong-name",
        "expired",
        "untrusted",
        "self-signed",
        "plain",
    ],
)
async def test_doctor_seeded_transport_faults(
    world: World, fault: dict[str, object], check: str, status: str, text: str
) -> None:
    healthy(world, **fault)  # type: ignore[arg-type]
    rows = await doctor(world)
    assert rows[check][0] == status, rows[check]
    assert text in str(rows[check][1])


async def test_doctor_tlsa_bogus_and_insecure(world: World) -> None:
    record = world.tlsa("good")
    world.example_net(
        f"@ MX 10 mx-good\n_25._tcp.mx-good TLSA {record}\n",
        corrupt=("_25._tcp.mx-good.example.net.", "TLSA", "3 1 1 " + "00" * 32),
    )
    rows = await doctor(world)
    assert rows["tlsa"][0] == "fail" and "TLSA lookup failed" in str(rows["tlsa"][1]), rows
    assert rows["mta-sts"][0] == "warn" and rows["tls-rpt"][0] == "warn"
    healthy(world)
    insecure = await doctor(world, dnssec=False)
    assert insecure["tlsa"][0] == "warn" and "not DNSSEC-secure" in str(insecure["tlsa"][1])


# -- TLS reports by HTTPS POST (RFC 8460 §5.4) --------------------------------------


async def test_tls_report_is_posted_over_https(world: World, tmp_path: Path) -> None:
    store = TlsResultStore(tmp_path / "q.sqlite3")
    store.record("example.net", "sts", now=1000.0)
    store.record("example.net", "sts", "certificate-expired", mx_host="mx-expired", now=1000.0)
    url = f"https://127.0.0.1:{world.web.port}/tlsrpt"
    world.example_net(f'_smtp._tls TXT "v=TLSRPTv1; rua={url}"\n')
    resolver = DnspythonResolver(world.unbound.nameserver, timeout=3.0)

    async def post(target: str, body: bytes) -> None:
        await post_report(target, body, context=https_context(world.certs["policy"].ca))

    async def no_mail(sender: str, to: list[str], message: bytes) -> str:
        raise AssertionError("no mailto in this record")

    done = await send_due_tls_reports(
        store,
        hostname="mail.example.com",
        from_address="tls-reports@example.com",
        resolver=resolver,
        enqueue=no_mail,
        post=post,
        now=200_000.0,
    )
    store.close()
    assert done == [("example.net", url, None)]
    [(path, media, body)] = world.web.posted
    assert path == "/tlsrpt" and media == "application/tlsrpt+gzip"
    report = parse_report(body)
    assert report.organization == "mail.example.com"
    [policy] = report.policies
    assert (policy.successes, policy.failures) == (1, 1)
    assert policy.failure_types == (("certificate-expired", 1),)


async def test_authenticated_session_carries_several_messages(
    world: World, harness: Harness
) -> None:
    # The connection cache keeps working under a policy: one session, two messages.
    sts(world, "mx-good")
    store = await SqliteQueueStore.open(harness.config.data_dir)
    cache = PolicyCache(harness.config.data_dir / "queue.sqlite3")
    policies = PolicySource(
        harness.resolver, cache, ca_file=world.bundle, port=world.web.port, timeout=1.0
    )
    security = TransportSecurity(harness.resolver, policies, ca_file=world.bundle)
    agent = DeliveryAgent(
        harness.config, store, harness.resolver, harness.logger, worker="t", security=security
    )
    agent.idle_seconds = 0.5
    try:
        for _ in range(2):
            await store.enqueue("app@mail.example.com", ["alice@example.net"], MESSAGE)
        await agent.run_once()
    finally:
        await store.close()
        cache.close()
    assert len([e for e in harness.events if e["event"] == "delivered"]) == 2
    world.postfix.wait_for_log(r"disconnect from .*mail=2", timeout=5)
    assert re.search(r"starttls=1 mail=2 ", world.postfix.log()), world.postfix.log()


@pytest.mark.parametrize("kind", ["dnspython", "stub", "server"])
async def test_every_resolver_reports_dnssec_the_same(world: World, kind: str) -> None:
    """The AD bit of the validating Unbound, as each of our resolvers carries it: the
    server's cached StubResolver (what the delivery agent uses) included."""
    from mailwright.dns import CachingResolver, StubResolver

    def make(dnssec: bool) -> object:
        if kind == "dnspython":
            return DnspythonResolver(world.unbound.nameserver, timeout=3.0, dnssec=dnssec)
        stub = StubResolver(world.unbound.nameserver, timeout=3.0, dnssec=dnssec)
        return stub if kind == "stub" else CachingResolver(stub)

    trusting, not_trusting = make(True), make(False)
    signed = await trusting.a("mx-good.example.net")  # type: ignore[attr-defined]
    assert signed.outcome.value == "answer" and signed.secure
    unsigned = await trusting.mx("example.org")  # type: ignore[attr-defined]
    assert unsigned.outcome.value == "answer" and not unsigned.secure  # insecure delegation
    missing = await trusting.a("nothing.example.net")  # type: ignore[attr-defined]
    # an authenticated denial carries AD too; DnspythonResolver (CLI, doctor) reads the
    # flag only on answers, the server's resolvers on every response
    assert missing.outcome.value == "nxdomain" and missing.secure == (kind != "dnspython")
    untrusted = await not_trusting.a("mx-good.example.net")  # type: ignore[attr-defined]
    assert untrusted.outcome.value == "answer" and not untrusted.secure
