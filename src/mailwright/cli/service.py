"""``mailwright service install``: run the configured server under systemd."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import click

from ..errors import UserError
from ..service import UNIT_DIR, UNIT_NAME, UnitSpec, render_unit
from .context import app, console, err_console, safe

EPILOG = """\b
Examples:
  mailwright --config /etc/mailwright/mailwright.toml service install
  mailwright --config /etc/mailwright/mailwright.toml service install --user mail2
  mailwright --config /etc/mailwright/mailwright.toml service install --dry-run
  mailwright --config /etc/mailwright/mailwright.toml service install --sendmail

\b
What it does (as root): creates the system user if it does not exist (useradd
--system), gives it the data directory and the DKIM key files, writes
/etc/systemd/system/mailwright.service and runs 'systemctl daemon-reload'. It does
not start anything: 'systemctl enable --now mailwright' does. --dry-run prints the
unit and the plan and changes nothing. --sendmail also makes mailwright the
system's sendmail (/usr/sbin/sendmail, mailq, newaliases: dpkg-divert --local for
a package's file, never overwriting it); 'mailwright sendmail --uninstall' undoes it.
"""


@click.group(epilog="\b\nExamples:\n  mailwright service install --dry-run")
def service() -> None:
    """Run mailwright as a systemd service."""


def _executable() -> Path:
    """The ``mailwright`` of this installation (the venv this Python runs from)."""
    beside = Path(sys.executable).parent / "mailwright"
    if beside.is_file():
        return beside.absolute()
    found = shutil.which("mailwright")
    if found is None:
        raise UserError(
            "cannot find the mailwright program to start",
            "install mailwright (see README 'Deploy'), or run this with its full path",
        )
    return Path(found).absolute()


def _under_home(path: Path) -> bool:
    return any(part in ("home", "root") for part in path.parts[1:2])


@service.command(epilog=EPILOG)
@click.option(
    "--user",
    "user_name",
    metavar="NAME",
    help="System user the service runs as (default: the config's user, else mailwright).",
)
@click.option("--dry-run", is_flag=True, help="Print the unit and the plan; change nothing.")
@click.option(
    "--sendmail",
    "as_sendmail",
    is_flag=True,
    help="Also install mailwright as the system's /usr/sbin/sendmail (Debian diversion).",
)
@click.option(
    "--unit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=UNIT_DIR,
    show_default=True,
    help="Where the unit file goes.",
)
def install(user_name: str | None, dry_run: bool, as_sendmail: bool, unit_dir: Path) -> None:
    """Write a hardened systemd unit for 'mailwright serve' (Type=notify)."""
    from ..sendmail.install import apply as apply_steps
    from ..sendmail.install import plan_install, program_path

    ctx = app()
    if not ctx.has_config_file:
        raise UserError(
            "no config file: the service runs a configured server",
            "make one with 'mailwright init DOMAIN --ip IP', then pass --config FILE",
        )
    config = ctx.config
    assert config.path is not None
    config_path = config.path.absolute()
    user = user_name or config.user or "mailwright"
    executable = _executable()
    plan: list[str] = []
    try:
        entry = pwd.getpwnam(user)
        group = grp.getgrgid(entry.pw_gid).gr_name
        uid, gid = entry.pw_uid, entry.pw_gid
    except KeyError:
        entry = None
        group, uid, gid = user, -1, -1
        plan.append(f"create the system user {user} (useradd --system --user-group)")
    if user == "nobody":
        # systemd warns too: files owned by nobody are everybody's (NFS maps to it)
        raise UserError(
            "--user nobody: a service needs a user of its own",
            "use e.g. --user mailwright (created if it does not exist)",
        )
    if entry is not None and uid == 0:
        raise UserError(
            f"--user {user}: the service must not run as root",
            "name an unprivileged system user, e.g. --user mailwright",
        )
    data_dir = config.data_dir.absolute()
    writable = [data_dir]
    if config.log.file is not None and data_dir not in config.log.file.absolute().parents:
        writable.append(config.log.file.absolute().parent)
    keys = [key.private_key.absolute() for key in config.dkim]
    plan.append(f"give {user} the data directory {data_dir}")
    if keys:
        plan.append(f"give {user} the DKIM keys {', '.join(str(k) for k in keys)}")
    unit_path = unit_dir / UNIT_NAME
    plan.append(f"write {unit_path}")
    text = render_unit(
        UnitSpec(executable, config_path, user, group, tuple(dict.fromkeys(writable)))
    )
    if _under_home(executable):
        err_console.print(
            f"[bold yellow]warning:[/] {safe(executable)} is in a home directory, which "
            f"{safe(user)} may not be able to read (install into /opt, see README 'Deploy')"
        )
    sendmail_steps = plan_install(program_path()) if as_sendmail else []
    plan += [f"run {step.shell}" for step in sendmail_steps]
    if dry_run:
        sys.stdout.write(text)
        for step in plan:
            err_console.print(f"would {safe(step)}")
        return
    if os.geteuid() != 0 and (entry is None or uid != os.geteuid()):
        raise UserError(
            "service install needs root (it creates a user and changes owners)",
            "run it with sudo, or see what it would do with --dry-run",
        )
    if entry is None:
        _run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--home-dir",
                str(data_dir),
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ]
        )
        entry = pwd.getpwnam(user)
        uid, gid = entry.pw_uid, entry.pw_gid
        group = grp.getgrgid(gid).gr_name
        text = render_unit(
            UnitSpec(executable, config_path, user, group, tuple(dict.fromkeys(writable)))
        )
    for directory in writable:
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        _chown_tree(directory, uid, gid)
    for key in keys:
        if key.exists():
            os.chown(key, uid, gid)
            # 'init' makes keys/ mode 0700: the user must be able to enter it too
            if key.parent.stat().st_uid == 0 and key.parent.stat().st_mode & 0o001 == 0:
                os.chown(key.parent, uid, gid)
    unit_dir.mkdir(parents=True, exist_ok=True)
    tmp = unit_path.with_name(f".{UNIT_NAME}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, unit_path)
    console.print(f"wrote {safe(unit_path)}: serve runs as {safe(user)}")
    if sendmail_steps:
        apply_steps(sendmail_steps, echo=lambda line: console.print(safe(line)))
        console.print(
            "the system's sendmail is mailwright now; undo: mailwright sendmail --uninstall"
        )
    if unit_dir == UNIT_DIR and Path("/run/systemd/system").is_dir():
        _run(["systemctl", "daemon-reload"])
        console.print("start it now and at boot: systemctl enable --now mailwright")
    else:
        console.print("then: systemctl daemon-reload && systemctl enable --now mailwright")


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.chown(top, uid, gid)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _run(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UserError(f"{argv[0]} is not installed", "install it, then run this again") from None
    except subprocess.CalledProcessError as exc:
        reason = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise UserError(
            f"{' '.join(argv[:2])} failed: {reason[-1] if reason else exc.returncode}",
            "fix that, then run this again",
        ) from None
