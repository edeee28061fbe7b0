"""SPF rows of the doctor: one record, valid, within the lookup limits, authorizing us.

Evaluation is :func:`mailwright.spf.check_host`'s (RFC 7208 §4). The limits of
§4.6.4 (10 DNS-querying terms, 2 void lookups) bound one evaluation, which
stops at the first match; a publisher needs the worst case, so the whole tree
of includes and redirects is walked here and every DNS-querying term counted,
whichever path a given IP would take.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..dns import DnsResult
from ..setup.providers import find_provider, relay_host, unknown_relay_advice
from ..spf import (
    MAX_DNS_TERMS,
    MAX_VOID_LOOKUPS,
    Qualifier,
    Record,
    Result,
    SpfResult,
    SpfSyntaxError,
    check_host,
    is_spf_record,
    parse_record,
)
from .context import Context
from .host import dig
from .model import Finding, combine

MAX_RECORDS = 40
"""Records fetched in one tree walk: enough for any sane tree, bounded for a hostile one."""


@dataclass
class SpfTree:
    """Everything found walking the includes and redirects of one SPF record."""

    lookups: int = 0
    void: int = 0
    records: dict[str, str] = field(default_factory=dict)
    """domain → its SPF record text."""
    parsed: dict[str, Record] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """DNS failures: the counts are then lower bounds."""
    ptr_in: list[str] = field(default_factory=list)
    includes: set[str] = field(default_factory=set)
    counted_terms: list[str] = field(default_factory=list)


def spf_records(result: DnsResult[str]) -> list[str]:
    return [str(t) for t in result.records if is_spf_record(str(t))]


async def _top(ctx: Context) -> DnsResult[str]:
    return await ctx.resolver.txt(ctx.domain)


async def walk(ctx: Context, domain: str) -> SpfTree:
    tree = SpfTree()
    seen: set[str] = set()

    async def visit(name: str, via: str) -> None:
        if name in seen or len(seen) >= MAX_RECORDS:
            if name in seen and via:
                tree.problems.append(f"{via} loops back to {name}")
            return
        seen.add(name)
        result = await ctx.resolver.txt(name)
        if result.is_error:
            tree.errors.append(dig(result))
            return
        texts = spf_records(result)
        if not texts:
            if via:
                tree.void += 1 if result.is_void else 0
                tree.problems.append(f"{via}: {name} has no SPF record (permerror, RFC 7208 §5.2)")
            return
        if len(texts) > 1:
            tree.problems.append(f"{name} has {len(texts)} SPF records (permerror, §4.5)")
        tree.records[name] = texts[0]
        try:
            record = parse_record(texts[0])
        except SpfSyntaxError as exc:
            tree.problems.append(f"{name}: {exc}")
            return
        tree.parsed[name] = record
        children: list[tuple[str, str]] = []
        voids: list[asyncio.Future[DnsResult[object]]] = []
        for mech in record.mechanisms:
            if not mech.queries_dns:
                continue
            tree.lookups += 1  # RFC 7208 §4.6.4: include, a, mx, ptr, exists (and redirect)
            tree.counted_terms.append(f"{name}: {mech.text}")
            spec = mech.domain_spec
            target = str(spec) if spec is not None and spec.is_constant else None
            if mech.name == "ptr":
                tree.ptr_in.append(name)
            elif mech.name == "include" and target:
                tree.includes.add(target.lower())
                children.append((target.lower(), f"include:{target} in {name}"))
            elif mech.name in ("a", "mx", "exists"):
                rdtype = {"a": "A", "mx": "MX", "exists": "A"}[mech.name]
                voids.append(asyncio.ensure_future(ctx.resolver.query(target or name, rdtype)))
        if record.redirect is not None and not record.has_all:
            tree.lookups += 1
            tree.counted_terms.append(f"{name}: {record.redirect.text}")
            if record.redirect.value.is_constant:
                target = str(record.redirect.value).lower()
                children.append((target, f"redirect={target} in {name}"))
        results = await asyncio.gather(*voids)
        tree.void += sum(1 for r in results if r.is_void)
        await asyncio.gather(*(visit(child, why) for child, why in children))

    await visit(domain.lower(), "")
    return tree


async def tree(ctx: Context) -> SpfTree:
    return await ctx.once("spf-tree", lambda: walk(ctx, ctx.domain))


def expected_record(ctx: Context) -> str:
    o = ctx.options
    provider = find_provider(o.relay_url) if o.relay_url else None
    if provider is not None:
        return f"v=spf1 include:{provider.spf_include} -all"
    ips = [f"ip6:{ip}" if ":" in ip else f"ip4:{ip}" for ip in o.ips]
    return "v=spf1 " + " ".join([*ips, "-all"]) if ips else "v=spf1 mx -all"


async def check_record(ctx: Context) -> Finding:
    """RFC 7208 §4.5: exactly one ``v=spf1`` record at the domain."""
    result = await _top(ctx)
    if result.is_error:
        return Finding.error(dig(result))
    records = spf_records(result)
    if not records:
        return Finding.fail(
            f"{dig(result)}\nno v=spf1 record",
            f'publish: {ctx.domain}. IN TXT "{expected_record(ctx)}"',
        )
    if len(records) > 1:
        return Finding.fail(
            f"{dig(result)}\n{len(records)} SPF records: receivers return permerror (§4.5)",
            "merge them into one record (one v=spf1 line with all the mechanisms)",
        )
    return Finding.ok(dig(result))


async def _single(ctx: Context) -> str | Finding:
    result = await _top(ctx)
    if result.is_error:
        return Finding.error(dig(result))
    records = spf_records(result)
    if len(records) != 1:
        return Finding.error("no single SPF record to check (see spf-record)", "fix spf-record")
    return records[0]


async def check_syntax(ctx: Context) -> Finding:
    text = await _single(ctx)
    if isinstance(text, Finding):
        return text
    try:
        parse_record(text)
    except SpfSyntaxError as exc:
        return Finding.fail(f"{text}\n{exc}", "fix the term named; receivers return permerror")
    t = await tree(ctx)
    nested = [p for p in t.problems if "no SPF record" not in p]
    if nested:
        return Finding.fail("\n".join(nested), "fix or remove the include named")
    missing = [p for p in t.problems if "no SPF record" in p]
    if missing:
        return Finding.fail("\n".join(missing), "remove the include of a domain without SPF")
    return Finding.ok(f"valid: {text}")


async def check_lookups(ctx: Context) -> Finding:
    text = await _single(ctx)
    if isinstance(text, Finding):
        return text
    t = await tree(ctx)
    listing = "\n".join(t.counted_terms)
    counted = f"{t.lookups} DNS-querying terms across the tree (limit {MAX_DNS_TERMS})"
    if t.lookups > MAX_DNS_TERMS:
        return Finding.fail(
            f"{counted}\n{listing}",
            "receivers stop at 10 and return permerror (RFC 7208 §4.6.4): replace includes "
            "you do not need, or your own a/mx terms with ip4:/ip6:",
        )
    if t.errors:
        return Finding.error(f"{counted}, at least\n" + "\n".join(t.errors))
    return Finding.ok(counted + (f"\n{listing}" if listing else ""))


async def check_void(ctx: Context) -> Finding:
    text = await _single(ctx)
    if isinstance(text, Finding):
        return text
    t = await tree(ctx)
    counted = f"{t.void} void lookups (limit {MAX_VOID_LOOKUPS})"
    if t.void > MAX_VOID_LOOKUPS:
        return Finding.fail(
            counted, "remove terms naming domains that do not exist (RFC 7208 §4.6.4)"
        )
    return Finding.ok(counted)


async def sender_results(ctx: Context) -> list[SpfResult]:
    """check_host for every sending IP, as a receiver would see our mail (computed once)."""

    async def compute() -> list[SpfResult]:
        helo = await ctx.helo_name() or ctx.domain
        return list(
            await asyncio.gather(
                *(
                    check_host(
                        ip,
                        ctx.domain,
                        f"postmaster@{ctx.domain}",
                        helo=helo,
                        resolver=ctx.resolver,
                    )
                    for ip in ctx.options.ips
                )
            )
        )

    return await ctx.once("spf-results", compute)


async def check_authorizes(ctx: Context) -> Finding:
    text = await _single(ctx)
    if isinstance(text, Finding):
        return text
    o = ctx.options
    if o.relay_url:
        provider = find_provider(o.relay_url)
        t = await tree(ctx)
        host = relay_host(o.relay_url)
        if provider is None:
            return Finding.warn(
                f"relay {host} is not a provider mailwright knows; includes: "
                f"{', '.join(sorted(t.includes)) or 'none'}",
                unknown_relay_advice(o.relay_url),
            )
        if provider.spf_include in t.includes:
            return Finding.ok(f"include:{provider.spf_include} authorizes {provider.name} ({host})")
        return Finding.fail(
            f"{text}\nno include:{provider.spf_include} for the relay {host}",
            f"add include:{provider.spf_include} before -all",
        )
    if not o.ips:
        return Finding.error("no sending IP known", "pass --ip IP or set ipv4/ipv6")
    parts: list[tuple[str, Finding]] = []
    for r in await sender_results(ctx):
        seen = f"check_host({r.ip}, {r.domain}) = {r.result}" + (
            f" by {r.mechanism}" if r.mechanism else ""
        )
        if r.problem:
            seen += f": {r.problem}"
        if r.result is Result.PASS:
            parts.append((r.ip, Finding.ok(seen)))
        elif r.result is Result.TEMPERROR:
            parts.append((r.ip, Finding.error(seen)))
        else:
            kind = "ip6" if ":" in r.ip else "ip4"
            parts.append((r.ip, Finding.fail(seen, f"add {kind}:{r.ip} to the SPF record")))
    return combine(parts)


async def check_all(ctx: Context) -> Finding:
    text = await _single(ctx)
    if isinstance(text, Finding):
        return text
    t = await tree(ctx)
    domain = ctx.domain
    record = t.parsed.get(domain)
    hops = 0
    while record is not None and not record.has_all and record.redirect is not None and hops < 10:
        domain = str(record.redirect.value).lower()
        record = t.parsed.get(domain)
        hops += 1
    if record is None:
        return Finding.error("the record deciding the default could not be read (see spf-syntax)")
    alls = [m for m in record.mechanisms if m.name == "all"]
    if not alls:
        return Finding.warn(
            f"{record.text}\nno 'all': unmatched senders get neutral",
            "end the record with -all (or ~all while rolling out)",
        )
    q = alls[0].qualifier
    where = f"{alls[0].text} in {domain}"
    if q is Qualifier.PASS:
        return Finding.fail(
            f"{where}: every server on the internet may send as {ctx.domain}",
            "replace +all with -all (never use +all)",
        )
    if q is Qualifier.NEUTRAL:
        return Finding.warn(f"{where}: unmatched senders get neutral", "use -all (or ~all)")
    if q is Qualifier.SOFTFAIL:
        return Finding.ok(f"{where}: softfail, the cautious start; -all once reports are clean")
    return Finding.ok(where)


async def check_ptr(ctx: Context) -> Finding:
    text = await _single(ctx)
    if isinstance(text, Finding):
        return text
    t = await tree(ctx)
    if t.ptr_in:
        return Finding.warn(
            f"ptr used in {', '.join(t.ptr_in)}: slow, unreliable, and ignored by some receivers",
            "replace ptr with ip4:/ip6: ranges (RFC 7208 §5.5: SHOULD NOT be used)",
        )
    return Finding.ok("no ptr mechanism")
