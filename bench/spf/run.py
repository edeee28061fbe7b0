"""SPF evaluation benchmark: mailwright vs pyspf against the same local NSD, in one run.

    uv run python bench/spf/run.py [--seconds 2] [--concurrency 16]

Part 1 serves a set of realistic policies (nested includes, mx, a, macros,
redirect) from a real NSD on 127.0.0.1 (``mailwright.testing.NsdServer``, response
rate limiting off) and evaluates each one repeatedly, one check at a time, with
mailwright's ``check_mail_from`` (through ``StubResolver``, the server's transport,
without its cache) and with pyspf's ``check2``, in alternating 0.2 s slices; neither
caches DNS answers between checks (pyspf keeps a per-check cache, mailwright too). It prints
checks per second and the p50/p99 latency of a single check, plus mailwright's
throughput with N checks in flight (pyspf is synchronous).

Part 2 prints what one TXT query costs through each DNS client path (on a
loopback server the checks above are mostly DNS-client CPU). Part 3 measures
the wall time of one check over a 3-level include chain when every DNS answer
takes 20 ms (``MemoryResolver(latency=0.02)``), evaluating sequentially and
with mailwright's concurrent prefetch; then the same chain served by NSD
behind a UDP proxy that delays every answer by 20 ms, for pyspf and for
mailwright sequential and concurrent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.asyncresolver
import dns.resolver
import spf  # pyspf

from mailwright.dns import DnspythonResolver, MemoryResolver, StubResolver
from mailwright.spf import check_mail_from
from mailwright.testing import NsdServer

HELO = "mail.sender.example"

ZONES = {
    # A company domain: its own MX plus two providers, one of which nests two levels.
    "example.com": """\
@ MX 10 mx1
@ MX 20 mx2
mx1 A 192.0.2.11
mx2 A 192.0.2.12
@ TXT "v=spf1 mx include:_spf.provider.example include:mail.crm.example -all"
plain TXT "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 ip6:2001:db8::/32 -all"
web A 192.0.2.80
web TXT "v=spf1 a mx a:web2.example.com -all"
web2 A 192.0.2.81
users TXT "v=spf1 exists:%{l1r+}.%{ir}._u.%{d} -all"
jane.10.113.0.203._u.users A 127.0.0.2
branch TXT "v=spf1 redirect=_spf.example.com"
_spf TXT "v=spf1 a:relay.example.com ip4:203.0.113.0/26 -all"
relay A 203.0.113.77
""",
    "provider.example": """\
_spf TXT "v=spf1 include:_netblocks.provider.example include:_netblocks2.provider.example ~all"
_netblocks TXT "v=spf1 ip4:198.51.100.0/25 ip4:198.51.100.128/26 ~all"
_netblocks2 TXT "v=spf1 ip6:2001:db8:100::/48 include:_netblocks3.provider.example ~all"
_netblocks3 TXT "v=spf1 ip4:203.0.113.128/25 ~all"
""",
    # The 3-level include chain of part 3, served for real behind a delaying proxy.
    "chain.example": """\
@ TXT "v=spf1 a mx include:l1.chain.example -all"
@ A 192.0.2.1
@ MX 10 mx
mx A 192.0.2.2
l1 TXT "v=spf1 a:h1.chain.example mx:l1.chain.example include:l2.chain.example ~all"
l1 MX 10 mx1
mx1 A 198.51.100.11
h1 A 198.51.100.1
l2 TXT "v=spf1 a:h2.chain.example mx:l2.chain.example include:l3.chain.example ~all"
l2 MX 10 mx2
mx2 A 198.51.100.12
h2 A 198.51.100.2
l3 TXT "v=spf1 a:h3.chain.example ip4:203.0.113.0/24 ~all"
h3 A 198.51.100.3
""",
    "crm.example": """\
mail TXT "v=spf1 a:out.crm.example ip4:192.0.2.200/29 ?all"
out A 192.0.2.210
""",
}


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    ip: str
    sender: str
    expected: str


POLICIES = [
    Policy(
        "ip-only", "ip4/ip6 networks, no lookups", "198.51.100.9", "a@plain.example.com", "pass"
    ),
    Policy("a-mx", "a, mx, a:host", "192.0.2.81", "a@web.example.com", "pass"),
    Policy(
        "nested-includes",
        "mx + 2 includes, 3 levels deep",
        "203.0.113.200",
        "a@example.com",
        "pass",
    ),
    Policy(
        "nested-fail", "same policy, client listed nowhere", "192.0.2.99", "a@example.com", "fail"
    ),
    Policy(
        "macros", "exists:%{l1r+}.%{ir}._u.%{d}", "203.0.113.10", "jane@users.example.com", "pass"
    ),
    Policy(
        "redirect", "redirect= to a shared record", "203.0.113.77", "a@branch.example.com", "pass"
    ),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Measure:
    latencies: list[float]
    elapsed: float
    result: str = ""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 0.5) * 1e3

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1e3


def run_sync(fn: Callable[[], str], seconds: float, into: Measure) -> None:
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        into.result = fn()
        into.latencies.append(time.perf_counter() - t0)
    into.elapsed += time.perf_counter() - start


async def run_async(policy: Policy, resolver: StubResolver, seconds: float, into: Measure) -> None:
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        res = await check_mail_from(policy.ip, policy.sender, HELO, resolver)
        into.latencies.append(time.perf_counter() - t0)
        into.result = str(res.result)
    into.elapsed += time.perf_counter() - start


def compare(
    policy: Policy, nameserver: str, seconds: float, rounds: int = 10
) -> tuple[Measure, Measure]:
    """Alternate short runs of both libraries so that load from elsewhere hits both alike."""
    ours, theirs = Measure([], 0.0), Measure([], 0.0)
    resolver = StubResolver(nameserver, timeout=5.0)

    def pyspf_check() -> str:
        return str(spf.check2(i=policy.ip, s=policy.sender, h=HELO)[0])

    pyspf_check()  # warm up both
    asyncio.run(check_mail_from(policy.ip, policy.sender, HELO, resolver))
    for _ in range(rounds):
        asyncio.run(run_async(policy, resolver, seconds / rounds, ours))
        run_sync(pyspf_check, seconds / rounds, theirs)
    return ours, theirs


async def throughput(policy: Policy, nameserver: str, seconds: float, inflight: int) -> float:
    resolver = StubResolver(nameserver, timeout=5.0)
    done = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await check_mail_from(policy.ip, policy.sender, HELO, resolver)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return done / (time.perf_counter() - start)


def point_pyspf_at(nameserver: str) -> None:
    """pyspf resolves through dnspython's module-level default resolver: aim it at NSD."""
    host, _, port = nameserver.rpartition(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)
    resolver.lifetime = 5.0
    dns.resolver.default_resolver = resolver


def dns_client_costs(nameserver: str, n: int = 1000) -> list[tuple[str, float, float]]:
    """Wall and CPU microseconds (this process) per TXT query through each DNS client path."""
    host, _, port = nameserver.rpartition(":")
    rows: list[tuple[str, float, float]] = []

    def timed(label: str, began: tuple[float, float]) -> None:
        wall = (time.perf_counter() - began[0]) / n * 1e6
        cpu = (time.process_time() - began[1]) / n * 1e6
        rows.append((label, wall, cpu))

    sync = dns.resolver.Resolver(configure=False)
    sync.nameservers, sync.port = [host], int(port)
    began = time.perf_counter(), time.process_time()
    for _ in range(n):
        sync.resolve("plain.example.com", "TXT")
    timed("dnspython sync (pyspf's path)", began)

    async def asynchronous() -> None:
        plain = dns.asyncresolver.Resolver(configure=False)
        plain.nameservers, plain.port = [host], int(port)
        began = time.perf_counter(), time.process_time()
        for _ in range(n):
            await plain.resolve("plain.example.com", "TXT")
        timed("dnspython asyncio", began)
        ours = DnspythonResolver(nameserver)
        began = time.perf_counter(), time.process_time()
        for _ in range(n):
            await ours.query("plain.example.com", "TXT")
        timed("mailwright.dns.DnspythonResolver", began)
        stub = StubResolver(nameserver)
        await stub.query("plain.example.com", "TXT")  # opens the socket
        began = time.perf_counter(), time.process_time()
        for _ in range(n):
            await stub.query("plain.example.com", "TXT")
        timed("mailwright.dns.StubResolver", began)

    asyncio.run(asynchronous())
    return rows


class DelayProxy:
    """A UDP DNS proxy on 127.0.0.1 that forwards to NSD and adds ``delay`` to every
    answer: a network with a round-trip time, shared by both libraries."""

    def __init__(self, upstream: str, delay: float) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DelayProxy:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        proxy = self

        class Relay(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport: Any = transport  # a datagram transport (sendto)

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                proxy.loop.create_task(self.relay(data, addr))

            async def relay(self, data: bytes, addr: tuple[str, int]) -> None:
                await asyncio.sleep(proxy.delay)
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.setblocking(False)
                    await proxy.loop.sock_connect(sock, proxy.upstream)
                    await proxy.loop.sock_sendall(sock, data)
                    reply = await asyncio.wait_for(proxy.loop.sock_recv(sock, 65535), 5)
                self.transport.sendto(reply, addr)

        transport, _ = self.loop.run_until_complete(
            self.loop.create_datagram_endpoint(Relay, local_addr=("127.0.0.1", 0))
        )
        self.port = transport.get_extra_info("sockname")[1]
        self.ready.set()
        self.loop.run_forever()
        transport.close()


def chain_over_network(nameserver: str, runs: int = 5) -> list[tuple[str, float, str]]:
    """Median wall time of one check of chain.example through the delaying proxy."""
    rows: list[tuple[str, float, str]] = []
    sender, ip = "a@chain.example", "203.0.113.9"
    point_pyspf_at(nameserver)
    times, result = [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        result = str(spf.check2(i=ip, s=sender, h=HELO)[0])
        times.append(time.perf_counter() - t0)
    rows.append(("pyspf", statistics.median(times), result))
    for label, concurrent in (("mailwright sequential", False), ("mailwright concurrent", True)):
        times = []
        for _ in range(runs):
            resolver = StubResolver(nameserver, timeout=5.0)
            t0 = time.perf_counter()
            res = asyncio.run(check_mail_from(ip, sender, HELO, resolver, concurrent=concurrent))
            times.append(time.perf_counter() - t0)
            result = str(res.result)
        rows.append((label, statistics.median(times), result))
    return rows


def chain_resolver(latency: float) -> MemoryResolver:
    """A 3-level include chain, each level with a, mx and the next include."""
    r = MemoryResolver(latency=latency)
    r.add("example.com", "TXT", "v=spf1 a mx include:l1.example.net -all")
    r.add(
        "l1.example.net",
        "TXT",
        "v=spf1 a:h1.example.net mx:l1.example.net include:l2.example.net ~all",
    )
    r.add(
        "l2.example.net",
        "TXT",
        "v=spf1 a:h2.example.net mx:l2.example.net include:l3.example.net ~all",
    )
    r.add("l3.example.net", "TXT", "v=spf1 a:h3.example.net ip4:203.0.113.0/24 ~all")
    r.add("example.com", "A", "192.0.2.1").add("example.com", "MX", (10, "mx.example.com"))
    r.add("mx.example.com", "A", "192.0.2.2")
    for i in (1, 2, 3):
        r.add(f"h{i}.example.net", "A", f"198.51.100.{i}")
    for i in (1, 2):
        r.add(f"l{i}.example.net", "MX", (10, f"mx{i}.example.net"))
        r.add(f"mx{i}.example.net", "A", f"198.51.100.{10 + i}")
    return r


async def chain_wall(concurrent: bool, runs: int = 5) -> tuple[float, str, int, int]:
    times: list[float] = []
    result = ""
    lookups = queries = 0
    for _ in range(runs):
        r = chain_resolver(0.02)
        t0 = time.perf_counter()
        res = await check_mail_from("203.0.113.9", "a@example.com", HELO, r, concurrent=concurrent)
        times.append(time.perf_counter() - t0)
        result, lookups, queries = str(res.result), res.lookups, len(r.queries)
    return statistics.median(times), result, lookups, queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per policy and library")
    parser.add_argument("--concurrency", type=int, default=16, help="mailwright checks in flight")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)  # pyspf calls dns.resolver.query()

    rows: list[tuple[Policy, Measure, float, Measure]] = []
    with NsdServer() as ns:
        for origin, body in ZONES.items():
            ns.set_zone(origin, body)
        point_pyspf_at(ns.nameserver)
        for policy in POLICIES:
            ours, theirs = compare(policy, ns.nameserver, args.seconds)
            tput = asyncio.run(throughput(policy, ns.nameserver, args.seconds, args.concurrency))
            rows.append((policy, ours, tput, theirs))
        client_costs = dns_client_costs(ns.nameserver)
        with DelayProxy(ns.nameserver, 0.02) as proxy:
            network_rows = chain_over_network(proxy.nameserver)

    load = os.getloadavg()[0]
    print(
        f"SPF check_host() against a local NSD (one check at a time unless noted; "
        f"load average {load:.1f} on {os.cpu_count()} CPUs)\n"
    )
    header = (
        f"{'policy':<16} {'result':<8} {'mailwright/s':>12} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'pyspf/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'x':>5}"
        f" {f'mailwright/s ({args.concurrency} in flight)':>30}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for policy, ours, tput, theirs in rows:
        same = ours.result == theirs.result == policy.expected
        ok &= same
        result = ours.result if same else f"{ours.result}!={theirs.result}"
        print(
            f"{policy.name:<16} {result:<8} {ours.rate:>12.0f} {ours.p50_ms:>7.2f}"
            f" {ours.p99_ms:>7.2f} {theirs.rate:>8.0f} {theirs.p50_ms:>7.2f}"
            f" {theirs.p99_ms:>7.2f} {ours.rate / theirs.rate:>5.1f} {tput:>30.0f}"
        )

    print("\nOne TXT query to the same NSD, by DNS client (µs per query, sequential)\n")
    print(f"{'client':<34} {'wall µs':>8} {'CPU µs':>8}")
    for label, wall, cpu in client_costs:
        print(f"{label:<34} {wall:>8.0f} {cpu:>8.0f}")

    seq, seq_result, lookups, seq_queries = asyncio.run(chain_wall(False))
    con, con_result, _, con_queries = asyncio.run(chain_wall(True))
    print("\n3-level include chain, 20 ms per DNS answer (median of 5 checks)\n")
    print(f"{'evaluation':<12} {'wall ms':>8} {'result':>8} {'terms':>6} {'queries':>8}")
    print(f"{'sequential':<12} {seq * 1e3:>8.0f} {seq_result:>8} {lookups:>6} {seq_queries:>8}")
    print(f"{'concurrent':<12} {con * 1e3:>8.0f} {con_result:>8} {lookups:>6} {con_queries:>8}")
    print(f"\nconcurrent prefetch: {seq / con:.1f}x faster, same result and term count")

    print("\nThe same chain served by NSD behind a proxy adding 20 ms per answer (median of 5)\n")
    print(f"{'client':<24} {'wall ms':>8} {'result':>8}")
    for label, wall, result in network_rows:
        print(f"{label:<24} {wall * 1e3:>8.0f} {result:>8}")
        ok &= result == "pass"
    return 0 if ok and seq_result == con_result else 1


if __name__ == "__main__":
    sys.exit(main())
