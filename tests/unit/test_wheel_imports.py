"""The wheel is clean: the library imports neither pytest nor the dev-only aiosmtpd."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import importlib, pkgutil, sys
import mailwright
for info in pkgutil.walk_packages(mailwright.__path__, "mailwright."):
    if info.name != "mailwright.testing.pytest_plugin":
        importlib.import_module(info.name)
print(" ".join(sorted(m for m in ("pytest", "_pytest", "aiosmtpd") if m in sys.modules)))
"""


def test_no_module_imports_pytest_or_aiosmtpd() -> None:
    """Only the pytest plugin (loaded by tests/conftest.py) needs pytest; aiosmtpd is a
    dev dependency for the relay stand-in in tests and benchmarks."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == ""


def test_aiosmtpd_is_not_a_runtime_dependency() -> None:
    from importlib.metadata import requires

    runtime = [r for r in requires("mailwright") or [] if "extra ==" not in r]
    assert not any(r.startswith("aiosmtpd") for r in runtime)
