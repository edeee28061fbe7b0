"""``/metrics`` of a 2-worker server: the counts of every worker summed, consistent
with what was sent; ``/readyz`` and ``/healthz`` open, ``/metrics`` not (from outside
``trusted_networks``)."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator

import pytest

from mailwright.testing.api import ApiServer, start_api_server
from mailwright.testing.nsd import NsdServer
from mailwright.testing.ports import HOST

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, nsd_session: NsdServer) -> Iterator[ApiServer]:
    if not nsd_session.running:
        nsd_session.start()
    nsd_session.set_zone("example.com", "mx A 127.0.0.1\n")
    running = start_api_server(
        tmp_path_factory.mktemp("metrics"),
        workers=2,
        extra=f'[dns]\nnameserver = "{nsd_session.nameserver}"\ntimeout = 2.0\n',
    )
    yield running
    assert running.stop() == 0


def scrape(server: ApiServer, key: str | None = "metrics") -> dict[str, float]:
    status, headers, body = server.request("GET", "/metrics", key=key)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def total(values: dict[str, float], name: str, **labels: str) -> float:
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        v
        for k, v in values.items()
        if re.match(re.escape(name) + r"(\{|$)", k) and all(w in k for w in want)
    )


def test_counts_are_summed_across_workers(server: ApiServer) -> None:
    before = scrape(server)
    sent = 12
    for i in range(sent):
        # new connections: the kernel spreads them over both workers
        with smtplib.SMTP(HOST, server.smtp_port, timeout=10) as smtp:
            smtp.sendmail("app@example.com", [f"r{i}@example.net"], b"Subject: m\r\n\r\nx\r\n")
    for _ in range(3):
        server.json(
            "POST",
            "/v1/messages",
            {"from": "app@example.com", "to": "a@example.net", "text": "x"},
            key="send",
        )
    server.json("GET", "/v1/events", key="mwk_wrong")
    scrapes = [scrape(server) for _ in range(6)]  # answered by either worker
    for after in scrapes:
        accepted = total(after, "mailwright_messages_total", outcome="accepted") - total(
            before, "mailwright_messages_total", outcome="accepted"
        )
        assert accepted == sent + 3
        sessions = total(after, "mailwright_smtp_sessions_total") - total(
            before, "mailwright_smtp_sessions_total"
        )
        assert sessions == sent
        assert total(after, "mailwright_auth_failures_total", mechanism="bearer") >= 1
        assert after["mailwright_queue_depth"] >= sent + 3
        assert after["mailwright_queue_oldest_age_seconds"] >= 0
        assert "mailwright_webhook_backlog_events" in after
        # no DKIM key and no DNS server in this configuration: present, not counted
        for family in ("dkim_sign_seconds", "dns_query_seconds", "delivery_latency_seconds"):
            assert f"mailwright_{family}_count" in after
    pids = {line for line in (server.config.parent / "data" / "metrics").iterdir()}
    assert len(pids) >= 2  # both workers wrote their counts


def test_metrics_needs_key_from_outside_trusted_networks(server: ApiServer) -> None:
    # 127.0.0.1 is trusted by default: open to it; a wrong key is still refused.
    assert scrape(server, key=None)
    status, _ = server.json("GET", "/metrics", key="mwk_nope")
    assert status == 401
    status, _ = server.json("GET", "/metrics", key="send")
    assert status == 403


def test_health_and_readiness_are_open(server: ApiServer) -> None:
    assert server.request("GET", "/healthz", key=None)[0] == 200
    # the queue takes a write, the test NSD answers for the hostname
    assert server.request("GET", "/readyz", key=None)[:3:2] == (200, b"ready\n")
