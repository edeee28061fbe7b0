"""DMARC rows of the doctor, over :func:`mailwright.dmarc.check_domain` (RFC 9989).

The DMARC package finds the record by the tree walk (§4.10), judges it and
verifies external report destinations (§4.7.1, RFC 9990); its findings (ids
``dmarc-...``) are sorted here into the doctor's five stable rows. The
alignment row simulates a message from this server: it is really signed with
the configured DKIM keys and verified against the published records, SPF is
evaluated for the sending IP, and DMARC is evaluated on both.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

from ..dkim import SigningKey, sign_message, verify_message
from ..dkim.verifier import DkimResult
from ..dmarc import DmarcReport, DmarcStatus, Severity, check_domain, evaluate
from ..dmarc import Finding as DmarcFinding
from ..dmarc.discovery import DiscoveryStatus, dmarc_name
from .context import Context
from .host import dig
from .model import Finding, Status, worst
from .spf import sender_results

_RECORD = {
    "dmarc-no-record",
    "dmarc-invalid-record",
    "dmarc-multiple-records",
    "dmarc-dns-error",
    "dmarc-invalid-domain",
    "dmarc-inherited",
    "dmarc-not-dmarc-text",
    "dmarc-leading-space",
    "dmarc-org-domain-unknown",
    "dmarc-org-domain-too-high",
    "dmarc-psd-y",
    "dmarc-syntax",
    "dmarc-unknown-tag",
    "dmarc-p-not-second",
}
_POLICY = {
    "dmarc-p-none",
    "dmarc-p-missing",
    "dmarc-policy-invalid",
    "dmarc-p-quarantine",
    "dmarc-testing",
    "dmarc-sp-weaker",
    "dmarc-np-weaker",
}
_RUA_PREFIXES = ("dmarc-no-rua", "dmarc-rua-", "dmarc-external-", "dmarc-too-many-uris",
                 "dmarc-ruf", "dmarc-fo-without-ruf")  # fmt: skip
_ERRORS = {"dmarc-dns-error", "dmarc-external-dns-error"}


def row_of(finding_id: str) -> str:
    """Which doctor row a DMARC finding belongs to."""
    if finding_id in _POLICY:
        return "policy"
    if finding_id.startswith(_RUA_PREFIXES):
        return "rua"
    if finding_id.startswith("dmarc-removed-") or finding_id == "dmarc-obsolete-size":
        return "removed"
    return "record"


def _status(finding: DmarcFinding) -> Status:
    if finding.id in _ERRORS:
        return Status.ERROR
    return {
        Severity.ERROR: Status.FAIL,
        Severity.WARNING: Status.WARN,
        Severity.INFO: Status.OK,
    }[finding.severity]


async def report(ctx: Context) -> DmarcReport:
    return await ctx.once("dmarc", lambda: check_domain(ctx.domain, ctx.resolver))


async def _row(ctx: Context, row: str, when_clean: str) -> Finding:
    result = await report(ctx)
    found = [f for f in result.findings if row_of(f.id) == row]
    if row != "record" and _no_record(result):
        return Finding.error("no usable DMARC record (see dmarc-record)", "fix dmarc-record first")
    lines: list[str] = []
    if row == "record":
        name = dmarc_name(result.discovery.record_domain or ctx.domain)
        lines.append(dig(await ctx.resolver.txt(name)))
    lines.extend(f.message for f in found)
    if not found:
        return Finding.ok("\n".join([*lines, when_clean]) if lines else when_clean)
    statuses = [_status(f) for f in found]
    status = worst(statuses)
    fixes = [f.fix for f, s in zip(found, statuses, strict=True) if s is status and f.fix]
    return Finding(status, "\n".join(lines), fixes[0] if fixes else "")


def _no_record(result: DmarcReport) -> bool:
    return (
        result.discovery.status is not DiscoveryStatus.FOUND
        or result.record is None
        or (not result.record.usable)
    )


async def check_record(ctx: Context) -> Finding:
    result = await report(ctx)
    if result.record is not None and not _no_record(result):
        where = result.discovery.record_name
        return await _row(ctx, "record", f"record found at {where}")
    return await _row(ctx, "record", "")


async def check_policy(ctx: Context) -> Finding:
    result = await report(ctx)
    policy = result.record.policy if result.record is not None else None
    return await _row(ctx, "policy", f"p={policy}")


async def check_rua(ctx: Context) -> Finding:
    result = await report(ctx)
    uris = ", ".join(u.uri for u in result.record.rua) if result.record is not None else ""
    return await _row(ctx, "rua", f"aggregate reports go to {uris}")


async def check_removed(ctx: Context) -> Finding:
    return await _row(ctx, "removed", "no pct, rf or ri (removed by RFC 9989)")


def test_message(domain: str) -> bytes:
    """A small message From our domain, as the server would send it."""
    now = datetime.now(UTC)
    return (
        f"From: postmaster@{domain}\r\n"
        f"To: check@example.invalid\r\n"
        f"Subject: mailwright check alignment simulation\r\n"
        f"Date: {format_datetime(now)}\r\n"
        f"Message-ID: {make_msgid(domain=domain)}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "This message is never sent: it shows that signing and DNS agree.\r\n"
    ).encode()


async def simulated_dkim(ctx: Context) -> tuple[list[DkimResult], list[str]]:
    """Sign a test message with every configured key and verify it (once per run: the
    alignment row and the bulk-sender rows share it)."""
    return await ctx.once("dkim-simulation", lambda: _simulate_dkim(ctx))


async def signing_keys(ctx: Context) -> tuple[list[SigningKey], list[str]]:
    """The configured private keys as signing keys, and notes on the unreadable ones."""
    notes: list[str] = []
    keys = []
    for spec in ctx.options.selectors:
        if spec.private_key is None:
            continue
        try:
            key = await ctx.private_key(spec.private_key)
            keys.append(SigningKey.from_key(spec.domain or ctx.domain, spec.selector, key))
        except (OSError, ValueError) as exc:
            notes.append(f"DKIM key {spec.private_key}: {exc}")
    return keys, notes


async def _simulate_dkim(ctx: Context) -> tuple[list[DkimResult], list[str]]:
    keys, notes = await signing_keys(ctx)
    if not keys:
        notes.append("no DKIM private key in the config: DKIM not simulated")
        return [], notes
    message = test_message(ctx.domain)
    signed = await asyncio.to_thread(sign_message, message, keys) + message
    return await verify_message(signed, ctx.resolver), notes


async def check_alignment(ctx: Context) -> Finding:
    """Sign and verify a message as this server would send it, evaluate SPF, then DMARC
    (once per run: the bulk-sender rows read it too)."""
    return await ctx.once("dmarc-alignment", lambda: _alignment(ctx))


async def _alignment(ctx: Context) -> Finding:
    # All three at once: the policy walk, the DKIM verification and SPF are independent.
    result, (dkim, notes), spf = await asyncio.gather(
        report(ctx), simulated_dkim(ctx), sender_results(ctx)
    )
    if _no_record(result):
        return Finding.error("no usable DMARC record (see dmarc-record)", "fix dmarc-record first")
    lines = list(notes)
    for d in dkim:
        lines.append(f"DKIM d={d.domain} s={d.selector}: {d.status} ({d.reason})")
    spf_evidence = None
    if spf:
        first = spf[0]
        spf_evidence = first
        lines.append(f"SPF {first.ip} for {first.sender}: {first.result}")
    elif ctx.options.relay_url:
        lines.append("SPF: the relay's envelope domain decides; DKIM must align")
    verdict = await evaluate(
        ctx.domain, spf_evidence, dkim, ctx.resolver, discovery=result.discovery
    )
    lines.append(
        f"DMARC: {verdict.result}"
        + (f" (aligned by {', '.join(verdict.aligned_by)})" if verdict.aligned_by else "")
    )
    if verdict.result is DmarcStatus.PASS:
        return Finding.ok("\n".join(lines))
    if verdict.result is DmarcStatus.TEMPERROR:
        return Finding.error("\n".join([*lines, verdict.reason]))
    return Finding.fail(
        "\n".join([*lines, verdict.reason] if verdict.reason else lines),
        "make DKIM verify (dkim-* rows) or SPF authorize the sending IP for the From domain",
    )
