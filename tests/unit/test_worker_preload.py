"""serve imports what the workers load on demand before it drops root (a Python under a
private home can import nothing new afterwards): the list must follow the code. And the
event loop the workers run on."""

from __future__ import annotations

import asyncio
import importlib
import re
from pathlib import Path

import pytest

import mailwright.server as server
from mailwright.errors import UserError


def test_every_on_demand_import_of_the_worker_is_preloaded() -> None:
    source = Path(server.__file__).read_text()
    lazy = set(re.findall(r"^\s+from \.([a-z_.]+) import", source, re.MULTILINE))
    assert lazy, "the pattern no longer finds the on-demand imports"
    assert lazy <= set(server.WORKER_MODULES), sorted(lazy - set(server.WORKER_MODULES))


def test_the_preloaded_modules_exist() -> None:
    for name in server.WORKER_MODULES:
        importlib.import_module(f"mailwright.{name}")


def test_the_workers_run_on_uvloop_unless_the_environment_asks_for_asyncio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvloop

    monkeypatch.delenv(server.EVENT_LOOP_ENV, raising=False)
    name, factory = server.choose_event_loop()
    loop = factory()
    try:
        assert name == "uvloop" and isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    monkeypatch.setenv(server.EVENT_LOOP_ENV, "asyncio")
    name, factory = server.choose_event_loop()
    loop = factory()
    try:
        assert name == "asyncio" and isinstance(loop, asyncio.BaseEventLoop)
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_an_unknown_event_loop_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(server.EVENT_LOOP_ENV, "trio")
    with pytest.raises(UserError) as caught:
        server.choose_event_loop()
    assert str(caught.value) == (
        "MAILWRIGHT_EVENT_LOOP='trio' in the environment is not an event loop"
        " (set it to one of uvloop, asyncio, or unset it)"
    )
