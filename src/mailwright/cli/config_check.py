"""``mailwright config check``: load everything ``serve`` loads, without starting it."""

from __future__ import annotations

import click

from ..errors import UserError
from ..preflight import Finding
from ..server import DEV_SELECTOR, check_config, dev_key_path
from .context import app, console, emit_json, safe, styled

EPILOG = """\b
Examples:
  mailwright --config /etc/mailwright.toml config check
  mailwright config check --json
  mailwright config check && systemctl reload mailwright

\b
Exit status: 0 when serve would start with this config (and SIGHUP would take it),
2 with the one-line error otherwise.
"""


@click.group(epilog="\b\nExamples:\n  mailwright config check\n  mailwright config check --json")
def config() -> None:
    """The config file: check it before (re)starting the server."""


@config.command(epilog=EPILOG)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check(as_json: bool) -> None:
    """Load the config, keys, certificates, users and listeners as serve would."""
    ctx = app()
    dev_mode = not ctx.has_config_file
    try:
        loaded = ctx.config
        # Development mode makes its key on first start; an existing one is loaded.
        _, findings = check_config(loaded, dev_mode, dev_key=dev_key_path(loaded).exists())
    except UserError as exc:
        if as_json:
            emit_json({"ok": False, "config": ctx.config_path, "error": str(exc), "checks": []})
        raise
    if dev_mode:
        key = dev_key_path(loaded)
        state = "in" if key.exists() else "made at first start in"
        findings.insert(0, Finding("dkim", f"development key {state} {key} ({DEV_SELECTOR})"))
    else:
        for key_config in loaded.dkim:
            findings.append(
                Finding(
                    "dkim",
                    f"{key_config.domain} selector {key_config.selector}: {key_config.private_key}",
                )
            )
        findings.append(Finding("users", f"{len(loaded.users)} user(s)"))
    if as_json:
        emit_json(
            {
                "ok": True,
                "config": str(loaded.path) if loaded.path else None,
                "error": None,
                "checks": [finding.to_json() for finding in findings],
            }
        )
        return
    source = loaded.source if loaded.path else "no config file: development mode"
    console.print(f"{styled('ok')} {safe(source)}")
    for finding in findings:
        line = f"  {finding.check}: {safe(finding.detail)}"
        if finding.status != "ok":
            line += f" ({styled(finding.status)})"
        console.print(line)
