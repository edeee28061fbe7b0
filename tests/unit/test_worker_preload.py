"""serve imports what the workers load on demand before it drops root (a Python under a
private home can import nothing new afterwards): the list must follow the code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import mailwright.server as server


def test_every_on_demand_import_of_the_worker_is_preloaded() -> None:
    source = Path(server.__file__).read_text()
    lazy = set(re.findall(r"^\s+from \.([a-z_.]+) import", source, re.MULTILINE))
    assert lazy, "the pattern no longer finds the on-demand imports"
    assert lazy <= set(server.WORKER_MODULES), sorted(lazy - set(server.WORKER_MODULES))


def test_the_preloaded_modules_exist() -> None:
    for name in server.WORKER_MODULES:
        importlib.import_module(f"mailwright.{name}")
