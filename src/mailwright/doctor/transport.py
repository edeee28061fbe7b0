"""Transport security of the domain: MTA-STS, TLS-RPT, TLSA and every MX's STARTTLS,
and the certificate of our submission ports.

* ``mta-sts``: the ``_mta-sts`` record (RFC 8461 §3.1), the policy fetched as a sender
  would (§3.3: verified HTTPS, no redirects, 64 KB), its syntax, that every MX host
  matches it (§4.1) and a ``max_age`` of at least a day (§3.2 expects weeks);
* ``tls-rpt``: the ``_smtp._tls`` record (RFC 8460 §3);
* ``tlsa``: ``_25._tcp.MX`` records (RFC 7672) must be DNSSEC-secure and match the
  certificate the MX presents — a stale TLSA record makes DANE senders defer all mail;
* ``starttls:MX``: per MX host, STARTTLS with TLS ≥ 1.2 and a certificate valid for the
  MX name that does not expire within two weeks;
* ``cert:465`` / ``cert:587``: the certificate of the submission ports on this host.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import dane, mtasts, tlsrpt
from ..delivery.policies import PolicyFetchError, fetch_policy, https_context
from .context import Context
from .model import Finding, Status, combine
from .ports import _reply, describe_certificate

GROUP = "tls"
"""mta-sts, tls-rpt, tlsa; the connecting checks (starttls:MX, cert:PORT) are "ports"."""
MIN_MAX_AGE = 86_400
Check = Callable[[Context], Awaitable[Finding]]


async def prepare(ctx: Context) -> None:
    """Look up the MX hosts before planning (one ``starttls:HOST`` check per host)."""
    if "ports" in ctx.options.skip or not ctx.options.transport:
        return
    await ctx.once("transport-mx", lambda: _mx_hosts(ctx))


async def _mx_hosts(ctx: Context) -> list[str]:
    mx = await ctx.mx()
    return [r.exchange for r in sorted(mx.records, key=lambda r: r.preference) if r.exchange]


def checks(ctx: Context) -> list[tuple[str, str, str, Check]]:
    """``(id, title, group, check)`` for the runner, in display order."""
    if not ctx.options.transport:
        return []
    found: list[tuple[str, str, str, Check]] = [
        ("mta-sts", "MTA-STS policy published and valid", GROUP, check_mta_sts),
        ("tls-rpt", "TLS reporting address published", GROUP, check_tls_rpt),
        ("tlsa", "TLSA records secure and matching", GROUP, check_tlsa),
    ]
    task = ctx.extra.get("transport-mx")
    hosts: list[str] = task.result() if task is not None and task.done() else []
    for host in hosts:
        found.append((f"starttls:{host}", f"STARTTLS on MX {host}", "ports", starttls_check(host)))
    for port, mode in ctx.options.submission_ports:
        found.append(
            (f"cert:{port}", f"Certificate on port {port}", "ports", cert_check(port, mode))
        )
    return found


# -- MTA-STS and TLS-RPT ------------------------------------------------------------


async def check_mta_sts(ctx: Context) -> Finding:
    txt = await ctx.resolver.txt(mtasts.record_name(ctx.domain))
    if txt.is_error:
        return Finding.error(f"_mta-sts lookup failed: {txt.error}")
    try:
        record = mtasts.select_record(txt.records if txt.ok else ())
    except mtasts.MtaStsError as exc:
        if not txt.ok or not any(r.startswith(mtasts.RECORD_PREFIX) for r in txt.records):
            return Finding.warn(
                f"no _mta-sts.{ctx.domain} record: senders may deliver without verified TLS",
                'set [mta_sts] mode = "testing" and publish what mailwright records prints',
            )
        return Finding.fail(f"_mta-sts record: {exc}", "publish exactly one v=STSv1; id=... record")
    try:
        policy = await fetch_policy(
            ctx.domain,
            ctx.resolver,
            https_context(ctx.options.tls_ca_file),
            port=ctx.options.mta_sts_port,
            timeout=ctx.options.connect_timeout * 2,
        )
    except PolicyFetchError as exc:
        return Finding.fail(
            f"record id={record.id}, but the policy: {exc}",
            f"serve the policy at https://{mtasts.policy_host(ctx.domain)}"
            f"{mtasts.WELL_KNOWN_PATH} with a certificate for that name ([mta_sts] mode)",
        )
    lines = [f"id={record.id} mode={policy.mode} max_age={policy.max_age} mx={','.join(policy.mx)}"]
    if policy.mode == "none":
        return Finding.warn(lines[0], 'mode "none" switches MTA-STS off; use testing or enforce')
    hosts = await ctx.once("transport-mx", lambda: _mx_hosts(ctx))
    uncovered = [h for h in hosts if not policy.allows_mx(h)]
    if uncovered:
        return Finding.fail(
            f"{lines[0]}\nMX not in the policy: {', '.join(uncovered)}",
            "add them as mx: lines ([mta_sts] mx), or senders in enforce mode will not deliver",
        )
    if policy.max_age < MIN_MAX_AGE:
        return Finding.warn(
            f"{lines[0]}: max_age under a day",
            "use weeks (RFC 8461 §3.2), e.g. [mta_sts] max_age = 604800",
        )
    if policy.mode == "testing":
        return Finding.warn(
            lines[0], 'testing only reports; once TLS reports are clean, set mode = "enforce"'
        )
    return Finding.ok(lines[0])


async def check_tls_rpt(ctx: Context) -> Finding:
    txt = await ctx.resolver.txt(tlsrpt.record_name(ctx.domain))
    if txt.is_error:
        return Finding.error(f"_smtp._tls lookup failed: {txt.error}")
    if not txt.ok or not any(r.startswith(tlsrpt.RECORD_PREFIX) for r in txt.records):
        return Finding.warn(
            f"no _smtp._tls.{ctx.domain} record: you will not hear about TLS failures",
            "publish the TLS-RPT record that mailwright records prints",
        )
    try:
        record = tlsrpt.select_record(txt.records)
    except tlsrpt.TlsRptError as exc:
        return Finding.fail(f"_smtp._tls record: {exc}", "publish v=TLSRPTv1; rua=mailto:...")
    return Finding.ok("rua=" + ",".join(record.rua))


# -- TLSA and STARTTLS on the MX hosts --------------------------------------------------


@dataclass
class Probe:
    """What one STARTTLS conversation showed."""

    error: str | None = None
    starttls: bool = False
    version: str = ""
    chain: list[bytes] = field(default_factory=list)
    verify_error: str | None = None


async def _mx_address(ctx: Context, host: str) -> str | None:
    if ctx.options.smtp_address is not None:
        return ctx.options.smtp_address
    a, aaaa = await ctx.resolver.addresses(host)
    found = [str(r) for r in (*a.records, *aaaa.records)]
    return found[0] if found else None


async def _probe(
    ctx: Context, host: str, address: str, port: int, *, verify: bool, implicit: bool = False
) -> Probe:
    """One connection: STARTTLS (or implicit TLS), TLS ≥ 1.2 (RFC 8996), certificate
    verified for ``host`` when ``verify``."""
    context = ssl.create_default_context(
        cafile=str(ctx.options.tls_ca_file) if ctx.options.tls_ca_file else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        return await asyncio.wait_for(
            _conversation(host, address, port, context, implicit),
            ctx.options.connect_timeout * 3,
        )
    except TimeoutError:
        return Probe(f"{host} ({address}:{port}): no answer in time")


async def _conversation(
    host: str, address: str, port: int, context: ssl.SSLContext, implicit: bool
) -> Probe:
    try:
        reader, writer = await asyncio.open_connection(
            address,
            port,
            ssl=context if implicit else None,
            server_hostname=host if implicit else None,
        )
    except ssl.SSLCertVerificationError as exc:
        return Probe(starttls=True, verify_error=exc.verify_message or str(exc.reason))
    except (ssl.SSLError, OSError) as exc:
        return Probe(f"{host} ({address}:{port}): {getattr(exc, 'strerror', None) or exc}")
    probe = Probe()
    try:
        if not implicit:
            code, _ = await _reply(reader)
            if code != 220:
                return Probe(f"{host}: greeting {code}, not 220")
            writer.write(b"EHLO doctor.invalid\r\n")
            await writer.drain()
            code, ehlo = await _reply(reader)
            extensions = {e.split()[0].upper() for e in ehlo[1:] if e.split()}
            if code != 250 or "STARTTLS" not in extensions:
                return probe
            writer.write(b"STARTTLS\r\n")
            await writer.drain()
            code, _ = await _reply(reader)
            if code != 220:
                return probe
            try:
                await writer.start_tls(context, server_hostname=host)
            except ssl.SSLCertVerificationError as exc:
                return Probe(starttls=True, verify_error=exc.verify_message or str(exc.reason))
            except (ssl.SSLError, OSError) as exc:
                return Probe(f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}", True)
        ssl_object: Any = writer.get_extra_info("ssl_object")
        probe.starttls = True
        probe.version = f"{ssl_object.version()} {ssl_object.cipher()[0]}"
        probe.chain = _chain(ssl_object)
        with contextlib.suppress(OSError):
            writer.write(b"QUIT\r\n")
            await writer.drain()
        return probe
    except (OSError, EOFError, ssl.SSLError) as exc:
        return Probe(f"{host}: connection lost: {exc}")
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _chain(ssl_object: Any) -> list[bytes]:
    getter = getattr(ssl_object, "get_unverified_chain", None) or getattr(
        getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None
    )
    if getter is not None:
        return [
            c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
            for c in getter() or []
        ]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def starttls_check(host: str) -> Check:
    async def check(ctx: Context) -> Finding:
        address = await _mx_address(ctx, host)
        if address is None:
            return Finding.error(f"{host} has no address (see mx)")
        probe = await _probe(ctx, host, address, ctx.options.smtp_port, verify=True)
        if probe.error:
            return Finding.error(probe.error, "check that the MX accepts connections on port 25")
        if not probe.starttls:
            return Finding.fail(
                f"{host} does not offer STARTTLS: mail to it travels in plain text",
                "configure a certificate and STARTTLS on that MX",
            )
        if probe.verify_error:
            return Finding.fail(
                f"{host}: certificate not valid for {host}: {probe.verify_error}",
                f"install a certificate for {host} from a public CA, chain included "
                "(MTA-STS senders refuse this MX otherwise)",
            )
        cert = describe_certificate(
            probe.chain[0], host, datetime.now(UTC), ctx.options.cert_min_days
        )
        observed = f"{probe.version}; {cert.observed}"
        return Finding(cert.status, observed, cert.fix)

    return check


async def check_tlsa(ctx: Context) -> Finding:
    hosts = await ctx.once("transport-mx", lambda: _mx_hosts(ctx))
    parts: list[tuple[str, Finding]] = []
    for host in hosts:
        result = await ctx.resolver.query(dane.tlsa_name(host), "TLSA")
        if result.is_void:
            continue
        if result.is_error:
            parts.append(
                (
                    host,
                    Finding.fail(
                        f"TLSA lookup failed ({result.error}): "
                        "DNSSEC-validating senders defer all mail",
                        "fix the zone's DNSSEC signatures (a bogus answer looks like this)",
                    ),
                )
            )
            continue
        records = []
        for text in result.records:
            with contextlib.suppress(dane.TlsaError):
                records.append(dane.TlsaRecord.parse(str(text)))
        if not any(r.usable for r in records):
            parts.append(
                (
                    host,
                    Finding.warn(
                        "no usable TLSA record "
                        "(RFC 7672 §3.1: usage 2/3, selector 0/1, matching 0/1/2)",
                        "publish 3 1 1 as mailwright records prints",
                    ),
                )
            )
            continue
        address = await _mx_address(ctx, host)
        if address is None:
            parts.append((host, Finding.error(f"{host} has no address (see mx)")))
            continue
        probe = await _probe(ctx, host, address, ctx.options.smtp_port, verify=False)
        if probe.error or not probe.chain:
            parts.append((host, Finding.error(probe.error or f"{host}: no certificate seen")))
            continue
        problem = dane.verify(records, probe.chain, [host])
        if problem is not None:
            parts.append(
                (
                    host,
                    Finding.fail(
                        f"TLSA does not match the certificate: {problem}",
                        "publish the record for the current key (mailwright records) before "
                        "changing keys; DANE senders defer mail until it matches",
                    ),
                )
            )
        elif not result.secure:
            parts.append(
                (
                    host,
                    Finding.warn(
                        "TLSA matches, but the answer is not DNSSEC-secure (or the resolver is not "
                        "a trusted validator: [dns] dnssec): DANE senders ignore it",
                        "sign the zone (DNSSEC) and publish the DS at the parent",
                    ),
                )
            )
        else:
            parts.append((host, Finding.ok(f"{len(records)} record(s), secure, matching")))
    if not parts:
        return Finding.ok("no TLSA records (DANE not used; it needs a DNSSEC-signed zone)")
    return combine(parts)


# -- our submission ports ---------------------------------------------------------------------


def cert_check(port: int, mode: str) -> Check:
    async def check(ctx: Context) -> Finding:
        hostname = await ctx.helo_name()
        if hostname is None:
            return Finding.error("no hostname known", "pass --config")
        address = ctx.options.local_host
        try:
            _r, w = await asyncio.wait_for(
                asyncio.open_connection(address, port), ctx.options.connect_timeout
            )
            w.close()
        except (OSError, TimeoutError):
            return Finding.ok(f"{address}:{port}: closed (nothing to check)")
        probe = await _probe(ctx, hostname, address, port, verify=True, implicit=mode == "implicit")
        if probe.error:
            return Finding.error(probe.error)
        if not probe.starttls:
            return Finding.fail(
                f"{address}:{port}: no TLS offered: passwords would travel in plain text",
                f'set tls = "{mode}" on the listener of port {port} and a certificate in [tls]',
            )
        if probe.verify_error:
            return Finding.fail(
                f"{address}:{port}: certificate not valid for {hostname}: {probe.verify_error}",
                f"install a certificate for {hostname} ([tls] certificate or acme = true)",
            )
        cert = describe_certificate(
            probe.chain[0], hostname, datetime.now(UTC), ctx.options.cert_min_days
        )
        return Finding(cert.status, f"{probe.version}; {cert.observed}", cert.fix)

    return check


__all__ = ["GROUP", "Status", "checks", "prepare"]
