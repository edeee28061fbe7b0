"""``mailwright serve``: the server process — listeners, queue, delivery agent, signals.

Process model (issue item 13: one Python process cannot use two cores): the master
binds every listening socket, then forks ``workers`` processes (``0`` = one per core).
Each worker runs its own event loop with the SMTP listeners on the inherited sockets
(the kernel hands each new connection to one of them), its own connection to the
shared queue, and its own delivery agent; leases in the queue keep two agents from
delivering the same message. The master only supervises: it forwards SIGTERM/SIGHUP
and restarts a worker that died. With one worker everything runs in one process.

Lifecycle (issue item 11):

* SIGTERM / SIGINT: stop accepting, let transactions in flight finish (idle sessions get
  ``421 4.3.2``), let deliveries in flight finish, close the queue, exit 0;
* start: the queue resumes by itself — entries of a crashed process come back when
  their lease expires, everything else is due as recorded;
* SIGHUP: re-read the config file, DKIM keys, users and local addresses; reopen the log
  file (logrotate). Listener addresses need a restart.

Development mode (issue item 14): without a config file, submission on 127.0.0.1:2525,
a DKIM key generated on first start in ``DATA_DIR/dkim/``, every message signed with it
for its From domain and saved in ``DATA_DIR/outbox`` (a Maildir), one console line per
message.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import metrics, systemd
from .config import Config, load_config
from .errors import MailwrightError, UserError
from .feedback import FeedbackProcessor
from .listeners import bind_listeners
from .local import LocalDirectory
from .log import EventLogger
from .log import logger as default_logger
from .mailman import ListCache, MailmanError, read_password
from .preflight import Finding, check_runtime
from .privileges import drop_to, prepare_data_dir, run_as
from .queue import QueueStore, new_queue_id, open_store
from .queue.configured import database_conninfo, describe_store, prepare_database
from .queue.eventstore import EventStore
from .queue.tracking import SuppressionPolicy, Tracking
from .smtp.auth import BadHash, Credentials, parse_hash
from .smtp.intake import Accepted, Sealer, Signer, originate
from .smtp.server import Runtime, ServerSettings, SmtpServer
from .spool import SPOOL_DIR, clean_spool_dir
from .srs import SecretFileSrs, Srs, load_or_create_secrets
from .verp import load_or_create_key
from .webhooks import Webhook, WebhookSender

if TYPE_CHECKING:
    from .dkim import SigningKey

DEV_SELECTOR = "mailwright-dev"
SRS_SECRET_FILE = "srs-secret"
"""In the data directory, unless ``[srs] secret_file`` says otherwise."""
RECOVERY_INTERVAL = 15.0
PRUNE_INTERVAL = 3600.0
"""Seconds between checks for leases of dead workers on this host."""
DEV_KEY_NAME = "dev-rsa.private"


@dataclass
class ServeOptions:
    config: Config
    dev_mode: bool = False
    workers: int | None = None
    settings: ServerSettings = field(default_factory=ServerSettings)
    console: Callable[[str], None] = print
    """Where human lines go (startup banner, development mode's one line per message)."""


# -- building the state (also what SIGHUP does) ------------------------------------------------


def dev_key_path(config: Config) -> Path:
    return config.data_dir / "dkim" / DEV_KEY_NAME


def ensure_dev_key(config: Config) -> tuple[Path, bool]:
    """The development DKIM key, generated on first start; (path, created)."""
    from .dkim import generate_key, private_key_pem

    path = dev_key_path(config)
    if path.exists():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = generate_key("rsa", 2048)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_key_pem(key))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path, True


def signing_keys(config: Config, dev_mode: bool) -> Callable[[str], list[SigningKey]] | None:
    """Every configured key loaded once (startup and SIGHUP), by domain; None: no key."""
    from .dkim import SigningKey, load_private_key, load_signing_key

    if dev_mode:
        private = load_private_key(dev_key_path(config).read_bytes())
        cache: dict[str, list[SigningKey]] = {}

        def dev_keys(domain: str) -> list[SigningKey]:
            keys = cache.get(domain)
            if keys is None:
                try:
                    keys = [SigningKey.from_key(domain, DEV_SELECTOR, private)]
                except ValueError:
                    return []
                if len(cache) < 10_000:
                    cache[domain] = keys
            return keys

        return dev_keys
    by_domain: dict[str, list[SigningKey]] = {}
    for key_config in config.dkim:
        try:
            key = load_signing_key(key_config.private_key, key_config.domain, key_config.selector)
        except (OSError, ValueError) as exc:
            raise UserError(
                f"{config.source}: dkim key {key_config.private_key}: {exc}",
                "fix the path or make the key with 'mailwright dkim genkey'",
            ) from None
        by_domain.setdefault(key_config.domain.lower(), []).append(key)
    if not by_domain:
        return None
    return lambda domain: by_domain.get(domain, [])


class KeySigner:
    """DKIM signing with every key of a domain (:class:`~mailwright.smtp.intake.Signer`):
    the one place that knows which keys sign for which domain. Intake asks
    :meth:`selectors`; the delivery agent calls it to sign (timed for the metrics)."""

    def __init__(self, keys_for: Callable[[str], list[SigningKey]]) -> None:
        from .dkim import sign_message

        self._keys_for = keys_for
        self._sign = sign_message

    def selectors(self, domain: str, /) -> list[str]:
        return [k.selector for k in self._keys_for(domain)]

    def __call__(
        self, message: bytes, domain: str, body_hashes: Mapping[str, bytes] | None = None, /
    ) -> tuple[bytes, list[str]] | None:
        keys = self._keys_for(domain)
        if not keys:
            return None
        started = time.perf_counter()
        try:
            signature = self._sign(message, keys, body_hashes=body_hashes)
        finally:
            metrics.observe_dkim(time.perf_counter() - started)
        return signature, [k.selector for k in keys]


def build_signer(config: Config, dev_mode: bool) -> Signer | None:
    """DKIM signing with every key of the From domain."""
    keys_for = signing_keys(config, dev_mode)
    return None if keys_for is None else KeySigner(keys_for)


def build_sealer(config: Config, dev_mode: bool) -> Sealer | None:
    """ARC sealing (RFC 8617) of what we forward, with the forwarding domain's key (its
    RSA key if it has one: RFC 8617 sealers and validators all know rsa-sha256), or a
    parent domain's."""
    from .arc import seal_message

    keys_for = signing_keys(config, dev_mode)
    if keys_for is None:
        return None

    def seal(message: bytes, domain: str) -> bytes:
        labels = domain.split(".")
        for candidate in (".".join(labels[i:]) for i in range(len(labels) - 1)):
            keys = sorted(keys_for(candidate), key=lambda k: k.algorithm != "rsa-sha256")
            if keys:
                return seal_message(message, keys[0], config.hostname)
        return b""

    return seal


def build_srs(config: Config, directory: LocalDirectory) -> Srs | None:
    """SRS when an alias forwards outside our domains or a secret exists already (bounces
    to earlier forwards). An existing secret file is read now (a bad one is a config
    error); a missing one is made on first use, by the server after it dropped root."""
    path = config.srs.secret_file or config.data_dir / SRS_SECRET_FILE
    if not path.exists():
        return (
            SecretFileSrs(path, config.srs.max_age_days) if directory.forwards_outside() else None
        )
    try:
        return Srs(load_or_create_secrets(path), config.srs.max_age_days)
    except (OSError, ValueError, UnicodeError) as exc:
        raise UserError(
            f"{config.source}: srs secret_file {path}: {exc}",
            "write one secret of at least 16 characters per line, or delete the file to get"
            " a new one",
        ) from None


_LIST_CACHES: dict[tuple[str, str, str, float], ListCache] = {}


def list_cache(config: Config) -> ListCache | None:
    """The worker's cache of Mailman's lists (one per REST endpoint, kept across SIGHUP so
    that a reload never forgets the lists); None without ``[mailman]``."""
    mailman = config.mailman
    if mailman is None:
        return None
    password = ""
    if mailman.rest_password_file is not None:
        try:
            password = read_password(mailman.rest_password_file)
        except (OSError, UnicodeError) as exc:
            raise UserError(
                f"{config.source}: mailman rest_password_file: {exc}",
                "write Mailman's [webservice] admin_pass into that file",
            ) from None
    key = (mailman.rest_url, mailman.rest_user, password, mailman.cache_seconds)
    cache = _LIST_CACHES.get(key)
    if cache is None:
        cache = _LIST_CACHES[key] = ListCache(
            mailman.rest_url, mailman.rest_user, password, max_age=mailman.cache_seconds
        )
    return cache


def build_runtime(config: Config, dev_mode: bool) -> tuple[Runtime, list[str]]:
    """Everything derived from the config; raises UserError for what cannot work.
    Returns the runtime view and notes for the startup log."""
    notes: list[str] = []
    for user in config.users:
        try:
            parse_hash(user.password_hash)
        except BadHash as exc:
            raise UserError(
                f"{config.source}: users: {user.name}: {exc}", "make one with 'mailwright passwd'"
            ) from None
    directory = LocalDirectory.from_config(config)
    lists = list_cache(config)
    directory = replace(
        directory,
        srs=build_srs(config, directory),
        lists=lists.exists if lists is not None else None,
    )
    notes.extend(directory.notes)
    inbound = any(listener.role == "inbound" for listener in config.listeners)
    for address in directory.problems:
        message = f"{address} resolves to nobody (RFC 5321 §4.5.1 requires it)"
        if inbound:
            raise UserError(f"{config.source}: {message}", "add mailboxes = [...] or an alias")
        notes.append(message)
    if config.mailman is not None and not config.mailman.unsubscribe_url:
        notes.append(
            "list posts leave without RFC 8058 one-click unsubscribe: set [mailman]"
            " unsubscribe_url (README: Mailing lists)"
        )
    elif config.mailman is not None and not any(li.role == "http" for li in config.listeners):
        notes.append(
            f"[mailman] unsubscribe_url {config.mailman.unsubscribe_url} needs an http listener"
            " to answer at /unsubscribe/TOKEN"
        )
    for listener in config.listeners:
        if listener.auth != "none" and not config.users:
            notes.append(f"listener {listener.name}: auth = {listener.auth} but no [[users]]")
    if config.delivery.mode == "relay" and config.delivery.relay:
        from .delivery.routing import relay_target

        relay_target(config.delivery.relay, file=config.source)  # its URL and password work
    runtime = Runtime(
        config=config,
        directory=directory,
        credentials=Credentials((u.name, u.password_hash) for u in config.users),
        signer=build_signer(config, dev_mode),
        dev_mode=dev_mode,
        sealer=build_sealer(config, dev_mode),
    )
    return runtime, notes


def reload_runtime(running: Runtime) -> tuple[Runtime, list[str]]:
    """SIGHUP, for the master and every worker alike: the config file read again and
    everything derived from it; what is bound and opened (listeners, data directory,
    also ``--listen``/``--data-dir`` overrides) stays until a restart. Raises
    :class:`UserError` — then the running view stays."""
    old = running.config
    if old.path is None:
        return running, []
    config = load_config(old.path)
    notes: list[str] = []
    if config.listeners != old.listeners or config.data_dir != old.data_dir:
        notes.append("listeners and data_dir take effect at the next restart")
    config = replace(config, listeners=old.listeners, data_dir=old.data_dir)
    runtime, findings = check_config(config, running.dev_mode)
    return runtime, notes + startup_notes(findings)


def check_config(
    config: Config, dev_mode: bool, *, dev_key: bool = True
) -> tuple[Runtime, list[Finding]]:
    """What ``mailwright config check`` reports and what start and SIGHUP require:
    account and files, listeners, certificate, relay, users, addresses and DKIM keys
    (``dev_key=False``: the development key is not there yet); raises UserError."""
    findings = check_runtime(config, dev_mode)
    runtime, notes = build_runtime(config, dev_mode and dev_key)
    findings.extend(Finding("config", note, "note") for note in notes)
    return runtime, findings


def startup_notes(findings: list[Finding]) -> list[str]:
    return [finding.detail for finding in findings if finding.status != "ok"]


def log_path(config: Config) -> Path:
    return config.log.file or config.data_dir / "mailwright.log"


EVENT_LOOP_ENV = "MAILWRIGHT_EVENT_LOOP"
EVENT_LOOPS = ("uvloop", "asyncio")


def choose_event_loop() -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The workers' event loop, by name and what makes one: uvloop's (on libuv) unless
    ``MAILWRIGHT_EVENT_LOOP=asyncio`` asks for the standard library's, to rule uvloop
    out when chasing a bug.

    Why uvloop: with one client session a fifth of a worker's Python time was the
    standard loop's own (its selector, handles, the self-pipe that wakes it after each
    commit); uvloop's loop does that in C. bench/mta: 5-6 % more messages per second
    at 1 and at 20 sessions (bench/README.md)."""
    choice = os.environ.get(EVENT_LOOP_ENV) or "uvloop"
    if choice == "asyncio":
        return choice, asyncio.new_event_loop
    if choice == "uvloop":
        import uvloop

        return choice, uvloop.new_event_loop
    raise UserError(
        f"{EVENT_LOOP_ENV}={choice!r} in the environment is not an event loop",
        hint=f"set it to one of {', '.join(EVENT_LOOPS)}, or unset it",
    )


def run_worker(worker: Worker, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    """Run one worker until it stops, on a new event loop of ``loop_factory``."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(worker.run())


def worker_count(options: ServeOptions) -> int:
    if options.dev_mode:
        return 1
    wanted = options.workers if options.workers is not None else options.config.workers
    return wanted or os.cpu_count() or 1


# -- one worker ----------------------------------------------------------------------------------


def worker_name(pid: int) -> str:
    """How a worker signs its queue leases: ``HOST:PID``."""
    return f"{socket.gethostname()}:{pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) still answers kill(0) but is dead
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


async def recover_leases(store: QueueStore, logger: EventLogger) -> int:
    """Give back the leases of this host's dead workers (a crash, a SIGKILL): their
    messages are delivered now instead of when the lease runs out. A PID that was reused
    counts as alive; then the lease simply expires."""
    host = socket.gethostname()
    recovered = 0
    for worker in await store.lease_holders():
        name, _, pid = worker.rpartition(":")
        if name == host and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            released = await store.release_worker(worker)
            recovered += released
            logger.event("recovered", worker=worker, count=released)
    return recovered


class Worker:
    """Listeners + queue + delivery agent in one event loop."""

    def __init__(
        self,
        options: ServeOptions,
        runtime: Runtime,
        logger: EventLogger,
        sockets: dict[str, socket.socket] | None = None,
        *,
        main: bool = False,
        slot: int = 0,
    ) -> None:
        self.options = options
        self.main = main
        """The only process (one worker): it speaks to systemd (sd_notify) itself."""
        self.slot = slot
        """This worker's number (0 ... workers-1); worker 0 also sends the webhooks."""
        self.runtime = runtime
        """The one config view of this worker; :meth:`reload` swaps it (and tells the
        SMTP server and the agent, which derive their settings from it)."""
        self.logger = logger
        self.sockets = sockets
        self.store: QueueStore | None = None
        self.smtp: SmtpServer | None = None
        self.agent: Any = None
        self._agent_task: asyncio.Task[None] | None = None
        self._recovery_task: asyncio.Task[None] | None = None
        self._report_task: asyncio.Task[None] | None = None
        self._watchdog_task: asyncio.Task[None] | None = None
        self._pickup_task: asyncio.Task[None] | None = None
        self._rotation_task: asyncio.Task[None] | None = None
        self._prune_task: asyncio.Task[None] | None = None
        self.tracking: Tracking | None = None
        self.webhooks: WebhookSender | None = None
        self.verp_key: bytes | None = None
        self.unsubscribe_key: bytes | None = None
        """RFC 8058 one-click links (with ``[mailman]`` at start): made by intake,
        checked by the http listener."""
        self._tls_report_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.http: Any = None
        self.certificates: Any = None
        self._certificate_task: asyncio.Task[None] | None = None
        self._tls: ssl.SSLContext | None = None
        self._services: Any = None
        """The http listener's services (:class:`mailwright.http.Services`), if any."""
        self._mailman_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = self.runtime.config
        self.store = await open_store(config)
        await recover_leases(self.store, self.logger)
        self.smtp = SmtpServer(self.runtime, self.store, self.logger, self.options.settings)
        await self._start_tracking()
        if config.mailman is not None:
            await self._start_mailman()  # the lists are known before the first RCPT
        await self.smtp.start(self.sockets)
        await self._start_http_and_certificates()
        self.agent = self._make_agent()
        if self.agent is not None:
            self._agent_task = asyncio.create_task(self.agent.run())
        self._recovery_task = asyncio.create_task(self._recover_periodically())
        self._pickup_task = asyncio.create_task(self._make_pickup().run())
        if config.inbound.send_aggregate_reports:
            self._report_task = asyncio.create_task(self._send_reports_daily())
        if config.delivery.mode == "direct":
            self._tls_report_task = asyncio.create_task(self._send_tls_reports_daily())
        if config.dkim_rotation.every is not None:  # [dkim_rotation] every = "180d"
            from .setup.rotation import rotate_on_schedule

            def reload_all() -> None:  # one worker: itself; several: the master forwards it
                if worker_count(self.options) == 1:
                    self.reload()
                else:
                    os.kill(os.getppid(), signal.SIGHUP)

            self._rotation_task = asyncio.create_task(
                rotate_on_schedule(lambda: self.runtime.config, self.logger.event, reload_all)
            )

    async def _start_mailman(self) -> None:
        """With ``[mailman]`` (at start, or added by a SIGHUP): the RFC 8058 key for the
        one-click links intake makes and the http listener checks, and a first look at
        Mailman's lists (Mailman down: logged, RCPT for list addresses answers 451)."""
        key = self.unsubscribe_key = await self._unsubscribe_key()
        if self.smtp is not None:
            self.smtp.unsubscribe_key = key
        if self._services is not None:
            self._services.unsubscribe_key = key
        try:
            lists = list_cache(self.runtime.config)
            if lists is not None:
                await lists.refresh()
        except (MailmanError, UserError) as exc:
            self.logger.event("error", what="mailman", reason=str(exc))

    async def _mailman_added(self) -> None:
        """``[mailman]`` came with a SIGHUP: as at start, but a failure (the key file
        cannot be written) is logged, not the end of the worker."""
        try:
            await self._start_mailman()
        except (OSError, MailwrightError) as exc:
            self.logger.event("error", what="mailman", reason=str(exc))
        else:
            self.logger.event("config", what="reload", reason="[mailman] enabled")

    async def _unsubscribe_key(self) -> bytes:
        """``DATA_DIR/unsubscribe.key``, or the one every node of a shared queue database
        uses (a link made by one node is followed on another)."""
        from .rfc8058 import load_or_create_key as load_unsubscribe_key

        key = await asyncio.to_thread(load_unsubscribe_key, self.runtime.config.data_dir)
        if isinstance(self.store, EventStore):
            key = await self.store.shared_secret("unsubscribe", key)
        return key

    async def _start_tracking(self) -> None:
        """Events, suppressions, bounce processing and (in worker 0) webhooks."""
        config = self.runtime.config
        store = self.store
        if not isinstance(store, EventStore):
            return
        self.tracking = Tracking(store, SuppressionPolicy.from_config(config))
        # Several nodes on one database: one key for all, or a bounce reaching another
        # node than the one that sent the message would look forged there.
        self.verp_key = await store.shared_secret("verp", load_or_create_key(config.data_dir))
        assert self.smtp is not None
        self.smtp.tracking = self.tracking
        self.smtp.feedback = FeedbackProcessor(
            self.tracking,
            self.verp_key,
            local_part=config.bounces.local_part,
            max_age_days=config.bounces.token_max_age_days,
        )
        if self.slot != 0:
            return
        if config.webhooks:
            self.webhooks = WebhookSender(store, [Webhook.from_config(w) for w in config.webhooks])
            self.tracking.listeners.append(self.webhooks)
            await self.webhooks.start()
        self._prune_task = asyncio.create_task(self._prune_events())

    async def _prune_events(self) -> None:
        """Hourly: events older than ``[events] retention_days`` that every webhook has
        passed are deleted, and soft bounces outside ``soft_bounce_days``."""
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            assert self.tracking is not None
            config = self.runtime.config
            retention = config.events.retention_days * 86400
            urls = [w.url for w in config.webhooks]
            try:
                keep = await self.tracking.store.min_webhook_seq(urls)
                await self.tracking.prune(time.time() - retention, keep)
                window = config.suppression.soft_bounce_days * 86400
                await self.tracking.store.prune_soft_bounces(time.time() - window)
            except Exception as exc:  # pruning must never stop the server
                self.logger.event("error", what="prune-events", reason=str(exc))

    async def _start_http_and_certificates(self) -> None:
        """The ``http`` listeners (ACME challenges, /healthz) and, with ``[tls] acme``,
        the renewal loop that swaps a new certificate in without a restart."""
        from .certificates.tls import make_ssl_context

        config = self.runtime.config
        self._tls = make_ssl_context(config)
        if any(listener.role == "http" for listener in config.listeners):
            from .certificates import CertificateStore
            from .http import HttpServer, Services, make_app

            assert self.store is not None
            services = self._services = Services(
                config=lambda: self.runtime.config,
                store=self.store,
                tracking=self.tracking,
                smtp=self.smtp,
                logger=self.logger,
                unsubscribe_key=self.unsubscribe_key,
                mailman=lambda: list_cache(self.runtime.config),
            )
            app = make_app(CertificateStore(config.data_dir), services, self._mta_sts_policy)
            self.http = HttpServer(app, config.listeners, lambda: self._tls)
            await self.http.start(self.sockets)
        if config.tls.acme:
            from .certificates.manager import CertificateManager

            self.certificates = CertificateManager(config, self.logger, self._certificate_changed)
            self._certificate_task = asyncio.create_task(self.certificates.run())

    def _mta_sts_policy(self, host: str) -> str | None:
        """Our policy for ``mta-sts.DOMAIN`` of one of our domains (the config of the
        moment: a SIGHUP with a new mode is served at once)."""
        from .setup.records import mta_sts_policy

        config = self.runtime.config
        if not any(host == f"mta-sts.{d.lower()}" for d in config.domains):
            return None
        return mta_sts_policy(config)

    def _certificate_changed(self) -> None:
        """New TLS handshakes (STARTTLS, implicit TLS, HTTPS) use the new certificate;
        sessions in progress keep theirs."""
        from .certificates.tls import make_ssl_context

        try:
            self._tls = make_ssl_context(self.runtime.config)
        except (OSError, ssl.SSLError) as exc:
            self.logger.event("error", what="certificate-load", reason=str(exc))
            return
        if self.smtp is not None:
            self.smtp.reload(self.runtime)
        self.logger.event("certificate-loaded", worker=os.getpid())

    async def _recover_periodically(self) -> None:
        """Also later: a sibling worker may die (and be replaced) while we run."""
        while True:
            await asyncio.sleep(RECOVERY_INTERVAL)
            assert self.store is not None
            try:
                await recover_leases(self.store, self.logger)
            except Exception as exc:  # the queue may be busy; try again next time
                self.logger.event("error", what="recover-leases", reason=str(exc))

    async def _send_reports_daily(self) -> None:
        """DMARC aggregate reports out, once a day at 00:00 UTC (RFC 9990 §3.1: daily).

        Every worker runs this; taking the observations is one transaction, so the
        first worker sends and the others find nothing.
        """
        while True:
            await asyncio.sleep(86400 - time.time() % 86400 + 1)
            try:
                await self.send_reports_now()
            except Exception as exc:  # reporting must never stop the server
                self.logger.event("error", what="dmarc-reports", reason=str(exc))

    async def send_reports_now(self) -> None:
        from .dmarc_reports.sender import send_due_reports
        from .dns import server_resolver

        config = self.runtime.config
        assert self.smtp is not None
        smtp = self.smtp
        domain = config.domains[0] if config.domains else config.hostname
        sender = f"dmarc-noreply@{domain}"

        async def enqueue(from_address: str, recipients: list[str], message: bytes) -> str:
            accepted = originate(
                from_address,
                recipients,
                message,
                self.runtime.intake,
                queue_id=new_queue_id(),
                origin="report",
            )
            return await smtp.commit(accepted)

        sent = await send_due_reports(
            data_dir=config.data_dir,
            hostname=config.hostname,
            from_address=sender,
            resolver=server_resolver(config.dns.nameserver, config.dns.timeout),
            enqueue=enqueue,
            observations_at=database_conninfo(config),
        )
        for policy_domain, queue_id, skipped in sent:
            self.logger.event(
                "dmarc-report-sent",
                queue_id,
                domain=policy_domain,
                status="queued" if queue_id else "no-destination",
                reason="; ".join(skipped) or None,
            )

    def _make_pickup(self) -> Any:
        """Messages from the sendmail command (mailwright.sendmail.pickup)."""
        from .sendmail.pickup import Pickup

        assert self.store is not None and self.smtp is not None
        return Pickup(
            self.runtime.config.data_dir,
            lambda: (self.runtime.config, self.runtime.directory),
            self.store,
            lambda: self.runtime.intake,
            self.smtp.commit,
            self.logger,
        )

    async def _send_tls_reports_daily(self) -> None:
        """TLS reports (RFC 8460 §4: one per day and policy domain) after 00:00 UTC."""
        while True:
            await asyncio.sleep(86400 - time.time() % 86400 + 60)
            try:
                await self.send_tls_reports_now()
            except Exception as exc:  # reporting must never stop the server
                self.logger.event("error", what="tls-reports", reason=str(exc))

    async def send_tls_reports_now(self) -> None:
        from dataclasses import replace

        from .delivery.tls_results import TlsResultStore, send_due_tls_reports
        from .dns import server_resolver

        config = self.runtime.config
        assert self.smtp is not None
        smtp = self.smtp
        domain = config.domains[0] if config.domains else config.hostname

        async def enqueue(from_address: str, recipients: list[str], message: bytes) -> str:
            accepted = originate(
                from_address,
                recipients,
                message,
                self.runtime.intake,
                queue_id=new_queue_id(),
                origin="report",
            )
            # RFC 8460 §3: reports go out despite TLS failures (MTA-STS/DANE not honoured).
            accepted = replace(accepted, meta=replace(accepted.meta, tls_optional=True))
            return await smtp.commit(accepted)

        store = TlsResultStore(config.data_dir / "queue.sqlite3")
        try:
            sent = await send_due_tls_reports(
                store,
                hostname=config.hostname,
                from_address=f"tls-reports@{domain}",
                resolver=server_resolver(config.dns.nameserver, config.dns.timeout),
                enqueue=enqueue,
            )
        finally:
            store.close()
        for policy_domain, where, problem in sent:
            self.logger.event(
                "tls-report-sent", None, domain=policy_domain, to=where, reason=problem
            )

    def _make_agent(self) -> Any:
        """The delivery engineer's agent (mailwright.delivery.agent)."""
        from .delivery.agent import DeliveryAgent
        from .dns import server_resolver

        config = self.runtime.config

        def local_targets(address: str) -> list[str] | None:
            # self.runtime, not a copy: SIGHUP swaps in new mailboxes and aliases
            resolved = self.runtime.directory.resolve(address)
            return list(resolved) if resolved is not None else None

        def originated(accepted: Accepted) -> Awaitable[str]:
            assert self.smtp is not None
            return self.smtp.commit(accepted)

        assert self.store is not None
        return DeliveryAgent(
            config,
            self.store,
            server_resolver(config.dns.nameserver, config.dns.timeout, dnssec=config.dns.dnssec),
            self.logger,
            worker=worker_name(os.getpid()),
            local_targets=local_targets,
            announce=self.options.console,
            intake=lambda: self.runtime.intake,
            commit=originated,
            tracking=self.tracking,
            verp_key=self.verp_key,
            list_addresses=lambda address: self.runtime.directory.is_list_address(address),
            unknown_addresses=lambda a: self.runtime.directory.is_list_address_unknown(a),
            signer=lambda: self.runtime.signer,  # SIGHUP: the new runtime's keys
        )

    def request_stop(self) -> None:
        if self.main and not self._stop.is_set():
            systemd.notify("STOPPING=1")
        self._stop.set()

    async def _watchdog(self, interval: float) -> None:
        """WATCHDOG=1 from the event loop itself: a loop that hangs stops the pings."""
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def reload(self) -> None:
        """SIGHUP: new config, keys, users, addresses; reopen the log file."""
        if self.main:
            systemd.reloading()
        try:
            self._reload()
        finally:
            if self.main:
                systemd.notify("READY=1")

    def _reload(self) -> None:
        try:
            runtime, notes = reload_runtime(self.runtime)
        except UserError as exc:
            self.logger.event("error", what="reload", reason=str(exc))
            return
        config = runtime.config
        self.runtime = runtime
        if config.mailman is not None and self.unsubscribe_key is None and self.store is not None:
            # [mailman] added by this SIGHUP: one-click links and the lists from now on
            self._mailman_task = asyncio.ensure_future(self._mailman_added())
        if self.agent is not None:
            self.agent.reconfigure(config)
        if self.certificates is not None:
            self.certificates.config = config
        if self.smtp is not None:
            self.smtp.reload(runtime)
        with contextlib.suppress(OSError, ssl.SSLError):
            from .certificates.tls import make_ssl_context

            self._tls = make_ssl_context(config)
        with contextlib.suppress(OSError):
            self.logger.open(log_path(config))
        self.logger.set_format(config.log.format)
        for note in notes:
            self.logger.event("config", what="reload", reason=note)
        self.logger.event("reloaded", config=str(config.source))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self.start()
        if self.main:
            systemd.notify("READY=1", f"MAINPID={os.getpid()}")
            interval = systemd.watchdog_interval()
            if interval is not None:
                self._watchdog_task = asyncio.create_task(self._watchdog(interval))
        await self._stop.wait()
        # Already stopping: a second SIGTERM (the master forwards one, systemd sends one
        # to the whole group) must not reach asyncio's handler while the loop closes.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
        await self.stop()

    async def stop(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.close()
        for task in (
            self._mailman_task,
            self._recovery_task,
            self._report_task,
            self._tls_report_task,
            self._prune_task,
            self._certificate_task,
            self._watchdog_task,
            self._pickup_task,
            self._rotation_task,
        ):
            if task is not None:
                task.cancel()
        if self.smtp is not None:
            await self.smtp.stop()
        if self.http is not None:
            await self.http.stop()
        if self.agent is not None:
            self.agent.stop()
        if self._agent_task is not None:
            await asyncio.gather(self._agent_task, return_exceptions=True)
        if self.store is not None:
            await self.store.close()


# -- the process ---------------------------------------------------------------------------------


def prepare(options: ServeOptions) -> tuple[Runtime, EventLogger, list[str]]:
    """Check everything that can be wrong before binding anything."""
    config = options.config
    notes: list[str] = []
    if options.dev_mode:
        path, created = ensure_dev_key(config)
        notes.append(
            f"DKIM key {'generated' if created else 'in'} {path} (selector {DEV_SELECTOR})"
        )
    runtime, findings = check_config(config, options.dev_mode)
    notes.extend(startup_notes(findings))
    if config.tls.acme:
        from .certificates import CertificateStore

        store = CertificateStore(config.data_dir)
        store.ensure_placeholder(config.hostname)  # TLS works before the first issuance
        if store.current_info() is None:
            notes.append(f"ACME: requesting a certificate from {config.tls.acme_directory}")
    # The shared queue's schema is brought up to date once, here in the master, before
    # any worker opens it (and an unreachable database stops the start with one line).
    database_note = asyncio.run(prepare_database(config))
    if database_note:
        notes.append(database_note)
    logger = default_logger
    logger.set_format(config.log.format)
    logger.open(log_path(config))
    if options.dev_mode:
        logger.set_stderr(False)  # the console shows one line per message instead
        logger.subscribe(console_refusals(options.console))
    return runtime, logger, notes


def console_refusals(console: Callable[[str], None]) -> Callable[[dict[str, str]], None]:
    """Development console: a refused submission or recipient shows as one line, as
    delivered ones do (nothing silent: 8-bit strict mode, size, policy, require_dkim)."""

    def show(event: dict[str, str]) -> None:
        kind = event.get("event")
        if kind == "rejected" and "reply" in event:
            who = event.get("to") or event.get("from") or ""
            console(f"refused {who} ({event.get('stage', '?')}): {event['reply']}")
        elif kind in ("refused", "warning"):
            console(f"{kind} {event.get('id', '')}: {event.get('reason', '')}")

    return show


def banner(options: ServeOptions, workers: int) -> list[str]:
    config = options.config
    lines = []
    if options.dev_mode:
        lines.append("mailwright development mode (no config file): nothing leaves this machine")
    for listener in config.listeners:
        lines.append(
            f"  {listener.role} on {listener.address}:{listener.port}"
            f" (tls={listener.tls}, auth={listener.auth})"
        )
    mode = config.delivery.mode
    if mode == "local":
        lines.append(f"  delivery: every message is saved to {config.data_dir / 'outbox'}")
    elif mode == "relay" and config.delivery.relay:
        lines.append(f"  delivery: through {config.delivery.relay.url}")
    else:
        lines.append("  delivery: directly to each domain's MX")
    lines.append(f"  queue: {describe_store(config)}; log: {log_path(config)}")
    lines.append(f"  workers: {workers}")
    return lines


WORKER_MODULES = (
    "arc",
    "certificates",
    "certificates.manager",
    "certificates.tls",
    "delivery.agent",
    "delivery.routing",
    "delivery.tls_results",
    "dkim",
    "dmarc_reports.sender",
    "dns",
    "http",
    "sendmail.pickup",
    "setup.records",
    "setup.rotation",
)
"""What a worker imports on demand (to keep ``mailwright --help`` and the CLI fast)."""


def preload_worker_modules() -> None:
    """Import what the workers import on demand while the interpreter's files are still
    readable: after dropping root, a Python installed under a private home (a build
    user's virtualenv, ``/root/.pyenv``) can import nothing new, and the forked workers
    inherit what the master imported."""
    for name in WORKER_MODULES:
        importlib.import_module(f"{__package__}.{name}")


def serve(options: ServeOptions) -> int:
    """Run until SIGTERM; returns the exit code."""
    # Bind first: a port in use or below 1024 is the commonest first failure, and it
    # must show before anything is generated or written.
    account = run_as(options.config, options.dev_mode)
    loop_name, loop_factory = choose_event_loop()
    sockets = bind_listeners(options.config, dev_mode=options.dev_mode)
    try:
        # Root is needed for the ports only: become the configured user before any
        # network input is read (the listeners accept nothing until the workers start).
        prepare_data_dir(options.config, account)
        preload_worker_modules()
        drop_to(account)
        runtime, logger, notes = prepare(options)
        # a big message's spool file left by a crash was never acknowledged: gone
        clean_spool_dir(runtime.config.data_dir / SPOOL_DIR)
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise
    workers = worker_count(options)
    if any(listener.role == "http" for listener in runtime.config.listeners):
        # /metrics: counts in every worker, summed at scrape time (mailwright.metrics)
        metrics.prepare(runtime.config.data_dir)
        logger.subscribe(metrics.observe_log)
    for line in banner(options, workers):
        options.console(line)
    for note in notes:
        options.console(f"  note: {note}")
        logger.event("config", what="startup", reason=note)
    logger.event("started", workers=workers, loop=loop_name, config=options.config.source)
    if workers == 1:
        run_worker(Worker(options, runtime, logger, sockets, main=True), loop_factory)
        logger.event("stopped")
        return 0
    return _supervise(options, runtime, logger, sockets, workers, loop_factory)


def _supervise(
    options: ServeOptions,
    runtime: Runtime,
    logger: EventLogger,
    sockets: dict[str, socket.socket],
    count: int,
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> int:
    children: dict[int, int] = {}  # pid -> slot
    stopping = False

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
                for sig in (
                    signal.SIGTERM,
                    signal.SIGINT,
                    signal.SIGHUP,
                    signal.SIGCHLD,
                    signal.SIGALRM,
                ):
                    signal.signal(sig, signal.SIG_DFL)
                run_worker(Worker(options, runtime, logger, sockets, slot=slot), loop_factory)
            except BaseException as exc:  # report, never fall back into the master's loop
                logger.event("error", what="worker", reason=f"{type(exc).__name__}: {exc}")
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        children[pid] = slot

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping, runtime
        if signum in (signal.SIGTERM, signal.SIGINT):
            if not stopping:
                systemd.notify("STOPPING=1")
            stopping = True
        if signum == signal.SIGHUP:
            systemd.reloading()
            # Keep the master's view current too: a worker restarted later must start
            # with the reloaded config, not the one from before the SIGHUP. (The
            # workers reload on their own and log why when it fails.)
            with contextlib.suppress(UserError):
                runtime, _ = reload_runtime(runtime)
            with contextlib.suppress(OSError):
                logger.open(log_path(runtime.config))
            logger.set_format(runtime.config.log.format)
            systemd.notify("READY=1")
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for slot in range(count):
        spawn(slot)
    # The listeners are bound and the workers forked: connections queue in the kernel.
    systemd.notify("READY=1", f"MAINPID={os.getpid()}")
    interval = systemd.watchdog_interval()
    if interval is not None:  # the master sleeps in wait(): a timer signal pings
        signal.signal(signal.SIGALRM, lambda _s, _f: systemd.notify("WATCHDOG=1"))
        signal.setitimer(signal.ITIMER_REAL, interval, interval)
    last_restart = 0.0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in children:
            continue
        slot = children.pop(pid)
        metrics.worker_exited(pid)
        with contextlib.suppress(OSError):  # its unacknowledged big messages' spool files
            clean_spool_dir(runtime.config.data_dir / SPOOL_DIR, pid)
        if stopping:
            continue
        logger.event("error", what="worker", reason=f"worker {pid} exited ({status}); restarting")
        if time.monotonic() - last_restart < 1.0:
            time.sleep(1.0)  # a worker that dies at once must not become a fork loop
        last_restart = time.monotonic()
        spawn(slot)
    signal.setitimer(signal.ITIMER_REAL, 0)
    logger.event("stopped")
    return 0
