"""Host and MX checks: where mail for the domain goes, and the mail host's addresses.

RFC 5321 §5.1: senders look up MX, then each target's A/AAAA. RFC 2181 §10.3:
an MX target must be the canonical name, not an alias. RFC 7505: a null MX
("0 .") says the domain accepts no mail, and must be the only MX.
"""

from __future__ import annotations

import asyncio

from ..dns import DnsResult, MXRecord, Outcome
from ..dns.names import normalize
from .context import Context
from .model import Finding


def dig(result: DnsResult[object]) -> str:
    """The answer as dig shows it, or the outcome when there is none."""
    if result.text:
        return "\n".join(result.text)
    detail = f" ({result.error})" if result.error else ""
    return f"{result.name} {result.rdtype}: {result.outcome}{detail}"


def mx_fix(ctx: Context) -> str:
    host = ctx.options.hostname or f"mail.{ctx.domain}"
    return f"publish: {ctx.domain}. IN MX 10 {host}."


async def _targets(ctx: Context) -> tuple[DnsResult[MXRecord], list[str]]:
    mx = await ctx.mx()
    targets = sorted({r.exchange for r in mx.records if r.exchange})
    return mx, targets


async def check_mx(ctx: Context) -> Finding:
    """MX present and every target resolves to an address (RFC 5321 §5.1)."""
    mx, targets = await _targets(ctx)
    if mx.is_error:
        return Finding.error(dig(mx))
    if mx.outcome is Outcome.NXDOMAIN:
        return Finding.fail(
            f"{ctx.domain} does not exist (NXDOMAIN)",
            "check the spelling, or register the domain and publish its zone",
        )
    if not mx.ok:
        return Finding.fail(f"{ctx.domain} has no MX record", mx_fix(ctx))
    if not targets:  # null MX only: mx-null says what that means
        return Finding.warn(dig(mx), "remove the null MX if this domain receives mail")
    lookups = await asyncio.gather(*(ctx.resolver.addresses(t) for t in targets))
    lines = [dig(mx)]
    missing: list[str] = []
    errors: list[str] = []
    # A target that is an alias (mx-cname fails for it) still reaches its canonical host:
    # the row follows the chain to say where mail goes.
    reached = set(targets)
    for target, (a, aaaa) in zip(targets, lookups, strict=True):
        for result in (a, aaaa):
            if result.cnames:
                reached.add(normalize(result.cnames[-1]))
                lines.append(f"{target} is an alias of {result.cnames[-1]} (see mx-cname)")
                break
        for result in (a, aaaa):
            if result.ok:
                lines.extend(result.text)
        if not a.ok and not aaaa.ok:
            (errors if a.is_error or aaaa.is_error else missing).append(target)
    if missing:
        return Finding.fail(
            "\n".join([*lines, f"no A/AAAA for {', '.join(missing)}"]),
            f"publish an A record for {missing[0]} (or point the MX at a host that has one)",
        )
    if errors:
        return Finding.error("\n".join([*lines, f"address lookup failed: {', '.join(errors)}"]))
    own = ctx.options.hostname
    if own and normalize(own) not in reached:
        return Finding.warn(
            "\n".join([*lines, f"no MX points at this server ({own})"]),
            f"if this server receives {ctx.domain}'s mail: {mx_fix(ctx)}",
        )
    return Finding.ok("\n".join(lines))


async def check_mx_null(ctx: Context) -> Finding:
    """RFC 7505 §3: null MX is "0 ." and nothing else."""
    mx = await ctx.mx()
    if mx.is_error:
        return Finding.error(dig(mx))
    null = [r for r in mx.records if r.is_null]
    if not null:
        return Finding.ok("no null MX")
    if len(mx.records) > len(null):
        return Finding.fail(
            dig(mx),
            "a null MX must be the only MX (RFC 7505 §3): remove the '0 .' record",
        )
    if any(r.preference != 0 for r in null):
        return Finding.fail(dig(mx), "a null MX is exactly '0 .' (RFC 7505 §3)")
    return Finding.warn(
        f"{dig(mx)}\nnull MX: the domain accepts no mail (RFC 7505), so bounces, replies "
        "and DMARC reports to it are lost",
        mx_fix(ctx) + " (replacing the null MX)",
    )


async def check_mx_cname(ctx: Context) -> Finding:
    """RFC 2181 §10.3: an MX target must not be an alias."""
    mx, targets = await _targets(ctx)
    if mx.is_error:
        return Finding.error(dig(mx))
    if not targets:
        return Finding.ok("no MX target to check")
    lookups = await asyncio.gather(*(ctx.resolver.a(t) for t in targets))
    aliased = [(t, r) for t, r in zip(targets, lookups, strict=True) if r.cnames]
    if aliased:
        target, result = aliased[0]
        return Finding.fail(
            dig(result),
            f"point the MX at {result.cnames[-1]} (the canonical name) or replace the CNAME "
            f"at {target} with A/AAAA records (RFC 2181 §10.3)",
        )
    return Finding.ok(f"no MX target is a CNAME: {', '.join(targets)}")


async def _host_addresses(ctx: Context, rdtype: str) -> Finding:
    host = await ctx.helo_name()
    if host is None:
        return Finding.error("no hostname: pass --config or publish an MX", "")
    expected = ctx.options.expected_ipv4 if rdtype == "A" else ctx.options.expected_ipv6
    result = await ctx.resolver.query(host, rdtype)
    if result.is_error:
        return Finding.error(dig(result))
    found = {str(r) for r in result.records}
    if not expected:
        if rdtype == "AAAA" and found:
            return Finding.warn(
                dig(result),
                f"IPv6 senders and MX clients use {host}'s AAAA: add it to ipv6 in the config, "
                "or remove the AAAA record",
            )
        if not found:
            if rdtype == "A" and not ctx.options.expected_ipv6:
                return Finding.fail(f"{host} has no A record", f"publish: {host}. IN A <your IP>")
            return Finding.ok(f"{host} has no {rdtype} record (none configured)")
        return Finding.ok(dig(result))
    missing = [ip for ip in expected if ip not in found]
    extra = sorted(found - set(expected))
    if missing:
        lines = [dig(result), f"configured but not published: {', '.join(missing)}"]
        return Finding.fail("\n".join(lines), f"publish: {host}. IN {rdtype} {missing[0]}")
    if extra:
        return Finding.warn(
            f"{dig(result)}\npublished but not configured: {', '.join(extra)}",
            f"remove {', '.join(extra)} from {host}, or add it to the config",
        )
    return Finding.ok(dig(result))


async def check_host_a(ctx: Context) -> Finding:
    return await _host_addresses(ctx, "A")


async def check_host_aaaa(ctx: Context) -> Finding:
    return await _host_addresses(ctx, "AAAA")
