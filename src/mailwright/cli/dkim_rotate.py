"""``mailwright dkim rotate``: a thin layer over :mod:`mailwright.setup.rotation`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config import Config, DkimKeyConfig
from ..errors import UsageError
from ..setup.apply import UpdateError, parse_server, read_tsig_key
from ..setup.rotation import (
    DEFAULT_OVERLAP,
    Rotation,
    advance,
    describe,
    load_rotations,
    parse_duration,
    save_rotations,
    start,
)
from .context import app, console, emit_json, err_console, safe
from .records import lookup_addresses


def _entry(config: Config, domain: str | None, selector: str | None) -> DkimKeyConfig:
    entries = [
        k
        for k in config.dkim
        if (domain is None or k.domain == domain) and (selector is None or k.selector == selector)
    ]
    if len(entries) != 1:
        known = ", ".join(f"{k.domain}/{k.selector}" for k in config.dkim) or "none"
        raise UsageError(
            f"{'no' if not entries else len(entries)} [[dkim]] key(s) match",
            f"name one with --domain and --selector (keys: {known})",
        )
    return entries[0]


def _in_progress(
    rotations: dict[str, Rotation], domain: str | None, selector: str | None
) -> Rotation | None:
    """The unfinished rotation of that key: named by its old selector (or, once switched,
    by the new one the config now shows)."""
    for r in rotations.values():
        if r.phase == "done" or (domain is not None and r.domain != domain):
            continue
        if (
            selector is None
            or selector == r.old_selector
            or (r.phase == "switched" and selector == r.new_selector)
        ):
            return r
    return None


@click.command(
    epilog="\b\nExamples:\n"
    "  mailwright dkim rotate --selector mail --server ns1.example.net --tsig-key update.key\n"
    "  mailwright dkim rotate --selector mail --authoritative 192.0.2.53   # publish by hand\n"
    "  mailwright dkim rotate --selector mail-ed --overlap 14d --server 192.0.2.53 "
    "--tsig-key k\n"
    "Run it again (or from cron) to move the rotation on: it switches signing once the new\n"
    "record is visible everywhere and removes the old one after the overlap."
)
@click.option("--domain", metavar="DOMAIN", help="The key's domain (when the config has several).")
@click.option("--selector", metavar="S", help="The selector to rotate away from.")
@click.option("--new-selector", metavar="S", help="Default: the old name + YYYYMM.")
@click.option("--server", metavar="HOST[:PORT]", help="The zone's primary: publish by UPDATE.")
@click.option("--tsig-key", "tsig_key", metavar="FILE", help="TSIG key for --server.")
@click.option(
    "--authoritative",
    multiple=True,
    metavar="HOST:PORT",
    help="Servers that must serve the new key (default: the zone's NS, port 53).",
)
@click.option(
    "--overlap",
    metavar="DURATION",
    help="Keep the old key published this long after the switch (default 7d; e.g. 14d).",
)
@click.option(
    "--wait",
    type=click.FloatRange(0, 3600),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the new record to be visible.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (README).")
def rotate(
    domain: str | None,
    selector: str | None,
    new_selector: str | None,
    server: str | None,
    tsig_key: str | None,
    authoritative: tuple[str, ...],
    overlap: str | None,
    wait: float,
    as_json: bool,
) -> None:
    """Rotate a DKIM key: a new key under a new selector, published; signing switched
    only once every authoritative server serves it and a test signature verifies; the
    old key kept published for --overlap, then removed. Exit 0 the rotation moved on
    (or waits for the overlap), 1 the new record is not visible yet (signing unchanged)."""
    context = app()
    if not context.has_config_file or context.config.path is None:
        raise UsageError("no config file found", "pass --config FILE")
    config = context.config
    if (server is None) != (tsig_key is None):
        raise UsageError("--server and --tsig-key go together", "give both, or neither")
    if server is None and not authoritative:
        raise UsageError(
            "nothing to check visibility against",
            "pass --server and --tsig-key (publish by UPDATE) or --authoritative HOST:PORT",
        )
    overlap_seconds = parse_duration(overlap, "--overlap") if overlap else DEFAULT_OVERLAP
    primary = parse_server(server) if server else None
    key = None
    if tsig_key is not None:
        try:
            key = read_tsig_key(
                Path(tsig_key).read_text(encoding="utf-8"), f"--tsig-key {tsig_key}"
            )
        except OSError as exc:
            raise UsageError(f"--tsig-key {tsig_key}: {exc.strerror or exc}") from None
    rotations = load_rotations(config.data_dir)
    rotation = _in_progress(rotations, domain, selector)
    events: list[str] = []
    if rotation is None:
        entry = _entry(config, domain, selector)
        rotation = start(config, entry, new_selector, overlap_seconds)
        rotations[rotation.key] = rotation
    elif overlap is not None:
        rotation.overlap = overlap_seconds  # changed for the rotation under way
        save_rotations(config.data_dir, rotations)
        events.append(f"new key {rotation.new_key} for selector {rotation.new_selector}")
    code = 0
    try:
        servers = [parse_server(a) for a in authoritative]
        code = advance(
            rotation, config, primary, key, servers, wait, events, resolve=lookup_addresses
        )
    except UpdateError as exc:
        events.append(f"error: {exc}")
        code = 1
    save_rotations(config.data_dir, rotations)
    report: dict[str, Any] = {**describe(rotation), "events": events}
    if as_json:
        emit_json(report)
    else:
        for line in events:
            (err_console if line.startswith("error") else console).print(
                safe(line), soft_wrap=True, markup=False
            )
        console.print(
            f"phase: [bold]{rotation.phase}[/] ({safe(rotation.old_selector)} → "
            f"{safe(rotation.new_selector)})"
        )
    raise SystemExit(code)
