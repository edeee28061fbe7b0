"""Run every check concurrently and collect one row per check id.

Each check is its own coroutine, wrapped so that an exception or a stall
becomes an ``error`` row for that id alone: one broken check never hides the
others. Shared lookups go through one :class:`SharedResolver`, so the run's
wall time is the longest chain of dependent lookups, not their sum.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..config import Config
from ..dns import Resolver
from ..dns.names import name_problem, normalize, parse_ip
from ..errors import UsageError
from . import blocklists, bulk, certificates, dkim, dmarc, host, message, ports, rdns, spf
from .context import Context, DoctorOptions, SharedResolver
from .model import CheckResult, Finding, Report

CheckFn = Callable[[Context], Awaitable[Finding]]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    group: str
    run: CheckFn


def plan_checks(ctx: Context) -> list[CheckSpec]:
    """The checks for this domain and options, in display order."""
    o = ctx.options
    specs = [
        CheckSpec("mx", "MX records exist and resolve", "host", host.check_mx),
        CheckSpec("mx-null", "No null MX (RFC 7505)", "host", host.check_mx_null),
        CheckSpec("mx-cname", "MX targets are not CNAMEs", "host", host.check_mx_cname),
        CheckSpec("host-a", "Hostname A matches the config", "host", host.check_host_a),
        CheckSpec("host-aaaa", "Hostname AAAA matches the config", "host", host.check_host_aaaa),
        CheckSpec("ptr", "Each sending IP has one PTR", "rdns", rdns.check_ptr),
        CheckSpec("fcrdns", "PTR resolves back (FCrDNS)", "rdns", rdns.check_fcrdns),
        CheckSpec("ptr-helo", "PTR equals the HELO name", "rdns", rdns.check_ptr_helo),
        CheckSpec("ptr-generic", "PTR is not a generic name", "rdns", rdns.check_ptr_generic),
        CheckSpec("spf-record", "Exactly one SPF record", "spf", spf.check_record),
        CheckSpec("spf-syntax", "SPF syntax", "spf", spf.check_syntax),
        CheckSpec("spf-lookups", "SPF DNS lookups ≤ 10", "spf", spf.check_lookups),
        CheckSpec("spf-void", "SPF void lookups ≤ 2", "spf", spf.check_void),
        CheckSpec("spf-authorizes", "SPF authorizes the senders", "spf", spf.check_authorizes),
        CheckSpec("spf-all", "SPF ends in -all or ~all", "spf", spf.check_all),
        CheckSpec("spf-ptr", "SPF does not use ptr", "spf", spf.check_ptr),
    ]
    if not o.selectors:
        specs.append(CheckSpec("dkim-record", "DKIM selector known", "dkim", dkim.no_selector))
    for sel in o.selectors:
        s = sel.selector
        specs.append(
            CheckSpec(f"dkim-record:{s}", f"DKIM record {s}", "dkim", dkim.record_check(sel))
        )
        if sel.private_key is not None:
            specs.append(
                CheckSpec(
                    f"dkim-key-match:{s}",
                    f"DKIM {s} matches the private key",
                    "dkim",
                    dkim.key_match_check(sel),
                )
            )
        specs.append(
            CheckSpec(f"dkim-key-size:{s}", f"DKIM {s} key size", "dkim", dkim.key_size_check(sel))
        )
        specs.append(
            CheckSpec(
                f"dkim-testing:{s}", f"DKIM {s} not in testing", "dkim", dkim.testing_check(sel)
            )
        )
    specs += [
        CheckSpec("dmarc-record", "DMARC record found", "dmarc", dmarc.check_record),
        CheckSpec("dmarc-policy", "DMARC policy enforces", "dmarc", dmarc.check_policy),
        CheckSpec("dmarc-rua", "DMARC reports reach you", "dmarc", dmarc.check_rua),
        CheckSpec("dmarc-removed-tags", "No tags RFC 9989 removed", "dmarc", dmarc.check_removed),
        CheckSpec("dmarc-alignment", "Our mail passes DMARC", "dmarc", dmarc.check_alignment),
    ]
    for zone in o.dnsbls:
        specs.append(
            CheckSpec(
                f"dnsbl:{zone}", f"IP not on {zone}", "blocklists", blocklists.dnsbl_check(zone)
            )
        )
    for zone in o.dbls:
        specs.append(
            CheckSpec(
                f"dbl:{zone}", f"Domain not on {zone}", "blocklists", blocklists.dbl_check(zone)
            )
        )
    for port in o.local_ports:
        specs.append(
            CheckSpec(f"port:{port}", f"Port {port} on this host", "ports", ports.port_check(port))
        )
    specs.append(CheckSpec("tls", "SMTP banner, STARTTLS, certificate", "ports", ports.check_tls))
    if o.acme_data_dir is not None:
        specs.append(CheckSpec("acme", "ACME certificate renews", "ports", certificates.check_acme))
    specs += [
        CheckSpec("bulk-spf-dkim", "Bulk: SPF and DKIM both pass", "bulk", bulk.check_spf_and_dkim),
        CheckSpec("bulk-dmarc", "Bulk: DMARC published, passes aligned", "bulk", bulk.check_dmarc),
        CheckSpec("bulk-fcrdns", "Bulk: forward-confirmed reverse DNS", "bulk", bulk.check_fcrdns),
        CheckSpec("bulk-dkim-key", "Bulk: DKIM RSA keys ≥ 1024 bits", "bulk", bulk.check_dkim_keys),
    ]
    if "ports" not in o.skip:  # the TLS row talks to the mail host like the ports rows
        specs.append(CheckSpec("bulk-tls", "Bulk: TLS on the mail host", "bulk", bulk.check_tls))
    if o.message is not None:
        specs += [
            CheckSpec("msg-format", "Message: RFC 5322 form", "message", message.check_format),
            CheckSpec(
                "msg-date-message-id",
                "Message: Date and Message-ID",
                "message",
                message.check_date_message_id,
            ),
            CheckSpec("msg-dkim", "Message: DKIM verifies", "message", message.check_dkim),
            CheckSpec("msg-alignment", "Message: DMARC passes", "message", message.check_alignment),
            CheckSpec(
                "msg-unsubscribe",
                "Message: one-click unsubscribe (bulk)",
                "message",
                message.check_unsubscribe,
            ),
            CheckSpec("msg-size", "Message: size", "message", message.check_size),
            CheckSpec(
                "msg-content", "Message: content filters score", "message", message.check_content
            ),
        ]
    return [s for s in specs if s.group not in o.skip]


def validate(domain: str, options: DoctorOptions) -> str:
    """Raise :class:`UsageError` for a domain or IP that cannot be checked at all."""
    problem = name_problem(domain)
    if problem is not None:
        raise UsageError(f"{domain!r} is not a domain: {problem}", "write e.g. example.com")
    for ip in options.ips:
        try:
            parse_ip(ip)
        except ValueError:
            raise UsageError(f"--ip {ip!r} is not an IP address", "write e.g. 192.0.2.10") from None
    return normalize(domain)


async def _guarded(spec: CheckSpec, ctx: Context) -> CheckResult:
    try:
        finding = await asyncio.wait_for(spec.run(ctx), ctx.options.check_timeout)
    except TimeoutError:
        finding = Finding.error(
            f"did not finish within {ctx.options.check_timeout:g} s", "run the check again"
        )
    except Exception as exc:  # one broken check must not hide the others
        finding = Finding.error(
            f"internal error in this check: {type(exc).__name__}: {exc}",
            "please report it; the other checks are unaffected",
        )
    return CheckResult(
        spec.id, finding.status, spec.title, finding.observed, finding.fix, spec.group
    )


async def run_checks(
    domain: str,
    options: DoctorOptions | Config,
    resolver: Resolver,
    *,
    on_result: Callable[[CheckResult], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> Report:
    """Check ``domain``: every check at once; results in display order.

    ``options`` may be a :class:`~mailwright.config.Config` (its hostname, IPs, keys,
    relay and blocklists) or :class:`DoctorOptions` for full control.

    ``on_plan(n)`` is told how many checks will run and ``on_result`` is called
    as each finishes (the CLI's progress display).
    """
    if isinstance(options, Config):
        options = DoctorOptions.from_config(options, domain)
    name = validate(domain, options)
    shared = SharedResolver(resolver)
    ctx = Context(name, options, shared)
    specs = plan_checks(ctx)
    if on_plan is not None:
        on_plan(len(specs))
    start = time.perf_counter()

    async def one(spec: CheckSpec) -> CheckResult:
        result = await _guarded(spec, ctx)
        if on_result is not None:
            on_result(result)
        return result

    results = await asyncio.gather(*(one(s) for s in specs))
    return Report(
        domain=name,
        checks=tuple(results),
        elapsed=time.perf_counter() - start,
        dns_queries=shared.queries,
        dns_time=shared.busy,
        dns_answered=shared.answered,
    )
