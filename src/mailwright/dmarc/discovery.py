"""DMARC policy discovery by the DNS Tree Walk of RFC 9989 §4.10 (no Public Suffix List).

The walk asks for ``_dmarc.<name>`` TXT at the starting domain and then at its
ancestors, at most eight queries however long the name is (§4.10 steps 3-4),
stopping early at a record carrying ``psd=y`` or ``psd=n``. One walk from the
Author Domain yields both the DMARC Policy Record (§4.10.1) and the
Organizational Domain (§4.10.2), so they are computed together here.

DNS outcomes are data: NXDOMAIN/NODATA mean "no record at that name", while a
timeout or SERVFAIL makes the answer unknown and becomes a temperror-class
outcome, never "no record" (§4.10.1, §5.3.6).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from ..dns import Outcome, Resolver
from ..dns.names import name_problem, normalize, to_ascii
from .record import Classification, DmarcRecord, PsdFlag, parse_record

MAX_WALK_QUERIES = 8
"""RFC 9989 §4.10: a walk never makes more than eight queries."""
_SHORTEN_TO = 7
"""§4.10 step 4: names of eight or more labels are cut to seven after the first query."""


def dmarc_name(domain: str) -> str:
    """Where a domain's DMARC Policy Record lives (§4.1)."""
    return f"_dmarc.{domain}"


def walk_targets(domain: str) -> list[str]:
    """The domains a Tree Walk queries, in order (RFC 9989 §4.10 steps 1-7).

    ``a.b.c.d.e.f.g.h.i.j.mail.example.com`` → itself, then
    ``g.h.i.j.mail.example.com`` (seven labels) and each parent down to ``com``.
    """
    labels = domain.split(".")
    targets = [domain]
    remaining = labels[-_SHORTEN_TO:] if len(labels) >= 8 else labels[1:]
    while remaining:
        targets.append(".".join(remaining))
        remaining = remaining[1:]
    return targets


def prepare_domain(domain: str) -> tuple[str, str | None]:
    """Normalize a domain for DMARC: lowercase, no trailing dot, A-labels (§5.3.1).

    Returns the domain and a problem (None when it is usable).
    """
    name = normalize(domain)
    problem = name_problem(name)
    if problem is not None:
        return name, problem
    try:
        return to_ascii(name), None
    except UnicodeError as exc:  # pragma: no cover - name_problem already encoded it
        return name, str(exc)


@dataclass(frozen=True, slots=True)
class Lookup:
    """One ``_dmarc`` TXT query and what it found."""

    domain: str
    name: str
    outcome: Outcome
    texts: tuple[str, ...] = ()
    """Every TXT string at the name, DMARC or not."""
    error: str | None = None
    answer: tuple[str, ...] = ()
    """The answer as dig shows it."""

    @property
    def dmarc_texts(self) -> tuple[str, ...]:
        """The TXT strings that start with ``v=DMARC1`` (§4.10 step 2 keeps only these)."""
        return tuple(t for t in self.texts if parse_record(t).is_dmarc)

    @property
    def other_texts(self) -> tuple[str, ...]:
        return tuple(t for t in self.texts if not parse_record(t).is_dmarc)

    @property
    def multiple(self) -> bool:
        """More than one DMARC record: §4.10 step 2 discards them all."""
        return len(self.dmarc_texts) > 1

    @property
    def record(self) -> DmarcRecord | None:
        """The single DMARC record at this name, or None (none, or several)."""
        candidates = self.dmarc_texts
        if len(candidates) != 1:
            return None
        return parse_record(candidates[0])

    @property
    def failed(self) -> bool:
        """A timeout or server failure: we cannot know whether a record exists."""
        return self.outcome in (Outcome.SERVFAIL, Outcome.TIMEOUT)

    def as_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "name": self.name,
            "outcome": str(self.outcome),
            "records": list(self.texts),
            "dmarc": len(self.dmarc_texts),
            "error": self.error,
        }


LookupCache = dict[str, Lookup]
"""Lookups by domain, shared by the walks of one evaluation (they overlap near the root)."""


async def lookup(domain: str, resolver: Resolver, cache: LookupCache | None = None) -> Lookup:
    """Query ``_dmarc.<domain>`` TXT once (per cache)."""
    if cache is not None and domain in cache:
        return cache[domain]
    name = dmarc_name(domain)
    result = await resolver.txt(name)
    found = Lookup(
        domain,
        name,
        result.outcome,
        tuple(str(r) for r in result.records),
        result.error,
        result.text,
    )
    if cache is not None:
        cache[domain] = found
    return found


@dataclass(frozen=True)
class TreeWalk:
    """The queries of one Tree Walk, in order, and why it stopped."""

    start: str
    lookups: tuple[Lookup, ...]
    stopped_by: str | None = None
    """``psd=y`` / ``psd=n`` when a record with that tag ended the walk (§4.10 step 6)."""

    @property
    def failed_lookup(self) -> Lookup | None:
        """The lookup that failed with a DNS error (the walk ends there)."""
        for item in self.lookups:
            if item.failed:
                return item
        return None

    @property
    def records(self) -> list[tuple[str, DmarcRecord]]:
        """(domain, record) for every name that held exactly one DMARC record, longest first."""
        found = []
        for item in self.lookups:
            record = item.record
            if record is not None:
                found.append((item.domain, record))
        return found

    @property
    def valid_records(self) -> list[tuple[str, DmarcRecord]]:
        """The :attr:`records` that are valid DMARC Policy Records, longest first.

        RFC 9989 §4.10.2 chooses the Organizational Domain "from the domains for
        which valid DMARC Policy Records were retrieved": a broken record (duplicate
        tag, bad ``p`` without ``rua``) must not make its name the Organizational Domain.
        """
        return [
            (domain, record)
            for domain, record in self.records
            if record.classification is Classification.VALID
        ]

    def record_at(self, domain: str) -> DmarcRecord | None:
        for found_domain, record in self.records:
            if found_domain == domain:
                return record
        return None


async def tree_walk(
    domain: str,
    resolver: Resolver,
    cache: LookupCache | None = None,
    *,
    concurrent: bool = True,
) -> TreeWalk:
    """Run the RFC 9989 §4.10 Tree Walk from ``domain`` (already prepared).

    Stops at a single DMARC record with ``psd=y``/``psd=n`` (steps 2 and 6), at a
    DNS error (nothing above it can be trusted to decide), or at the root.

    The names to query are known before the first answer (steps 3-4), so with
    ``concurrent`` they are all asked at once and the answers read in walk
    order: one round trip instead of up to eight, the same result, and never
    more than :data:`MAX_WALK_QUERIES` queries. ``concurrent=False`` asks one at
    a time and skips the names above a stop (fewer queries, more latency).
    """
    targets = walk_targets(domain)[:MAX_WALK_QUERIES]
    answers: list[Lookup] | None = None
    if concurrent:
        answers = list(await asyncio.gather(*(lookup(t, resolver, cache) for t in targets)))
    lookups: list[Lookup] = []
    for index, target in enumerate(targets):
        found = answers[index] if answers is not None else await lookup(target, resolver, cache)
        lookups.append(found)
        if found.failed:
            return TreeWalk(domain, tuple(lookups))
        record = found.record
        if record is not None and record.psd in (PsdFlag.YES, PsdFlag.NO):
            return TreeWalk(domain, tuple(lookups), f"psd={record.psd}")
    return TreeWalk(domain, tuple(lookups))


def select_organizational_domain(walk: TreeWalk) -> str:
    """RFC 9989 §4.10.2: the Organizational Domain from a completed walk.

    Over the names that had a valid record, longest first: ``psd=n`` makes that
    name the Organizational Domain; ``psd=y`` (other than at the starting name)
    makes the name one label below it the Organizational Domain; otherwise the
    record with the fewest labels wins. With no valid record, the start is its own.
    """
    records = walk.valid_records
    for domain, record in records:
        if record.psd is PsdFlag.NO:
            return domain
        if record.psd is PsdFlag.YES and domain != walk.start:
            return _one_label_below(walk.start, domain)
    if records:
        return min(records, key=lambda item: item[0].count(".") + 1)[0]
    return walk.start


def _one_label_below(start: str, ancestor: str) -> str:
    """The name one label below ``ancestor`` on the way to ``start``."""
    start_labels = start.split(".")
    depth = ancestor.count(".") + 1
    return ".".join(start_labels[-(depth + 1) :])


class DiscoveryStatus(enum.StrEnum):
    FOUND = "found"
    """A DMARC Policy Record applies (it may still be unusable: see the record)."""
    NONE = "none"
    """No record anywhere on the walk: DMARC does not apply (§4.10.1)."""
    TEMPERROR = "temperror"
    """A DNS error left the answer unknown."""
    INVALID_DOMAIN = "invalid-domain"
    """The domain cannot be a DNS name (empty label, too long...)."""


@dataclass(frozen=True)
class PolicyDiscovery:
    """Where the DMARC Policy Record for an Author Domain was found, and what it says."""

    domain: str
    status: DiscoveryStatus
    walk: TreeWalk
    record: DmarcRecord | None = None
    record_domain: str | None = None
    """The DMARC Policy Domain (§3.2.5): where the applied record was found."""
    organizational_domain: str | None = None
    """The Author Domain's Organizational Domain (§4.10.2); None when DNS errors hid it."""
    organizational_error: str | None = None
    """Why the Organizational Domain is unknown (a DNS error above the policy record)."""
    error: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def record_name(self) -> str | None:
        return dmarc_name(self.record_domain) if self.record_domain else None

    @property
    def policy_domain(self) -> str | None:
        return self.record_domain

    @property
    def at_author_domain(self) -> bool:
        """The record is the Author Domain's own (so ``p`` applies, not sp/np)."""
        return self.record_domain == self.domain

    @property
    def from_public_suffix(self) -> bool:
        """The applied record is a Public Suffix Domain's (``psd=y``) one."""
        return (
            self.record is not None
            and self.record.psd is PsdFlag.YES
            and self.record_domain != self.organizational_domain
        )

    @property
    def usable(self) -> bool:
        return (
            self.status is DiscoveryStatus.FOUND
            and self.record is not None
            and self.record.classification is Classification.VALID
        )

    @property
    def queries(self) -> int:
        return len(self.walk.lookups)

    def as_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "status": str(self.status),
            "record_domain": self.record_domain,
            "record_name": self.record_name,
            "record": self.record.text if self.record else None,
            "inherited": bool(self.record_domain) and not self.at_author_domain,
            "organizational_domain": self.organizational_domain,
            "organizational_error": self.organizational_error,
            "psd_record": self.from_public_suffix,
            "error": self.error,
            "notes": list(self.notes),
            "queries": [item.as_json() for item in self.walk.lookups],
        }


async def discover_policy(
    domain: str,
    resolver: Resolver,
    cache: LookupCache | None = None,
    *,
    concurrent: bool = True,
) -> PolicyDiscovery:
    """Find the DMARC Policy Record for an Author Domain (RFC 9989 §4.10.1).

    Preference: the Author Domain's own record, then its Organizational
    Domain's, then its Public Suffix Domain's.
    """
    author, problem = prepare_domain(domain)
    if problem is not None:
        return PolicyDiscovery(
            author,
            DiscoveryStatus.INVALID_DOMAIN,
            TreeWalk(author, ()),
            error=f"{domain!r} is not a valid domain: {problem}",
        )
    walk = await tree_walk(
        author, resolver, cache if cache is not None else {}, concurrent=concurrent
    )
    notes = tuple(
        f"{item.name} has {len(item.dmarc_texts)} DMARC records: all are ignored (§4.10)"
        for item in walk.lookups
        if item.multiple
    )
    first = walk.lookups[0]
    failed = walk.failed_lookup
    if first.failed:
        return PolicyDiscovery(
            author,
            DiscoveryStatus.TEMPERROR,
            walk,
            error=f"{first.name} TXT: {first.error or first.outcome}",
            notes=notes,
        )
    own = first.record
    if own is not None:
        # §4.10.1: the Author Domain's own record applies; the walk continued
        # only to learn the Organizational Domain (§4.10.2).
        if failed is not None:
            return PolicyDiscovery(
                author,
                DiscoveryStatus.FOUND,
                walk,
                own,
                author,
                None,
                f"{failed.name} TXT: {failed.error or failed.outcome}",
                notes=notes,
            )
        return PolicyDiscovery(
            author,
            DiscoveryStatus.FOUND,
            walk,
            own,
            author,
            select_organizational_domain(walk),
            notes=notes,
        )
    if failed is not None:
        return PolicyDiscovery(
            author,
            DiscoveryStatus.TEMPERROR,
            walk,
            error=f"{failed.name} TXT: {failed.error or failed.outcome}",
            notes=notes,
        )
    org = select_organizational_domain(walk)
    record = walk.record_at(org)
    if record is not None:
        return PolicyDiscovery(author, DiscoveryStatus.FOUND, walk, record, org, org, notes=notes)
    # The Organizational Domain has no record of its own: a psd=y record ended the
    # walk, and the Public Suffix Domain's record applies (§4.10.1, third choice).
    for found_domain, found in walk.valid_records:
        if found.psd is PsdFlag.YES:
            extra: tuple[str, ...] = ()
            if org not in {item.domain for item in walk.lookups}:
                # With more than eight labels the walk skips names (§4.10 step 4);
                # the Organizational Domain may be one of them.
                extra = (f"{dmarc_name(org)} was not queried (the walk skips names)",)
            return PolicyDiscovery(
                author,
                DiscoveryStatus.FOUND,
                walk,
                found,
                found_domain,
                org,
                notes=notes + extra,
            )
    broken = walk.records
    if broken:
        # Only invalid records above the Author Domain: none can be the Organizational
        # Domain's (§4.10.2), but the receiver applies no DMARC processing because of
        # one (§4.10.1), which evaluation reports as permerror naming the record.
        found_domain, found = broken[-1]
        return PolicyDiscovery(
            author, DiscoveryStatus.FOUND, walk, found, found_domain, org, notes=notes
        )
    return PolicyDiscovery(
        author, DiscoveryStatus.NONE, walk, organizational_domain=org, notes=notes
    )


class Existence(enum.StrEnum):
    EXISTS = "exists"
    NXDOMAIN = "nxdomain"
    UNKNOWN = "unknown"


async def domain_exists(domain: str, resolver: Resolver) -> tuple[Existence, str | None]:
    """Does the Author Domain exist? Needed only to choose ``np`` over ``sp``.

    RFC 9989 §3.2.13 and Appendix A.4: any record type makes a name exist;
    only NXDOMAIN (RFC 8020) makes it non-existent. One A query tells the two
    apart (NODATA means the name exists).
    """
    result = await resolver.a(domain)
    if result.outcome is Outcome.NXDOMAIN:
        return Existence.NXDOMAIN, None
    if result.outcome in (Outcome.SERVFAIL, Outcome.TIMEOUT):
        return Existence.UNKNOWN, f"{domain} A: {result.error or result.outcome}"
    return Existence.EXISTS, None
