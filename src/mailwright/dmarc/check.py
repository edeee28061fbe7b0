"""``check_domain``: everything wrong with a domain's DMARC setup, each with a fix.

This is what ``mailwright dmarc check`` prints and what the doctor embeds. A
finding has a stable ``id`` (``dmarc-...``), a severity (``error``: mail or
reports are affected now; ``warning``: works, but weaker than it should be;
``info``: worth knowing), a message saying what is wrong and a fix saying what
to publish instead.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from ..dns import Resolver
from .discovery import DiscoveryStatus, LookupCache, PolicyDiscovery, discover_policy, dmarc_name
from .external import ExternalCheck, ExternalStatus, verify_destination
from .record import Classification, DmarcRecord, Policy, ProblemKind, PsdFlag, parse_record


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    severity: Severity
    message: str
    fix: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {
            "id": self.id,
            "severity": str(self.severity),
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class DmarcReport:
    """The result of checking one domain's DMARC setup."""

    domain: str
    discovery: PolicyDiscovery
    external: tuple[ExternalCheck, ...] = ()
    findings: tuple[Finding, ...] = field(default=())

    @property
    def record(self) -> DmarcRecord | None:
        return self.discovery.record

    @property
    def ok(self) -> bool:
        """No error-severity finding: a record applies, is usable and its reports can flow."""
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def status(self) -> str:
        """``fail`` with an error, ``warn`` with a warning, else ``ok``."""
        severities = {f.severity for f in self.findings}
        if Severity.ERROR in severities:
            return "fail"
        if Severity.WARNING in severities:
            return "warn"
        return "ok"

    def as_json(self) -> dict[str, object]:
        record = self.discovery.record
        return {
            "domain": self.domain,
            "status": self.status,
            "discovery": self.discovery.as_json(),
            "policy": record.as_json() if record is not None else None,
            "external": [e.as_json() for e in self.external],
            "findings": [f.as_json() for f in self.findings],
        }


MAX_EXTERNAL_CHECKS = 10
"""Report URIs verified per check; the rest are reported as not checked."""


def suggest(record: DmarcRecord | None, changes: dict[str, str | None]) -> str:
    """A record text with ``changes`` applied (None removes a tag), v first and p second.

    Removed RFC 7489 tags, unknown tags and invalid entries are dropped, so the
    suggestion is always a clean RFC 9989 record.
    """
    tags: dict[str, str] = {}
    if record is not None:
        valid = {
            "p": record.p,
            "sp": record.sp,
            "np": record.np,
            "adkim": record.adkim,
            "aspf": record.aspf,
            "psd": record.psd,
        }
        for name, _value in record.tags[1:]:
            if name in valid and valid[name] is not None:
                tags[name] = str(valid[name])
            elif name == "t" and record.t is not None:
                tags[name] = "y" if record.t else "n"
            elif name == "fo" and record.fo is not None:
                tags[name] = ":".join(record.fo)
            elif name in ("rua", "ruf"):
                uris = record.rua if name == "rua" else record.ruf
                if uris:
                    tags[name] = ",".join(u.uri for u in uris)
    for name, change in changes.items():
        if change is None:
            tags.pop(name, None)
        else:
            tags[name] = change
    ordered = ["v=DMARC1"]
    if "p" in tags:
        ordered.append(f"p={tags.pop('p')}")
    ordered.extend(f"{name}={value}" for name, value in tags.items())
    return "; ".join(ordered)


def _publish(domain: str, text: str) -> str:
    return f'publish {dmarc_name(domain)}. TXT "{text}"'


async def check_domain(domain: str, resolver: Resolver) -> DmarcReport:
    """Look up and judge the DMARC setup of ``domain`` (the doctor's DMARC section)."""
    cache: LookupCache = {}
    found = await discover_policy(domain, resolver, cache)
    findings: list[Finding] = []
    name = found.domain
    default_rua = f"mailto:dmarc-reports@{name}"

    if found.status is DiscoveryStatus.INVALID_DOMAIN:
        findings.append(
            Finding(
                "dmarc-invalid-domain",
                Severity.ERROR,
                found.error or f"{domain!r} is not a domain",
                "give a domain name such as example.com",
            )
        )
        return DmarcReport(name, found, (), tuple(findings))

    own = found.walk.lookups[0] if found.walk.lookups else None
    if own is not None:
        for text in own.other_texts:
            why = parse_record(text).reason
            findings.append(
                Finding(
                    "dmarc-not-dmarc-text",
                    Severity.WARNING,
                    f"{own.name} has a TXT record that is not DMARC and is ignored ({why}): "
                    f"{text!r}",
                    "a DMARC record starts with exactly v=DMARC1 (upper case); "
                    "remove other records from this name",
                )
            )
    for item in found.walk.lookups:
        if item.multiple:
            findings.append(
                Finding(
                    "dmarc-multiple-records",
                    # An error at the checked name; above it, another owner's problem
                    # that still changes which record applies.
                    Severity.ERROR if item.domain == name else Severity.WARNING,
                    f"{item.name} has {len(item.dmarc_texts)} DMARC records; receivers ignore "
                    "all of them (RFC 9989 §4.10)",
                    f"keep exactly one TXT record starting with v=DMARC1 at {item.name}",
                )
            )

    if found.status is DiscoveryStatus.TEMPERROR:
        findings.append(
            Finding(
                "dmarc-dns-error",
                Severity.ERROR,
                f"the DMARC lookup failed: {found.error}; receivers cannot tell whether "
                "a policy exists (temperror)",
                "make sure every authoritative server of the zone answers TXT queries "
                "for the _dmarc name",
            )
        )
        return DmarcReport(name, found, (), tuple(findings))

    if found.status is DiscoveryStatus.NONE or found.record is None:
        findings.append(
            Finding(
                "dmarc-no-record",
                Severity.ERROR,
                f"no DMARC record for {name} (none at {dmarc_name(name)} nor at any parent "
                "the tree walk queried): receivers apply no DMARC to your mail",
                _publish(name, f"v=DMARC1; p=none; rua={default_rua}")
                + ", read the aggregate reports, then move to p=quarantine and p=reject",
            )
        )
        return DmarcReport(name, found, (), tuple(findings))

    record = found.record
    if not found.at_author_domain:
        where = "a public suffix operator's" if found.from_public_suffix else "the"
        findings.append(
            Finding(
                "dmarc-inherited",
                Severity.WARNING if found.from_public_suffix else Severity.INFO,
                f"{name} has no record of its own; {where} record at {found.record_name} "
                "applies (its sp/np policy for subdomains)",
                _own_record_fix(found.organizational_domain or name)
                if found.from_public_suffix
                else None,
            )
        )
    if found.organizational_error:
        findings.append(
            Finding(
                "dmarc-org-domain-unknown",
                Severity.WARNING,
                f"the organizational domain could not be determined: {found.organizational_error}",
                "make sure the parent zones answer TXT queries for their _dmarc names",
            )
        )
    elif (
        found.organizational_domain
        and "." not in found.organizational_domain
        and found.organizational_domain != name
    ):
        findings.append(
            Finding(
                "dmarc-org-domain-too-high",
                Severity.WARNING,
                f"a record at {dmarc_name(found.organizational_domain)} without psd=y makes "
                f"{found.organizational_domain} your organizational domain: relaxed alignment "
                "then spans unrelated domains (RFC 9989 §11.8)",
                "add psd=n to your own record so that your domain is its own organizational domain",
            )
        )

    if found.from_public_suffix:
        # The public suffix operator's record is not ours to fix: the one finding
        # that matters is "publish your own" (dmarc-inherited above).
        return DmarcReport(name, found, (), tuple(findings))
    findings.extend(_record_findings(found, record, default_rua))
    external: tuple[ExternalCheck, ...] = ()
    if record.usable and found.record_domain:
        external, more = await _external_checks(found, record, resolver, cache)
        findings.extend(more)
    return DmarcReport(name, found, external, tuple(findings))


def _own_record_fix(org: str) -> str:
    """Publish a record of your own at your organizational domain (RFC 9989 §5.1.4)."""
    return (
        _publish(org, f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{org}")
        + " so that your own policy and reports apply, then move to p=quarantine and p=reject"
    )


def _record_findings(
    found: PolicyDiscovery, record: DmarcRecord, default_rua: str
) -> list[Finding]:
    findings: list[Finding] = []
    where = found.record_name
    target = found.record_domain or found.domain
    if record.classification is Classification.INVALID:
        fix = "fix the record: " + _publish(target, suggest(record, {"p": record.p or "none"}))
        findings.append(
            Finding(
                "dmarc-invalid-record",
                Severity.ERROR,
                f"{where}: {record.reason}; receivers give DMARC permerror and apply nothing",
                fix,
            )
        )
        return findings
    if record.leading_whitespace:
        findings.append(
            Finding(
                "dmarc-leading-space",
                Severity.WARNING,
                f"{where}: the record starts with whitespace; strict receivers ignore it",
                _publish(target, record.text.strip(" \t")),
            )
        )
    if record.p_fallback:
        findings.append(
            Finding(
                "dmarc-policy-invalid",
                Severity.ERROR,
                f"{where}: an invalid p, sp or np value: receivers treat the whole record "
                "as p=none (RFC 9989 §4.10.1)",
                _publish(target, suggest(record, {"p": str(record.p or Policy.NONE)})),
            )
        )
    for problem in record.problems:
        if problem.kind is ProblemKind.REMOVED:
            replacement = next(
                (r.replacement for r in record.removed if r.tag == problem.tag), None
            )
            changes: dict[str, str | None] = {}
            if replacement == "t=y" and record.t is None:
                changes["t"] = "y"
            findings.append(
                Finding(
                    f"dmarc-removed-{problem.tag}",
                    Severity.WARNING,
                    f"{where}: {problem.tag}={problem.value}: {problem.message}",
                    _publish(target, suggest(record, changes)),
                )
            )
        elif problem.kind is ProblemKind.OBSOLETE:
            findings.append(
                Finding(
                    "dmarc-obsolete-size",
                    Severity.WARNING,
                    f"{where}: {problem.message}",
                    _publish(target, suggest(record, {})),
                )
            )
        elif problem.kind is ProblemKind.UNKNOWN:
            findings.append(
                Finding(
                    "dmarc-unknown-tag",
                    Severity.INFO,
                    f"{where}: {problem.message}",
                    "remove it unless a receiver you care about documents it",
                )
            )
        elif problem.kind is ProblemKind.INVALID_VALUE and problem.tag not in ("p", "sp", "np"):
            findings.append(
                Finding(
                    f"dmarc-invalid-{problem.tag}",
                    Severity.WARNING,
                    f"{where}: {problem.message}",
                    _publish(target, suggest(record, {})),
                )
            )
        elif problem.kind is ProblemKind.SYNTAX:
            findings.append(
                Finding(
                    "dmarc-syntax",
                    Severity.WARNING,
                    f"{where}: {problem.message}; that part is ignored",
                    _publish(target, suggest(record, {})),
                )
            )

    if record.psd is PsdFlag.YES and found.at_author_domain:
        findings.append(
            Finding(
                "dmarc-psd-y",
                Severity.WARNING,
                f"{where}: psd=y declares {target} a public suffix (RFC 9989 §5.2): each of "
                "its subdomains becomes its own organizational domain and relaxed alignment "
                "between them stops working",
                _publish(target, suggest(record, {"psd": None}))
                + " (or psd=n to make it an organizational domain)",
            )
        )
    if record.psd is PsdFlag.YES and record.ruf:
        findings.append(
            Finding(
                "dmarc-psd-ruf",
                Severity.WARNING,
                f"{where}: a public suffix record with ruf: records of multi-organization "
                "public suffixes MUST NOT ask for failure reports (RFC 9989 §10.2), which "
                "would carry other organizations' mail",
                _publish(target, suggest(record, {"ruf": None, "fo": None})),
            )
        )
    if record.p is None and not record.p_fallback:
        findings.append(
            Finding(
                "dmarc-p-missing",
                Severity.WARNING,
                f"{where}: no p tag: RFC 9989 reads it as p=none, and RFC 7489 receivers "
                "may ignore a record without p",
                _publish(target, suggest(record, {"p": "none"})),
            )
        )
    elif record.policy is Policy.NONE and not record.p_fallback:
        findings.append(
            Finding(
                "dmarc-p-none",
                Severity.WARNING,
                f"{where}: p=none is monitoring mode: receivers deliver mail that fails DMARC "
                "(spoofed mail included) as usual",
                "staged rollout (RFC 9989 §5.1, §7.4): keep p=none with rua until the "
                "aggregate reports show all your own mail passing with aligned SPF or DKIM; "
                "then "
                + _publish(target, suggest(record, {"p": "quarantine"}))
                + " for at least a month; then p=reject",
            )
        )
    elif record.policy is Policy.QUARANTINE:
        findings.append(
            Finding(
                "dmarc-p-quarantine",
                Severity.INFO,
                f"{where}: p=quarantine: failing mail goes to spam",
                "when the reports stay clean for a month, "
                + _publish(target, suggest(record, {"p": "reject"})),
            )
        )
    order = {Policy.NONE: 0, Policy.QUARANTINE: 1, Policy.REJECT: 2}
    if record.sp is not None and order[record.sp] < order[record.policy]:
        findings.append(
            Finding(
                "dmarc-sp-weaker",
                Severity.WARNING,
                f"{where}: sp={record.sp} is weaker than p={record.policy}: mail from "
                f"subdomains of {target} is less protected than {target} itself",
                _publish(target, suggest(record, {"sp": None})) + " (subdomains then follow p)",
            )
        )
    if record.np is not None and order[record.np] < order[record.subdomain_policy]:
        findings.append(
            Finding(
                "dmarc-np-weaker",
                Severity.WARNING,
                f"{where}: np={record.np} is weaker than the subdomain policy: spoofers can "
                "use made-up subdomains, which nobody legitimately sends from",
                _publish(target, suggest(record, {"np": "reject"})),
            )
        )
    if record.testing and record.policy is not Policy.NONE:
        lowered = record.policy.relaxed_one_level()
        findings.append(
            Finding(
                "dmarc-testing",
                Severity.WARNING,
                f"{where}: {'t=y' if record.t else 'pct=0'} (testing): receivers apply "
                f"p={record.policy} as {lowered} (RFC 9989 §4.7)",
                "when the reports show your mail passing, "
                + _publish(target, suggest(record, {"t": None})),
            )
        )
    if not record.rua:
        findings.append(
            Finding(
                "dmarc-no-rua",
                Severity.WARNING,
                f"{where}: no rua: receivers send no aggregate reports, so you cannot see "
                "who sends mail as your domain or whether your own mail passes",
                _publish(target, suggest(record, {"rua": default_rua})),
            )
        )
    for uri in record.rua:
        if not uri.is_mailto:
            findings.append(
                Finding(
                    "dmarc-rua-not-mailto",
                    Severity.WARNING,
                    f"{where}: rua {uri.uri} uses {uri.scheme}: receivers only have to "
                    "support mailto (RFC 9989 §4.7), so most send nothing there",
                    "add a mailto: address to rua",
                )
            )
    if record.ruf:
        findings.append(
            Finding(
                "dmarc-ruf",
                Severity.INFO,
                f"{where}: ruf asks for failure reports; few receivers send them, and "
                "they can contain message content (RFC 9989 §10.2)",
                None,
            )
        )
    elif record.fo is not None:
        findings.append(
            Finding(
                "dmarc-fo-without-ruf",
                Severity.INFO,
                f"{where}: fo is ignored without ruf (RFC 9989 §4.7)",
                _publish(target, suggest(record, {"fo": None})),
            )
        )
    p_index = record.tag_names.index("p") if "p" in record.tag_names else -1
    if p_index > 1:
        findings.append(
            Finding(
                "dmarc-p-not-second",
                Severity.INFO,
                f"{where}: p is not the second tag; RFC 9989 allows any order, some "
                "RFC 7489 receivers expect p right after v",
                _publish(target, suggest(record, {})),
            )
        )
    return findings


async def _external_checks(
    found: PolicyDiscovery, record: DmarcRecord, resolver: Resolver, cache: LookupCache
) -> tuple[tuple[ExternalCheck, ...], list[Finding]]:
    findings: list[Finding] = []
    policy_domain = found.record_domain
    assert policy_domain is not None
    if found.organizational_domain is None:
        return (), findings
    if policy_domain in (found.domain, found.organizational_domain):
        policy_org = found.organizational_domain
    else:
        policy_org = policy_domain  # a public suffix's record is its own organization
    uris = [("rua", u) for u in record.rua] + [("ruf", u) for u in record.ruf]
    checked = uris[:MAX_EXTERNAL_CHECKS]
    if len(uris) > len(checked):
        findings.append(
            Finding(
                "dmarc-too-many-uris",
                Severity.WARNING,
                f"{len(uris)} report URIs; only the first {len(checked)} were verified",
                "one or two destinations per tag are plenty",
            )
        )
    results = await asyncio.gather(
        *(
            verify_destination(tag, uri, policy_domain, policy_org, resolver, cache)
            for tag, uri in checked
        )
    )
    for check in results:
        host = check.uri.host
        if check.status is ExternalStatus.UNAUTHORIZED:
            findings.append(
                Finding(
                    "dmarc-external-unauthorized",
                    Severity.ERROR,
                    f"{check.tag} {check.uri.uri} is outside {policy_org} and {host} has not "
                    f"authorized it: receivers send no reports there ({check.detail})",
                    f'ask {host} to publish {check.name}. TXT "v=DMARC1" '
                    "(or use an address in your own domain)",
                )
            )
        elif check.status is ExternalStatus.OVERRIDE_REJECTED:
            findings.append(
                Finding(
                    "dmarc-external-override",
                    Severity.ERROR,
                    f"{check.tag} {check.uri.uri}: {check.detail}",
                    f"{host} must override only with URIs at {host}",
                )
            )
        elif check.status is ExternalStatus.TOO_LONG:
            findings.append(
                Finding(
                    "dmarc-external-too-long",
                    Severity.ERROR,
                    f"{check.tag} {check.uri.uri}: {check.detail}",
                    "use a report address in your own domain, or a shorter one",
                )
            )
        elif check.status is ExternalStatus.TEMPERROR:
            findings.append(
                Finding(
                    "dmarc-external-dns-error",
                    Severity.WARNING,
                    f"{check.tag} {check.uri.uri}: could not verify ({check.detail})",
                    "run the check again; if it persists the destination's DNS is broken",
                )
            )
        elif check.status is ExternalStatus.NO_HOST:
            findings.append(
                Finding(
                    "dmarc-external-no-host",
                    Severity.WARNING,
                    f"{check.tag} {check.uri.uri}: {check.detail}",
                    "use mailto:name@domain",
                )
            )
        elif check.status is ExternalStatus.AUTHORIZED:
            findings.append(
                Finding(
                    "dmarc-external-authorized",
                    Severity.INFO,
                    f"{check.tag} {check.uri.uri}: {check.detail} ({check.name})",
                    None,
                )
            )
    return tuple(results), findings
