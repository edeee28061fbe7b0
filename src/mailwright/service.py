"""The systemd unit ``mailwright service install`` writes (systemd.service(5), systemd.exec(5)).

The unit runs ``serve`` as an unprivileged user from the first instruction
(``User=``) with only ``CAP_NET_BIND_SERVICE`` for ports 25/465/587, in a read-only
view of the system (``ProtectSystem=strict``) where only the data directory (and the
log file's directory) can be written. ``Type=notify``: ``serve`` says READY=1 when its
listeners are bound and started, RELOADING=1/READY=1 around SIGHUP, STOPPING=1, and
pings the watchdog (:mod:`mailwright.systemd`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

UNIT_NAME = "mailwright.service"
UNIT_DIR = Path("/etc/systemd/system")
WATCHDOG_SECONDS = 60
STOP_SECONDS = 120
"""SIGTERM lets SMTP transactions and deliveries in flight finish; then SIGKILL."""

_HOMES = (Path("/home"), Path("/root"), Path("/run/user"))
_TMPS = (Path("/tmp"), Path("/var/tmp"))


@dataclass(frozen=True)
class UnitSpec:
    executable: Path
    config: Path
    user: str
    group: str
    writable: tuple[Path, ...]
    """Directories the service may write: the data directory, the log file's directory."""


def _quote(value: str) -> str:
    """A word of ExecStart= (systemd.service(5) "Command lines"): quoted when it must be."""
    if value and not any(c in value for c in " \t\"'\\;$%"):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return f'"{escaped.replace("%", "%%")}"'


def _path_value(path: Path) -> str:
    """A path in a space-separated path list (ReadWritePaths=): ``\\x20`` for a space."""
    return str(path).replace("\\", "\\x5c").replace(" ", "\\x20").replace("%", "%%")


def _under(path: Path, tops: tuple[Path, ...]) -> bool:
    return any(path == top or top in path.parents for top in tops)


def render_unit(spec: UnitSpec) -> str:
    """The unit file's text."""
    command = " ".join(
        _quote(part) for part in (str(spec.executable), "--config", str(spec.config), "serve")
    )
    check = " ".join(
        _quote(part)
        for part in (str(spec.executable), "--config", str(spec.config), "config", "check")
    )
    paths = (spec.executable, spec.config, *spec.writable)
    # A program, config or data under a home directory must stay visible (read-only).
    protect_home = "read-only" if any(_under(p, _HOMES) for p in paths) else "yes"
    # A private /tmp would hide a config or data directory that lives in /tmp.
    private_tmp = "no" if any(_under(p, _TMPS) for p in paths) else "yes"
    writable = " ".join(_path_value(p) for p in dict.fromkeys(spec.writable))
    return f"""\
# Written by 'mailwright service install'; see 'mailwright service install --help'.
[Unit]
Description=mailwright mail server
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStartPre={check}
ExecStart={command}
ExecReload=/bin/kill -HUP $MAINPID
User={spec.user}
Group={spec.group}
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome={protect_home}
ReadWritePaths={writable}
PrivateTmp={private_tmp}
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
UMask=0027
LimitNOFILE=65536
Restart=on-failure
RestartSec=5
WatchdogSec={WATCHDOG_SECONDS}
KillMode=mixed
TimeoutStopSec={STOP_SECONDS}

[Install]
WantedBy=multi-user.target
"""
