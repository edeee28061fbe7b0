"""SPF rows of the doctor: one record, valid, within the lookup limits, authorizing us.

Evaluation is :func:`mailwright.spf.check_host`'s (RFC 7208 §4). The limits of
§4.6.4 (10 DNS-querying terms, 2 void lookups) bound one evaluation, which
stops at the first match; a publisher needs the worst case, which
:func:`mailwright.spf.lint.lint` computes over the whole include/redirect tree.
Its findings are sorted here into the doctor's stable rows.
"""

from __future__ import annotations

import asyncio

from ..dns import DnsResult
from ..setup.providers import find_provider, relay_host, unknown_relay_advice
from ..spf import MAX_DNS_TERMS, MAX_VOID_LOOKUPS, Result, SpfResult, check_host, is_spf_record
from ..spf.lint import LintFinding, LintNode, LintReport, Severity, lint
from .context import Context
from .host import dig
from .model import Finding, Status, combine, worst

_SYNTAX_IDS = {
    "syntax",
    "target-without-record",
    "loop",
    "bad-domain",
    "after-all",
    "redirect-ignored",
    "unknown-modifier",
    "record-too-long",
    "too-many-mx",
    "spf-rr-type",
}
_STATUS = {Severity.ERROR: Status.FAIL, Severity.WARNING: Status.WARN, Severity.INFO: Status.OK}


def spf_records(result: DnsResult[str]) -> list[str]:
    return [str(t) for t in result.records if is_spf_record(str(t))]


async def _top(ctx: Context) -> DnsResult[str]:
    return await ctx.resolver.txt(ctx.domain)


async def tree(ctx: Context) -> LintReport:
    """The SPF package's linter over the whole include/redirect tree, once per run."""
    return await ctx.once("spf-lint", lambda: lint(ctx.domain, ctx.resolver))


async def _parsed_tree(ctx: Context) -> LintReport | Finding:
    """The lint report when there is one top record and it parses; else why the row
    cannot be judged (see spf-record, spf-syntax)."""
    single = await _single(ctx)
    if isinstance(single, Finding):
        return single
    report = await tree(ctx)
    if report.tree.status == "syntax":
        return Finding.error("the record does not parse (see spf-syntax)", "fix spf-syntax first")
    return report


def _nodes(node: LintNode) -> list[LintNode]:
    return [node, *(n for child in node.children for n in _nodes(child))]


def includes(report: LintReport) -> set[str]:
    return {
        n.domain.lower()
        for n in _nodes(report.tree)
        if n.via is not None and n.via.lower().startswith(("include:", "+include:"))
    }


def _tree_lines(node: LintNode, depth: int = 0) -> list[str]:
    label = f"{node.via} → {node.domain}" if node.via else node.domain
    line = f"{'  ' * depth}{label}: {node.lookups} lookups" + (
        f" ({node.status})" if node.status != "ok" else ""
    )
    return [line, *(x for c in node.children for x in _tree_lines(c, depth + 1))]


def _from_findings(findings: list[LintFinding], when_clean: str) -> Finding:
    if not findings:
        return Finding.ok(when_clean)
    statuses = [_STATUS[f.severity] for f in findings]
    status = worst(statuses)
    fixes = [f.fix for f, st in zip(findings, statuses, strict=True) if st is status and f.fix]
    return Finding(status, "\n".join(f.message for f in findings), fixes[0] if fixes else "")


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
    report = await tree(ctx)
    found = [f for f in report.findings if f.id in _SYNTAX_IDS]
    return _from_findings(found, f"valid: {text}")


async def check_lookups(ctx: Context) -> Finding:
    report = await _parsed_tree(ctx)
    if isinstance(report, Finding):
        return report
    counted = f"{report.total_lookups} DNS-querying terms across the tree (limit {MAX_DNS_TERMS})"
    listing = "\n".join(_tree_lines(report.tree))
    if report.total_lookups > MAX_DNS_TERMS:
        return Finding.fail(
            f"{counted}\n{listing}",
            "receivers stop at 10 and return permerror (RFC 7208 §4.6.4): replace includes "
            "you do not need, or your own a/mx terms with ip4:/ip6:",
        )
    if report.dns_error:
        errors = [f.message for f in report.findings if f.id == "dns-error"]
        return Finding.error("\n".join([f"{counted}, at least", *errors]))
    return Finding.ok(f"{counted}\n{listing}")


async def check_void(ctx: Context) -> Finding:
    report = await _parsed_tree(ctx)
    if isinstance(report, Finding):
        return report
    counted = f"{report.void_lookups} void lookups (limit {MAX_VOID_LOOKUPS})"
    voids = [f.message for f in report.findings if f.id == "void-lookup"]
    if report.void_lookups > MAX_VOID_LOOKUPS:
        return Finding.fail(
            "\n".join([counted, *voids]),
            "remove terms naming domains that do not exist (RFC 7208 §4.6.4)",
        )
    return Finding.ok("\n".join([counted, *voids]))


async def sender_results(ctx: Context) -> list[SpfResult]:
    """check_host for every sending IP, as a receiver would see our mail (computed once)."""

    async def compute() -> list[SpfResult]:
        helo = await ctx.helo_name() or ctx.domain
        ips = await ctx.sending_ips()
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
                    for ip in ips
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
        included = includes(await tree(ctx))
        host = relay_host(o.relay_url)
        if provider is None:
            return Finding.warn(
                f"relay {host} is not a provider mailwright knows; includes: "
                f"{', '.join(sorted(included)) or 'none'}",
                unknown_relay_advice(o.relay_url),
            )
        terms = {t.lstrip("+").lower() for t in text.split()}
        if provider.spf_include in included or f"include:{provider.spf_include}" in terms:
            return Finding.ok(f"include:{provider.spf_include} authorizes {provider.name} ({host})")
        return Finding.fail(
            f"{text}\nno include:{provider.spf_include} for the relay {host}",
            f"add include:{provider.spf_include} before -all",
        )
    if not await ctx.sending_ips():
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
    report = await _parsed_tree(ctx)
    if isinstance(report, Finding):
        return report
    ids = {"pass-all": Status.FAIL, "neutral-all": Status.WARN, "no-all": Status.WARN}
    found = [f for f in report.findings if f.id in ids and f.domain in (None, report.domain)]
    found = found or [f for f in report.findings if f.id in ids]
    if found:
        f = found[0]
        fix = f.fix or "end the record with -all (or ~all while rolling out)"
        return Finding(ids[f.id], f"{text}\n{f.message}", fix)
    terms = text.split()
    last = next((t for t in reversed(terms) if t.lstrip("+-~?").lower() == "all"), None)
    if last is not None and last.startswith("~"):
        return Finding.ok(f"{last}: softfail, the cautious start; -all once reports are clean")
    if last is not None:
        return Finding.ok(f"{last}: mail from other servers fails SPF")
    return Finding.ok(f"{text}: the redirect's record decides")


async def check_ptr(ctx: Context) -> Finding:
    report = await _parsed_tree(ctx)
    if isinstance(report, Finding):
        return report
    found = [f for f in report.findings if f.id == "ptr"]
    if found:
        return Finding.warn(
            "\n".join(f.message for f in found),
            found[0].fix or "replace ptr with ip4:/ip6: ranges (RFC 7208 §5.5)",
        )
    return Finding.ok("no ptr mechanism")
