"""NSD on 127.0.0.1:53 inside a private network and mount namespace.

Some programs under test can only ask the resolver of ``/etc/resolv.conf`` on port 53
(OpenDMARC; OpenDKIM's test tools through the C library or libunbound). They run in a
namespace made by ``unshare -r -n -m`` where their own NSD answers on port 53 and
``/etc/resolv.conf`` is bind-mounted to point at it: nothing leaves loopback and the
host's resolver is untouched.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from .nsd import nsd_config

NAMESPACE = ["unshare", "-r", "-n", "-m", "sh", "-c"]
"""Prefix of the command that runs a :func:`dns_script` (and what follows it)."""

NO_DNS = 99
"""The script's exit status when NSD did not answer."""

_WAIT_FOR_NSD = (
    "import sys, time, dns.resolver\n"
    "r = dns.resolver.Resolver(configure=False); r.nameservers = ['127.0.0.1']; r.lifetime = 0.5\n"
    "for _ in range(50):\n"
    "    try:\n"
    "        r.resolve(sys.argv[1], 'SOA'); sys.exit(0)\n"
    "    except Exception:\n"
    "        time.sleep(0.1)\n"
    "sys.exit(1)\n"
)


def dns_script(directory: Path, zones: Mapping[str, str]) -> str:
    """Write NSD's configuration and ``zones`` (origin → zone file text) into
    ``directory`` and return the shell lines that, run in the namespace, start NSD
    (``$nsd_pid``) on port 53 for them and point ``/etc/resolv.conf`` at it; they exit
    with :data:`NO_DNS` when NSD does not answer (its log: ``directory/nsd.log``)."""
    conf = nsd_config(directory, 53)
    for origin, text in zones.items():
        (directory / f"{origin}.zone").write_text(text, encoding="utf-8")
        conf += f'zone:\n    name: {origin}\n    zonefile: "{directory}/{origin}.zone"\n'
    (directory / "nsd.conf").write_text(conf)
    (directory / "resolv.conf").write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    (directory / "wait.py").write_text(_WAIT_FOR_NSD)
    d, py = shlex.quote(str(directory)), shlex.quote(sys.executable)
    first = shlex.quote(next(iter(zones)))
    return f"""
ip link set lo up
mount --bind {d}/resolv.conf /etc/resolv.conf
nsd -d -c {d}/nsd.conf & nsd_pid=$!
if ! {py} {d}/wait.py {first}; then
    echo "NSD did not start" >&2; kill $nsd_pid; exit {NO_DNS}
fi
"""
