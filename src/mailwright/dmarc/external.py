"""External report destination verification (RFC 9989 §11.6, RFC 9990 §4).

A ``rua``/``ruf`` URI whose host lies in another Organizational Domain than the
policy's is only used when the destination publishes
``<policy-domain>._report._dmarc.<destination-host>`` TXT ``v=DMARC1``; that
record may also override the URI, but only with one at the same host.
Otherwise a domain could aim a flood of reports at anyone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..dns import Resolver
from ..dns.names import MAX_NAME_LENGTH, name_problem
from .alignment import organizational_domain
from .discovery import LookupCache
from .record import ReportUri, parse_record, parse_report_uri


class ExternalStatus(enum.StrEnum):
    INTERNAL = "internal"
    """Same Organizational Domain as the policy: no verification needed."""
    AUTHORIZED = "authorized"
    """The destination published the authorization record."""
    UNAUTHORIZED = "unauthorized"
    """No authorization record: receivers ignore this URI."""
    OVERRIDE_REJECTED = "override-rejected"
    """The authorization names a URI at another host: no report goes anywhere."""
    TOO_LONG = "too-long"
    """The authorization name exceeds DNS limits: it cannot be verified (step 4)."""
    NO_HOST = "no-host"
    """The URI has no host to verify (e.g. a malformed https URI)."""
    TEMPERROR = "temperror"
    """A DNS error: try again later."""


@dataclass(frozen=True)
class ExternalCheck:
    """The verification of one report URI."""

    tag: str
    uri: ReportUri
    status: ExternalStatus
    name: str | None = None
    """The ``<domain>._report._dmarc.<host>`` name queried, if any."""
    records: tuple[str, ...] = ()
    overrides: tuple[ReportUri, ...] = ()
    """URIs the Report Consumer's record puts in place of this one (same host)."""
    detail: str = ""

    @property
    def usable(self) -> bool:
        """Will a receiver send reports for this URI?"""
        return self.status in (ExternalStatus.INTERNAL, ExternalStatus.AUTHORIZED)

    def as_json(self) -> dict[str, object]:
        return {
            "tag": self.tag,
            "uri": self.uri.uri,
            "host": self.uri.host,
            "status": str(self.status),
            "name": self.name,
            "records": list(self.records),
            "overrides": [u.uri for u in self.overrides],
            "detail": self.detail,
        }


def authorization_name(policy_domain: str, host: str) -> str:
    """RFC 9990 §4 steps 1-3: ``<policy-domain>._report._dmarc.<destination host>``."""
    return f"{policy_domain}._report._dmarc.{host}"


async def verify_destination(
    tag: str,
    uri: ReportUri,
    policy_domain: str,
    policy_org_domain: str,
    resolver: Resolver,
    cache: LookupCache | None = None,
) -> ExternalCheck:
    """Verify one rua/ruf URI of the record found at ``policy_domain`` (RFC 9990 §4)."""
    host = uri.host
    if not host:
        return ExternalCheck(tag, uri, ExternalStatus.NO_HOST, detail="the URI names no host")
    dest = await organizational_domain(host, resolver, cache)
    if dest.organizational_domain is None:
        return ExternalCheck(
            tag,
            uri,
            ExternalStatus.TEMPERROR,
            detail=f"organizational domain of {host} unknown: {dest.error}",
        )
    if dest.organizational_domain == policy_org_domain:
        return ExternalCheck(
            tag,
            uri,
            ExternalStatus.INTERNAL,
            detail=f"{host} is within {policy_org_domain}",
        )
    name = authorization_name(policy_domain, host)
    if len(name) > MAX_NAME_LENGTH or name_problem(name) is not None:
        return ExternalCheck(
            tag,
            uri,
            ExternalStatus.TOO_LONG,
            name,
            detail=f"{name} exceeds DNS limits; the relationship cannot be verified",
        )
    result = await resolver.txt(name)
    if result.is_error:
        return ExternalCheck(
            tag, uri, ExternalStatus.TEMPERROR, name, detail=result.error or str(result.outcome)
        )
    texts = tuple(str(r) for r in result.records)
    # Step 6: the same tag-value format with v=DMARC1 first; others are discarded.
    confirming = [parse_record(t) for t in texts if parse_record(t).is_dmarc]
    if not confirming:
        detail = (
            f"{name} has no TXT record starting with v=DMARC1"
            if result.ok
            else f"{name}: {result.outcome}"
        )
        return ExternalCheck(tag, uri, ExternalStatus.UNAUTHORIZED, name, texts, detail=detail)
    # Step 9: a rua (or ruf) in the confirming record replaces the original URI,
    # but only with URIs at the same destination host (loops, indirect abuse).
    overrides: list[ReportUri] = []
    for record in confirming:
        for text_tag, value in record.tags:
            if text_tag != tag:
                continue
            for item in value.split(","):
                parsed, _ = parse_report_uri(item.strip(" \t"))
                if parsed is not None:
                    overrides.append(parsed)
    foreign = [o for o in overrides if o.host != host]
    if foreign:
        return ExternalCheck(
            tag,
            uri,
            ExternalStatus.OVERRIDE_REJECTED,
            name,
            texts,
            tuple(overrides),
            detail=(
                f"the override {foreign[0].uri} is not at {host}: receivers send no report "
                "to either URI (RFC 9990 §4)"
            ),
        )
    return ExternalCheck(
        tag,
        uri,
        ExternalStatus.AUTHORIZED,
        name,
        texts,
        tuple(overrides),
        detail=f"{host} accepts reports for {policy_domain}",
    )
