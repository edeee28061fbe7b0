"""DMARC evaluation for one message (RFC 9989 §5.3): result and requested disposition.

``evaluate`` takes what SPF and DKIM already decided (it does not re-run them):
the SPF result with the domain SPF checked (the MAIL FROM domain, or the HELO
identity for a null reverse path, RFC 7208 §2.4), and one (domain, result) per
DKIM signature. Any object with ``.domain`` and ``.result`` attributes works,
as do plain ``(domain, result)`` tuples, so this module depends on neither the
SPF nor the DKIM implementation.

The disposition is what the Domain Owner asked for (after sp/np selection and
``t=y``); whether to honour it is the receiver's local policy (§5.4, §7.4).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..dns import Resolver
from .alignment import Aligned, check_alignment
from .discovery import (
    DiscoveryStatus,
    Existence,
    LookupCache,
    PolicyDiscovery,
    discover_policy,
    domain_exists,
)
from .record import Classification, DmarcRecord, Policy


class HasResult(Protocol):
    """An SPF/DKIM outcome with ``.domain`` and ``.result`` (e.g. ``SpfResult``)."""

    @property
    def domain(self) -> str | None: ...

    @property
    def result(self) -> object: ...


class HasStatus(Protocol):
    """An outcome with ``.domain`` and ``.status`` (e.g. ``DkimResult``)."""

    @property
    def domain(self) -> str | None: ...

    @property
    def status(self) -> object: ...


AuthOutcome = HasResult | HasStatus
Evidence = HasResult | HasStatus | tuple[str, object]
"""An SPF/DKIM outcome: an object with .domain and .result (or .status), or a
(domain, result) tuple. A ``None`` domain (an unparsable signature) is skipped."""


class DmarcStatus(enum.StrEnum):
    """RFC 9989 §9.2 result names (also the Authentication-Results dmarc= values)."""

    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class IdentifierCheck:
    """One authenticated identifier considered for alignment."""

    method: str
    """``spf`` or ``dkim``."""
    domain: str
    result: str
    """The SPF/DKIM result as given (lowercase)."""
    aligned: Aligned | None
    """None when the identifier did not pass (only passing identifiers can align)."""
    note: str | None = None
    selector: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "domain": self.domain,
            "result": self.result,
            "aligned": None if self.aligned is None else str(self.aligned),
            "note": self.note,
            "selector": self.selector,
        }


@dataclass(frozen=True)
class DmarcResult:
    """The DMARC verdict for one message, with everything needed to explain or report it."""

    result: DmarcStatus
    from_domain: str
    disposition: Policy
    """What to do, per the Domain Owner: none on pass/none/errors, else the selected policy."""
    requested_policy: Policy | None = None
    """The policy that applies to failing mail before ``t=y`` (p, sp or np)."""
    policy_tag: str | None = None
    """Which tag supplied ``requested_policy``: ``p``, ``sp`` or ``np``."""
    testing: bool = False
    """``t=y`` (or ``pct=0``) lowered the disposition one level."""
    spf_aligned: bool = False
    dkim_aligned: bool = False
    aligned_by: tuple[str, ...] = ()
    """``dkim:example.com``, ``spf:example.com``: the identifiers that made the pass."""
    identifiers: tuple[IdentifierCheck, ...] = ()
    discovery: PolicyDiscovery | None = None
    reasons: tuple[str, ...] = field(default=())

    @property
    def record(self) -> DmarcRecord | None:
        return self.discovery.record if self.discovery else None

    @property
    def policy_domain(self) -> str | None:
        return self.discovery.record_domain if self.discovery else None

    @property
    def organizational_domain(self) -> str | None:
        return self.discovery.organizational_domain if self.discovery else None

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def receiver_action(self, *, other_evidence: bool = False) -> Policy:
        """What a receiver may do with this message on DMARC grounds alone.

        RFC 9989 §7.4 and §8: a receiver MUST NOT reject solely because of
        p=reject and, without other knowledge and analysis, MUST treat such mail
        as if the policy were quarantine. ``other_evidence=True`` says the caller
        has that other analysis (content filter, known-bad source...) and lets
        the requested reject through.
        """
        if self.disposition is Policy.REJECT and not other_evidence:
            return Policy.QUARANTINE
        return self.disposition

    def as_json(self) -> dict[str, object]:
        return {
            "result": str(self.result),
            "from_domain": self.from_domain,
            "disposition": str(self.disposition),
            "requested_policy": None
            if self.requested_policy is None
            else str(self.requested_policy),
            "policy_tag": self.policy_tag,
            "testing": self.testing,
            "spf_aligned": self.spf_aligned,
            "dkim_aligned": self.dkim_aligned,
            "aligned_by": list(self.aligned_by),
            "identifiers": [i.as_json() for i in self.identifiers],
            "policy_domain": self.policy_domain,
            "record": self.record.text if self.record else None,
            "organizational_domain": self.organizational_domain,
            "reasons": list(self.reasons),
        }


def _evidence(item: Evidence) -> tuple[str | None, str, str | None]:
    if isinstance(item, tuple):
        domain, result = item
        return str(domain), _result_word(result), None
    verdict = getattr(item, "result", None)
    if verdict is None:
        verdict = getattr(item, "status", None)
    selector = getattr(item, "selector", None)
    return (
        item.domain,
        _result_word(verdict),
        selector if isinstance(selector, str) else None,
    )


def _result_word(result: object) -> str:
    value = getattr(result, "value", result)
    return str(value).strip().lower()


TEMPERROR = "temperror"
"""The SPF (RFC 7208 §2.6.6) and DKIM (RFC 8601 §2.7.1) word for a transient DNS failure."""

MAX_DKIM_RESULTS = 20
"""Signatures considered for alignment; more is an attack on the receiver (bounded work)."""


async def evaluate(
    from_domain: str,
    spf: Evidence | None,
    dkim: Iterable[Evidence],
    resolver: Resolver,
    *,
    discovery: PolicyDiscovery | None = None,
) -> DmarcResult:
    """DMARC for one message (RFC 9989 §5.3.2-§5.3.6).

    ``spf`` is (SPF domain, SPF result) or None when SPF was not checked;
    ``dkim`` one (d= domain, result) per verified signature. ``discovery`` may be
    passed in when the policy was already looked up (e.g. at MAIL FROM time).
    """
    cache: LookupCache = {}
    found = discovery or await discover_policy(from_domain, resolver, cache)
    if discovery is not None:
        for known in discovery.walk.lookups:
            cache.setdefault(known.domain, known)
    author = found.domain
    if found.status is DiscoveryStatus.INVALID_DOMAIN:
        return DmarcResult(
            DmarcStatus.PERMERROR,
            author,
            Policy.NONE,
            discovery=found,
            reasons=(found.error or "",),
        )
    if found.status is DiscoveryStatus.TEMPERROR:
        return DmarcResult(
            DmarcStatus.TEMPERROR,
            author,
            Policy.NONE,
            discovery=found,
            reasons=(f"policy discovery failed: {found.error}",),
        )
    if found.status is DiscoveryStatus.NONE or found.record is None:
        # §4.10.1: no record anywhere on the walk → DMARC does not apply.
        return DmarcResult(
            DmarcStatus.NONE,
            author,
            Policy.NONE,
            discovery=found,
            reasons=(f"no DMARC record for {author} or its organizational domain",),
        )
    record = found.record
    if record.classification is Classification.INVALID:
        return DmarcResult(
            DmarcStatus.PERMERROR,
            author,
            Policy.NONE,
            discovery=found,
            reasons=(f"{found.record_name}: {record.reason}",),
        )

    checks: list[IdentifierCheck] = []
    unknown: list[str] = []
    transient: list[str] = []
    """Identifiers whose SPF/DKIM check hit a temporary DNS error and that could have aligned."""
    reasons: list[str] = []
    if found.organizational_error:
        reasons.append(f"organizational domain unknown: {found.organizational_error}")
    candidates: list[tuple[str, str, str, str | None]] = []
    if spf is not None:
        spf_domain, result, _ = _evidence(spf)
        if getattr(spf, "identity", "mailfrom") == "helo":
            # §3.2.4: DMARC uses SPF of the MAIL FROM identity only (for a null
            # reverse path that is postmaster@HELO, which SPF reports as mailfrom).
            reasons.append("SPF result is for the HELO identity: not used by DMARC")
        elif spf_domain:
            candidates.append(("spf", spf_domain, result, None))
    for index, item in enumerate(dkim):
        if index >= MAX_DKIM_RESULTS:
            reasons.append(f"only the first {MAX_DKIM_RESULTS} DKIM results were considered")
            break
        dkim_domain, result, selector = _evidence(item)
        if dkim_domain:
            candidates.append(("dkim", dkim_domain, result, selector))
        elif result == TEMPERROR:
            # §5.3.6: a signature whose domain is unknown may be the aligned one.
            transient.append("dkim signature with an unknown domain: temperror")
    for method, domain, result, selector in candidates:
        mode = record.dkim_alignment if method == "dkim" else record.spf_alignment
        if result != "pass":
            # §4.4.1/§4.4.2: only a validated identifier is an Authenticated Identifier.
            note = None
            if result == TEMPERROR:
                # §5.3.6: a temporary DNS error hid whether this identifier passes; if it
                # could align, the message can be neither passed nor failed.
                could, why = await check_alignment(
                    author, found.organizational_domain, domain, mode, resolver, cache
                )
                if could is not Aligned.NO:
                    note = (
                        f"temperror, would {'be' if could is Aligned.YES else 'maybe be'} aligned"
                    )
                    transient.append(f"{method} {domain}: temperror ({why})")
            checks.append(IdentifierCheck(method, domain, result, None, note, selector))
            continue
        aligned, note = await check_alignment(
            author, found.organizational_domain, domain, mode, resolver, cache
        )
        checks.append(IdentifierCheck(method, domain, result, aligned, note, selector))
        if aligned is Aligned.UNKNOWN:
            unknown.append(f"{method} {domain}: {note}")

    aligned_by = tuple(f"{c.method}:{c.domain}" for c in checks if c.aligned is Aligned.YES)
    spf_aligned = any(c.method == "spf" and c.aligned is Aligned.YES for c in checks)
    dkim_aligned = any(c.method == "dkim" and c.aligned is Aligned.YES for c in checks)
    base = DmarcResult(
        DmarcStatus.FAIL,
        author,
        Policy.NONE,
        spf_aligned=spf_aligned,
        dkim_aligned=dkim_aligned,
        aligned_by=aligned_by,
        identifiers=tuple(checks),
        discovery=found,
    )
    if aligned_by:
        # §5.3.5: one aligned Authenticated Identifier is enough.
        return replace(
            base, result=DmarcStatus.PASS, reasons=(*reasons, f"aligned: {', '.join(aligned_by)}")
        )
    if unknown or transient:
        # §5.3.6: a DNS error in a needed query means neither pass nor fail.
        return replace(
            base,
            result=DmarcStatus.TEMPERROR,
            reasons=(
                *reasons,
                *(f"alignment unknown: {u}" for u in unknown),
                *(f"not validated because of a temporary DNS error: {t}" for t in transient),
            ),
        )
    reasons.append(_failure_reason(checks))

    requested, tag, why = await _select_policy(found, record, resolver)
    if requested is None:
        return replace(base, result=DmarcStatus.TEMPERROR, reasons=(*reasons, why))
    reasons.append(why)
    disposition = requested
    if record.testing and requested is not Policy.NONE:
        # §4.7 "t": apply the policy one level below while the owner is testing.
        disposition = requested.relaxed_one_level()
        reasons.append(
            f"{'t=y' if record.t else 'pct=0'}: testing, {requested} applied as {disposition}"
        )
    return replace(
        base,
        disposition=disposition,
        requested_policy=requested,
        policy_tag=tag,
        testing=record.testing and requested is not Policy.NONE,
        reasons=tuple(reasons),
    )


def _failure_reason(checks: list[IdentifierCheck]) -> str:
    if not checks:
        return "no SPF or DKIM result to align"
    parts = []
    for check in checks:
        if check.aligned is None:
            parts.append(f"{check.method} {check.domain}={check.result}")
        else:
            parts.append(f"{check.method} {check.domain} not aligned ({check.note})")
    return "no aligned pass: " + "; ".join(parts)


async def _select_policy(
    found: PolicyDiscovery, record: DmarcRecord, resolver: Resolver
) -> tuple[Policy | None, str | None, str]:
    """§4.10.1: p for the Author Domain's own record; sp or np for a subdomain."""
    if record.p_fallback:
        return Policy.NONE, "p", "invalid p/sp/np with a valid rua: treated as p=none (§4.10.1)"
    if found.at_author_domain:
        tag = "p" if record.p is not None else None
        return record.policy, tag, f"p={record.policy} of {found.record_name}"
    source = found.record_name
    if record.np is not None and record.np != record.subdomain_policy:
        exists, error = await domain_exists(found.domain, resolver)
        if exists is Existence.UNKNOWN:
            return None, None, f"cannot tell whether {found.domain} exists: {error}"
        if exists is Existence.NXDOMAIN:
            return record.np, "np", f"np={record.np} of {source}: {found.domain} does not exist"
    if record.sp is not None:
        return record.sp, "sp", f"sp={record.sp} of {source} for subdomain {found.domain}"
    tag = "p" if record.p is not None else None
    return record.policy, tag, f"p={record.policy} of {source} for subdomain {found.domain}"
