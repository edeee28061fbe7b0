"""The bulk-sender rules the big receivers enforce: Gmail and Yahoo since February 2024,
Microsoft (Outlook.com) since May 2025, for domains sending 5,000+ messages a day.

Their published requirements: SPF *and* DKIM pass (a small sender needs one of them),
DMARC published (``p=none`` is enough) and passing aligned with the From domain, forward-
confirmed reverse DNS of the sending IPs, TLS, DKIM keys of at least 1024 bits (Gmail),
one-click unsubscribe (RFC 8058) in marketing mail (that one is a property of the
message: ``check --message``).  Each row reads the result of the checks that already
ran for the other rows (shared per run), so the section costs no extra lookup.
"""

from __future__ import annotations

from ..dkim import DkimStatus
from . import dkim, dmarc, ports, rdns
from .context import Context
from .model import Finding, Status, combine
from .spf import sender_results

RULES = "Gmail/Yahoo bulk-sender rules (2024), Outlook.com (2025)"


async def check_spf_and_dkim(ctx: Context) -> Finding:
    """SPF passes for every sending IP and DKIM verifies for every key: both, not either."""
    spf_results = await sender_results(ctx)
    dkim_results, notes = await dmarc.simulated_dkim(ctx)
    lines = list(notes)
    problems: list[str] = []
    for r in spf_results:
        lines.append(f"SPF {r.ip}: {r.result}")
        if str(r.result) != "pass":
            problems.append(f"SPF does not pass for {r.ip}")
    if not spf_results and ctx.options.relay_url:
        lines.append("SPF: decided by the relay's envelope domain (see spf-authorizes)")
    for d in dkim_results:
        lines.append(f"DKIM s={d.selector}: {d.status}")
        if d.status is not DkimStatus.PASS:
            problems.append(f"DKIM s={d.selector} does not verify")
    temporary = any(str(r.result) == "temperror" for r in spf_results) or any(
        d.status is DkimStatus.TEMPERROR for d in dkim_results
    )
    fix = f"{RULES} require SPF and DKIM both: fix the spf-authorizes and dkim-* rows"
    if temporary:  # a DNS failure is no verdict
        return Finding.error("\n".join([*lines, *problems]))
    if problems:
        return Finding.fail("\n".join([*lines, *problems]), fix)
    if not spf_results and not ctx.options.relay_url:
        return Finding.error(
            "\n".join([*lines, "no sending IP known: SPF not evaluated"]),
            "pass --ip or --config (or publish the hostname's A record)",
        )
    if not dkim_results:
        return Finding.warn("\n".join(lines), fix + " (give --config with the [[dkim]] keys)")
    return Finding.ok("\n".join(lines))


async def check_dmarc(ctx: Context) -> Finding:
    """A DMARC record (any policy, p=none included) and a message of ours passing it."""
    record_row = await dmarc.check_record(ctx)
    if record_row.status is Status.ERROR:
        return Finding.error(record_row.observed)
    report = await dmarc.report(ctx)
    if report.record is None or not report.record.usable:
        return Finding.fail(
            "no usable DMARC record",
            f"{RULES} require one: publish _dmarc.{ctx.domain} TXT "
            f'"v=DMARC1; p=none; rua=mailto:dmarc-reports@{ctx.domain}" (mailwright records)',
        )
    alignment = await dmarc.check_alignment(ctx)
    lines = [f"p={report.record.policy}", alignment.observed.splitlines()[-1]]
    if alignment.status is Status.OK:
        return Finding.ok("\n".join(lines))
    if alignment.status is Status.ERROR:
        return Finding.error("\n".join(lines))
    return Finding.fail(
        "\n".join(lines),
        "DMARC must pass, aligned with the From domain (relaxed or strict): see dmarc-alignment",
    )


async def check_fcrdns(ctx: Context) -> Finding:
    ptr = await rdns.check_ptr(ctx)
    if ptr.status is Status.FAIL:  # no PTR: FCrDNS cannot hold
        return Finding.fail(ptr.observed, ptr.fix)
    finding = await rdns.check_fcrdns(ctx)
    if finding.status is Status.WARN:  # the bulk rules make it a requirement
        return Finding.fail(finding.observed, finding.fix)
    return finding


async def check_tls(ctx: Context) -> Finding:
    finding = await ports.check_tls(ctx)
    first = finding.observed.splitlines()[-1] if finding.observed else ""
    if finding.status is Status.OK:
        return Finding.ok(first)
    if finding.status is Status.WARN:
        return Finding.ok(f"{first} (see tls)")  # a warning of the tls row is not about TLS
    return Finding(finding.status, f"{first} (see tls)", finding.fix)


async def check_dkim_keys(ctx: Context) -> Finding:
    """RSA keys of at least 1024 bits (Gmail), 2048 recommended (RFC 8301 §3.2)."""
    if not ctx.options.selectors:
        return Finding.warn(
            "no DKIM selector known: key sizes not checked",
            f"{RULES} require DKIM: pass --selector, or set up keys with mailwright init",
        )
    parts: list[tuple[str, Finding]] = []
    for spec in ctx.options.selectors:
        parts.append((spec.selector, await dkim.key_size_check(spec)(ctx)))
    return combine(parts)
