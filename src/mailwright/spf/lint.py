"""A publisher's view of an SPF policy: what every receiver will run into, for any client.

:func:`lint` walks the record and everything it includes or redirects to and
returns a :class:`LintReport` (data, never printed): the include/redirect tree
with the DNS-querying terms per branch and in total (RFC 7208 §4.6.4), void
lookups, and findings with an id, a severity, a message and a fix. It is the
Python API the doctor (``mailwright check``) uses and what ``mailwright spf
lint`` renders.

Counting is the worst case a receiver can meet: every DNS-querying term before
the first ``all`` is counted, since a client that matches nothing evaluates them
all. Terms whose target needs the client's data (macros such as ``%{i}``) are
counted but not followed.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ..dns import DnsResult, Outcome, Resolver, name_problem, to_ascii
from .evaluator import MAX_DNS_TERMS, MAX_MX_NAMES, MAX_VOID_LOOKUPS, domain_problem
from .macro import MacroContext, MacroString, expand_domain
from .record import Mechanism, Record, SpfSyntaxError, is_spf_record, parse_record

MAX_RECORD_LENGTH = 450
"""RFC 7208 §3.4: keep records small enough that the answer fits in 512 octets of UDP."""
_ANY_IP = ipaddress.IPv4Address("192.0.2.1")  # unused by the %{d}-only specs expanded here
MAX_NODES = 60
"""Stop following includes after this many records: a bound on the linter's own work."""


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class LintFinding:
    """One problem. ``permerror`` says whether it makes receivers return permerror."""

    id: str
    severity: Severity
    message: str
    fix: str = ""
    domain: str | None = None
    term: str | None = None
    offset: int | None = None
    permerror: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": str(self.severity),
            "message": self.message,
            "fix": self.fix,
            "domain": self.domain,
            "term": self.term,
            "offset": self.offset,
            "permerror": self.permerror,
        }


@dataclass(slots=True)
class LintNode:
    """One record in the include/redirect tree."""

    domain: str
    via: str | None
    """The term that led here (``include:x``, ``redirect=x``); None for the root."""
    record: str | None = None
    lookups: int = 0
    """DNS-querying terms in this record (including the include/redirect terms)."""
    void_lookups: int = 0
    children: list[LintNode] = field(default_factory=list)
    status: str = "ok"
    """ok, none (no SPF record), multiple, syntax, error (DNS failure), loop, not-followed."""

    @property
    def total_lookups(self) -> int:
        return self.lookups + sum(c.total_lookups for c in self.children)

    @property
    def total_void(self) -> int:
        return self.void_lookups + sum(c.total_void for c in self.children)

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "via": self.via,
            "record": self.record,
            "status": self.status,
            "lookups": self.lookups,
            "total_lookups": self.total_lookups,
            "void_lookups": self.void_lookups,
            "children": [c.to_json() for c in self.children],
        }


@dataclass(slots=True)
class LintReport:
    domain: str
    tree: LintNode
    findings: list[LintFinding]
    records: list[str]
    """Every v=spf1 TXT record at the domain (more than one is a permerror)."""
    spf_rr: list[str]
    """Records of the obsolete SPF RR type (99) at the domain."""

    @property
    def record(self) -> str | None:
        return self.records[0] if len(self.records) == 1 else None

    @property
    def total_lookups(self) -> int:
        return self.tree.total_lookups

    @property
    def void_lookups(self) -> int:
        return self.tree.total_void

    @property
    def permerror(self) -> bool:
        """A receiver evaluating this policy would (for some or all clients) get permerror."""
        return any(f.permerror for f in self.findings)

    @property
    def dns_error(self) -> bool:
        return any(f.id == "dns-error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """The ``mailwright spf lint --json`` schema (README.md, "SPF")."""
        return {
            "domain": self.domain,
            "record": self.record,
            "records": self.records,
            "spf_rr_type": self.spf_rr,
            "permerror": self.permerror,
            "dns_lookups": self.total_lookups,
            "dns_lookup_limit": MAX_DNS_TERMS,
            "void_lookups": self.void_lookups,
            "void_lookup_limit": MAX_VOID_LOOKUPS,
            "tree": self.tree.to_json(),
            "findings": [f.to_json() for f in self.findings],
        }


class _Linter:
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.findings: list[LintFinding] = []
        self.nodes = 0
        self._cache: dict[tuple[str, str], asyncio.Task[DnsResult[Any]]] = {}

    def query(self, name: str, rdtype: str) -> asyncio.Task[DnsResult[Any]]:
        key = (name.lower(), rdtype)
        task = self._cache.get(key)
        if task is None:
            task = asyncio.ensure_future(self.resolver.query(name, rdtype))
            self._cache[key] = task
        return task

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.findings.append(LintFinding(*args, **kwargs))

    async def node(self, domain: str, via: str | None, path: tuple[str, ...]) -> LintNode:
        node = LintNode(domain, via)
        self.nodes += 1
        problem = domain_problem(domain)
        if problem is not None:
            node.status = "none"
            self.add(
                "bad-domain",
                Severity.ERROR,
                f"{domain!r} cannot be checked: {problem}",
                "use a fully qualified domain name",
                domain,
                via,
                permerror=via is not None,
            )
            return node
        domain = node.domain = to_ascii(domain.rstrip("."))
        if domain.lower() in path:
            node.status = "loop"
            self.add(
                "loop",
                Severity.ERROR,
                f"{via} leads back to {domain}: the evaluation loops until the limit of "
                f"{MAX_DNS_TERMS} lookups and ends in permerror",
                f"remove {via}",
                path[-1],
                via,
                permerror=True,
            )
            return node
        if self.nodes > MAX_NODES:
            node.status = "not-followed"
            return node
        txt = await self.query(domain, "TXT")
        if txt.is_error:
            node.status = "error"
            self.add(
                "dns-error",
                Severity.ERROR,
                f"TXT lookup for {domain} failed ({txt.error}): receivers get temperror",
                "check the domain's name servers",
                domain,
                via,
            )
            return node
        records = [r for r in txt.records if is_spf_record(r)] if txt.ok else []
        if not records:
            node.status = "none"
            if via is None:
                self.add(
                    "no-record",
                    Severity.ERROR,
                    f"{domain} publishes no SPF record: receivers get none",
                    f'publish a TXT record at {domain}, e.g. "v=spf1 mx -all"',
                    domain,
                )
            else:
                self.add(
                    "target-without-record",
                    Severity.ERROR,
                    f"{via}: {domain} publishes no SPF record, which is a permerror "
                    "(RFC 7208 §5.2, §6.1)",
                    f"remove {via} or publish an SPF record at {domain}",
                    path[-1] if path else domain,
                    via,
                    permerror=True,
                )
            return node
        if len(records) > 1:
            node.status = "multiple"
            self.add(
                "multiple-records",
                Severity.ERROR,
                f"{domain} publishes {len(records)} SPF records; receivers return permerror "
                "(RFC 7208 §4.5)",
                "merge them into one TXT record starting with v=spf1",
                domain,
                via,
                permerror=True,
            )
            return node
        node.record = text = records[0]
        if len(text.encode()) > MAX_RECORD_LENGTH:
            self.add(
                "record-too-long",
                Severity.WARNING,
                f"the record of {domain} is {len(text.encode())} octets; answers over 512 "
                "octets need TCP or EDNS (RFC 7208 §3.4)",
                "shorten it, e.g. move networks into an included record",
                domain,
            )
        try:
            record = parse_record(text)
        except SpfSyntaxError as exc:
            node.status = "syntax"
            self.add(
                "syntax",
                Severity.ERROR,
                f"syntax error in the record of {domain}: {exc.message} "
                f"(term {exc.term!r} at offset {exc.offset})",
                "correct the term (RFC 7208 §12 has the grammar)",
                domain,
                exc.term,
                exc.offset,
                permerror=True,
            )
            return node
        await self.terms(node, record, (*path, domain.lower()))
        return node

    async def terms(self, node: LintNode, record: Record, path: tuple[str, ...]) -> None:
        domain = node.domain
        follow: list[tuple[str, str]] = []
        void_checks: list[tuple[Mechanism, asyncio.Task[DnsResult[Any]], str]] = []
        reached_all = False
        for term in record.terms:
            if not isinstance(term, Mechanism):
                continue
            if reached_all:
                self.add(
                    "after-all",
                    Severity.WARNING,
                    f"{term.text} comes after 'all' and is never evaluated (RFC 7208 §5.1)",
                    "move it before the 'all' or remove it",
                    domain,
                    term.text,
                    term.offset,
                )
                continue
            if term.name == "all":
                reached_all = True
                self._check_all(term, domain, node.via)
                continue
            if term.name == "ptr":
                self.add(
                    "ptr",
                    Severity.WARNING,
                    f"{term.text}: the ptr mechanism SHOULD NOT be used (RFC 7208 §5.5): "
                    "it is slow, unreliable and some receivers skip it",
                    "list the sending addresses with ip4:/ip6: or a:",
                    domain,
                    term.text,
                    term.offset,
                )
            if not term.queries_dns:
                continue
            node.lookups += 1
            target = _static_target(term.domain_spec, domain)
            if target is None:
                if term.name == "include":
                    self._not_followed(term.text, term.offset, domain)
                continue  # depends on the client (macros): counted, not followed
            if term.name == "include":
                follow.append((target, term.text))
            elif term.name == "a" and name_problem(target) is None:
                # Void only when the name has neither A nor AAAA: some client gets data.
                void_checks.append((term, self.query(target, "A"), target))
                void_checks.append((term, self.query(target, "AAAA"), target))
            elif term.name == "mx" and name_problem(target) is None:
                void_checks.append((term, self.query(target, "MX"), target))
            elif term.name == "exists" and name_problem(target) is None:
                void_checks.append((term, self.query(target, "A"), target))
        redirect = record.redirect
        if redirect is not None:
            if record.has_all:
                self.add(
                    "redirect-ignored",
                    Severity.WARNING,
                    f"{redirect.text} is ignored because the record has an 'all' (RFC 7208 §6.1)",
                    "remove either the redirect or the all",
                    domain,
                    redirect.text,
                    redirect.offset,
                )
            else:
                node.lookups += 1
                target = _static_target(redirect.value, domain)
                if target is not None:
                    follow.append((target, redirect.text))
                else:
                    self._not_followed(redirect.text, redirect.offset, domain)
        elif not reached_all and node.via is None:
            self.add(
                "no-all",
                Severity.WARNING,
                "the record ends without 'all' or 'redirect': unmatched clients get neutral",
                "end the record with -all (or ~all while testing)",
                domain,
            )
        for mod in record.unknown_modifiers:
            self.add(
                "unknown-modifier",
                Severity.INFO,
                f"{mod.text}: unknown modifier, ignored by receivers (RFC 7208 §6)",
                "remove it unless a receiver you care about uses it",
                domain,
                mod.text,
                mod.offset,
            )
        await self._voids(node, void_checks)
        children = await asyncio.gather(*(self.node(target, via, path) for target, via in follow))
        node.children.extend(children)

    def _not_followed(self, text: str, offset: int, domain: str) -> None:
        self.add(
            "macro-target",
            Severity.INFO,
            f"{text}: the target depends on the client (macros), so its record is not "
            "followed and its lookups are not in the total",
            "",
            domain,
            text,
            offset,
        )

    def _check_all(self, term: Mechanism, domain: str, via: str | None) -> None:
        if via is not None and via.startswith("include"):
            return  # the qualifier of an included record's all does not decide anything
        if term.qualifier.value == "+":
            self.add(
                "pass-all",
                Severity.ERROR,
                f"{term.text}: every host on the internet may send as {domain}",
                "end the record with -all (or ~all while testing)",
                domain,
                term.text,
                term.offset,
            )
        elif term.qualifier.value == "?":
            self.add(
                "neutral-all",
                Severity.WARNING,
                f"{term.text}: unlisted hosts get neutral, which protects nothing",
                "end the record with -all (or ~all while testing)",
                domain,
                term.text,
                term.offset,
            )

    async def _voids(
        self, node: LintNode, checks: list[tuple[Mechanism, asyncio.Task[DnsResult[Any]], str]]
    ) -> None:
        results = await asyncio.gather(*(task for _, task, _ in checks))
        by_term: dict[int, list[DnsResult[Any]]] = {}
        terms: dict[int, tuple[Mechanism, str]] = {}
        for (term, _, target), res in zip(checks, results, strict=True):
            by_term.setdefault(term.offset, []).append(res)
            terms[term.offset] = (term, target)
        for offset, answers in by_term.items():
            term, target = terms[offset]
            if any(r.is_error for r in answers):
                self.add(
                    "dns-error",
                    Severity.ERROR,
                    f"{term.text}: lookup for {target} failed ({answers[0].error}); "
                    "receivers get temperror",
                    "check the name servers of " + target,
                    node.domain,
                    term.text,
                    offset,
                )
                continue
            if all(r.is_void for r in answers):
                node.void_lookups += 1
                what = {"a": "no address", "mx": "no MX records", "exists": "no A record"}
                nx = any(r.outcome is Outcome.NXDOMAIN for r in answers)
                self.add(
                    "void-lookup",
                    Severity.WARNING,
                    f"{term.text}: {target} has {what[term.name]}"
                    f"{' (no such domain)' if nx else ''}: a void lookup "
                    f"(receivers allow {MAX_VOID_LOOKUPS})",
                    f"remove {term.text} or publish the records it expects",
                    node.domain,
                    term.text,
                    offset,
                )
                continue
            if term.name == "mx":
                mx = [r for r in answers if r.ok]
                if mx and len(mx[0].records) > MAX_MX_NAMES:
                    self.add(
                        "too-many-mx",
                        Severity.ERROR,
                        f"{term.text}: {target} has {len(mx[0].records)} MX records; more "
                        f"than {MAX_MX_NAMES} is a permerror (RFC 7208 §4.6.4)",
                        "use ip4:/ip6: or a: for the senders instead of mx",
                        node.domain,
                        term.text,
                        offset,
                        permerror=True,
                    )


def _static_target(spec: MacroString | None, domain: str) -> str | None:
    """The target name when it does not depend on the client; None when it does."""
    if spec is None:
        return domain
    if spec.letters - {"d"}:
        return None
    ctx = MacroContext(sender=f"postmaster@{domain}", domain=domain, ip=_ANY_IP, helo=domain)
    return expand_domain(spec, ctx)


async def lint(domain: str, resolver: Resolver) -> LintReport:
    """Lint the SPF policy of ``domain``; never raises for DNS or record content."""
    domain = domain.strip().rstrip(".")
    linter = _Linter(resolver)
    ok = domain_problem(domain) is None
    if ok:
        domain = to_ascii(domain)
    spf_rr_task = linter.query(domain, "SPF") if ok else None
    tree = await linter.node(domain, None, ())
    txt = linter._cache.get((domain.lower(), "TXT"))
    records: list[str] = []
    if txt is not None and txt.done():
        records = [r for r in txt.result().records if is_spf_record(r)]
    spf_rr: list[str] = []
    if spf_rr_task is not None:
        res = await spf_rr_task
        spf_rr = list(res.records) if res.ok else []
    if spf_rr:
        linter.add(
            "spf-rr-type",
            Severity.WARNING,
            f"{domain} still publishes the SPF RR type (99), which RFC 7208 §3.1 "
            "discontinued; receivers only read TXT",
            "delete the type SPF record (keep the TXT record)",
            domain,
        )
    total = tree.total_lookups
    if total > MAX_DNS_TERMS:
        linter.add(
            "too-many-lookups",
            Severity.ERROR,
            f"the policy needs {total} DNS-querying terms; receivers stop at {MAX_DNS_TERMS} "
            "with permerror (RFC 7208 §4.6.4)",
            "replace includes and a/mx with ip4:/ip6: networks, or drop unused includes",
            domain,
            permerror=True,
        )
    void = tree.total_void
    if void > MAX_VOID_LOOKUPS:
        linter.add(
            "too-many-void",
            Severity.ERROR,
            f"{void} terms look up names that do not exist or have no data; receivers stop "
            f"after {MAX_VOID_LOOKUPS} with permerror (RFC 7208 §4.6.4)",
            "remove the terms whose names have no records",
            domain,
            permerror=True,
        )
    pending = [t for t in linter._cache.values() if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    findings = sorted(linter.findings, key=lambda f: order[f.severity])
    return LintReport(domain, tree, findings, records, spf_rr)


__all__ = ["LintFinding", "LintNode", "LintReport", "Severity", "lint"]
