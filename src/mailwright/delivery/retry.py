"""When to try again, when to give up, when to warn: Postfix's schedule.

Postfix's queue manager does not count attempts; after a failed attempt it waits
as long as the message has already been queued, clamped between
``minimal_backoff_time`` and ``maximal_backoff_time``. That doubles the interval
from one attempt to the next (attempts at 0, 300, 600, 1200, 2400, 4800, 8800 s, ...
with the defaults) and needs nothing but the arrival time, so a restart or a
``queue retry`` cannot disturb it. A message still undelivered after
``max_queue_lifetime`` is returned to the sender at its next failed attempt
(lifetime 0: one attempt only, as in Postfix).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import RetryConfig


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do with a recipient that just failed transiently."""

    expired: bool
    """True: give up now and bounce (the queue lifetime is over)."""
    next_attempt: float
    """When to try again (Unix time); meaningless when ``expired``."""


def backoff(age: float, retry: RetryConfig) -> float:
    """Seconds to wait after a failed attempt of a message queued ``age`` seconds ago."""
    return float(min(max(age, retry.first_retry), retry.max_backoff))


def after_failure(arrival: float, now: float, retry: RetryConfig) -> RetryDecision:
    """Decide after a transient failure at ``now`` for a message that arrived at ``arrival``."""
    age = max(0.0, now - arrival)
    if age >= retry.max_queue_lifetime:
        return RetryDecision(True, now)
    return RetryDecision(False, now + backoff(age, retry))


def retry_until(arrival: float, retry: RetryConfig) -> float:
    """The time after which the message is given up (``Will-Retry-Until`` in a delay DSN)."""
    return arrival + retry.max_queue_lifetime


def delay_warning_due(arrival: float, now: float, retry: RetryConfig, warned: bool) -> bool:
    """True once the sender should be told the message is delayed (0 turns this off)."""
    return retry.delay_warning > 0 and not warned and now - arrival >= retry.delay_warning


def schedule(retry: RetryConfig, arrival: float = 0.0) -> list[float]:
    """Every attempt time (relative to ``arrival``) if each one fails transiently.

    The last element is the attempt at which the message expires. Handy in tests and
    for ``mailwright queue show`` to explain when the next attempts will be.
    """
    times = [arrival]
    while True:
        decision = after_failure(arrival, times[-1], retry)
        if decision.expired:
            return [t - arrival for t in times]
        times.append(decision.next_attempt)
