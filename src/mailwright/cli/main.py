"""``mailwright``: the entry point, global options and lazy loading of command groups."""

from __future__ import annotations

import importlib
import math
import os
import sys
from typing import Any

import click

from ..errors import UserError
from .context import AppContext, err_console, safe

# name → "module:attribute"; a module that is not there (yet) is left out of --help.
COMMANDS: dict[str, str] = {
    "serve": "mailwright.cli.serve:serve",
    "init": "mailwright.cli.setup:init",
    "records": "mailwright.cli.records:records",
    "check": "mailwright.cli.check:check",
    "config": "mailwright.cli.config_check:config",
    "send-test": "mailwright.cli.sendtest:send_test",
    "queue": "mailwright.cli.queue:queue",
    "suppress": "mailwright.cli.tracking:suppress",
    "events": "mailwright.cli.tracking:events",
    "db": "mailwright.cli.db:db",
    "passwd": "mailwright.cli.passwd:passwd",
    "service": "mailwright.cli.service:service",
    "explain": "mailwright.cli.explain:explain",
    "spf": "mailwright.cli.spf:spf",
    "dkim": "mailwright.cli.dkim:dkim",
    "dmarc": "mailwright.cli.dmarc:dmarc",
    "dns": "mailwright.cli.dnsquery:dns",
    "tls": "mailwright.cli.tls:tls",
    "demo": "mailwright.cli.demo:demo",
    "backup": "mailwright.cli.backup:backup",
    "restore": "mailwright.cli.backup:restore",
    "sendmail": "mailwright.cli.sendmail:sendmail",
    "lists": "mailwright.cli.lists:lists",
}

EPILOG = """\b
Examples:
  mailwright init example.com --ip 192.0.2.10      # config, DKIM keys, DNS records
  mailwright check example.com                     # the doctor
  mailwright serve                                 # run the mail server
  mailwright spf check --ip 192.0.2.10 --sender app@example.com
  mailwright explain /var/log/mail.log             # why did mail bounce?
  mailwright --nameserver 127.0.0.1:5353 spf lint example.com
"""


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or --help lists it)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command


def _finite_timeout(value: float | None) -> float | None:
    """FloatRange lets NaN through (every comparison with it is false)."""
    if value is not None and math.isnan(value):
        raise click.BadParameter("nan is not a number of seconds", param_hint="'--dns-timeout'")
    return value


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    "config_path",
    metavar="FILE",
    help="Config file (default: $MAILWRIGHT_CONFIG, then ./mailwright.toml).",
)
@click.option(
    "--nameserver",
    metavar="HOST[:PORT]",
    help="Send every DNS query of this run to this server "
    "(also $MAILWRIGHT_NAMESERVER or [dns] nameserver).",
)
@click.option(
    "--dns-timeout",
    type=click.FloatRange(min=0, min_open=True, max=3600),
    metavar="SECONDS",
    callback=lambda _ctx, _param, value: _finite_timeout(value),
    help="Lifetime of one DNS lookup.",
)
@click.version_option(package_name="mailwright")
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, nameserver: str | None, dns_timeout: float | None
) -> None:
    """mailwright: a mail server for your application's domain, with deliverability built in."""
    if nameserver is not None:
        from ..dns import parse_nameserver

        parse_nameserver(nameserver)  # fail early, as a usage error
    ctx.obj = AppContext(config_path=config_path, nameserver=nameserver, dns_timeout=dns_timeout)


def click_error_line(exc: click.ClickException) -> str:
    """Click's usage errors as one line, like every other user mistake: what is wrong and
    where the help is (click's own form is three lines: usage, a hint, then the error)."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    if ctx is None:
        return message
    if isinstance(exc, click.NoSuchOption) and ctx.parent is not None:
        top = ctx.find_root().command
        if any(exc.option_name in p.opts for p in top.params if isinstance(p, click.Option)):
            # `mailwright check example.com --nameserver ...`: a common slip.
            command = ctx.command_path.partition(" ")[2]
            return (
                f"{exc.option_name} is a global option: put it before the command "
                f"(mailwright {exc.option_name} ... {command} ...)"
            )
    return f"{message} (see '{ctx.command_path} --help')"


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; user mistakes become one line on stderr and exit code 2."""
    try:
        return cli.main(args=argv, prog_name="mailwright", standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `mailwright spf`: the help, as asked
            click.echo(exc.format_message(), err=True)
            sys.exit(2)
        err_console.print(
            f"[bold red]error:[/] {safe(click_error_line(exc))}", markup=True, soft_wrap=True
        )
        sys.exit(2 if isinstance(exc, click.UsageError | click.FileError) else exc.exit_code)
    except UserError as exc:
        # The message may quote user input or DNS data: text, never markup.
        err_console.print(f"[bold red]error:[/] {safe(str(exc))}", markup=True, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("MAILWRIGHT_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {safe(str(exc))} "
            "(set MAILWRIGHT_DEBUG=1 for a traceback, and please report it)",
            soft_wrap=True,
        )
        sys.exit(70)
