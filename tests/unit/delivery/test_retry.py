"""The retry schedule with Postfix's defaults (postconf(5))."""

from __future__ import annotations

import itertools

from mailwright.config import RetryConfig
from mailwright.delivery.retry import (
    after_failure,
    backoff,
    delay_warning_due,
    retry_until,
    schedule,
)

DEFAULTS = RetryConfig()


def test_defaults_are_postfix_defaults() -> None:
    assert (DEFAULTS.first_retry, DEFAULTS.max_backoff, DEFAULTS.max_queue_lifetime) == (
        300,
        4000,
        5 * 86400,
    )
    assert DEFAULTS.delay_warning == 0


def test_backoff_doubles_from_first_retry_to_max_backoff() -> None:
    times = schedule(DEFAULTS)
    assert times[:8] == [0, 300, 600, 1200, 2400, 4800, 8800, 12800]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[:6] == [300, 300, 600, 1200, 2400, 4000]
    assert max(gaps) == 4000


def test_gives_up_after_max_queue_lifetime() -> None:
    times = schedule(DEFAULTS)
    assert times[-1] >= 5 * 86400
    assert times[-2] < 5 * 86400
    decision = after_failure(1000.0, 1000.0 + 5 * 86400, DEFAULTS)
    assert decision.expired
    decision = after_failure(1000.0, 1000.0 + 5 * 86400 - 1, DEFAULTS)
    assert not decision.expired
    assert decision.next_attempt == 1000.0 + 5 * 86400 - 1 + 4000


def test_zero_lifetime_means_one_attempt() -> None:
    assert after_failure(0.0, 0.0, RetryConfig(max_queue_lifetime=0)).expired


def test_backoff_clamped() -> None:
    assert backoff(0, DEFAULTS) == 300
    assert backoff(1000, DEFAULTS) == 1000
    assert backoff(10**6, DEFAULTS) == 4000
    assert backoff(-5, DEFAULTS) == 300


def test_clock_skew_does_not_schedule_in_the_past() -> None:
    decision = after_failure(arrival=2000.0, now=1000.0, retry=DEFAULTS)
    assert not decision.expired and decision.next_attempt == 1300.0


def test_delay_warning() -> None:
    off = DEFAULTS
    on = RetryConfig(delay_warning=4 * 3600)
    assert not delay_warning_due(0, 10**6, off, warned=False)
    assert not delay_warning_due(0, 4 * 3600 - 1, on, warned=False)
    assert delay_warning_due(0, 4 * 3600, on, warned=False)
    assert not delay_warning_due(0, 4 * 3600, on, warned=True)


def test_retry_until() -> None:
    assert retry_until(100.0, DEFAULTS) == 100.0 + 5 * 86400
