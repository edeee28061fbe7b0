"""The test DNS server itself: NSD starts, serves what a test writes, reloads, stops cleanly."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mailwright.dns import Outcome
from mailwright.testing import NsdError, NsdServer, ZoneError

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still "exists" until reaped: count it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _nsd_children(pid: int) -> list[int]:
    from mailwright.testing.nsd import _children_by_scan

    return _children_by_scan(pid)  # /proc, not ps: procps is not on minimal machines


async def test_serves_forward_zone(dns_world: NsdServer) -> None:
    assert dns_world.nameserver.startswith("127.0.0.1:")
    dns_world.set_zone(
        "example.com",
        '@ MX 10 mail\nmail A 192.0.2.10\n@ TXT "v=spf1 ip4:192.0.2.10 -all"',
    )
    r = dns_world.resolver()
    mx = await r.mx("example.com")
    assert mx.outcome is Outcome.ANSWER
    assert [(m.preference, m.exchange) for m in mx.records] == [(10, "mail.example.com")]
    assert (await r.a("mail.example.com")).records == ("192.0.2.10",)
    assert (await r.txt("example.com")).records == ("v=spf1 ip4:192.0.2.10 -all",)
    # The generated SOA and NS are there, and names not in the zone are NXDOMAIN.
    assert (await r.query("example.com", "SOA")).ok
    assert (await r.query("example.com", "NS")).records == ("ns.mailwright.test",)
    assert (await r.a("nowhere.example.com")).outcome is Outcome.NXDOMAIN


async def test_serves_reverse_zones(dns_world: NsdServer) -> None:
    dns_world.set_zone("2.0.192.in-addr.arpa", "10 PTR mail.example.com.")
    dns_world.set_zone(
        "8.b.d.0.1.0.0.2.ip6.arpa",
        "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 PTR mail.example.com.",
    )
    r = dns_world.resolver()
    assert (await r.reverse("192.0.2.10")).records == ("mail.example.com",)
    assert (await r.reverse("2001:db8::25")).records == ("mail.example.com",)


async def test_every_change_is_served_when_set_zone_returns(dns_world: NsdServer) -> None:
    r = dns_world.resolver()
    for i in range(1, 21):
        dns_world.set_zone("example.com", f"@ A 192.0.2.{i}")
        # No sleep, no retry: the change must already be live.
        assert (await r.a("example.com")).records == (f"192.0.2.{i}",)


async def test_remove_zone_and_add_it_again(dns_world: NsdServer) -> None:
    r = dns_world.resolver()
    dns_world.set_zone("example.org", "@ A 192.0.2.1")
    dns_world.set_zone("example.net", "@ A 192.0.2.2")
    assert dns_world.zones == ("example.org", "example.net")
    dns_world.remove_zone("example.org")
    # NSD refuses names outside its zones; the DNS layer reports that as SERVFAIL.
    assert (await r.a("example.org")).outcome is Outcome.SERVFAIL
    assert (await r.a("example.net")).ok
    dns_world.set_zone("example.org", "@ A 192.0.2.3")
    assert (await r.a("example.org")).records == ("192.0.2.3",)
    with pytest.raises(KeyError, match="not served"):
        dns_world.remove_zone("never.example")


async def test_child_zone_removal_falls_back_to_parent(dns_world: NsdServer) -> None:
    r = dns_world.resolver()
    dns_world.set_zone("example.com", "@ A 192.0.2.1")
    dns_world.set_zone("sub.example.com", "@ A 192.0.2.9")
    assert (await r.a("sub.example.com")).records == ("192.0.2.9",)
    dns_world.remove_zone("sub.example.com")
    assert (await r.a("sub.example.com")).outcome is Outcome.NXDOMAIN


def test_origin_is_normalized(dns_world: NsdServer) -> None:
    dns_world.set_zone("Example.COM.", "@ A 192.0.2.1")
    assert dns_world.zones == ("example.com",)
    dns_world.remove_zone("EXAMPLE.com")
    assert dns_world.zones == ()


async def test_bad_zone_text_raises_and_keeps_the_old_zone(dns_world: NsdServer) -> None:
    dns_world.set_zone("example.com", "@ A 192.0.2.1")
    with pytest.raises(ZoneError) as caught:
        dns_world.set_zone("example.com", "@ A 192.0.2.2\nmail A 192.0.2.999\n")
    message = str(caught.value)
    assert "'example.com'" in message
    assert "line 2 of the body" in message  # NSD names the line it stopped at
    assert "192.0.2.999" in message
    assert caught.value.origin == "example.com"
    # The last good version is still served.
    assert (await dns_world.resolver().a("example.com")).records == ("192.0.2.1",)


def test_bad_zone_for_a_new_origin_is_not_added(dns_world: NsdServer) -> None:
    with pytest.raises(
        ZoneError,
        match=r"zone 'broken\.example' is invalid: near line [12] of the body: syntax error",
    ):
        dns_world.set_zone("broken.example", "@ MX mail\n")
    assert dns_world.zones == ()


def test_soa_in_the_body_is_reported(dns_world: NsdServer) -> None:
    with pytest.raises(ZoneError, match=r"'example\.com'.*SOA record was already"):
        dns_world.set_zone("example.com", "@ SOA ns hostmaster 1 2 3 4 5\n")


@pytest.mark.parametrize(
    "origin", ["", "a..b", "x" * 64 + ".com", "a/b.com", "a b.com", "-a.com", "a-.com"]
)
def test_bad_origin_is_rejected(dns_world: NsdServer, origin: str) -> None:
    with pytest.raises(ValueError, match="zone origin"):
        dns_world.set_zone(origin, "@ A 192.0.2.1")


async def test_no_rate_limit_under_a_burst(dns_world: NsdServer) -> None:
    # Debian's NSD drops answers above ~200 q/s by default (RRL); the fixture disables it.
    dns_world.set_zone("example.com", "@ A 192.0.2.1")
    r = dns_world.resolver(timeout=2.0)
    results = await asyncio.gather(*(r.a("example.com") for _ in range(600)))
    assert {res.outcome for res in results} == {Outcome.ANSWER}


def test_zones_of_a_previous_test_are_gone(dns_world: NsdServer) -> None:
    # Every test above added zones; the fixture empties the server between tests.
    assert dns_world.zones == ()
    assert not [p for p in os.listdir(str(dns_world.directory)) if p.endswith(".zone")]


def test_standalone_server_starts_fast_and_stops_cleanly() -> None:
    began = time.monotonic()
    server = NsdServer().start()
    elapsed = time.monotonic() - began
    assert server.running
    pid = server._process.pid if server._process else 0
    children = _nsd_children(pid)
    assert children, "NSD runs its server and xfrd as child processes"
    servers = server._server_pids()
    assert len(servers) == 1  # server-count 1, a grandchild of the process we started
    directory = server.directory
    assert directory is not None and directory.is_dir()
    server.set_zone("example.com", "@ A 192.0.2.1")
    server.stop()
    assert not server.running
    assert not _alive(pid)
    assert not any(_alive(c) for c in children)
    assert not any(_alive(p) for p in servers)
    assert not directory.exists()
    # Generous bound for a loaded CI machine; typically about 0.1 s.
    assert elapsed < 3.0
    with pytest.raises(NsdError, match="not running"):
        server.set_zone("example.com", "@ A 192.0.2.1")
    server.stop()  # idempotent


def test_context_manager_stops_on_error() -> None:
    pid = 0
    with pytest.raises(RuntimeError, match="boom"), NsdServer() as server:
        pid = server._process.pid if server._process else 0
        raise RuntimeError("boom")
    assert pid and not _alive(pid)


def test_restart_after_nsd_was_killed() -> None:
    server = NsdServer().start()
    try:
        assert server._process is not None
        server._process.kill()
        server._process.wait()
        assert not server.running
        with pytest.raises(NsdError, match="not running"):
            server.set_zone("example.com", "@ A 192.0.2.1")
        server.stop()
        server.start()
        server.set_zone("example.com", "@ A 192.0.2.1")
        assert server.zones == ("example.com",)
    finally:
        server.stop()


def test_nsd_dies_with_a_killed_python_process() -> None:
    # A test run killed hard (SIGKILL, OOM) must not leave NSD behind.
    script = textwrap.dedent(
        """
        import os, sys
        from mailwright.testing import NsdServer
        server = NsdServer().start()
        print(server._process.pid, server.directory, flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    pid_text, directory = proc.stdout.split()
    pid = int(pid_text)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    shutil.rmtree(directory)  # nobody else will (a later start() would, after 10 minutes)
    assert not _alive(pid)


def test_stale_directories_of_dead_servers_are_removed(tmp_path: Path) -> None:
    from mailwright.testing import nsd

    old = time.time() - 3600
    stale = tmp_path / "mwnsd-dead"
    stale.mkdir()
    (stale / "nsd.conf").write_text("")
    dead_pid = tmp_path / "mwnsd-deadpid"
    dead_pid.mkdir()
    (dead_pid / "nsd.pid").write_text("999999999\n")
    fresh = tmp_path / "mwnsd-starting"  # no pid file yet, but just created
    fresh.mkdir()
    other = tmp_path / "not-ours"
    other.mkdir()
    for d in (stale, dead_pid, other):
        os.utime(d, (old, old))
    with NsdServer() as live:
        assert live.directory is not None
        os.utime(live.directory, (old, old))  # idle for an hour, but its NSD runs
        live_dir = tmp_path / live.directory.name
        shutil.copytree(live.directory, live_dir, ignore=shutil.ignore_patterns("nsd.ctl"))
        os.utime(live_dir, (old, old))
        nsd._remove_stale_directories(tmp_path)
        assert live_dir.exists()
    assert not stale.exists()
    assert not dead_pid.exists()
    assert fresh.exists()
    assert other.exists()


def test_child_processes_found_without_proc_children_file() -> None:
    # Kernels built without CONFIG_PROC_CHILDREN have no /proc/PID/task/PID/children;
    # the scan of /proc must find the same NSD processes.
    from mailwright.testing import nsd

    with NsdServer() as server:
        assert server._process is not None
        top = server._process.pid
        assert nsd._children_by_scan(top) == nsd._children(top)
        assert len(server._server_pids()) == 1


def test_port_taken_before_nsd_binds_it_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    # Between picking a free port and NSD binding it, another process may take it.
    import socket

    from mailwright.testing import nsd

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken_port = taken.getsockname()[1]
        ports = iter([taken_port])
        real_free_port = nsd.free_port
        monkeypatch.setattr(
            nsd, "free_port", lambda **kw: next(ports, None) or real_free_port(**kw)
        )
        with NsdServer() as server:
            assert server.port != taken_port
            server.set_zone("example.com", "@ A 192.0.2.1")


def test_nsd_failing_to_start_raises_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailwright.testing import nsd

    monkeypatch.setattr(nsd, "nsd_config", lambda directory, port: "server:\n    bogus-option: 1\n")
    server = NsdServer()
    with pytest.raises(NsdError, match="NSD exited at start"):
        server.start()
    assert server.directory is None
    assert not server.running
