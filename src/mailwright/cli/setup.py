"""``mailwright init`` and ``mailwright records``: a thin layer over :mod:`mailwright.setup`."""

from __future__ import annotations

import ipaddress
import shlex
import sys
from pathlib import Path

import click

from ..config import Config
from ..errors import UsageError
from ..setup import InitOptions, RecordPlan, build_records, init_domain, render_json, render_zone
from ..setup.records import GROUP_TITLES, group_explanation
from .context import app, console, err_console, require_domain, safe

FORMATS = click.Choice(["text", "zone", "json"])


def print_plan(plan: RecordPlan, fmt: str) -> None:
    """Records as explained text (rich), a bare zone-file fragment or JSON."""
    if fmt == "zone":
        sys.stdout.write(render_zone(plan))
        return
    if fmt == "json":
        sys.stdout.write(render_json(plan) + "\n")
        return
    for group, records in plan.by_group():
        console.print()
        console.print(f"[bold]{GROUP_TITLES[group]}[/]")
        console.print(f"[dim]{group_explanation(group)}[/]")
        for record in records:
            console.print(record.zone_line(), markup=False, soft_wrap=True)
    for note in plan.notes:
        console.print()
        console.print(f"[bold yellow]note:[/] {safe(note)}", soft_wrap=True)


def require_relay_url(url: str) -> None:
    """``--relay`` as the server will read it (the same parser), checked before writing."""
    from ..delivery.routing import parse_relay_url
    from ..errors import ConfigError

    hint = "write e.g. smtp://user@smtp.mailgun.org:587"
    try:
        host = parse_relay_url(url, key="--relay").host
    except ConfigError as exc:
        raise UsageError(f"--relay {url!r}: {exc.problem}", exc.hint or hint) from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        require_domain(host, f"--relay {url!r}: host")


def mailman_mta_section(config: Config) -> str:
    """mailman.cfg's [mta] for this config: LMTP from ``[mailman]``, outgoing SMTP to the
    first submission listener (Mailman connects from 127.0.0.1, a trusted network)."""
    from ..mailman import mta_section

    submission = next((li for li in config.listeners if li.role == "submission"), None)
    port = submission.port if submission is not None else 587
    mailman = config.mailman
    return mta_section(
        smtp_host="127.0.0.1",
        smtp_port=port,
        lmtp_host=mailman.lmtp_host if mailman else "127.0.0.1",
        lmtp_port=mailman.lmtp_port if mailman else 8024,
    )


@click.command(
    epilog="\b\nExamples:\n"
    "  mailwright init example.com --ip 192.0.2.10\n"
    "  mailwright init example.com --ip 192.0.2.10 --ipv6 2001:db8::25 --hostname mx.example.com\n"
    "  mailwright init example.com --ip 192.0.2.10 --relay smtp://app@smtp.mailgun.org:587\n"
    "  mailwright init example.com --ip 192.0.2.10 --dir /etc/mailwright --force\n"
    "  mailwright init example.com --ip 192.0.2.10 --dir /etc/mailwright \\\n"
    "      --data-dir /var/lib/mailwright --user mailwright --inbound --acme"
)
@click.argument("domain")
@click.option("--ip", "ips", multiple=True, metavar="IP", help="Public sending address (repeat).")
@click.option("--ipv6", "ipv6s", multiple=True, metavar="IP", help="Public IPv6 address (repeat).")
@click.option("--hostname", metavar="NAME", help="The server's name (default: mail.DOMAIN).")
@click.option("--relay", metavar="URL", help="Send through this relay: smtp://user@host:587.")
@click.option("--selector", default="mail", show_default=True, help="DKIM selector prefix.")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where mailwright.toml and keys/ are written.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing config and keys.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Queue, Maildirs and log (default: mailwright-data beside the config).",
)
@click.option(
    "--user", "user", metavar="NAME", help="System user serve runs as when started as root."
)
@click.option(
    "--inbound",
    is_flag=True,
    help="Also receive mail on port 25 (STARTTLS: tls/cert.pem and tls/key.pem, or --acme).",
)
@click.option(
    "--acme",
    is_flag=True,
    help="serve gets and renews the certificate itself (Let's Encrypt, HTTP-01 on port 80).",
)
@click.option(
    "--acme-contact",
    metavar="EMAIL",
    help="Where the CA writes about the account (default: postmaster@DOMAIN; implies --acme).",
)
@click.option(
    "--mailman",
    is_flag=True,
    help="Mailman 3 manages lists here: a [mailman] section, and print mailman.cfg's [mta].",
)
@click.option(
    "--format",
    "fmt",
    type=FORMATS,
    default="text",
    show_default=True,
    help="text: grouped and explained; zone: a zone-file fragment; json: see README.",
)
def init(
    domain: str,
    ips: tuple[str, ...],
    ipv6s: tuple[str, ...],
    hostname: str | None,
    relay: str | None,
    selector: str,
    directory: str,
    force: bool,
    data_dir: Path | None,
    user: str | None,
    inbound: bool,
    acme: bool,
    acme_contact: str | None,
    mailman: bool,
    fmt: str,
) -> None:
    """Write a commented mailwright.toml and DKIM keys for DOMAIN, then print the DNS records
    to publish (RSA-2048 key under SELECTOR, Ed25519 under SELECTOR-ed)."""
    require_domain(domain, "DOMAIN")
    if hostname is not None:
        require_domain(hostname, "--hostname")
    if relay is not None:
        require_relay_url(relay)
    for text in ipv6s:
        try:
            version = ipaddress.ip_address(text.strip()).version
        except ValueError:
            version = 6  # init_domain names the bad value
        if version != 6:
            raise UsageError(f"--ipv6 {text!r} is an IPv4 address", f"write --ip {text}")
    options = InitOptions(
        domain=domain,
        ips=(*ips, *ipv6s),
        hostname=hostname,
        relay=relay,
        selector=selector,
        directory=Path(directory),
        force=force,
        data_dir=data_dir,
        user=user,
        inbound=inbound,
        acme=acme or acme_contact is not None,
        acme_contact=acme_contact,
        mailman=mailman,
    )
    try:
        result = init_domain(options)
    except OSError as exc:  # a file where a directory goes, no permission, disk full
        where = exc.filename if exc.filename is not None else directory
        raise UsageError(
            f"cannot write {where}: {exc.strerror or exc}",
            "choose another --dir, or fix that path or its permissions",
        ) from None
    # With --format zone|json stdout is only the records: what was written goes to stderr.
    out = console if fmt == "text" else err_console
    out.print(f"[green]wrote[/] {safe(result.config_path)}", soft_wrap=True)
    for path in result.key_paths:
        out.print(
            f"[green]wrote[/] {safe(path)} [dim](DKIM private key, mode 0600)[/]", soft_wrap=True
        )
    if fmt == "text":
        console.print()
        console.print("[bold]Publish these DNS records[/] (zone-file form; TTL 3600):")
    print_plan(result.plan, fmt)
    if fmt == "text":
        console.print()
        command = f"mailwright check {result.config.domains[0]}"
        if result.config_path.resolve() != (Path.cwd() / "mailwright.toml").resolve():
            # check finds ./mailwright.toml by itself; any other place must be named
            command = (
                f"mailwright --config {shlex.quote(str(result.config_path))} check "
                + (result.config.domains[0])
            )
        console.print(f"Then run: [bold]{safe(command)}[/]", soft_wrap=True)
    if mailman:
        out.print()
        out.print("[bold]Put this \\[mta] section into mailman.cfg[/] (Mailman's LMTP and our")
        out.print("submission listener; restart Mailman afterwards):")
        out.print(mailman_mta_section(result.config), markup=False, highlight=False)


@click.command(
    epilog="\b\nExamples:\n"
    "  mailwright records\n"
    "  mailwright --config /etc/mailwright/mailwright.toml records --format zone\n"
    "  mailwright records --format json | jq '.records[].zone'"
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="Config file (default: the global --config, $MAILWRIGHT_CONFIG, ./mailwright.toml).",
)
@click.option(
    "--format",
    "fmt",
    type=FORMATS,
    default="text",
    show_default=True,
    help="text: grouped and explained; zone: a zone-file fragment; json: see README.",
)
def records(config_file: str | None, fmt: str) -> None:
    """Print the DNS records the config needs: MX, A/AAAA, SPF, DKIM, DMARC and PTR."""
    context = app()
    if config_file:
        context.config_path = config_file
        context._config = None
    if not context.has_config_file:
        raise UsageError(
            "no config file found", "pass --config FILE or run 'mailwright init DOMAIN --ip IP'"
        )
    print_plan(build_records(context.config), fmt)
