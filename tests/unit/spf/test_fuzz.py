"""Untrusted records and senders never raise: random text gives a result, not a traceback."""

from __future__ import annotations

import random

from mailwright.dns import MemoryResolver
from mailwright.spf import SpfSyntaxError, check_mail_from, parse_record
from mailwright.spf.lint import lint

PIECES = [
    "a",
    "mx",
    "ptr",
    "ip4",
    "ip6",
    "all",
    "include",
    "exists",
    "redirect",
    "exp",
    "=",
    ":",
    "/",
    "//",
    "+",
    "-",
    "~",
    "?",
    "%",
    "%{",
    "}",
    "%{d}",
    "%{ir}",
    "%{l2r-}",
    "%{p}",
    "%%",
    "%_",
    "%-",
    ".",
    "example.com",
    "x.example.net",
    "192.0.2.1",
    "2001:db8::1",
    "24",
    "0",
    "129",
    " ",
    "  ",
    "\t",
    "\x00",
    "é",
    "\ufeff",
    "v=spf1",
    "..",
    "-all",
    "a" * 70,
]


def random_record(rng: random.Random) -> str:
    return "v=spf1 " + "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 25)))


def test_parser_raises_only_syntax_errors() -> None:
    rng = random.Random(7208)
    parsed = errors = 0
    for _ in range(5000):
        text = random_record(rng)
        try:
            parse_record(text)
            parsed += 1
        except SpfSyntaxError as exc:
            errors += 1
            assert exc.offset is None or 0 <= exc.offset < len(text)
    assert parsed > 100 and errors > 100  # the generator exercises both paths


async def test_evaluator_and_linter_always_return_a_result() -> None:
    rng = random.Random(4408)
    results: set[str] = set()
    for i in range(300):
        r = MemoryResolver()
        r.add("example.com", "TXT", random_record(rng))
        r.add("x.example.net", "TXT", random_record(rng))
        r.add("example.com", "A", "192.0.2.1").add("example.com", "MX", (10, "x.example.net"))
        r.add("x.example.net", "A", "not an address")
        sender = rng.choice(["a@example.com", "@example.com", "é@example.com", "%{x}@example.com"])
        ip = rng.choice(["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"])
        res = await check_mail_from(ip, sender, rng.choice(["h", "", "mail.example.com"]), r)
        results.add(str(res.result))
        if i % 10 == 0:
            report = await lint("example.com", r)
            assert isinstance(report.permerror, bool)
    assert {"permerror", "pass"} <= results
