"""Doctor wall time vs the same lookups one after another.

``uv run python bench/doctor/run.py`` (about 20 s): serves a complete, correct
domain from NSD on 127.0.0.1 (the test world of tests/integration), adds a
fixed delay to every DNS answer to model a real resolver's round trip, and runs
``run_checks`` two ways on the same world:

* mailwright: every check at once over one de-duplicating resolver;
* one at a time: the same checks and the same de-duplicated queries, but a lock
  lets only one query be in flight: what a sequential doctor would wait.

The ports/TLS group is left out (no SMTP server here); DNS is what differs.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mailwright.dkim import dns_record_value, generate_key, private_key_pem
from mailwright.dns import DnspythonResolver, DnsResult, Resolver
from mailwright.doctor import DoctorOptions, SelectorSpec, run_checks
from mailwright.setup.records import txt_rdata
from mailwright.testing.nsd import NsdServer

DOMAIN, HOST, IP = "example.test", "mail.example.test", "127.0.0.25"
RUNS = 7


class Delayed(Resolver):
    """Adds ``delay`` seconds to every answer; with ``serial``, one query at a time."""

    def __init__(self, inner: Resolver, delay: float, serial: bool) -> None:
        self.inner, self.delay = inner, delay
        self.lock: asyncio.Lock | None = asyncio.Lock() if serial else None
        self.count = 0

    async def query(self, name: str, rdtype: str) -> DnsResult[Any]:
        if self.lock is None:
            return await self._one(name, rdtype)
        async with self.lock:
            return await self._one(name, rdtype)

    async def _one(self, name: str, rdtype: str) -> DnsResult[Any]:
        self.count += 1
        await asyncio.sleep(self.delay)
        return await self.inner.query(name, rdtype)


def world(server: NsdServer, rsa: Any, ed: Any) -> None:
    server.set_zone("test", "")
    server.set_zone(
        DOMAIN,
        "\n".join(
            [
                "@ MX 10 mail",
                f"mail A {IP}",
                f'@ TXT "v=spf1 ip4:{IP} -all"',
                f"mail._domainkey TXT {txt_rdata(dns_record_value(rsa))}",
                f"mail-ed._domainkey TXT {txt_rdata(dns_record_value(ed))}",
                f'_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc-reports@{DOMAIN}"',
            ]
        ),
    )
    server.set_zone("127.in-addr.arpa", f"25.0.0 PTR {HOST}.")
    server.set_zone("dnsbl.test", "")
    server.set_zone("dbl.test", "")


async def measure(
    nameserver: str, options: DoctorOptions, delay: float, serial: bool
) -> tuple[float, int, int]:
    walls: list[float] = []
    queries = checks = 0
    for _ in range(RUNS):
        resolver = Delayed(DnspythonResolver(nameserver, timeout=5), delay, serial)
        start = time.perf_counter()
        report = await run_checks(DOMAIN, options, resolver)
        walls.append(time.perf_counter() - start)
        assert all(c.status.value == "ok" for c in report.checks), report
        queries, checks = resolver.count, len(report.checks)
    return statistics.median(walls), queries, checks


async def main() -> None:
    rsa, ed = generate_key("rsa", 2048), generate_key("ed25519")
    with tempfile.TemporaryDirectory() as tmp, NsdServer() as server:
        keys = Path(tmp) / "mail.pem", Path(tmp) / "mail-ed.pem"
        keys[0].write_bytes(private_key_pem(rsa))
        keys[1].write_bytes(private_key_pem(ed))
        world(server, rsa, ed)
        options = DoctorOptions(
            hostname=HOST,
            ips=(IP,),
            expected_ipv4=(IP,),
            selectors=(
                SelectorSpec("mail", keys[0], DOMAIN),
                SelectorSpec("mail-ed", keys[1], DOMAIN),
            ),
            dnsbls=("dnsbl.test",),
            dbls=("dbl.test",),
            skip=frozenset({"ports"}),
        )
        print(
            "| DNS delay | checks | distinct queries | mailwright (concurrent) "
            "| one query at a time | speed-up |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for delay in (0.0, 0.02, 0.05):
            conc, queries, checks = await measure(server.nameserver, options, delay, False)
            seq, _, _ = await measure(server.nameserver, options, delay, True)
            print(
                f"| {delay * 1000:.0f} ms | {checks} | {queries} | {conc * 1000:.1f} ms "
                f"| {seq * 1000:.1f} ms | {seq / conc:.1f}× |",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
