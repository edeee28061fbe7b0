"""Reverse DNS of the sending addresses: what receivers check before anything else.

Receivers look up the PTR of the connecting address and resolve the name back
("forward-confirmed reverse DNS", FCrDNS; RFC 8601 §3 calls it iprev); many
refuse or score mail from addresses without it, from names that look like a
provider's generic pool, and from a PTR unrelated to the HELO name (RFC 5321
§4.1.4 asks the HELO name to be the client's primary host name).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re

from ..dns.names import reverse_name
from .context import Context
from .host import dig
from .model import Finding, combine

_GENERIC_WORDS = re.compile(
    r"(?:^|[.\-_\d])(dynamic|dyn|dynip|dsl|adsl|vdsl|xdsl|pool|cable|dhcp|dial|dialup|ppp|"
    r"pppoe|broadband|dip|customer|cust|clients|residential|unassigned|static|ec2|compute)"
    r"(?=$|[.\-_\d])",
)
"""Words providers put in automatic PTR names of end-user and cloud address space."""


def generic_reason(name: str, ip: str) -> str | None:
    """Why ``name`` looks like a provider's automatic PTR for ``ip``, or None."""
    first = name.split(".")[0]
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        octets = str(addr).split(".")
        for sep in ("-", ".", "_", ""):
            for order in (octets, octets[::-1]):
                if sep.join(order) in name:
                    return "contains the IP address"
        if f"{int(addr):08x}" in name or f"{int(addr)}" in name:
            return "contains the IP address"
    else:
        compact = addr.exploded.replace(":", "")
        if (
            compact in name.replace("-", "").replace(".", "")
            or addr.compressed.replace(":", "-") in name
        ):
            return "contains the IP address"
    if len(re.findall(r"\d", first)) >= 6:
        return "first label is mostly digits"
    match = _GENERIC_WORDS.search(name)
    if match:
        return f"has the generic word {match.group(1)!r}"
    return None


def _ptr_fix(ip: str, host: str | None) -> str:
    return f"ask your IP provider to set the PTR of {ip} to {host or 'your mail hostname'}"


async def _ips(ctx: Context) -> tuple[str, ...] | Finding:
    """The sending IPs, or the row to show when there are none."""
    ips = await ctx.sending_ips()
    if ips:
        return ips
    if ctx.options.relay_url:
        return Finding.ok("mail leaves through the relay; its addresses' PTR is the provider's")
    return Finding.error("no sending IP known", "pass --ip IP or set ipv4/ipv6 in the config")


async def check_ptr(ctx: Context) -> Finding:
    """Each sending IP has exactly one PTR record."""
    ips = await _ips(ctx)
    if isinstance(ips, Finding):
        return ips
    host = await ctx.helo_name()
    results = await asyncio.gather(*(ctx.resolver.reverse(ip) for ip in ips))
    parts: list[tuple[str, Finding]] = []
    for ip, result in zip(ips, results, strict=True):
        if result.is_error:
            parts.append((ip, Finding.error(dig(result))))
        elif not result.ok:
            parts.append(
                (ip, Finding.fail(f"no PTR for {ip} ({result.outcome})", _ptr_fix(ip, host)))
            )
        elif len(result.records) > 1:
            parts.append(
                (
                    ip,
                    Finding.warn(
                        dig(result),
                        "keep one PTR per address: receivers pick one at random to confirm",
                    ),
                )
            )
        else:
            parts.append((ip, Finding.ok(dig(result))))
    return combine(parts)


async def _ptr_names(ctx: Context, ip: str) -> tuple[list[str], Finding | None]:
    result = await ctx.resolver.reverse(ip)
    if result.is_error:
        return [], Finding.error(dig(result))
    if not result.ok:
        return [], Finding.error(f"no PTR for {ip} to check (see ptr)", "fix ptr first")
    return [str(r) for r in result.records], None


async def _fcrdns_one(ctx: Context, ip: str) -> Finding:
    names, problem = await _ptr_names(ctx, ip)
    if problem is not None:
        return problem
    rdtype = "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"
    results = await asyncio.gather(*(ctx.resolver.query(n, rdtype) for n in names))
    target = ipaddress.ip_address(ip)
    lines: list[str] = []
    for _name, result in zip(names, results, strict=True):
        lines.append(dig(result))
        if result.ok and any(ipaddress.ip_address(a) == target for a in result.records):
            return Finding.ok("\n".join(lines))
    if any(r.is_error for r in results):
        return Finding.error("\n".join(lines))
    return Finding.fail(
        "\n".join([*lines, f"{names[0]} does not resolve back to {ip}"]),
        f"publish: {names[0]}. IN {rdtype} {ip} (or change the PTR to a name that has it)",
    )


async def check_fcrdns(ctx: Context) -> Finding:
    """The PTR name resolves back to the same address (forward-confirmed reverse DNS)."""
    ips = await _ips(ctx)
    if isinstance(ips, Finding):
        return ips
    parts = await asyncio.gather(*(_fcrdns_one(ctx, ip) for ip in ips))
    return combine(list(zip(ips, parts, strict=True)))


async def _helo_one(ctx: Context, ip: str, host: str | None) -> Finding:
    names, problem = await _ptr_names(ctx, ip)
    if problem is not None:
        return problem
    if host is None:
        return Finding.error("no HELO hostname known", "pass --config with hostname set")
    if host in names:
        return Finding.ok(f"PTR {names[0]} = HELO {host}")
    return Finding.warn(
        f"PTR of {ip} is {', '.join(names)}, HELO name is {host}",
        f"ask your IP provider to set the PTR of {ip} to {host}, "
        f'or set hostname = "{names[0]}" in the config',
    )


async def check_ptr_helo(ctx: Context) -> Finding:
    """The PTR name equals the name the server gives in HELO/EHLO."""
    ips = await _ips(ctx)
    if isinstance(ips, Finding):
        return ips
    host = await ctx.helo_name()
    parts = await asyncio.gather(*(_helo_one(ctx, ip, host) for ip in ips))
    return combine(list(zip(ips, parts, strict=True)))


async def check_ptr_generic(ctx: Context) -> Finding:
    """Names like ``192-0-2-10.dsl.example.net`` mark end-user space on many blocklists."""
    ips = await _ips(ctx)
    if isinstance(ips, Finding):
        return ips
    host = await ctx.helo_name()
    parts: list[tuple[str, Finding]] = []
    results = await asyncio.gather(*(ctx.resolver.reverse(ip) for ip in ips))
    for ip, result in zip(ips, results, strict=True):
        if result.is_error:
            parts.append((ip, Finding.error(dig(result))))
            continue
        if not result.ok:
            parts.append(
                (ip, Finding.error(f"no PTR at {reverse_name(ip)} (see ptr)", "fix ptr first"))
            )
            continue
        reasons = [(n, generic_reason(str(n), ip)) for n in result.records]
        flagged = [(n, r) for n, r in reasons if r]
        if flagged:
            name, reason = flagged[0]
            parts.append(
                (
                    ip,
                    Finding.warn(
                        f"{name} looks generic: {reason}",
                        _ptr_fix(ip, host) + " (a name of your own, not the provider's default)",
                    ),
                )
            )
        else:
            parts.append((ip, Finding.ok(f"{', '.join(map(str, result.records))}: not generic")))
    return combine(parts)
