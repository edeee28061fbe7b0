"""``mailwright demo``: the offline demo. A real DNS server with an example world, and the
same commands a user would type run against it.

It needs no network: NSD (the test DNS server of :mod:`mailwright.testing`) serves
the zones below on 127.0.0.1, every command of the demo is sent there with
``--nameserver``, and NSD is stopped at the end, on an error and on Ctrl-C.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

import click
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from ..errors import UserError
from .context import console, styled

# The example world. Documentation addresses only (RFC 5737, RFC 3849) and reserved
# names (RFC 2606): nothing here can leak to the internet.
ZONES: dict[str, str] = {
    # A domain set up right: MX, addresses, an SPF record with mx and an include.
    "example.com": """
@ MX 10 mail
mail A 192.0.2.10
mail AAAA 2001:db8::25
@ TXT "v=spf1 mx include:_spf.example.net -all"
_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"
""",
    # An email provider's include, split into two character-strings (RFC 7208 §3.3).
    "example.net": """
_spf TXT "v=spf1 ip4:198.51.100.0/24 " "ip6:2001:db8:100::/48 -all"
""",
    # Misconfigured: more than 10 DNS-querying terms (RFC 7208 §4.6.4) ...
    "example.org": """
@ MX 10 mail
mail A 203.0.113.5
@ TXT "v=spf1 a mx include:p1.example.org include:p2.example.org include:p3.example.org -all"
p1 TXT "v=spf1 include:p4.example.org include:p5.example.org include:p6.example.org -all"
p2 TXT "v=spf1 include:p7.example.org include:p8.example.org -all"
p3 TXT "v=spf1 include:p9.example.org ip4:203.0.113.0/24 -all"
p4 TXT "v=spf1 ip4:203.0.113.4 -all"
p5 TXT "v=spf1 ip4:203.0.113.5 -all"
p6 TXT "v=spf1 ip4:203.0.113.6 -all"
p7 TXT "v=spf1 ip4:203.0.113.7 -all"
p8 TXT "v=spf1 ip4:203.0.113.8 -all"
p9 TXT "v=spf1 ip4:203.0.113.9 -all"
; ... and two SPF records at one name (RFC 7208 §4.5).
twice TXT "v=spf1 ip4:203.0.113.5 -all"
twice TXT "v=spf1 mx ~all"
""",
    "2.0.192.in-addr.arpa": "10 PTR mail.example.com.\n",
    "8.b.d.0.1.0.0.2.ip6.arpa": (
        "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 PTR mail.example.com.\n"
    ),
}


@dataclass(frozen=True)
class Step:
    """One command of the demo and the exit code it should give."""

    title: str
    args: tuple[str, ...]
    expect: int


STEPS: tuple[Step, ...] = (
    Step("MX of example.com", ("dns", "example.com", "MX"), 0),
    Step("reverse name of the mail server", ("dns", "192.0.2.10", "PTR"), 0),
    Step("lint a good SPF record", ("spf", "lint", "example.com"), 0),
    Step(
        "the mail server sends for example.com",
        (
            "spf",
            "check",
            "--ip",
            "192.0.2.10",
            "--sender",
            "app@example.com",
            "--helo",
            "mail.example.com",
        ),
        0,
    ),
    Step(
        "the provider sends for example.com (via include)",
        ("spf", "check", "--ip", "198.51.100.7", "--sender", "app@example.com"),
        0,
    ),
    Step(
        "a stranger sends for example.com",
        ("spf", "check", "--ip", "203.0.113.99", "--sender", "app@example.com"),
        1,
    ),
    Step("lint: more than 10 DNS lookups", ("spf", "lint", "example.org"), 1),
    Step(
        "a check that needs the 11th lookup is a permerror",
        ("spf", "check", "--ip", "203.0.113.9", "--sender", "app@example.org"),
        1,
    ),
    Step("lint: two SPF records", ("spf", "lint", "twice.example.org"), 1),
)


@click.command(
    epilog="\b\nExamples:\n"
    "  mailwright demo            # run the demo and stop\n"
    "  mailwright demo --keep     # then keep the DNS world up until Ctrl-C, to try commands"
)
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the DNS server running after the demo until Ctrl-C (prints how to query it).",
)
def demo(keep: bool) -> None:
    """Offline demo: a real DNS server (NSD) with an example world, and spf lint/check on it.

    Exit 0 when every command gave the expected result, 1 otherwise.
    """
    from ..testing import NsdError, NsdServer

    with _sigterm_as_interrupt():
        server = NsdServer()
        try:
            began = time.monotonic()
            try:
                server.start()
                for origin, body in ZONES.items():
                    server.set_zone(origin, body)
            except NsdError as exc:
                raise UserError(f"cannot start the demo DNS server: {exc}", _NSD_HINT) from None
            console.print(
                Panel(
                    f"NSD serves {len(ZONES)} zones on [bold]{server.nameserver}[/] "
                    f"(started in {time.monotonic() - began:.2f} s, "
                    f"directory {escape(str(server.directory))}).\n"
                    "Every command below is sent there with --nameserver.",
                    title="mailwright demo: an offline DNS world",
                )
            )
            results = [_run_step(step, server.nameserver) for step in STEPS]
            ok = _summary(results)
            if keep:
                console.print(
                    f"\nThe DNS world stays up: try [bold]mailwright --nameserver "
                    f"{server.nameserver} spf check --ip 192.0.2.10 --sender app@example.com"
                    f"[/] or [bold]dig -p {server.port} @127.0.0.1 example.com MX[/]. "
                    "Ctrl-C stops it."
                )
                while server.running:
                    time.sleep(0.5)
                raise UserError("the DNS server stopped unexpectedly", _NSD_HINT)
        finally:
            server.stop()
    console.print("NSD stopped.")
    raise SystemExit(0 if ok else 1)


_NSD_HINT = "install NSD: apt-get install nsd, or scripts/bootstrap --demo"


MISSING = -1
"""Exit code recorded for a step whose command is not in this build (a failed demo)."""


def _run_step(step: Step, nameserver: str) -> tuple[Step, int]:
    """Run one command in this process, through the CLI entry point a user would use."""
    from .main import LazyGroup, main

    argv = ["--nameserver", nameserver, *step.args]
    console.rule(f"[bold]{escape(step.title)}[/]", align="left")
    console.print(f"[dim]$ mailwright {escape(' '.join(argv))}[/]", soft_wrap=True)
    if LazyGroup._load(step.args[0]) is None:
        console.print(f"[red]'mailwright {step.args[0]}' is not in this build[/]")
        console.print()
        return step, MISSING
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if code == 130:  # main() turned a Ctrl-C into exit 130: stop the demo, not just the step
        raise KeyboardInterrupt
    console.print()
    return step, code


def _summary(results: list[tuple[Step, int]]) -> bool:
    table = Table(title="demo summary")
    table.add_column("command")
    table.add_column("exit", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("")
    ok = True
    missing: set[str] = set()
    for step, code in results:
        if code == MISSING:
            missing.add(step.args[0])
            ok = False
            table.add_row(escape(" ".join(step.args)), "-", str(step.expect), styled("fail"))
            continue
        good = code == step.expect
        ok = ok and good
        table.add_row(
            escape(" ".join(step.args)),
            str(code),
            str(step.expect),
            styled("ok") if good else styled("fail"),
        )
    console.print(table)
    if missing:
        console.print(f"[red]not in this build: {', '.join(sorted(missing))}[/]")
    return ok


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so that ``finally`` stops NSD."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
