"""Compose the daily aggregate report mails (RFC 9990 §3.5.2), honouring destination checks.

For each policy domain with observations, the current DMARC record is looked
up again (the domain may have changed its ``rua`` since), every ``mailto:``
destination outside the domain's organizational domain is verified (RFC 9990
§4: ``<policy-domain>._report._dmarc.<destination>``), and one message per
domain goes to the authorized addresses, with the gzip'd XML attached under
the RFC 9990 file name and the RFC 9990 Subject. The server queues these
messages like any other; they leave DKIM-signed for our own domain, so they
pass DMARC as §3.5.2 requires.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from ..dmarc.discovery import DiscoveryStatus, discover_policy
from ..dmarc.external import ExternalStatus, verify_destination
from ..dns import Resolver
from .observations import (
    OBSERVATIONS_DB,
    Observation,
    Observations,
    ObservationStore,
    PostgresObservationStore,
)
from .writer import build_report, compress, report_filename

_USABLE = {ExternalStatus.INTERNAL, ExternalStatus.AUTHORIZED}


@dataclass(frozen=True)
class OutgoingReport:
    policy_domain: str
    recipients: tuple[str, ...]
    message: bytes
    skipped: tuple[str, ...]
    """Destinations not used, each with the reason."""
    retry: bool = False
    """The policy could not be looked up (a DNS error): keep the data for the next run."""


async def compose_reports(
    observations: dict[str, tuple[list[str], list[Observation]]],
    *,
    reporter_domain: str,
    from_address: str,
    begin: int,
    end: int,
    resolver: Resolver,
) -> list[OutgoingReport]:
    """One report mail per policy domain that still asks for reports and has a usable rua."""
    outgoing: list[OutgoingReport] = []
    for policy_domain, (_rua_seen, items) in sorted(observations.items()):
        discovery = await discover_policy(policy_domain, resolver)
        if discovery.status is DiscoveryStatus.TEMPERROR:
            outgoing.append(
                OutgoingReport(
                    policy_domain, (), b"", (f"policy lookup failed: {discovery.error}",), True
                )
            )
            continue
        record = discovery.record
        if record is None or not record.rua or not items:
            continue
        recipients: list[str] = []
        skipped: list[str] = []
        for uri in record.rua:
            if not uri.is_mailto or not uri.address:
                skipped.append(f"{uri.uri}: only mailto: destinations are supported")
                continue
            check = await verify_destination(
                "rua",
                uri,
                discovery.record_domain or policy_domain,
                discovery.organizational_domain or policy_domain,
                resolver,
            )
            if check.status in _USABLE and check.overrides:
                # RFC 9990 §4 step 9: the consumer's own rua replaces the one published.
                recipients.extend(o.address for o in check.overrides if o.is_mailto and o.address)
            elif check.status in _USABLE:
                recipients.append(uri.address)
            else:
                skipped.append(f"{uri.uri}: {check.status}")
        if not recipients:
            outgoing.append(OutgoingReport(policy_domain, (), b"", tuple(skipped)))
            continue
        digest = hashlib.sha256(f"{policy_domain}{begin}{end}".encode()).hexdigest()[:16]
        report_id = f"{begin}-{policy_domain}@{reporter_domain}"
        policy = {"p": str(record.policy)}
        if record.sp is not None:
            policy["sp"] = str(record.sp)
        if record.np is not None:
            policy["np"] = str(record.np)
        policy["adkim"] = str(record.adkim or "r")  # RFC 9989 §4.7: relaxed by default
        policy["aspf"] = str(record.aspf or "r")
        if record.testing:
            policy["t"] = "y"
        xml = build_report(
            org_name=reporter_domain,
            email=from_address,
            report_id=report_id,
            begin=begin,
            end=end,
            policy_domain=policy_domain,
            policy=policy,
            observations=items,
        )
        message = _message(
            policy_domain=policy_domain,
            reporter_domain=reporter_domain,
            from_address=from_address,
            recipients=recipients,
            report_id=report_id,
            filename=report_filename(reporter_domain, policy_domain, begin, end, digest),
            data=compress(xml),
        )
        outgoing.append(OutgoingReport(policy_domain, tuple(recipients), message, tuple(skipped)))
    return outgoing


def _message(
    *,
    policy_domain: str,
    reporter_domain: str,
    from_address: str,
    recipients: Sequence[str],
    report_id: str,
    filename: str,
    data: bytes,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = ", ".join(recipients)
    # RFC 9990 §3.5.2 dmarc-subject.
    msg["Subject"] = (
        f"Report Domain: {policy_domain} Submitter: {reporter_domain} Report-ID: <{report_id}>"
    )
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = f"<{report_id}>"
    msg.set_content(
        f"DMARC aggregate report for {policy_domain} from {reporter_domain}.\n"
        "The report is attached as gzip'd XML (RFC 9990).\n"
    )
    msg.add_attachment(data, maintype="application", subtype="gzip", filename=filename)
    return msg.as_bytes(policy=SMTP)


def _observations(data_dir: Path, observations_at: str | None) -> Observations:
    if observations_at is not None:
        return PostgresObservationStore(observations_at)
    return ObservationStore(data_dir / OBSERVATIONS_DB)


async def send_due_reports(
    *,
    data_dir: Path,
    hostname: str,
    from_address: str,
    resolver: Resolver,
    enqueue: Callable[[str, list[str], bytes], Awaitable[str]],
    now: float | None = None,
    observations_at: str | None = None,
) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """Turn the stored observations into report mails and queue them.

    Called once a day by the server. Returns (policy domain, queue ID or None when
    no destination was usable, skipped destinations) per report, for the log.
    ``observations_at``: the shared PostgreSQL database (``[queue] url``); None: the
    SQLite file in ``data_dir``.
    """
    until = time.time() if now is None else now

    def take() -> dict[str, tuple[list[str], list[Observation]]]:
        store = _observations(data_dir, observations_at)
        try:
            return store.take(until)
        finally:
            store.close()

    # SQLite blocks (a sibling worker may hold the lock), psycopg's blocking API too:
    # keep it off the event loop.
    taken = await asyncio.to_thread(take)
    if not taken:
        return []
    whens = [o.when for _rua, items in taken.values() for o in items if o.when]
    begin = int(min(whens)) if whens else int(until) - 86400
    reports = await compose_reports(
        taken,
        reporter_domain=hostname,
        from_address=from_address,
        begin=begin,
        end=int(until),
        resolver=resolver,
    )
    sent: list[tuple[str, str | None, tuple[str, ...]]] = []
    retry = [r for r in reports if r.retry]
    if retry:

        def keep() -> None:
            store = _observations(data_dir, observations_at)
            try:
                for report in retry:
                    rua, items = taken[report.policy_domain]
                    for item in items:
                        store.add(item, rua)
            finally:
                store.close()

        await asyncio.to_thread(keep)
    for report in reports:
        queue_id = None
        if report.recipients:
            queue_id = await enqueue(from_address, list(report.recipients), report.message)
        sent.append((report.policy_domain, queue_id, report.skipped))
    return sent
