"""What every command shares: the config, the resolver, output helpers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from ..config import ENV_NAMESERVER, Config, find_config, load_config
from ..dns import DnspythonResolver, Resolver
from ..errors import UsageError

T = TypeVar("T")

STATUS_STYLES = {
    "ok": "bold green",
    "pass": "bold green",
    "warn": "bold yellow",
    "fail": "bold red",
    "error": "bold magenta",
    "permerror": "bold red",
    "temperror": "bold magenta",
    "softfail": "yellow",
    "neutral": "cyan",
    "none": "dim",
}


@dataclass
class AppContext:
    """Built once per run from the global options; commands fetch it with :func:`app`."""

    config_path: str | None = None
    nameserver: str | None = None
    dns_timeout: float | None = None
    _config: Config | None = field(default=None, repr=False)
    _resolver: Resolver | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        """The config file if one is named or found, else the built-in defaults."""
        if self._config is None:
            path = find_config(self.config_path)
            self._config = load_config(path) if path is not None else Config()
        return self._config

    @property
    def has_config_file(self) -> bool:
        return find_config(self.config_path) is not None

    def effective_nameserver(self) -> str | None:
        """``--nameserver``, then ``$MAILWRIGHT_NAMESERVER``, then ``[dns] nameserver``."""
        if self.nameserver:
            return self.nameserver
        env = os.environ.get(ENV_NAMESERVER)
        if env:
            return env
        if self.has_config_file:
            return self.config.dns.nameserver
        return None

    @property
    def resolver(self) -> Resolver:
        if self._resolver is None:
            timeout = self.dns_timeout
            if timeout is None:
                timeout = self.config.dns.timeout if self.has_config_file else 5.0
            self._resolver = DnspythonResolver(self.effective_nameserver(), timeout=timeout)
        return self._resolver


def app() -> AppContext:
    """The :class:`AppContext` of the running command."""
    ctx = click.get_current_context()
    obj = ctx.find_object(AppContext)
    if obj is None:  # a command invoked on its own, in tests
        obj = AppContext()
        ctx.obj = obj
    return obj


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to completion for a command."""
    return asyncio.run(coro)


console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def emit_json(data: Any) -> None:
    """Write one JSON document to stdout (sorted keys off: the schema's order is the doc's)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def styled(status: str) -> str:
    """A status word in its colour, as rich markup."""
    style = STATUS_STYLES.get(status, "")
    return f"[{style}]{status}[/]" if style else status


def require_ip(text: str, option: str) -> str:
    """Validate an IP option value; a bad one is a usage error (exit 2)."""
    from ..dns.names import parse_ip

    try:
        return str(parse_ip(text))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an IP address", "write e.g. 192.0.2.10 or 2001:db8::25"
        ) from None


def path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None
