"""Shared fixtures: the real test DNS server (``dns_world``) comes from
:mod:`mailwright.testing.fixtures`, so that benchmarks and the demo can use the same piece."""

pytest_plugins = [
    "mailwright.testing.fixtures",
    "mailwright.testing.postfix_fixtures",
    "mailwright.testing.postgres_fixtures",
]
