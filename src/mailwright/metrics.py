"""Prometheus metrics, correct across the worker processes.

Every worker counts what it does (messages, sessions, AUTH failures, DNS and DKIM
timings) in ``prometheus_client``'s multiprocess mode: each process writes its values
to memory-mapped files in ``data_dir/metrics`` and whichever worker answers a scrape
sums them, so Prometheus sees one server whatever worker it reaches. The directory is
emptied by :func:`prepare` in the master before the workers start (it must be set
before ``prometheus_client`` is first imported: the value class is chosen then).

State that lives in the queue database (depth, oldest message, webhook backlog) and the
certificate's days left are read at scrape time instead (:func:`render`), not counted.

Counts come from the event log lines every process already writes
(:meth:`~mailwright.log.EventLogger.subscribe`), so each is counted where it is
decided, once, without metric calls scattered through the server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
MESSAGE_EVENTS = frozenset(
    {"accepted", "delivered", "deferred", "bounced", "rejected", "refused", "expired"}
)


def prepare(data_dir: Path) -> None:
    """In the master, before the workers fork: a fresh, private metrics directory."""
    directory = data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ[ENV] = str(directory)


def enabled() -> bool:
    return bool(os.environ.get(ENV))


class _Metrics:
    """The process's metric objects (made on first use, after :func:`prepare`)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.messages = Counter(
            "mailwright_messages_total",
            "Messages (recipients, for delivery outcomes) by outcome and listener",
            ["outcome", "listener"],
        )
        self.sessions = Counter(
            "mailwright_smtp_sessions_total", "SMTP connections accepted", ["listener"]
        )
        self.auth_failures = Counter(
            "mailwright_auth_failures_total", "Failed SMTP AUTH and API key checks", ["mechanism"]
        )
        self.delivery_latency = Histogram(
            "mailwright_delivery_latency_seconds",
            "From queueing to delivery",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 5 * 24 * 3600),
        )
        self.dns = Histogram(
            "mailwright_dns_query_seconds",
            "DNS queries through the server's resolver",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.dkim = Histogram(
            "mailwright_dkim_sign_seconds",
            "DKIM signing of one message",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
        )


_metrics: _Metrics | None = None


def get() -> _Metrics | None:
    """The metrics of this process, or None when metrics are off (not under ``serve``)."""
    global _metrics
    if _metrics is None and enabled():
        _metrics = _Metrics()
    return _metrics


def observe_log(record: dict[str, str]) -> None:
    """An :class:`~mailwright.log.EventLogger` subscriber: counts from event lines."""
    metrics = get()
    if metrics is None:
        return
    event = record.get("event", "")
    if event in MESSAGE_EVENTS:
        metrics.messages.labels(event, record.get("listener", "")).inc()
        if event == "delivered" and "delay" in record:
            with contextlib.suppress(ValueError):
                metrics.delivery_latency.observe(float(record["delay"]))
    elif event == "connect":
        metrics.sessions.labels(record.get("listener", "")).inc()
    elif event == "auth-failed":
        metrics.auth_failures.labels(record.get("mechanism", "")).inc()


def observe_dns(seconds: float) -> None:
    metrics = get()
    if metrics is not None:
        metrics.dns.observe(seconds)


def observe_dkim(seconds: float) -> None:
    """One DKIM signing (of every key of a domain), timed."""
    metrics = get()
    if metrics is not None:
        metrics.dkim.observe(seconds)


def worker_exited(pid: int) -> None:
    """The master, for a worker that is gone: its live gauges stop counting."""
    if enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def render(gauges: Iterable[tuple[str, str, float]]) -> bytes:
    """The exposition text: every process's counters and histograms summed, and the
    ``(name, help, value)`` gauges read at scrape time."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess
    from prometheus_client.core import GaugeMetricFamily

    registry = CollectorRegistry()
    if enabled():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    families = [
        GaugeMetricFamily(name, help_text, value=value) for name, help_text, value in gauges
    ]

    class Live:
        def collect(self) -> list[GaugeMetricFamily]:
            return families

    registry.register(Live())
    return generate_latest(registry)
