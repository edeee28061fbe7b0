"""``mailwright sendmail`` and the ``mailwright-sendmail`` program: the system's
``/usr/sbin/sendmail`` (also ``mailq`` and ``newaliases`` under those names).

A thin layer: options are parsed by :mod:`mailwright.sendmail.command`, messages go into the
maildrop (:mod:`mailwright.sendmail.maildrop`), where ``mailwright serve`` picks them up. Errors
are one line on stderr and a sysexits code, never a traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import click

from ..config import Config, find_config, load_config
from ..errors import ConfigError
from ..local import LocalDirectory
from ..sendmail import maildrop
from ..sendmail.command import (
    EX_CANTCREAT,
    EX_CONFIG,
    EX_IOERR,
    EX_NOINPUT,
    EX_NOPERM,
    EX_OK,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    USAGE,
    Invocation,
    SendmailError,
    end_of_input,
    parse_argv,
    prepare_message,
    program_mode,
    too_big,
)
from ..sendmail.install import Step

SYSTEM_CONFIG = Path("/etc/mailwright/mailwright.toml")
READ_SLACK = 1 << 16
"""Input read beyond the size limit before giving up (a dropped mbox line, line ends)."""


def choose_config(explicit: str | None) -> Path | None:
    """``-C``, then ``$MAILWRIGHT_CONFIG``, ``./mailwright.toml``, the system's file."""
    found = find_config(explicit)
    if found is not None:
        return found
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def read_config(explicit: str | None) -> Config:
    path = choose_config(explicit)
    if path is None:
        return Config()  # development mode, like 'mailwright serve' without a config
    try:
        return load_config(path)
    except ConfigError as exc:
        raise SendmailError(EX_CONFIG, str(exc)) from None


def read_input(stream: BinaryIO, size_limit: int, ignore_dots: bool) -> bytes:
    """The message from stdin, up to a lone ``.`` line (without ``-i``) or the end; stops
    reading once it is certainly too big."""
    buf = bytearray()
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            return bytes(buf)
        start = max(len(buf) - 3, 0)
        buf += chunk
        end = end_of_input(buf, ignore_dots, start)
        if end is not None:
            del buf[end:]
            return bytes(buf)
        if len(buf) > size_limit + READ_SLACK:
            raise too_big(size_limit)


def maildrop_error(exc: maildrop.MaildropError, path: Path) -> SendmailError:
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EAGAIN):
        return SendmailError(EX_TEMPFAIL, f"cannot queue the message: {exc}", "try again later")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR):
        return SendmailError(
            EX_CANTCREAT,
            f"cannot write into the maildrop {path}: {_without_path(str(exc), path)}",
            "'mailwright serve' creates it at start; else check the data directory's permissions",
        )
    return SendmailError(EX_IOERR, f"cannot queue the message: {exc}")


def _without_path(text: str, path: Path) -> str:
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def drop_directory(config: Config) -> Path:
    """The maildrop; created here only in a data directory of our own (development mode,
    or the server's user): in anyone else's, its owner must make it (``serve`` does), or
    the files in it would not be readable by the server."""
    path = maildrop.directory(config.data_dir)
    if path.exists():
        return path
    try:
        owner = config.data_dir.stat().st_uid
    except FileNotFoundError:
        owner = os.geteuid()
    except OSError as exc:
        raise maildrop_error(maildrop.MaildropError(str(exc), exc.errno), path) from None
    if owner != os.geteuid():
        raise maildrop_error(maildrop.MaildropError("no such directory", errno.ENOENT), path)
    try:
        maildrop.ensure_directory(config.data_dir)
    except OSError as exc:
        error = maildrop.MaildropError(exc.strerror or str(exc), exc.errno)
        raise maildrop_error(error, path) from None
    return path


def deliver(invocation: Invocation, config: Config, stdin: BinaryIO) -> str:
    """Read, check and drop one message; its ID."""
    raw = read_input(stdin, config.message_size_limit, invocation.ignore_dots)
    prepared = prepare_message(
        raw,
        recipients=invocation.recipients,
        extract=invocation.extract_recipients,
        size_limit=config.message_size_limit,
    )
    drop = maildrop.Drop(
        recipients=prepared.recipients,
        message=prepared.data,
        sender=invocation.sender,
        full_name=invocation.full_name,
        eight_bit=prepared.eight_bit or invocation.body_type == "8BITMIME",
    )
    path = drop_directory(config)
    try:
        return maildrop.write(path, drop)
    except maildrop.MaildropError as exc:
        raise maildrop_error(exc, path) from None


def smtp_on_stdio(config: Config, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """``-bs``: an SMTP session on stdin/stdout (the sans-I/O session from
    :mod:`mailwright.smtp.protocol`); each message goes into the maildrop."""
    from ..smtp.protocol import MessageReady, Reply, Session, SessionPolicy

    policy = SessionPolicy(
        hostname=config.hostname,
        size_limit=config.message_size_limit,
        directory=LocalDirectory.from_config(config),
    )
    session = Session(policy, client_ip="127.0.0.1", trusted=True)
    stdout.write(session.greeting().encode())
    stdout.flush()
    path = maildrop.directory(config.data_dir)
    eof = False
    while not session.closed:
        event = session.next_event()
        if event is None:
            if eof:
                break
            chunk = stdin.read1(1 << 16) if hasattr(stdin, "read1") else stdin.read(1 << 16)
            if not chunk:
                eof = True
                session.feed(b"")
            else:
                session.feed(chunk)
            continue
        if isinstance(event, MessageReady):
            envelope = event.envelope
            drop = maildrop.Drop(
                recipients=tuple(m.address for m in envelope.recipients),
                message=event.data,
                sender=envelope.reverse_path,
                eight_bit=not event.data.isascii(),
            )
            try:
                drop_id = maildrop.write(drop_directory(config), drop)
                reply = Reply.of(250, "2.0.0", f"Ok: queued as {drop_id}")
            except (maildrop.MaildropError, SendmailError) as exc:
                reply = Reply.of(451, "4.3.0", f"Error: cannot write the maildrop {path}: {exc}")
            event = session.message_result(reply)
        if isinstance(event, Reply):
            stdout.write(event.encode())
            stdout.flush()
    return EX_OK


def mailq(config: Config, config_path: Path | None) -> int:
    """``-bp``: what waits in the maildrop, then ``mailwright queue list``."""
    path = maildrop.directory(config.data_dir)
    try:
        waiting = maildrop.pending(path)
    except PermissionError:
        raise SendmailError(
            EX_NOPERM,
            f"cannot read the maildrop {path}",
            "run mailq as the server's user or root",
        ) from None
    if waiting:
        print(f"{len(waiting)} message(s) in the maildrop, waiting for 'mailwright serve'")
    if not (config.data_dir / "queue.sqlite3").exists():
        print("The queue is empty.")
        return EX_OK
    if not os.access(config.data_dir / "queue.sqlite3", os.R_OK):
        raise SendmailError(
            EX_NOPERM, f"cannot read the queue in {config.data_dir}", "run mailq as root"
        )
    from .main import main as mailwright_main

    args = ["--config", str(config_path)] if config_path else []
    mailwright_main([*args, "queue", "list"])
    return EX_OK


def run(
    argv: Sequence[str],
    *,
    program: str = "sendmail",
    default_config: str | None = None,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> int:
    """One sendmail call; the sysexits code. Errors go to stderr as one line."""
    name = os.path.basename(program) or "sendmail"
    if stdin is None and sys.stdin is None:  # started with fd 0 closed
        print(f"{name}: no standard input to read the message from", file=sys.stderr)
        return EX_NOINPUT
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    try:
        invocation = parse_argv(argv, program_mode(program))
        if invocation.mode == "help":
            sys.stdout.write(USAGE)
            return EX_OK
        if invocation.mode == "version":
            from importlib.metadata import version

            print(f"mailwright {version('mailwright')} sendmail")
            return EX_OK
        if invocation.mode == "flush":
            return EX_OK  # the server retries on its own schedule
        explicit = invocation.config_path or default_config
        config = read_config(explicit)
        if invocation.mode == "newaliases":
            where = config.path or "the config file"
            print(
                f"{name}: nothing to rebuild: aliases are [aliases] in {where}, read at start "
                "and on SIGHUP"
            )
            return EX_OK
        if invocation.mode == "mailq":
            return mailq(config, choose_config(explicit))
        if invocation.mode == "smtp":
            return smtp_on_stdio(config, stdin, stdout)
        deliver(invocation, config, stdin)
        return EX_OK
    except SendmailError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EX_TEMPFAIL
    except BrokenPipeError:
        return EX_IOERR
    except Exception as exc:  # never a traceback for a program reading our stderr
        if os.environ.get("MAILWRIGHT_DEBUG"):
            raise
        print(
            f"{name}: internal error: {type(exc).__name__}: {exc} (nothing was queued; set "
            "MAILWRIGHT_DEBUG=1 for a traceback, and please report it)",
            file=sys.stderr,
        )
        return EX_SOFTWARE


def main() -> None:
    """The ``mailwright-sendmail`` console script (link it as sendmail, mailq, newaliases)."""
    sys.exit(run(sys.argv[1:], program=sys.argv[0]))


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": [],
    },
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sendmail(args: tuple[str, ...]) -> None:
    """The sendmail command line: queue a message from stdin (see 'mailwright sendmail --help')."""
    from .context import app

    if args and args[0] in ("--install", "--uninstall"):
        install(args[0] == "--install", args[1:])
        return
    sys.exit(run(args, default_config=app().config_path))


def install(installing: bool, rest: Sequence[str]) -> None:
    """``--install`` / ``--uninstall`` [``--dry-run``]: the system's sendmail, mailq and
    newaliases become (or stop being) links to mailwright-sendmail."""
    from ..errors import UsageError
    from ..sendmail.install import apply as apply_steps
    from ..sendmail.install import plan_install, plan_uninstall, program_path

    if any(word != "--dry-run" for word in rest):
        raise UsageError(
            f"unexpected {' '.join(rest)!r} after --install/--uninstall",
            "only --dry-run may follow",
        )
    dry_run = bool(rest)
    program = program_path()
    steps = plan_install(program) if installing else plan_uninstall(program)
    if not steps:
        print("nothing to do: " + ("already installed" if installing else "not installed"))
        return
    if dry_run:
        for step in steps:
            print(step.shell)
    else:
        apply_steps(steps)
    if installing:
        print("undo with: mailwright sendmail --uninstall")
        for command in plan_uninstall_preview(steps):
            print(f"  (runs: {command})")


def plan_uninstall_preview(install_steps: Sequence[Step]) -> list[str]:
    """What --uninstall will run after these install steps (for the user to read)."""
    out: list[str] = []
    for step in reversed(install_steps):
        argv = step.argv
        if argv[:1] == ("ln",):
            out.append(f"rm {argv[-1]}")
        elif argv[:1] == ("dpkg-divert",):
            out.append(f"dpkg-divert --local --rename --remove {argv[-1]}")
    return out
