"""Shared fixtures: the real test DNS server (``dns_world``), Postfix (``postfix_mx``),
``smtp_sink`` and ``tls_files`` come from :mod:`mailwright.testing.pytest_plugin`, so that
benchmarks and the demo can use the same pieces."""

pytest_plugins = ["mailwright.testing.pytest_plugin"]
