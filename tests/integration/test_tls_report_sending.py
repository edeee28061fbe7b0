"""The server's daily TLS reports (RFC 8460): counted results of yesterday become a
report mail through the intake, with TLS policies ignored for it (§3)."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from mailwright.config import Config, DeliveryConfig, DnsConfig
from mailwright.delivery.tls_results import TlsResultStore
from mailwright.log import EventLogger
from mailwright.server import ServeOptions, Worker, build_runtime
from mailwright.smtp.intake import Accepted
from mailwright.testing.nsd import NsdServer

pytestmark = pytest.mark.integration


class CommitRecorder:
    def __init__(self) -> None:
        self.accepted: list[Accepted] = []

    async def commit(self, accepted: Accepted) -> str:
        self.accepted.append(accepted)
        return "QUEUED1"


async def test_yesterdays_results_are_mailed_to_the_rua(
    dns_world: NsdServer, tmp_path: Path
) -> None:
    dns_world.set_zone("example.net", '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tls@example.net"\n')
    config = Config(
        hostname="mail.example.com",
        domains=("example.com",),
        data_dir=tmp_path / "data",
        dns=DnsConfig(nameserver=dns_world.nameserver, timeout=2.0),
        delivery=DeliveryConfig(mode="direct"),
    )
    store = TlsResultStore(config.data_dir / "queue.sqlite3")
    yesterday = time.time() - 86_400
    store.record("example.net", "sts", policy_strings=("mode: enforce",), now=yesterday)
    store.record("example.net", "sts", "certificate-expired", mx_host="mx", now=yesterday)
    store.close()
    runtime, _ = build_runtime(config, dev_mode=False)
    events: list[dict[str, str]] = []
    logger = EventLogger(stderr=False)
    logger.subscribe(events.append)
    worker = Worker(ServeOptions(config), runtime, logger)
    recorder = CommitRecorder()
    worker.smtp = recorder  # type: ignore[assignment]
    await worker.send_tls_reports_now()
    [accepted] = recorder.accepted
    assert accepted.recipients == ("tls@example.net",)
    assert accepted.sender == "tls-reports@example.com"
    assert accepted.meta.origin == "report" and accepted.meta.tls_optional
    message = email.message_from_bytes(accepted.message, policy=email.policy.default)
    assert message["TLS-Report-Domain"] == "example.net"
    [part] = [p for p in message.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
    payload: Any = part.get_payload(decode=True)
    report = json.loads(gzip.decompress(payload))
    [policy] = report["policies"]
    assert policy["summary"] == {
        "total-successful-session-count": 1,
        "total-failure-session-count": 1,
    }
    assert policy["policy"]["policy-string"] == ["mode: enforce"]
    [sent] = [e for e in events if e["event"] == "tls-report-sent"]
    assert sent["to"] == "mail QUEUED1"
    # Taken once: a second run (another worker) finds nothing.
    await worker.send_tls_reports_now()
    assert len(recorder.accepted) == 1
