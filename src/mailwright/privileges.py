"""Who ``serve`` runs as: bind as root, then become ``user`` before any network input.

Two supported ways to listen on ports 25/465/587:

* started as root with ``user = "mailwright"`` in the config: the listeners are bound,
  then supplementary groups, group and user are switched (in that order: after
  ``setuid`` the others are no longer allowed) and it is verified that root cannot be
  regained;
* started as that user with ``CAP_NET_BIND_SERVICE`` (the systemd unit of
  ``mailwright service install`` grants exactly that): nothing to switch.

Running on as root is refused unless ``allow_root = true`` (development mode, without a
config file, is exempt: it listens on loopback and keeps its files where it was started).
The files the server writes and reads (data directory, DKIM keys, TLS key) are checked
for the account it will run as, with the path and the fix in the error.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .errors import UserError


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def current(cls) -> Account:
        uid = os.geteuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return cls(name, uid, os.getegid(), tuple(os.getgroups()))

    @classmethod
    def named(cls, name: str, source: str) -> Account:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise UserError(
                f"{source}: user: no system user {name!r}",
                f"create it: useradd --system --user-group --no-create-home "
                f"--shell /usr/sbin/nologin {name}",
            ) from None
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return cls(name, entry.pw_uid, entry.pw_gid, groups)

    @property
    def owner(self) -> str:
        try:
            return f"{self.name}:{grp.getgrgid(self.gid).gr_name}"
        except KeyError:
            return f"{self.name}:{self.gid}"


def run_as(config: Config, dev_mode: bool = False) -> Account:
    """The account ``serve`` will run as with this config, started by the current user.

    Raises UserError when that would be root and root is not allowed.
    """
    if os.geteuid() != 0:
        return Account.current()
    if config.user is not None:
        account = Account.named(config.user, config.source)
        if account.uid == 0:
            raise UserError(
                f"{config.source}: user = {config.user!r} is root",
                "name an unprivileged system user, e.g. mailwright",
            )
        return account
    if config.allow_root or dev_mode:
        return Account.current()
    raise UserError(
        f"{config.source}: serve would keep running as root",
        'add user = "mailwright" (it binds the ports, then runs as that user; create it with '
        "useradd --system mailwright), or allow_root = true",
    )


def _allowed(st: os.stat_result, account: Account, want: int) -> bool:
    """Whether ``account`` has the ``want`` bits (4 read, 2 write, 1 search) on a file."""
    if account.uid == 0:
        return True
    if st.st_uid == account.uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid in account.groups or st.st_gid == account.gid:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & want == want


def _reachable(path: Path, account: Account) -> Path | None:
    """The first directory above ``path`` that ``account`` cannot enter, or None."""
    for parent in reversed(path.absolute().parents):
        try:
            st = parent.stat()
        except OSError:
            return None  # does not exist (yet): the mkdir reports it
        if not _allowed(st, account, 1):
            return parent
    return None


def check_readable(path: Path, account: Account, what: str, source: str) -> None:
    blocked = _reachable(path, account)
    if blocked is not None:
        raise UserError(
            f"{source}: {what} {path}: {account.name} cannot enter {blocked}",
            f"move it to a directory {account.name} can reach, or chmod o+x {blocked}",
        )
    try:
        st = path.stat()
    except OSError:
        return  # missing files are reported by whoever loads them, with their own hint
    if not _allowed(st, account, 4):
        raise UserError(
            f"{source}: {what} {path} is not readable by {account.name}",
            f"chown {account.owner} {path}",
        )


def check_data_dir(config: Config, account: Account) -> None:
    """The data directory, and what is directly in it (queue, log, Maildirs), belong to
    ``account``: a queue left by a run as root makes every later write fail."""
    data_dir = config.data_dir.absolute()
    blocked = _reachable(data_dir, account)
    if blocked is not None:
        raise UserError(
            f"{config.source}: data_dir {data_dir}: {account.name} cannot enter {blocked}",
            f"put data_dir where {account.name} can reach it, e.g. /var/lib/mailwright",
        )
    if not data_dir.exists():
        if os.geteuid() == 0:
            return  # serve, as root, makes it for the account (prepare_data_dir)
        parent = data_dir.parent
        if parent.exists() and not _allowed(parent.stat(), account, 3):
            raise UserError(
                f"{config.source}: data_dir {data_dir} does not exist and {account.name} "
                f"cannot create it in {parent}",
                f"mkdir {data_dir} && chown {account.owner} {data_dir}",
            )
        return
    fix = f"chown -R {account.owner} {data_dir}"
    if not _allowed(data_dir.stat(), account, 7):
        raise UserError(
            f"{config.source}: data_dir {data_dir} is not writable by {account.name}", fix
        )
    for entry in sorted(data_dir.iterdir()):
        st = entry.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        want = 7 if stat.S_ISDIR(st.st_mode) else 6
        if account.uid != 0 and st.st_uid != account.uid and not _allowed(st, account, want):
            raise UserError(
                f"{config.source}: {entry} in the data directory belongs to "
                f"{_name(st.st_uid)}, not {account.name}",
                fix,
            )


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_files(config: Config, account: Account) -> None:
    """Everything ``serve`` reads or writes, for the account it runs as."""
    check_data_dir(config, account)
    for key in config.dkim:
        check_readable(key.private_key, account, "dkim key", config.source)
    for path, what in (
        (config.tls.certificate, "tls certificate"),
        (config.tls.private_key, "tls key"),
    ):
        if path is not None:
            check_readable(path, account, what, config.source)


def prepare_data_dir(config: Config, account: Account) -> None:
    """As root, before dropping: a data directory that does not exist yet is made for
    ``account`` (an existing one is never changed: check_files says what to do)."""
    data_dir = config.data_dir.absolute()
    if os.geteuid() != 0 or account.uid == 0 or data_dir.exists():
        return
    data_dir.mkdir(parents=True, mode=0o750)
    os.chown(data_dir, account.uid, account.gid)


def drop_to(account: Account) -> None:
    """Become ``account`` for good (groups, then group, then user); verify it stuck."""
    if os.geteuid() != 0 or account.uid == 0:
        return
    os.setgroups(list(account.groups))
    os.setgid(account.gid)
    os.setuid(account.uid)
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:  # pragma: no cover - only a broken kernel or a setuid binary gets here
        raise RuntimeError("dropping root failed: setuid(0) still works")
    os.environ["HOME"] = pwd.getpwuid(account.uid).pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = account.name
