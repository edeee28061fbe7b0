"""Authentication of mail arriving for our domains: SPF, DKIM, DMARC and the verdict.

The SMTP server calls :func:`check_envelope` once MAIL FROM is known (SPF for
the HELO and MAIL FROM identities, RFC 7208 §2.3/§2.4, run concurrently) and
:func:`check_message` after DATA (DKIM for every signature, RFC 6376 §6; DMARC
for the RFC5322.From domain, RFC 9989 §5.3). :func:`apply_verdict` removes any
incoming Authentication-Results field that claims our authserv-id (RFC 8601
§5) and prepends our own, one field for all methods.

The DMARC disposition becomes an action, unless ``report-only`` is configured:
``reject`` → ``550 5.7.1`` at the end of DATA, ``quarantine`` → the
recipient's Junk folder, otherwise delivery as usual. RFC 9989 §8 forbids
rejecting on ``p=reject`` alone: we reject only mail that has no passing
identity of any domain (a direct forgery) and send the rest to Junk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from . import authres
from .arc import ArcResult, ArcStatus, verify_chain
from .config import Config
from .dkim import DkimResult, verify_message
from .dkim.body import BodyDigests
from .dmarc import DmarcResult, DmarcStatus, Policy, evaluate
from .dmarc_reports.observations import (
    OBSERVATIONS_DB,
    Observation,
    Observations,
    ObservationStore,
    PostgresObservationStore,
)
from .dmarc_reports.parse import ReportRefused, reports_from_message
from .dmarc_reports.received import ReportStore
from .dns import Resolver, to_ascii
from .dns.names import is_hostname
from .log import EventLogger
from .message import address_domain, authors
from .setup.records import DMARC_REPORT_LOCALPART
from .spf import SpfResult, check_helo, check_mail_from

Action = Literal["deliver", "junk", "reject"]
T = TypeVar("T")

REPORT_LOCALPART = DMARC_REPORT_LOCALPART
"""Mail to this local part of any of our domains is scanned for aggregate reports
(``mailwright init`` publishes ``rua=mailto:dmarc-reports@DOMAIN``)."""

_SPF_SCOPE = {"mailfrom": "mfrom", "helo": "helo"}
"""RFC 9990 SPFDomainScope names for our SPF identities."""


@dataclass(frozen=True)
class EnvelopeAuth:
    """SPF results known at MAIL FROM time."""

    client_ip: str
    helo: str
    mail_from: str
    spf_helo: SpfResult | None
    spf_mailfrom: SpfResult

    @property
    def spf_for_dmarc(self) -> SpfResult:
        """RFC 9989 §4.4.2: the MAIL FROM identity, or HELO for the null reverse path.

        ``check_mail_from`` already evaluates ``postmaster@<helo>`` for ``<>``.
        """
        return self.spf_mailfrom


@dataclass(frozen=True)
class InboundVerdict:
    envelope: EnvelopeAuth
    dkim: tuple[DkimResult, ...]
    dmarc: tuple[DmarcResult, ...]
    """One per distinct From domain (usually exactly one)."""
    from_domains: tuple[str, ...]
    action: Action
    reply: str | None
    """The SMTP reply for ``reject``."""
    header: str
    """The complete Authentication-Results field, CRLF-terminated."""
    notes: tuple[str, ...] = field(default=())
    arc: ArcResult | None = None
    trusted_sealer: str | None = None
    """The trusted ARC sealer whose verdict let mail failing DMARC through (local policy)."""

    @property
    def dmarc_word(self) -> str:
        return str(self.dmarc[0].result) if self.dmarc else "none"


async def check_envelope(
    client_ip: str,
    helo: str,
    mail_from: str,
    resolver: Resolver,
    *,
    receiver: str,
) -> EnvelopeAuth:
    """SPF for both identities, concurrently. A HELO that is an address literal is not checked."""
    helo_is_name = bool(helo) and not helo.startswith("[") and "." in helo
    mailfrom_task = check_mail_from(
        client_ip, mail_from, helo or "unknown", resolver, receiver=receiver
    )
    if helo_is_name:
        spf_helo, spf_mailfrom = await asyncio.gather(
            check_helo(client_ip, helo, resolver, receiver=receiver), mailfrom_task
        )
    else:
        spf_helo, spf_mailfrom = None, await mailfrom_task
    return EnvelopeAuth(client_ip, helo, mail_from, spf_helo, spf_mailfrom)


MAX_AUTHOR_DOMAINS = 5
"""RFC 9989 §11.5: limit the Author Domains evaluated, each costs up to 8 DNS queries."""


@dataclass(frozen=True)
class AuthorDomains:
    """The RFC5322.From domains DMARC evaluates, and why the field is suspicious if it is."""

    domains: tuple[str, ...]
    problem: str | None = None
    suspicious: bool = False
    """A missing, repeated, unparsable or overlong From: RFC 9989 §11.5 calls these a
    threat; such mail is never delivered as if DMARC did not apply."""


def author_domains(message: bytes) -> AuthorDomains:
    """The Author Domains of a message (RFC 9989 §3.2.2, §11.5; RFC 5322 §3.6)."""
    found = authors(message)
    if found.problem is not None:
        return AuthorDomains((), found.problem, suspicious=True)
    domains: list[str] = []
    bad: list[str] = []
    for address in found.addresses:
        try:
            ascii_domain = to_ascii(address_domain(address) or "")
        except UnicodeError:
            ascii_domain = ""
        if not is_hostname(ascii_domain):
            bad.append(address or "(empty)")
            continue
        if ascii_domain not in domains:
            domains.append(ascii_domain)
    problems: list[str] = []
    if found.fields > 1:
        problems.append("several From header fields")
    if bad:
        problems.append(f"unusable From address {bad[0]!r}")
    if len(domains) > MAX_AUTHOR_DOMAINS:
        problems.append(f"{len(domains)} From domains; the first {MAX_AUTHOR_DOMAINS} evaluated")
        domains = domains[:MAX_AUTHOR_DOMAINS]
    if not domains and not bad:
        problems.append("no address in the From header field")
    return AuthorDomains(tuple(domains), "; ".join(problems) or None, suspicious=bool(problems))


def from_domains(message: bytes) -> tuple[tuple[str, ...], str | None]:
    """The Author Domains and the problem with the From field, if any."""
    found = author_domains(message)
    return found.domains, found.problem


async def check_message(
    message: bytes,
    envelope: EnvelopeAuth,
    resolver: Resolver,
    *,
    authserv_id: str,
    enforcement: Literal["enforce", "report-only"] = "enforce",
    trusted_arc_sealers: Sequence[str] = (),
    body: BodyDigests | None = None,
) -> InboundVerdict:
    """DKIM, ARC and DMARC after DATA, and the resulting action and header. ``body``:
    a spooled message's body digests (``message`` is then its header section)."""
    dkim_list, arc = await asyncio.gather(
        verify_message(message, resolver, body=body), verify_chain(message, resolver, body=body)
    )
    dkim_results = tuple(dkim_list)
    authors = author_domains(message)
    domains = authors.domains
    notes: list[str] = [authors.problem] if authors.problem else []
    spf = envelope.spf_for_dmarc
    spf_evidence = (spf.domain, spf.result)
    dkim_evidence = [(r.domain, r.status) for r in dkim_results if r.domain]
    dmarc_results = tuple(
        await asyncio.gather(*(evaluate(d, spf_evidence, dkim_evidence, resolver) for d in domains))
    )
    action: Action = "deliver"
    reply: str | None = None
    strictest = _strictest(dmarc_results)
    trusted = None
    if strictest is not None and strictest.result is DmarcStatus.FAIL:
        trusted = trusted_sealer(arc, trusted_arc_sealers)
    if trusted is not None:
        notes.append(
            f"DMARC fail accepted: the ARC chain passes and {trusted}, a trusted sealer,"
            " recorded dmarc=pass before its changes (local policy, RFC 9989 §5.3.6)"
        )
    elif strictest is not None and strictest.result is DmarcStatus.FAIL:
        unauthenticated = _nothing_authenticated(envelope, dkim_results) and (
            arc.status is not ArcStatus.PASS  # a valid ARC seal authenticates its sealer
        )
        disposition = strictest.receiver_action(other_evidence=unauthenticated)
        if disposition is Policy.REJECT:
            action = "reject"
        elif disposition is Policy.QUARANTINE:
            action = "junk"
        if strictest.disposition is Policy.REJECT and action == "junk":
            notes.append(
                "p=reject treated as quarantine (RFC 9989 §8): the message carries a passing"
                " identity of another domain, as mail through a list or forwarder does"
            )
    if authors.suspicious and action == "deliver" and not _dmarc_passed(dmarc_results):
        action = "junk"  # RFC 9989 §11.5: a From field DMARC cannot rely on
    if action != "deliver" and enforcement == "report-only":
        notes.append(f"DMARC would {action} (report-only mode)")
        action = "deliver"
    if action == "reject" and strictest is not None:
        owner = strictest.policy_domain or strictest.from_domain
        reply = (
            f"550 5.7.1 Rejected by DMARC policy of {owner}"
            f" (p={strictest.requested_policy or strictest.disposition}): the message is not"
            " authenticated by an aligned SPF or DKIM pass"
        )
    header = _header(authserv_id, envelope, dkim_results, dmarc_results, arc)
    return InboundVerdict(
        envelope=envelope,
        dkim=dkim_results,
        dmarc=dmarc_results,
        from_domains=domains,
        action=action,
        reply=reply,
        header=header,
        notes=tuple(notes),
        arc=arc,
        trusted_sealer=trusted,
    )


def trusted_sealer(arc: ArcResult, trusted: Sequence[str]) -> str | None:
    """The trusted sealer vouching for a message that fails DMARC, or None.

    Walking the validated chain from the newest set down, every sealer must be trusted
    until one whose ARC-Authentication-Results says ``dmarc=pass``: that hop saw the
    message authenticated, and only trusted hops handled it since (RFC 8617 §7.2).
    """
    if arc.status is not ArcStatus.PASS or not trusted:
        return None
    allowed = {d.lower().rstrip(".") for d in trusted}
    for arc_set in reversed(arc.sets):
        if arc_set.domain not in allowed:
            return None
        try:
            results = authres.parse(arc_set.aar.results)
        except authres.AuthResSyntaxError:
            return None
        if any(r.result.lower() == "pass" for r in results.find("dmarc")):
            return arc_set.domain
    return None


def _override_reasons(result: DmarcResult, requested: str, applied: str) -> tuple[str, ...]:
    """RFC 9990 §3.1.1.9: why the applied disposition differs from the published policy."""
    if requested == applied:
        return ()
    if result.testing:
        return ("policy_test_mode",)  # t=y lowered it
    return ("local_policy",)  # report-only mode, or RFC 9989 §8 (reject → quarantine)


def _dmarc_passed(results: Sequence[DmarcResult]) -> bool:
    return bool(results) and all(r.result is DmarcStatus.PASS for r in results)


def _nothing_authenticated(envelope: EnvelopeAuth, dkim_results: Sequence[DkimResult]) -> bool:
    """The "other knowledge and analysis" RFC 9989 §8 asks for before rejecting.

    A message relayed by a mailing list or forwarder fails DMARC but usually carries
    a passing identity of the intermediary (its DKIM signature, its SPF-authorized
    MAIL FROM). A message with no passing identity of any domain is a direct
    forgery; only that one is rejected for p=reject, the rest goes to Junk.
    """
    if any(r.ok for r in dkim_results):
        return False
    return str(envelope.spf_mailfrom.result) != "pass"


_SEVERITY = {Policy.NONE: 0, Policy.QUARANTINE: 1, Policy.REJECT: 2}


def _strictest(results: Sequence[DmarcResult]) -> DmarcResult | None:
    failing = [r for r in results if r.result is DmarcStatus.FAIL]
    pool = failing or list(results)
    if not pool:
        return None
    return max(pool, key=lambda r: _SEVERITY.get(r.disposition, 0))


def _header(
    authserv_id: str,
    envelope: EnvelopeAuth,
    dkim_results: Sequence[DkimResult],
    dmarc_results: Sequence[DmarcResult],
    arc: ArcResult | None = None,
) -> str:
    extra: list[authres.ResInfo] = []
    if arc is not None:
        extra.append(
            authres.arc_result(
                arc.status, arc.reason, oldest_pass=arc.oldest_pass, remote_ip=envelope.client_ip
            )
        )
    if envelope.spf_helo is not None:
        extra.append(authres.spf_result(envelope.spf_helo, helo=envelope.helo))
    spf = envelope.spf_mailfrom
    if envelope.mail_from in ("", "<>"):
        spf_info = authres.spf_result(spf, helo=envelope.helo)
    else:
        spf_info = authres.spf_result(spf, mailfrom=envelope.mail_from)
    results = authres.build(
        authserv_id,
        spf=spf_info,
        dkim=dkim_results,
        dmarc=dmarc_results[0] if dmarc_results else None,
        extra=[*(authres.dmarc_result(d) for d in dmarc_results[1:]), *extra],
    )
    return results.field() + "\r\n"


def apply_verdict(message: bytes, verdict: InboundVerdict, authserv_id: str) -> bytes:
    """Remove forged Authentication-Results for our authserv-id and prepend ours."""
    cleaned, _removed = authres.strip_forged(message, authserv_id)
    header = verdict.header.encode("utf-8")
    if not header.endswith(b"\r\n"):
        header = header.rstrip(b"\r\n") + b"\r\n"
    return header + cleaned


@dataclass(frozen=True)
class InboundDecision:
    """What the SMTP server does with one inbound message."""

    message: bytes
    """The message with our Authentication-Results field (and forged ones removed)."""
    reply: str | None
    """A rejection to send instead of queueing (``550 5.7.1 ...``), or None."""
    folder: str | None = None
    """Deliver into this Maildir++ folder (e.g. ``.Junk`` for quarantined mail)."""


class ReportStores:
    """The SQLite stores of DMARC aggregate reports, for the inbound checks of one worker.

    SQLite calls block: a commit waits for the disk, and a lock held by a sibling
    worker can make one wait up to 30 s. So the stores are opened once, on a thread
    of their own, and every call to them runs there; the event loop only awaits the
    result. One thread keeps a connection on the thread that made it, as
    :mod:`sqlite3` requires, and writes in the order they were asked for.
    """

    def __init__(self, data_dir: Path, observations_at: str | None = None) -> None:
        self.data_dir = data_dir
        self.observations_at = observations_at
        """The shared PostgreSQL database (``[queue] url``) for observations; None: SQLite."""
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dmarc-stores")
        self._observations: Observations | None = None
        self._reports: ReportStore | None = None
        self._closed = False

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the stores' thread; the event loop goes on meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    def observations(self) -> Observations:
        """The observation store (call on the stores' thread, from :meth:`run`)."""
        if self._observations is None:
            if self.observations_at is not None:  # [queue] url: shared by the nodes
                self._observations = PostgresObservationStore(self.observations_at)
            else:
                self._observations = ObservationStore(self.data_dir / OBSERVATIONS_DB)
        return self._observations

    def reports(self) -> ReportStore:
        """The received-report store (call on the stores' thread, from :meth:`run`)."""
        if self._reports is None:
            self._reports = ReportStore.in_data_dir(self.data_dir)
        return self._reports

    async def aclose(self) -> None:
        """Close the stores after the writes already asked for, then end the thread."""
        if self._closed:
            return
        self._closed = True

        def close() -> None:
            for store in (self._observations, self._reports):
                if store is not None:
                    store.close()
            self._observations = self._reports = None

        try:
            await self.run(close)
        finally:
            self._thread.shutdown(wait=False)


class InboundChecker:
    """The server's hook for mail arriving on an ``inbound`` listener.

    Runs the checks, applies the configured enforcement, stores DMARC aggregate
    reports addressed to a ``dmarc-reports@`` mailbox of ours, and logs one
    ``inbound`` event (and a ``dmarc-report`` event per report). The report
    stores are written off the event loop (:class:`ReportStores`); pass the
    worker's ``stores`` so that a new checker after a reload shares them.
    """

    def __init__(
        self,
        config: Config,
        resolver: Resolver,
        logger: EventLogger,
        stores: ReportStores | None = None,
    ) -> None:
        self.config = config
        self.resolver = resolver
        self.logger = logger
        self.stores = stores if stores is not None else ReportStores(config.data_dir)

    async def __call__(
        self,
        message: bytes,
        *,
        queue_id: str,
        client_ip: str,
        helo: str,
        mail_from: str,
        recipients: Sequence[str],
        body: BodyDigests | None = None,
    ) -> InboundDecision:
        """``body``: see :func:`check_message`; the decision's message is then the header
        section, with our Authentication-Results."""
        authserv_id = self.config.hostname
        envelope = await check_envelope(
            client_ip, helo, mail_from, self.resolver, receiver=authserv_id
        )
        verdict = await check_message(
            message,
            envelope,
            self.resolver,
            authserv_id=authserv_id,
            enforcement=self.config.inbound.dmarc_enforcement,
            trusted_arc_sealers=self.config.inbound.trusted_arc_sealers,
            body=body,
        )
        self.logger.event(
            "inbound",
            queue_id,
            client=client_ip,
            helo=helo,
            from_=f"<{mail_from}>",
            to=",".join(f"<{r}>" for r in recipients),
            spf=str(envelope.spf_mailfrom.result),
            dkim=",".join(str(r.status) for r in verdict.dkim) or "none",
            dmarc=verdict.dmarc_word,
            arc=str(verdict.arc.status) if verdict.arc else None,
            action=verdict.action,
            reason="; ".join(verdict.notes) or None,
        )
        if self.config.inbound.send_aggregate_reports:
            await self.record_observations(verdict, recipients)
        if verdict.action == "reject":
            return InboundDecision(message, verdict.reply)
        folder = self.config.inbound.quarantine_folder if verdict.action == "junk" else None
        checked = apply_verdict(message, verdict, authserv_id)
        if any(r.partition("@")[0].lower() == REPORT_LOCALPART for r in recipients):
            await self.store_reports(checked, queue_id)
        return InboundDecision(checked, None, folder)

    async def record_observations(self, verdict: InboundVerdict, recipients: Sequence[str]) -> None:
        """Keep what DMARC saw, for the daily aggregate reports (RFC 9990 §2.1)."""
        envelope = verdict.envelope
        spf = envelope.spf_mailfrom
        observed: list[tuple[Observation, list[str]]] = []
        for result in verdict.dmarc:
            record = result.record
            if record is None or not record.rua:
                continue
            disposition = {"reject": "reject", "junk": "quarantine"}.get(verdict.action, "none")
            failed = str(result.result) == "fail"
            applied = disposition if failed else "none"
            requested = str(result.requested_policy or "none") if failed else "none"
            observation = Observation(
                policy_domain=result.policy_domain or result.from_domain,
                source_ip=envelope.client_ip,
                header_from=result.from_domain,
                disposition=applied,
                dkim_aligned="pass" if result.dkim_aligned else "fail",
                spf_aligned="pass" if result.spf_aligned else "fail",
                envelope_from=spf.domain,
                envelope_to=recipients[0].rpartition("@")[2].lower() if recipients else "",
                dkim=tuple(
                    (r.domain or "", r.selector or "", str(r.status))
                    for r in verdict.dkim
                    if r.domain
                ),
                spf=(spf.domain, _SPF_SCOPE.get(spf.identity, "mfrom"), str(spf.result)),
                reasons=_override_reasons(result, requested, applied),
                when=time.time(),
            )
            observed.append((observation, [u.uri for u in record.rua]))
        if not observed:
            return

        def write() -> None:
            store = self.stores.observations()
            for observation, rua in observed:
                store.add(observation, rua)

        try:
            await self.stores.run(write)
        except Exception as exc:  # reporting is optional: it never costs the mail
            self.logger.event("error", None, what="dmarc-observation", reason=str(exc))

    async def store_reports(self, message: bytes, queue_id: str) -> None:
        """Parse and store aggregate reports; a bad report is logged, never fatal.

        Unpacking and parsing (up to 50 MB of XML) run on the stores' thread too,
        so the events are collected there and logged here, in order.
        """
        our_domains = self.config.domains or None
        events: list[dict[str, object]] = []

        def parse_and_store() -> None:
            store = self.stores.reports()
            for item in reports_from_message(message):
                if isinstance(item, ReportRefused):
                    events.append({"status": "refused", "reason": str(item)})
                    continue
                about = {"org": item.org_name, "report_id": item.report_id, "domain": item.domain}
                try:
                    added = store.add(item, our_domains=our_domains)
                except ReportRefused as exc:
                    events.append({**about, "status": "refused", "reason": str(exc)})
                    continue
                events.append(
                    {
                        **about,
                        "records": len(item.records),
                        "status": "stored" if added else "duplicate",
                    }
                )

        failure: Exception | None = None
        try:
            await self.stores.run(parse_and_store)
        except Exception as exc:  # the report store must never lose the mail itself
            failure = exc
        for fields in events:
            self.logger.event("dmarc-report", queue_id, **fields)
        if failure is not None:
            self.logger.event("error", queue_id, what="dmarc-report", reason=str(failure))
