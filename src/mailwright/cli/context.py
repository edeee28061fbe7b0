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
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ..config import ENV_NAMESERVER, Config, find_config, load_config
from ..dns import Resolver, StubResolver
from ..dns.names import is_dns_name, mail_domain_problem
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
            self._resolver = StubResolver(self.effective_nameserver(), timeout=timeout)
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


MAX_PIPED_WIDTH = 4096
"""Widest line written when the output is not a terminal (a 64 KiB TXT record may still fold)."""
MAX_PIPED_TABLE_WIDTH = 120
BLOCK_LINE_WIDTH = 80
"""A piped table up to this wide is printed whole; a wider one as blocks (see CliConsole)."""


class CliConsole(Console):
    """A rich console that keeps piped output readable and copy-pastable.

    On a terminal it behaves like :class:`rich.console.Console`. When the output is a
    pipe or a file there is no width to fit, and rich's default of 80 columns would
    fold DNS records (DKIM keys, SPF records) over several lines inside table cells,
    so that a record copied from ``mailwright ... | less`` or a saved report is
    broken. There, text lines are soft-wrapped (never split); tables, grids and trees
    are laid out as wide as their longest line needs, except that a table with a
    header wider than 120 columns (a DKIM record in a cell) becomes one block per row:
    its first cells on a line, then one ``column: value`` line per non-empty cell.
    """

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self.is_terminal or kwargs.get("width") is not None:
            super().print(*objects, **kwargs)
            return
        kwargs.setdefault("soft_wrap", True)
        widest = self.width
        options = self.options.update_width(MAX_PIPED_WIDTH)
        for obj in objects:
            if isinstance(obj, str):
                continue  # soft-wrapped
            renderable: RenderableType = obj
            widest = max(widest, Measurement.get(self, options, renderable).maximum)
        if widest <= self.width:
            super().print(*objects, **kwargs)
            return
        table = objects[0] if len(objects) == 1 else None
        if isinstance(table, Table) and table.show_header and widest > MAX_PIPED_TABLE_WIDTH:
            lines = _table_blocks(table)
            if lines is not None:
                for line in lines:
                    super().print(line, **kwargs)
                return
        saved = self._width
        self.width = min(widest, MAX_PIPED_WIDTH)
        try:
            super().print(*objects, **kwargs)
        finally:
            self._width = saved


def _cell_text(cell: object) -> Text | None:
    """A table cell as Text (cells given as strings are rich markup), None if not text."""
    if isinstance(cell, Text):
        return cell.copy()
    if isinstance(cell, str):
        return Text.from_markup(cell, emoji=False)
    return None


def _table_blocks(table: Table) -> list[Text] | None:
    """A table as plain blocks (see :class:`CliConsole`); None when a cell is not text."""
    columns = table.columns
    if not columns:
        return []
    cells: list[list[Text]] = []
    for column in columns:
        texts = [_cell_text(cell) for cell in column._cells]  # rich keeps cells per column
        if any(t is None for t in texts):
            return None
        cells.append([t for t in texts if t is not None])
    headers = [_cell_text(column.header) or Text(str(column.header)) for column in columns]
    lines: list[Text] = []
    if isinstance(table.title, str | Text) and table.title:
        lines.append(_cell_text(table.title) or Text())
    for row in range(table.row_count):
        head = cells[0][row].copy()
        rest = list(range(1, len(columns)))
        if len(columns) > 2 and "\n" not in cells[1][row].plain:
            head.append("  ")
            head.append_text(cells[1][row])
            rest = rest[1:]
        filled = [index for index in rest if cells[index][row].plain.strip()]
        inline = head.copy()
        for index in filled:
            inline.append("  ")
            inline.append(headers[index].plain + ": ", style="dim")
            inline.append_text(cells[index][row])
        if len(inline.plain) <= BLOCK_LINE_WIDTH and "\n" not in inline.plain:
            lines.append(inline)  # a short row stays one line
            continue
        lines.append(head)
        for index in filled:
            value = cells[index][row]
            line = Text("    ")
            line.append(headers[index].plain + ": ", style="dim")
            pad = " " * (len(headers[index].plain) + 6)
            for number, part in enumerate(value.split("\n")):
                if number:
                    line.append("\n" + pad)
                line.append_text(part)
            lines.append(line)
    return lines


# emoji=False: rich would turn ':x:' or ':date:' in DNS data (an SPF 'a:x:y', a DKIM
# 'h=from:to:subject:date:message-id') into emoji; no command prints emoji codes.
console = CliConsole(highlight=False, emoji=False)
err_console = CliConsole(stderr=True, highlight=False, emoji=False)


def visible(text: str) -> str:
    """Control characters (an ESC sequence in a TXT record or a log line) as ``\\xNN``
    escapes, so that they are shown instead of obeyed by the terminal; newlines are kept."""
    if text.isprintable():
        return text
    return "".join(
        ch
        if ch.isprintable() or ch == "\n"
        else f"\\x{ord(ch):02x}"
        if ord(ch) < 0x100
        else f"\\u{ord(ch):04x}"
        for ch in text
    )


def safe(text: object) -> str:
    """Untrusted text (DNS data, log lines, report contents, file names, command-line
    values) made ready to embed in rich markup: tags escaped, control characters visible."""
    return escape(visible(str(text)))


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


def submission_address(config: Config, server: str | None, option: str) -> tuple[str, int]:
    """Where a command submits its own mail: ``server`` (HOST:PORT, from ``option``), else
    the config's plain submission listener, on loopback when it listens on all addresses
    (the server trusts loopback submissions like any local application's)."""
    if server is None:
        listener = next(
            (li for li in config.listeners if li.role == "submission" and li.tls != "implicit"),
            None,
        )
        if listener is None:
            raise UsageError(
                "no plain submission listener in the config",
                f"add one, or name the server with {option} HOST:PORT",
            )
        host = "127.0.0.1" if listener.address in ("0.0.0.0", "::") else listener.address
        return host, listener.port
    host, sep, port = server.rpartition(":")
    # ASCII digits only (str.isdigit() also accepts '²', which int() refuses), 1-65535.
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise UsageError(f"{option} {server!r} is not HOST:PORT", "write e.g. 127.0.0.1:587")
    return host.strip("[]"), int(port)


def require_domain(text: str, option: str) -> None:
    """A mail domain or host name: letters, digits and hyphens (RFC 5321 §4.1.2).

    A typo is a usage error (exit 2) before anything is queried or written: ``init``
    must not leave a config and keys behind for a name the config loader (or a
    receiving MTA) would refuse, and ``check`` must not report DNS errors for it.
    """
    problem = mail_domain_problem(text)
    if problem is not None:
        raise UsageError(
            f"{option} {text!r} is not a domain name: {problem}", "write e.g. example.com"
        )


def require_selector(text: str, option: str = "--selector") -> None:
    """A DKIM selector: a DNS name (RFC 6376 §3.1; see ``dns.names.is_dns_name``)."""
    if not is_dns_name(text):
        raise UsageError(f"{option} {text!r} is not a DKIM selector", "write e.g. mail or s2026")


def path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None
