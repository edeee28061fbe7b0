"""Identifier Alignment (RFC 9989 §3.2.10, §4.4, §4.10.2).

Strict alignment is a case-insensitive string comparison; relaxed alignment
compares Organizational Domains, which the DNS Tree Walk determines (never a
Public Suffix List). Pure helpers plus one async function that walks for an
identifier's Organizational Domain.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..dns import Resolver
from .discovery import (
    LookupCache,
    TreeWalk,
    prepare_domain,
    select_organizational_domain,
    tree_walk,
)
from .record import AlignmentMode


class Aligned(enum.StrEnum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"
    """A DNS error hid an Organizational Domain."""


def same_domain(a: str, b: str) -> bool:
    """Strict alignment (§3.2.10.2): identical names, compared case-insensitively (RFC 4343)."""
    return prepare_domain(a)[0] == prepare_domain(b)[0]


def is_within(domain: str, ancestor: str) -> bool:
    """``domain`` is ``ancestor`` or one of its subdomains (label-wise, not string suffix)."""
    return domain == ancestor or domain.endswith("." + ancestor)


@dataclass(frozen=True)
class OrganizationalDomain:
    """The Organizational Domain of one name, or why it is unknown."""

    domain: str
    organizational_domain: str | None
    walk: TreeWalk
    error: str | None = None


async def organizational_domain(
    domain: str, resolver: Resolver, cache: LookupCache | None = None
) -> OrganizationalDomain:
    """Walk from ``domain`` and select its Organizational Domain (§4.10.2)."""
    name, problem = prepare_domain(domain)
    if problem is not None:
        return OrganizationalDomain(name, None, TreeWalk(name, ()), problem)
    walk = await tree_walk(name, resolver, cache)
    failed = walk.failed_lookup
    if failed is not None:
        return OrganizationalDomain(
            name, None, walk, f"{failed.name} TXT: {failed.error or failed.outcome}"
        )
    return OrganizationalDomain(name, select_organizational_domain(walk), walk)


def relaxed_candidate(author_org: str, identifier: str) -> bool:
    """Can ``identifier`` possibly have ``author_org`` as its Organizational Domain?

    An Organizational Domain is the name itself or one of its ancestors, so an
    identifier outside ``author_org``'s subtree can never align relaxed: no DNS
    query is needed to say no (a third-party ``d=`` such as a mailing service).
    """
    return is_within(identifier, author_org)


async def check_alignment(
    author: str,
    author_org: str | None,
    identifier: str,
    mode: AlignmentMode,
    resolver: Resolver,
    cache: LookupCache | None = None,
) -> tuple[Aligned, str | None]:
    """Is ``identifier`` aligned with ``author`` under ``mode``? Returns (answer, note).

    ``author_org`` is the Author Domain's Organizational Domain, None when DNS
    errors hid it (then relaxed alignment of a different name is unknown).
    """
    author_name = prepare_domain(author)[0]
    ident, problem = prepare_domain(identifier)
    if problem is not None:
        return Aligned.NO, f"{identifier!r} is not a valid domain"
    if ident == author_name:
        return Aligned.YES, "identical domains (strict and relaxed)"
    if mode is AlignmentMode.STRICT:
        return Aligned.NO, f"{ident} is not {author_name} (strict alignment)"
    if author_org is None:
        return Aligned.UNKNOWN, "the Author Domain's Organizational Domain is unknown"
    if not relaxed_candidate(author_org, ident):
        return Aligned.NO, f"{ident} is outside {author_org}"
    found = await organizational_domain(ident, resolver, cache)
    if found.organizational_domain is None:
        return Aligned.UNKNOWN, found.error
    if found.organizational_domain == author_org:
        return Aligned.YES, f"same Organizational Domain {author_org} (relaxed)"
    return (
        Aligned.NO,
        f"Organizational Domain of {ident} is {found.organizational_domain}, not {author_org}",
    )
