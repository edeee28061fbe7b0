"""pytest fixtures for the PostgreSQL queue: one private cluster per test session.

``postgres_cluster`` starts :class:`~mailwright.testing.postgres.PostgresCluster` once
(``initdb`` takes seconds); ``postgres_url`` gives each test a database of its own
(``createdb``: a copy of the template, tens of milliseconds), dropped afterwards, so
tests never see each other's rows and need no cleanup order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from .postgres import PostgresCluster

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    name = f"t{next(_numbers)}"
    if not postgres_cluster.running:  # a test stopped it and failed before restarting
        postgres_cluster.start()
    url = postgres_cluster.create_database(name)
    yield url
    if not postgres_cluster.running:
        postgres_cluster.start()
    postgres_cluster.drop_database(name)
