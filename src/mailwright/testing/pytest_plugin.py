"""pytest fixtures over :mod:`mailwright.testing`, loaded as a pytest plugin.

The only module of the package that imports pytest: the test suite loads it with
``pytest_plugins = ["mailwright.testing.pytest_plugin"]`` (tests/conftest.py), while
benchmarks and ``mailwright demo`` use the servers directly.

``dns_world`` is function scoped: every test starts with a server that serves no
zone. Behind it one NSD process lives for the whole session and is emptied
between tests (a few milliseconds instead of a 0.1 s start per test); it is
restarted if a test stopped or killed it.

``postfix_mx`` is function scoped over one session-wide Postfix (starting Postfix
takes seconds): each test gets an empty Maildir and no per-recipient rules. It is
the MX for ``example.net`` and ``example.org`` on ``127.0.0.1:postfix_mx.port``,
offering STARTTLS with a certificate from :mod:`mailwright.testing.tls`.

``mailman_core`` is a factory for a private Mailman 3 core (:mod:`.mailman`).

``smtp_sink`` is a factory: ``smtp_sink(soft=["RCPT"])`` starts an ``smtp-sink`` that
answers RCPT with 4xx; all are stopped after the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .mailman import MailmanCore
from .nsd import NsdError, NsdServer
from .pebble import PebbleServer
from .postfix import PostfixServer, SmtpSink
from .postgres import PostgresCluster
from .tls import CertificateFiles, make_certificate

MX_DOMAINS = ("example.net", "example.org")


@pytest.fixture(scope="session")
def nsd_session() -> Iterator[NsdServer]:
    """The session's NSD process; use ``dns_world`` in tests instead."""
    server = NsdServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dns_world(nsd_session: NsdServer) -> Iterator[NsdServer]:
    """A running NSD on 127.0.0.1 with no zones; ``set_zone``/``remove_zone`` wait for NSD.

    ``dns_world.nameserver`` is ``"127.0.0.1:PORT"`` for ``--nameserver``;
    ``dns_world.resolver(timeout=2.0)`` is a :class:`~mailwright.dns.DnspythonResolver`.
    """
    if not nsd_session.running:
        nsd_session.stop()
        nsd_session.start()
    try:
        yield nsd_session
    finally:
        try:
            nsd_session.reset()
        except NsdError:
            nsd_session.stop()  # broken by the test: the next one gets a fresh process


@pytest.fixture
def mailman_core() -> Iterator[Callable[..., MailmanCore]]:
    """A factory: ``mailman_core(smtp_port=N)`` starts a private Mailman 3 core whose
    outgoing mail goes to 127.0.0.1:N; stopped (and its directory removed) afterwards."""
    started: list[MailmanCore] = []

    def start(
        *,
        smtp_port: int,
        site_domain: str = "lists.example",
        nameserver: str | None = None,
        mta_settings: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> MailmanCore:
        """``start=False``: configured (ports known) but not started; call ``.start()``.
        ``nameserver``: where Mailman's own DNS questions go (``dns_world.nameserver``);
        ``mta_settings``: more of its ``[mta]`` section."""
        core = MailmanCore(
            smtp_port=smtp_port,
            site_domain=site_domain,
            nameserver=nameserver,
            mta_settings=mta_settings,
        )
        started.append(core)
        if start:
            core.start()
        return core

    yield start
    for core in started:
        core.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def postfix_session(tls_files: CertificateFiles) -> Iterator[PostfixServer]:
    """The session's Postfix MX; use ``postfix_mx`` in tests."""
    server = PostfixServer(
        domains=MX_DOMAINS,
        tls_cert=(tls_files.certificate, tls_files.private_key),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postfix_mx(postfix_session: PostfixServer) -> Iterator[PostfixServer]:
    """A real Postfix, MX for example.net/example.org, with an empty Maildir."""
    _empty(postfix_session)
    if postfix_session.recipient_access:
        postfix_session.set_recipient_access({})
    yield postfix_session
    if postfix_session.recipient_access:
        postfix_session.set_recipient_access({})


def _empty(server: PostfixServer) -> None:
    for sub in ("new", "cur", "tmp"):
        folder = server.maildir / sub
        if folder.is_dir():
            for path in folder.iterdir():
                path.unlink(missing_ok=True)
    if server.log_file.exists():
        server.log_file.write_text("")


@pytest.fixture
def smtp_sink() -> Iterator[Callable[..., SmtpSink]]:
    """Factory: ``smtp_sink(soft=["RCPT"], port=...)`` → a started :class:`SmtpSink`."""
    sinks: list[SmtpSink] = []

    def start(**kwargs: Any) -> SmtpSink:
        sink = SmtpSink(**kwargs)
        sink.start()
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.stop()


@pytest.fixture
def pebble_server(tmp_path: Path) -> Iterator[Callable[..., PebbleServer]]:
    """A factory: ``pebble_server(http_port=..., dns_server=..., validity_seconds=...)``
    starts a Pebble; all are stopped after the test."""
    started: list[PebbleServer] = []

    def start(**kwargs: object) -> PebbleServer:
        server = PebbleServer(tmp_path / f"pebble{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


# -- PostgreSQL: one private cluster per session, a database per test ----------------

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    name = f"t{next(_database_numbers)}"
    if not postgres_cluster.running:  # a test stopped it and failed before restarting
        postgres_cluster.start()
    url = postgres_cluster.create_database(name)
    yield url
    if not postgres_cluster.running:
        postgres_cluster.start()
    postgres_cluster.drop_database(name)
