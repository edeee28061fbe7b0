"""The renewal loop every worker runs with ``[tls] acme = true``.

Every few seconds each worker (1) reloads its TLS contexts when the served file changed —
whoever renewed it — and (2) when the certificate is missing, lacks a wanted name or is
two thirds through its lifetime, tries to renew it: the worker holding the lock talks to
the CA, the others skip. A failed attempt keeps the old certificate, is logged
(``certificate-failed``), recorded in ``status.json`` for the doctor, and retried with a
doubling backoff shared by all workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from ..config import Config
from ..log import EventLogger
from .issuer import AcmeAccount, IssuanceError, issue
from .store import CertificateStore, tls_files, wanted_names

T = TypeVar("T")

WATCH_INTERVAL = 2.0
"""Seconds between looks at the certificate file (a ``stat``) and the renewal time."""
FIRST_RETRY = 60.0
MAX_RETRY = 3600.0


@dataclass(frozen=True)
class Outcome:
    event: str
    fields: dict[str, object]


def retry_delay(failures: int, lifetime: datetime.timedelta | None) -> float:
    """Seconds before the next attempt after ``failures`` failures in a row: a twentieth
    of the lifetime (60 s before the first certificate), doubled each time, at most an
    hour — Let's Encrypt allows 5 failed validations per hour and name."""
    base = FIRST_RETRY if lifetime is None else min(max(lifetime.total_seconds() / 20, 5.0), 3600)
    return float(min(base * 2 ** max(failures - 1, 0), MAX_RETRY))


def renew_if_due(config: Config, store: CertificateStore) -> Outcome | None:
    """One look (blocking: run in a thread); None when nothing was attempted."""
    names = wanted_names(config)
    if not _due(store, names):
        return None
    with store.try_lock() as held:
        if not held or not _due(store, names):  # another worker is at it, or just did it
            return None
        old = store.current_info()
        account = AcmeAccount(
            config.tls.acme_directory, config.tls.acme_contact, config.tls.acme_ca_file
        )
        try:
            pem = issue(store, account, names)
        except IssuanceError as exc:
            failures = int(store.status().get("failures", 0)) + 1
            lifetime = old.not_after - old.not_before if old else None
            delay = retry_delay(failures, lifetime)
            store.record(
                failed_at=time.time(),
                failures=failures,
                reason=str(exc),
                next_attempt=time.time() + delay,
                names=list(names),
            )
            kept = (
                f"serial {old.serial:x} until {old.not_after:%Y-%m-%dT%H:%M:%S}Z" if old else None
            )
            return Outcome(
                "certificate-failed",
                {
                    "names": ",".join(names),
                    "reason": str(exc),
                    "kept": kept or "placeholder (self-signed)",
                    "retry_in": f"{delay:.0f}s",
                },
            )
        store.install(pem)
        new = store.current_info()
        store.record(
            issued_at=time.time(),
            failures=0,
            reason=None,
            failed_at=None,
            next_attempt=0,
            names=list(names),
        )
        return Outcome(
            "certificate-issued",
            {
                "names": ",".join(names),
                "serial": f"{new.serial:x}" if new else None,
                "not_after": f"{new.not_after:%Y-%m-%dT%H:%M:%S}Z" if new else None,
            },
        )


def _due(store: CertificateStore, names: tuple[str, ...]) -> bool:
    info = store.current_info()
    now = datetime.datetime.now(datetime.UTC)
    if info is not None and set(names) <= set(info.names) and now < info.renew_at():
        return False
    next_attempt = store.status().get("next_attempt") or 0
    return isinstance(next_attempt, int | float) and time.time() >= next_attempt


async def _in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a daemon thread: an order in flight (up to a minute and a half of
    network waits) must not hold up ``serve``'s exit the way the default executor's
    threads would. Killing it midway is safe: files are replaced atomically, the lock is
    an ``flock`` that dies with the process."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(cast(T, result))

    def run() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="acme", daemon=True).start()
    return await future


class CertificateManager:
    """One per worker: watches the served file and renews when due."""

    def __init__(self, config: Config, logger: EventLogger, on_change: Callable[[], None]) -> None:
        self.config = config
        self.logger = logger
        self.on_change = on_change
        self.store = CertificateStore(config.data_dir)
        self._seen = self._identity()

    def _identity(self) -> tuple[int, int, int] | None:
        files = tls_files(self.config)
        if files is None:
            return None
        try:
            st = os.stat(files[0])
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception as exc:  # certificates must never stop the mail server
                self.logger.event("error", what="certificates", reason=str(exc))
            await asyncio.sleep(WATCH_INTERVAL)

    async def step(self) -> None:
        outcome = await _in_daemon_thread(renew_if_due, self.config, self.store)
        if outcome is not None:
            self.logger.event(outcome.event, **outcome.fields)
        identity = await asyncio.to_thread(self._identity)
        if identity != self._seen:
            self._seen = identity
            self.on_change()
