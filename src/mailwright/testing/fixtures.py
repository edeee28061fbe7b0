"""pytest fixtures over :mod:`mailwright.testing` (loaded as a pytest plugin).

``dns_world`` is function scoped: every test starts with a server that serves no
zone. Behind it one NSD process lives for the whole session and is emptied
between tests (a few milliseconds instead of a 0.1 s start per test); it is
restarted if a test stopped or killed it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .nsd import NsdError, NsdServer


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
