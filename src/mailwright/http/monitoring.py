"""``/metrics`` (Prometheus text), ``/readyz`` and the certificate facts the status page
shows too.

``/metrics`` answers a key with the ``metrics`` scope, and — unless ``[http]
metrics_open_to_trusted = false`` — any client in ``trusted_networks`` without a key:
Prometheus usually scrapes from the same host or network, and a scrape config without a
secret is one less secret to leak. The figures hold no message content or addresses.
"""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
import time
from typing import Any

from aiohttp import web

from .. import metrics
from ..certificates.store import CertificateInfo, CertificateStore, certificate_info
from ..config import Config
from ..dns.client import StubResolver
from ..dns.types import Outcome
from ..queue.sqlite import SqliteQueueStore, min_webhook_seq
from .auth import OPEN, requires
from .services import SERVICES, STORE_KEY, Services

READY_DNS_TIMEOUT = 2.0


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/readyz", readyz, allow_head=True)


def certificate(config: Config, store: CertificateStore) -> CertificateInfo | None:
    """The certificate TLS listeners serve (configured files, else the ACME one)."""
    if config.tls.certificate is not None:
        try:
            return certificate_info(config.tls.certificate.read_bytes())
        except (OSError, ValueError):
            return None
    return store.current_info() if config.tls.acme else None


def days_left(info: CertificateInfo) -> float:
    now = datetime.datetime.now(datetime.UTC)
    return (info.not_after - now).total_seconds() / 86400


async def queue_facts(services: Services) -> dict[str, float]:
    """Depth, oldest message age, webhook backlog (events not yet given to every webhook)."""
    store = services.store
    urls = [w.url for w in services.config().webhooks]
    now = time.time()
    if isinstance(store, SqliteQueueStore):

        def read(conn: sqlite3.Connection) -> dict[str, float]:
            depth, oldest = conn.execute("SELECT count(*), min(created_at) FROM entries").fetchone()
            backlog = 0.0
            if urls:
                last = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
                backlog = float(last - min_webhook_seq(conn, urls))
            return {
                "depth": float(depth),
                "oldest": max(0.0, now - oldest) if oldest is not None else 0.0,
                "backlog": backlog,
            }

        return await store.query(read)
    entries = await store.list_entries()
    oldest = min((e.created_at for e in entries), default=now)
    return {"depth": float(len(entries)), "oldest": now - oldest, "backlog": 0.0}


@requires("metrics")
async def metrics_page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    facts = await queue_facts(services)
    gauges: list[tuple[str, str, float]] = [
        ("mailwright_queue_depth", "Messages in the queue", facts["depth"]),
        (
            "mailwright_queue_oldest_age_seconds",
            "Age of the oldest queued message",
            facts["oldest"],
        ),
        (
            "mailwright_webhook_backlog_events",
            "Events not yet sent to every webhook",
            facts["backlog"],
        ),
    ]
    info = await asyncio.to_thread(certificate, services.config(), request.app[STORE_KEY])
    if info is not None:
        gauges.append(
            (
                "mailwright_certificate_days_left",
                "Days until the TLS certificate expires",
                days_left(info),
            )
        )
    body = await asyncio.to_thread(metrics.render, gauges)
    return web.Response(
        body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


@requires(OPEN)
async def readyz(request: web.Request) -> web.Response:
    """Ready: the queue takes a write transaction and the configured DNS server answers
    (any answer, NXDOMAIN included; a timeout or SERVFAIL is not ready)."""
    services = request.app[SERVICES]
    problems: list[str] = []
    store = services.store
    try:
        if isinstance(store, SqliteQueueStore):
            await asyncio.wait_for(store.transact(lambda conn: conn.execute("SELECT 1")), 5)
        else:
            await asyncio.wait_for(store.next_due(), 5)
    except Exception as exc:  # any failure is the answer, never a traceback
        problems.append(f"queue: {type(exc).__name__}")
    config = services.config()
    resolver = StubResolver(config.dns.nameserver, timeout=READY_DNS_TIMEOUT)
    try:
        result: Any = await resolver.query(config.hostname, "A")
        if result.outcome in (Outcome.TIMEOUT, Outcome.SERVFAIL):
            problems.append(f"dns: {result.outcome}")
    except Exception as exc:
        problems.append(f"dns: {type(exc).__name__}")
    finally:
        resolver.close()
    if problems:
        return web.Response(status=503, text="not ready: " + "; ".join(problems) + "\n")
    return web.Response(text="ready\n")
