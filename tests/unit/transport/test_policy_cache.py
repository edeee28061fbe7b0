"""RFC 8461 §3.3 and §5.1: when a policy is fetched, cached, reused and refreshed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailwright.delivery import policies
from mailwright.delivery.policies import PolicyCache, PolicyFetchError, PolicySource
from mailwright.dns import MemoryResolver
from mailwright.mtasts import Policy, parse_policy

ENFORCE = "version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 86400\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Fetches(list[str]):
    """Every fetch made; each answers ``answers[-1]`` (a policy text, or an exception)."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[str | Exception] = [ENFORCE]


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> Fetches:
    made = Fetches()

    async def fake(domain: str, *args: object, **kwargs: object) -> Policy:
        made.append(domain)
        answer = made.answers[-1]
        if isinstance(answer, Exception):
            raise answer
        return parse_policy(answer)

    monkeypatch.setattr(policies, "fetch_policy", fake)
    return made


def source(tmp_path: Path, dns: MemoryResolver, clock: Clock) -> PolicySource:
    return PolicySource(dns, PolicyCache(tmp_path / "q.sqlite3"), clock=clock)


def txt(policy_id: str) -> MemoryResolver:
    return MemoryResolver().add("_mta-sts.example.net", "TXT", f"v=STSv1; id={policy_id}")


def test_fetched_once_per_id_and_again_when_it_changes(tmp_path: Path, fetches: Fetches) -> None:
    clock, dns = Clock(), txt("a1")
    src = source(tmp_path, dns, clock)
    assert asyncio.run(src.lookup("example.net")).policy is not None
    assert asyncio.run(src.lookup("example.net")).policy is not None
    assert len(fetches) == 1
    src.resolver = txt("a2")
    asyncio.run(src.lookup("example.net"))
    assert len(fetches) == 2


def test_cache_survives_a_restart_and_a_vanished_record(tmp_path: Path, fetches: Fetches) -> None:
    clock, dns = Clock(), txt("a1")
    asyncio.run(source(tmp_path, dns, clock).lookup("example.net"))
    empty = MemoryResolver()  # the TXT record is gone (or blocked)
    result = asyncio.run(source(tmp_path, empty, clock).lookup("example.net"))
    assert result.policy is not None and result.policy.mode == "enforce"
    clock.now += 86_400  # max_age is over: no policy any more
    assert asyncio.run(source(tmp_path, empty, clock).lookup("example.net")).policy is None


def test_failed_fetch_keeps_the_cached_policy_and_waits_five_minutes(
    tmp_path: Path, fetches: Fetches
) -> None:
    clock, dns = Clock(), txt("a1")
    src = source(tmp_path, dns, clock)
    asyncio.run(src.lookup("example.net"))
    src.resolver = txt("a2")
    fetches.answers.append(PolicyFetchError("HTTP 500", "sts-policy-fetch-error"))
    result = asyncio.run(src.lookup("example.net"))
    assert result.policy is not None and result.result_type == "sts-policy-fetch-error"
    asyncio.run(src.lookup("example.net"))
    assert len(fetches) == 2  # §3.3: not again within five minutes for the same id
    clock.now += 301
    asyncio.run(src.lookup("example.net"))
    assert len(fetches) == 3


def test_no_cache_and_no_fetch_means_no_policy(tmp_path: Path, fetches: Fetches) -> None:
    fetches.answers.append(PolicyFetchError("timeout", "sts-policy-fetch-error"))
    result = asyncio.run(source(tmp_path, txt("a1"), Clock()).lookup("example.net"))
    assert result.policy is None and result.problem == "timeout"


def test_daily_refresh(tmp_path: Path, fetches: Fetches) -> None:
    clock, dns = Clock(), txt("a1")
    src = source(tmp_path, dns, clock)
    asyncio.run(src.lookup("example.net"))
    assert asyncio.run(src.refresh_due()) == []
    clock.now += 86_000  # not yet a day
    assert asyncio.run(src.refresh_due()) == []
    clock.now += 400
    assert asyncio.run(src.refresh_due()) == [("example.net", None)]
    assert len(fetches) == 2
    clock.now += 86_000  # the refresh extended max_age from its own fetch time
    assert asyncio.run(src.lookup("example.net")).policy is not None
