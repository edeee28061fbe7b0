"""Issue 17 item 8: the ``mx`` row follows an alias target to this host (``mx-cname``
still fails), and port 25 closed is a failure when the MX points at this host."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mailwright.doctor import Status, run_checks
from mailwright.doctor.context import Context, SharedResolver
from mailwright.doctor.ports import port_check

from .world import DOMAIN, HOST, IP, Rec, options, records, resolver
from .world import without as drop

ALIAS: list[Rec] = [
    *drop(records(), DOMAIN, "MX"),
    (DOMAIN, "MX", (10, "mx.example.com")),
    ("mx.example.com", "CNAME", HOST),
]


async def test_mx_follows_a_cname_to_this_host(tmp_path: Path) -> None:
    report = await run_checks(DOMAIN, options(tmp_path), resolver(ALIAS))
    mx = report.get("mx")
    assert mx.status is Status.OK, mx
    assert f"alias of {HOST}" in mx.observed
    assert report.get("mx-cname").status is Status.FAIL


CLOSED = "127.0.0.77"  # nothing listens on port 25 there


async def _port25(tmp_path: Path, recs: list[Rec], **opts: object) -> tuple[Status, str]:
    base = dataclasses.replace(options(tmp_path), local_host=CLOSED, connect_timeout=2.0)
    ctx = Context(DOMAIN, dataclasses.replace(base, **opts), SharedResolver(resolver(recs)))
    finding = await port_check(25)(ctx)
    return finding.status, finding.observed


async def test_port_25_closed_fails_when_the_mx_is_this_host(tmp_path: Path) -> None:
    status, observed = await _port25(tmp_path, records())
    assert status is Status.FAIL
    assert "MX points at this host" in observed


async def test_port_25_closed_fails_when_the_mx_is_an_alias_of_this_host(tmp_path: Path) -> None:
    status, _ = await _port25(tmp_path, ALIAS)
    assert status is Status.FAIL


async def test_port_25_closed_fails_when_the_mx_has_our_address(tmp_path: Path) -> None:
    recs = [
        *drop(records(), DOMAIN, "MX"),
        (DOMAIN, "MX", (10, "in.example.com")),
        ("in.example.com", "A", IP),
    ]
    status, _ = await _port25(tmp_path, recs)
    assert status is Status.FAIL


async def test_port_25_closed_only_warns_when_the_mx_is_elsewhere(tmp_path: Path) -> None:
    recs = [
        *drop(records(), DOMAIN, "MX"),
        (DOMAIN, "MX", (10, "mx.other.example")),
        ("mx.other.example", "A", "198.51.100.25"),
    ]
    status, _ = await _port25(tmp_path, recs)
    assert status is Status.WARN
