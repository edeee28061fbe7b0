"""DMARC observations in the shared PostgreSQL database: several nodes add, one daily
run takes everything, so each policy domain gets one report a day (RFC 9990 §3.1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailwright.dmarc_reports.observations import (
    Observation,
    ObservationStore,
    PostgresObservationStore,
    open_observations,
)
from mailwright.dmarc_reports.sender import send_due_reports
from mailwright.dns import MemoryResolver
from mailwright.queue.postgres import migrate

pytestmark = pytest.mark.integration


def _obs(domain: str, ip: str, when: float) -> Observation:
    return Observation(
        policy_domain=domain,
        source_ip=ip,
        header_from=domain,
        disposition="none",
        dkim_aligned="pass",
        spf_aligned="fail",
        dkim=((domain, "s1", "pass"),),
        spf=(domain, "mfrom", "fail"),
        policy=(("p", "none"),),
        reasons=("local_policy",),
        when=when,
    )


def test_open_observations_picks_the_store(tmp_path: Path, postgres_url: str) -> None:
    asyncio.run(migrate(postgres_url))
    local = open_observations(tmp_path)
    shared = open_observations(tmp_path, postgres_url)
    try:
        assert isinstance(local, ObservationStore)
        assert isinstance(shared, PostgresObservationStore)
    finally:
        local.close()
        shared.close()


def test_two_nodes_add_one_take_gets_all(postgres_url: str) -> None:
    asyncio.run(migrate(postgres_url))
    one, two = PostgresObservationStore(postgres_url), PostgresObservationStore(postgres_url)
    try:
        one.add(_obs("example.org", "192.0.2.1", 100.0), ["mailto:d@example.org"])
        two.add(_obs("example.org", "192.0.2.2", 200.0), ["mailto:d@example.org"])
        two.add(_obs("example.net", "192.0.2.3", 300.0), ["mailto:d@example.net"])
        two.add(_obs("example.com", "192.0.2.4", 300.0), [])  # asked for no reports
        one.add(_obs("example.org", "192.0.2.5", 5000.0), ["mailto:d@example.org"])  # later
        taken = two.take(1000.0)
        assert sorted(taken) == ["example.net", "example.org"]
        rua, items = taken["example.org"]
        assert rua == ["mailto:d@example.org"]
        assert sorted(o.source_ip for o in items) == ["192.0.2.1", "192.0.2.2"]
        assert items[0] == _obs("example.org", items[0].source_ip, 0.0)  # round trip
        assert one.take(1000.0) == {}  # the other node's run finds nothing
        assert list(one.take(10_000.0)) == ["example.org"]
    finally:
        one.close()
        two.close()


async def test_daily_run_takes_from_the_shared_database(tmp_path: Path, postgres_url: str) -> None:
    await migrate(postgres_url)
    store = PostgresObservationStore(postgres_url)
    try:
        store.add(_obs("example.org", "192.0.2.1", 100.0), ["mailto:dmarc@example.org"])
    finally:
        store.close()
    resolver = MemoryResolver().add(
        "_dmarc.example.org", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@example.org"
    )
    queued: list[list[str]] = []

    async def enqueue(sender: str, recipients: list[str], data: bytes) -> str:
        queued.append(recipients)
        return "0ABCDEFGHJK123"

    runs = [
        await send_due_reports(
            data_dir=tmp_path,
            hostname=f"node{n}.example.net",
            from_address="dmarc@example.net",
            resolver=resolver,
            enqueue=enqueue,
            observations_at=postgres_url,
        )
        for n in (1, 2)
    ]
    assert [[d for d, _q, _s in run] for run in runs] == [["example.org"], []]
    assert queued == [["dmarc@example.org"]]
