"""DKIM key records: published, parsable, the public half of our private key, strong enough.

RFC 6376 §3.6.1 (record syntax, t=y), §3.6.2.1 (``SELECTOR._domainkey.DOMAIN``),
RFC 8301 §3.2 (RSA at least 1024 bits, 2048 recommended), RFC 8463 (Ed25519).
Parsing and key comparison are :mod:`mailwright.dkim`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..dkim import KeyRecord, KeyRecordError, parse_key_record
from ..dkim.keys import RECOMMENDED_RSA_BITS, dns_record_value, public_keys_match
from ..dns import DnsResult
from .context import Context, SelectorSpec
from .host import dig
from .model import Finding

MIN_RSA_BITS = 1024
"""RFC 8301 §3.2: verifiers MUST NOT consider signatures with smaller keys valid."""


def record_name(ctx: Context, spec: SelectorSpec) -> str:
    return f"{spec.selector}._domainkey.{spec.domain or ctx.domain}"


async def _record(ctx: Context, spec: SelectorSpec) -> tuple[DnsResult[str], KeyRecord | str]:
    """The TXT answer and the parsed record, or why there is no usable record."""
    name = record_name(ctx, spec)
    result = await ctx.resolver.txt(name)
    if not result.ok:
        return result, f"no DKIM record at {name} ({result.outcome})"
    texts = [str(t) for t in result.records]
    if len(texts) > 1:
        return result, f"{len(texts)} TXT records at {name}: verifiers may pick either"
    try:
        return result, parse_key_record(texts[0])
    except KeyRecordError as exc:
        return result, f"does not parse: {exc}"


def _publish_fix(ctx: Context, spec: SelectorSpec) -> str:
    return f"publish the TXT record 'mailwright records' prints for {record_name(ctx, spec)}"


def record_check(spec: SelectorSpec) -> Callable[[Context], Awaitable[Finding]]:
    async def check(ctx: Context) -> Finding:
        result, parsed = await _record(ctx, spec)
        if result.is_error:
            return Finding.error(dig(result))
        if isinstance(parsed, str):
            return Finding.fail(f"{dig(result)}\n{parsed}" if result.ok else parsed,
                                _publish_fix(ctx, spec))  # fmt: skip
        if parsed.revoked:
            return Finding.fail(f"{dig(result)}\nkey revoked (empty p=)", _publish_fix(ctx, spec))
        return Finding.ok(dig(result))

    return check


async def _usable(ctx: Context, spec: SelectorSpec) -> KeyRecord | Finding:
    result, parsed = await _record(ctx, spec)
    if result.is_error:
        return Finding.error(dig(result))
    if isinstance(parsed, str) or parsed.public_key is None:
        return Finding.error(
            f"no usable record at {record_name(ctx, spec)} (see dkim-record:{spec.selector})",
            "fix the record first",
        )
    return parsed


def key_match_check(spec: SelectorSpec) -> Callable[[Context], Awaitable[Finding]]:
    async def check(ctx: Context) -> Finding:
        assert spec.private_key is not None
        record = await _usable(ctx, spec)
        if isinstance(record, Finding):
            return record
        try:
            private = await ctx.private_key(spec.private_key)
        except (OSError, ValueError) as exc:
            return Finding.fail(
                f"cannot read the private key {spec.private_key}: {exc}",
                "fix [[dkim]] private_key in the config",
            )
        assert record.public_key is not None
        if public_keys_match(private, record.public_key):
            return Finding.ok(f"the published key is the public half of {spec.private_key}")
        expected = dns_record_value(private)
        return Finding.fail(
            f"the published key is not the public half of {spec.private_key}: "
            "signatures will fail to verify",
            f'publish {record_name(ctx, spec)}. IN TXT "{expected[:40]}..." '
            "(the full value: mailwright records)",
        )

    return check


def key_size_check(spec: SelectorSpec) -> Callable[[Context], Awaitable[Finding]]:
    async def check(ctx: Context) -> Finding:
        record = await _usable(ctx, spec)
        if isinstance(record, Finding):
            return record
        bits = record.bits or 0
        if record.key_type == "ed25519":
            return Finding.ok("Ed25519 (RFC 8463)")
        if bits < MIN_RSA_BITS:
            return Finding.fail(
                f"RSA-{bits}: below 1024 bits, receivers ignore the signature (RFC 8301 §3.2)",
                "generate a 2048-bit key: mailwright dkim genkey",
            )
        if bits < RECOMMENDED_RSA_BITS:
            return Finding.warn(
                f"RSA-{bits}: allowed, but 2048 bits is recommended (RFC 8301 §3.2)",
                "rotate to a 2048-bit key under a new selector",
            )
        return Finding.ok(f"RSA-{bits}")

    return check


def testing_check(spec: SelectorSpec) -> Callable[[Context], Awaitable[Finding]]:
    async def check(ctx: Context) -> Finding:
        record = await _usable(ctx, spec)
        if isinstance(record, Finding):
            return record
        if record.testing:
            return Finding.warn(
                "t=y: testing mode: receivers treat failures as unsigned",
                f"remove t=y from {record_name(ctx, spec)} once signatures verify",
            )
        return Finding.ok("not in testing mode (no t=y)")

    return check


async def no_selector(ctx: Context) -> Finding:
    return Finding.warn(
        "no DKIM selector known for this domain",
        "pass --selector SELECTOR, or add [[dkim]] keys to the config (mailwright init)",
    )
