"""The intake step: every decision between "a message arrived" and "queue it".

Every way into the queue comes through here — SMTP at the end of DATA, the delivery
status notifications and DMARC reports we write ourselves — so a message is prepared
the same way whatever brought it: trace field, the fields a submission server adds,
which DKIM keys sign, and the typed :class:`~mailwright.queue.QueueMeta` the delivery
agent reads. Pure: no sockets, no files, no clock unless given; the SMTP server (and
any other listener) does the I/O around it and commits the result to the queue before
answering.

Decisions, each with its rule:

* hop limit — RFC 5321 §6.3 loop detection by counting Received fields (:func:`screen`,
  before any expensive check);
* the Received field with the RFC 3848 / RFC 6531 ``with`` keyword (RFC 5321 §4.4);
* Message-ID and Date for submissions that lack them (RFC 6409 §8.3, §8.4);
* inbound verdicts (SPF/DKIM/DMARC from :mod:`mailwright.inbound`): rejection, or the
  checked message and its delivery folder;
* which keys DKIM-sign what we send (submissions and what we originate): those of the
  From domain — for our own DSNs and reports also of a parent domain, which is aligned
  under DMARC's relaxed mode (RFC 9989 §4.4.3). Decided here, recorded in the metadata
  (``sign_domain``), signed by the delivery agent at each attempt; only list mail that
  is ARC-sealed here is signed here too (:func:`_seals_list_mail`);
* the application's tracking fields ``X-Mailwright-Tags``/``-Metadata`` of a
  submission: read into the metadata and removed before signing
  (:mod:`.tracking_headers`);
* suppressed recipients of a submission (the caller looked them up): not sent to;
* 8-bit body parts of a submission made 7-bit *before* signing (RFC 6152 §3,
  :mod:`mailwright.rfc6152`), so the one signed form verifies at every next hop;
* ``require_dkim``: a submission that would leave unsigned is refused;
* the queue metadata: client facts for ``queue show``, RFC 3461 DSN parameters, SMTPUTF8,
  Message-ID, tags and metadata for the events, VERP for submissions from our domains;
* RFC 8058 one-click unsubscribe for the members' copies of a list post from Mailman
  (:func:`one_click_list`): each copy gets its own HTTPS link (:mod:`mailwright.rfc8058`)
  and ``List-Unsubscribe-Post``, added before signing so the signature covers them;
  the caller splits such a post into one copy per member (:func:`per_member`);
* forwarding to an alias's outside address (:func:`forward`): an SRS envelope sender
  (:mod:`mailwright.srs`) so SPF passes at the destination, and an ARC Set (RFC 8617)
  recording our inbound verdict, so a receiver can trust it though DKIM may break.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from .. import message as rfc5322
from .. import rfc8058
from ..inbound import InboundDecision
from ..mailman import list_address
from ..queue.store import DsnRecipient, Origin, QueueMeta
from ..rfc6152 import to_7bit
from ..spool import MessageData, SpooledMessage
from ..srs import Srs, SrsError
from . import headers, tracking_headers
from .protocol import Envelope, Reply


class Signer(Protocol):
    """Our DKIM keys. Calling it signs: ``(message, domain) -> (DKIM-Signature lines,
    selectors)``, or None: no key. With ``body_hashes`` (a spooled or stored big message)
    ``message`` is the header section only and the body's hashes per canonicalization
    come from :meth:`SpooledMessage.hash_body`.

    :meth:`selectors` is the cheap question intake asks: which keys *would* sign for
    ``domain`` (empty: none). Intake only decides; the delivery agent signs when the
    message leaves (:mod:`mailwright.delivery.signing`)."""

    def selectors(self, domain: str, /) -> list[str]: ...

    def __call__(
        self, message: bytes, domain: str, body_hashes: Mapping[str, bytes] | None = None, /
    ) -> tuple[bytes, list[str]] | None: ...


Sealer = Callable[[bytes, str], bytes]
"""``(message, forwarding_domain) -> ARC Set fields to prepend`` (``b""``: not sealed)."""

DEFAULT_MAX_HOPS = 50
"""RFC 5321 §6.3 (Postfix: hopcount_limit = 50)."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """Who handed the message over, and how: the session facts intake decides on."""

    client_ip: str
    listener: str
    helo: str | None = None
    user: str | None = None
    """The authenticated user (RFC 4954), if any."""
    trusted: bool = False
    """The client is in ``trusted_networks``."""
    inbound: bool = False
    """It came in on an ``inbound`` listener (mail from the world for our domains)."""
    esmtp: bool = True
    tls: str | None = None
    """How TLS was used (``using TLSv1.3 with cipher ...``), None without TLS."""
    via: str | None = None
    """The Received ``with`` word when it did not come over SMTP (``HTTP``/``HTTPS``:
    the HTTP API), else derived from the session."""

    @property
    def submission(self) -> bool:
        """Mail an application or user of ours sends: signed, completed, never checked
        as inbound mail."""
        return self.user is not None or self.trusted

    def protocol(self, smtputf8: bool) -> str:
        """The Received ``with`` keyword (RFC 3848 §2 and RFC 6531 §3.7.3)."""
        if self.via is not None:
            return self.via
        word = ("UTF8SMTP" if smtputf8 else "ESMTP") if self.esmtp else "SMTP"
        if self.tls is not None:
            word += "S"
        if self.user is not None:
            word += "A"
        # HELO inside TLS: the registered keywords have no "SMTPS".
        return "ESMTPS" if word == "SMTPS" else word


@dataclass(frozen=True, slots=True)
class IntakePolicy:
    """What the configuration decides for intake (from the runtime view)."""

    hostname: str
    signer: Signer | None = None
    max_hops: int = DEFAULT_MAX_HOPS
    require_dkim: bool = False
    """Refuse a submission whose From domain has no DKIM key (else: sent, with a warning)."""
    verp: bool = False
    """Submissions from one of ``local_domains`` leave with VERP return paths."""
    local_domains: frozenset[str] = frozenset()
    sealer: Sealer | None = None
    srs: Srs | None = None
    own_bounces: Callable[[str], bool] | None = None
    """Senders that handle their own bounces (Mailman's ``-bounces`` addresses, with its
    own VERP): they keep their return path and get our DSNs, never VERP."""
    lists: Callable[[str], bool | None] | None = None
    """Whether Mailman has the list ``fqdn_listname`` (None for the whole: no Mailman; the
    answer None: Mailman cannot say now)."""
    one_click: rfc8058.OneClick | None = None
    """Adds RFC 8058 one-click links to list posts (None: ``unsubscribe_url`` unset)."""


@dataclass(frozen=True, slots=True)
class Signed:
    domain: str
    selectors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsigned:
    """A message of ours that leaves without a DKIM signature, and why (logged)."""

    domain: str
    reason: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """Ready for the queue: exactly these bytes and this metadata."""

    queue_id: str
    sender: str
    recipients: tuple[str, ...]
    message: MessageData
    """In memory, or (a big message from SMTP) header section in memory, body in a spool
    file (:class:`~mailwright.spool.SpooledMessage`)."""
    meta: QueueMeta
    signing: Signed | Unsigned | None
    """None: not ours to sign (inbound mail)."""
    suppressed: tuple[str, ...] = ()
    """Recipients dropped because they are on the suppression list (``rejected`` events);
    ``recipients`` may then be empty: nothing to queue, the submission still succeeds."""
    converted: bool = False
    """8-bit body parts were re-encoded to 7-bit before signing (RFC 6152 §3)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """Not queued: the reply for the client, and what to log."""

    reply: Reply
    reason: str


def screen(data: bytes, policy: IntakePolicy) -> Refused | None:
    """The cheap refusals, before any DNS work on the message."""
    hops = rfc5322.received_count(data)
    if hops > policy.max_hops:
        # RFC 5321 §6.3: a message in a loop is refused, not queued (a loop would carry
        # it forever); RFC 3463 X.4.6 "routing loop detected".
        return Refused(
            Reply.of(554, "5.4.6", f"Too many hops ({hops} Received fields)"), "mail loop"
        )
    return None


def streamable(message: SpooledMessage, arrival: Arrival, policy: IntakePolicy) -> bool:
    """Whether :func:`prepare` can take this spooled message with its body left on disk.

    Not when a decision needs the whole body in memory: the 8-bit to 7-bit conversion of
    a submission, list mail (ARC sealing, a copy per member with its one-click link).
    (The inbound checks take the body's digests, :func:`mailwright.dkim.body.digest_body`.)
    Those rare big messages are read whole, a few at a time per worker."""
    if arrival.submission:
        if not message.ascii:
            return False
        if "list-id" in rfc5322.field_names(message.head):
            return False  # list mail: ARC sealing, one-click copies per member (RFC 8058)
    return True


def one_click_list(sender: str, data: bytes, arrival: Arrival, policy: IntakePolicy) -> str | None:
    """The list (``fqdn_listname``) whose members' copies of this message get one-click
    links, or None.

    That is a post Mailman sends us: mail from a trusted client that did not log in
    (Mailman hands its posts to us that way) whose envelope sender is the ``-bounces``
    address of a list Mailman has (with or without its VERP extension), carrying that
    list's List-Id and a List-Post, and no List-Unsubscribe-Post yet
    (:func:`mailwright.rfc8058.is_list_post`). Mailman's notices (confirmations,
    welcome), mail that only mentions a list, and what an authenticated user or API
    client sends with a list's ``-bounces`` sender do not.
    """
    if policy.one_click is None or policy.lists is None:
        return None
    if not arrival.trusted or arrival.user is not None:
        return None
    found = list_address(sender, policy.lists) if sender else None
    if found is None or found.role != "bounces":
        return None
    local, _, domain = found.fqdn_listname.rpartition("@")
    return found.fqdn_listname if rfc8058.is_list_post(data, f"{local}.{domain}") else None


def per_member(
    envelope: Envelope, data: bytes, arrival: Arrival, policy: IntakePolicy
) -> list[Envelope]:
    """The envelopes to prepare: one per recipient for a list post with one-click links
    (each copy names its member, RFC 8058 §3.1's per-recipient URI), else ``[envelope]``.

    Mailman sends a post to many members in one transaction unless it personalizes."""
    if len(envelope.recipients) < 2:
        return [envelope]
    if one_click_list(envelope.reverse_path, data, arrival, policy) is None:
        return [envelope]
    return [
        replace(
            envelope,
            recipients=[r],
            dsn={a: d for a, d in envelope.dsn.items() if a == r.address},
        )
        for r in envelope.recipients
    ]


def prepare(
    envelope: Envelope,
    data: MessageData,
    arrival: Arrival,
    policy: IntakePolicy,
    *,
    queue_id: str,
    inbound: InboundDecision | None = None,
    suppressed: Collection[str] = (),
    now: float | None = None,
) -> Accepted | Refused:
    """The message as it will be queued, or the refusal.

    ``inbound`` is the verdict of the inbound checks for mail from the world (the caller
    runs them between :func:`screen` and this: they need DNS). ``suppressed``: the
    recipients the suppression list holds (the caller looked them up); a submission is
    not sent to them. A :class:`SpooledMessage` must be :func:`streamable`; intake then
    reads and changes its header section only (the signer gets the body's hashes).
    """
    spooled = data if isinstance(data, SpooledMessage) else None
    if spooled is not None:
        data = spooled.head
    assert isinstance(data, bytes)
    refused = screen(data, policy)
    if refused is not None:
        return refused
    recipients = tuple(m.address for m in envelope.recipients)
    tracking = tracking_headers.TrackingFields()
    dropped: tuple[str, ...] = ()
    converted = False
    if arrival.submission:
        try:
            tracking = tracking_headers.extract(data)
        except tracking_headers.TrackingHeaderError as exc:
            return Refused(Reply.of(554, "5.6.0", f"Error: {exc}"), "bad tracking field")
        data = tracking.message
        if suppressed:
            gone = set(suppressed)
            dropped = tuple(r for r in recipients if r in gone)
            recipients = tuple(r for r in recipients if r not in gone)
        if spooled is None and not data.isascii():
            # RFC 6152 §3: made 7-bit here, before signing, so that the one signed form
            # verifies at every next hop, with or without 8BITMIME (a conversion after
            # signing would break the body hash).
            result = to_7bit(data)
            data, converted = result.data, result.changed
        if len(recipients) == 1 and policy.one_click is not None:
            # RFC 8058 §3.1/§4: the link of this one member, before signing (a copy for
            # several members gets none: the caller splits it, :func:`per_member`)
            listname = one_click_list(envelope.reverse_path, data, arrival, policy)
            if listname is not None:
                url = policy.one_click.url(listname, recipients[0], now)
                data = rfc8058.add_one_click(data, url)
    added = headers.received(
        helo=arrival.helo or "unknown",
        client_ip=arrival.client_ip,
        client_name=None,
        hostname=policy.hostname,
        protocol=arrival.protocol(envelope.smtputf8),
        queue_id=queue_id,
        recipient=recipients[0] if len(recipients) == 1 else None,
        tls=arrival.tls,
        user=arrival.user,
        now=now,
    )
    folder: str | None = None
    if arrival.submission:
        # RFC 6409 §8.3 and §8.4: a submission server may add a missing Date and
        # Message-ID; a message without them fails RFC 5322 §3.6 at many receivers.
        present = rfc5322.field_names(data)
        if "message-id" not in present:
            added += headers.message_id(policy.hostname)
        if "date" not in present:
            added += headers.date_field(now)
    elif inbound is not None:
        if inbound.reply is not None:
            code, status, text = inbound.reply.split(" ", 2)
            return Refused(Reply.of(int(code), status, text), "inbound policy")
        # Our Received stays topmost; Authentication-Results goes right below it.
        data = inbound.message
        folder = inbound.folder
    message = added + data
    signing: Signed | Unsigned | None = None
    message_id: str | None = None
    verp = False
    sign_later: str | None = None
    body_hashes: dict[str, str] | None = None
    if arrival.submission:
        sealed = _seals_list_mail(data, policy, envelope.reverse_path)
        message, signing = _sign(
            message,
            data,
            policy,
            parents=False,
            sender=envelope.reverse_path,
            body_hashes=spooled.body_hashes if spooled is not None else None,
            now=sealed,
        )
        if isinstance(signing, Unsigned) and policy.require_dkim:
            return Refused(
                Reply.of(
                    550,
                    "5.7.1",
                    f"Error: not signed: {signing.reason} ({signing.domain}; require_dkim"
                    " is on: add a [[dkim]] key for it)",
                ),
                f"unsigned: {signing.reason}",
            )
        if sealed:
            message = _seal_list_mail(message, policy, envelope.reverse_path)
        else:
            sign_later = _signed_by(signing)
            if sign_later is not None and spooled is not None and spooled.body_hashes:
                body_hashes = {
                    c: base64.b64encode(h).decode() for c, h in spooled.body_hashes.items()
                }
        # the first Message-ID of the message: ours if we added one, else the client's
        # (the fields added on top of ``added`` are trace and signature fields)
        message_id = rfc5322.field_value(added, "Message-ID") or rfc5322.field_value(
            data, "Message-ID"
        )
        sender_domain = envelope.reverse_path.rpartition("@")[2].lower()
        verp = (
            policy.verp
            and bool(envelope.reverse_path)
            and sender_domain in policy.local_domains
            and not (policy.own_bounces is not None and policy.own_bounces(envelope.reverse_path))
        )
    meta = QueueMeta(
        origin="smtp",
        client=arrival.client_ip,
        listener=arrival.listener,
        helo=arrival.helo,
        user=arrival.user,
        smtputf8=envelope.smtputf8,
        requiretls=envelope.requiretls,
        tls_optional=not envelope.requiretls and tls_required_no(data),
        ret=envelope.ret,
        envid=envelope.envid,
        dsn=dict(envelope.dsn),
        folder=folder,
        message_id=message_id,
        tags=tracking.tags,
        metadata=tracking.metadata or None,
        tracked=arrival.submission,
        verp=verp,
        sign_domain=sign_later,
        body_hashes=body_hashes,
    )
    return Accepted(
        queue_id,
        envelope.reverse_path,
        recipients,
        message if spooled is None else spooled.with_head(message),
        meta,
        signing,
        suppressed=dropped,
        converted=converted,
    )


def local(
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    policy: IntakePolicy,
    *,
    queue_id: str,
    user: str,
    uid: int,
    now: float | None = None,
) -> Accepted | Refused:
    """A message handed in on this machine (``sendmail`` through the maildrop): a trusted
    submission — completed and signed like one — with a local Received field."""
    refused = screen(message, policy)
    if refused is not None:
        return refused
    added = headers.received_local(
        hostname=policy.hostname,
        uid=uid,
        queue_id=queue_id,
        recipient=recipients[0] if len(recipients) == 1 else None,
        now=now,
    )
    present = rfc5322.field_names(message)
    if "message-id" not in present:
        added += headers.message_id(policy.hostname)
    if "date" not in present:
        added += headers.date_field(now)
    completed, signing = _sign(added + message, message, policy, parents=False)
    smtputf8 = not (sender.isascii() and all(r.isascii() for r in recipients))
    meta = QueueMeta(origin="local", user=user, smtputf8=smtputf8, sign_domain=_signed_by(signing))
    return Accepted(queue_id, sender, tuple(recipients), completed, meta, signing)


def tls_required_no(message: bytes) -> bool:
    """RFC 8689 §3/§4.1: exactly one ``TLS-Required: No`` field (case-insensitive value);
    several instances are not allowed, so they count as none."""
    values = rfc5322.field_values(message, "TLS-Required")
    return len(values) == 1 and values[0].strip().lower() == "no"


def originate(
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    policy: IntakePolicy,
    *,
    queue_id: str,
    origin: Origin,
    original: str | None = None,
    now: float | None = None,
) -> Accepted:
    """A message we wrote ourselves (a DSN, a DMARC aggregate report): completed and
    signed like a submission. DSNs are sent from the null reverse path and must never
    ask for DSNs themselves (RFC 3461 §5.2.1 would have us not report on them at all),
    so the metadata asks for none."""
    present = rfc5322.field_names(message)
    added = b""
    if "message-id" not in present:
        added += headers.message_id(policy.hostname)
    if "date" not in present:
        added += headers.date_field(now)
    completed, signing = _sign(added + message, message, policy, parents=True)
    never = {r: DsnRecipient(notify=()) for r in recipients} if origin == "dsn" else {}
    meta = QueueMeta(origin=origin, original=original, dsn=never, sign_domain=_signed_by(signing))
    return Accepted(queue_id, sender, tuple(recipients), completed, meta, signing)


def forward(
    sender: str,
    targets: Sequence[str],
    message: bytes,
    policy: IntakePolicy,
    *,
    queue_id: str,
    alias: str,
    original: str | None = None,
    now: float | None = None,
) -> Accepted | Refused:
    """Mail for our ``alias`` that goes on to outside ``targets``, as a new queue entry.

    The envelope sender becomes an SRS address of the alias's domain (the null reverse
    path stays null); the message is ARC-sealed with that domain's key (it is not
    DKIM-signed: its From is not ours). Without SRS set up it is refused (451): sent with
    the original sender it would fail SPF at the destination, and a forged sender could
    use us to relay.
    """
    domain = alias.rpartition("@")[2].lower()
    if sender and policy.srs is None:
        return Refused(Reply.of(451, "4.3.5", "forwarding needs an SRS secret"), "no SRS secret")
    try:
        new_sender = policy.srs.forward(sender, domain, now=now) if policy.srs else sender
    except SrsError as exc:  # the secret cannot be read or made: retried later
        return Refused(Reply.of(451, "4.3.5", "forwarding needs an SRS secret"), str(exc))
    sealing: Unsigned | None = Unsigned(domain, "no DKIM key to ARC-seal with")
    if policy.sealer is not None:
        try:
            seal = policy.sealer(message, domain)
        except Exception as exc:  # a sealing bug must not lose the mail: it goes unsealed
            sealing = Unsigned(domain, f"ARC sealing failed: {exc}")
        else:
            message = seal + message
            sealing = None if seal else Unsigned(domain, "ARC chain ends (cv=fail or 50 sets)")
    meta = QueueMeta(origin="forward", original=original)
    return Accepted(queue_id, new_sender, tuple(targets), message, meta, sealing)


def _seals_list_mail(original: bytes, policy: IntakePolicy, sender: str) -> bool:
    """List mail from the list manager (a submission with a List-Id, RFC 2919) leaves
    ARC-sealed by the list domain (the envelope sender's): the list changed the message,
    and the seal carries our inbound verdict on the post (our Authentication-Results,
    kept by the list).

    Such a message is the exception to signing at delivery: it is DKIM-signed here, at
    intake, because RFC 8617 §5.1 has the sealer add its ARC Set after DKIM signing
    (step 1 signs, the AMS and AS come after), so the seal covers our DKIM-Signature; a
    signature prepended at delivery would sit outside the seal."""
    return (
        policy.sealer is not None
        and bool(_sender_domain(sender))
        and "list-id" in rfc5322.field_names(original)
    )


def _sender_domain(sender: str | None) -> str:
    """The envelope sender's domain, lower-cased, without a trailing dot ("" for the null
    sender): for list mail from Mailman (``list-bounces@``), the list domain."""
    return (sender or "").rpartition("@")[2].lower().rstrip(".")


def _seal_list_mail(message: bytes, policy: IntakePolicy, sender: str) -> bytes:
    """The ARC Set on top of the signed list mail (:func:`_seals_list_mail`)."""
    domain = _sender_domain(sender)
    assert policy.sealer is not None
    try:
        return policy.sealer(message, domain) + message
    except Exception:  # a sealing bug must not lose the mail: it leaves unsealed
        return message


def _sign(
    message: bytes,
    original: bytes,
    policy: IntakePolicy,
    *,
    parents: bool,
    sender: str | None = None,
    body_hashes: Mapping[str, bytes] | None = None,
    now: bool = False,
) -> tuple[bytes, Signed | Unsigned]:
    """Which domain's keys sign ``message``: the author domain of ``original`` (the data
    as given: our own added fields hold no From). With ``parents``, a parent domain's key
    signs when the author domain has none. With ``sender``, list mail (it has a List-Id,
    RFC 2919) whose From domain has no key of ours is signed by the envelope sender's
    domain: mail from Mailman (From a member, MAIL FROM ``list-bounces@`` the list
    domain) gets the list domain's signature.

    Only decided (``message`` comes back as it was; the delivery agent signs with that
    domain's keys when it sends, :attr:`QueueMeta.sign_domain`), unless ``now``: then
    signed here (mail ARC-sealed at intake, :func:`_seals_list_mail`)."""
    domain = rfc5322.author_domain(original)
    if domain is None:
        return message, Unsigned("-", "no From address")
    if policy.signer is None:
        return message, Unsigned(domain, "no DKIM key for the From domain")
    candidates = [domain]
    if parents:
        labels = domain.split(".")
        candidates += [".".join(labels[i:]) for i in range(1, len(labels) - 1)]
    sender_domain = _sender_domain(sender)
    if (
        sender_domain
        and sender_domain not in candidates
        and (
            "list-id" in rfc5322.field_names(original)  # RFC 2919: list mail
        )
    ):
        candidates.append(sender_domain)
    for candidate in candidates:
        try:
            if not now:
                selectors = policy.signer.selectors(candidate)
                result = (b"", selectors) if selectors else None
            elif body_hashes is None:
                result = policy.signer(message, candidate)
            else:
                result = policy.signer(message, candidate, body_hashes)
        except Exception as exc:  # a signing bug must not lose or block the message
            return message, Unsigned(domain, f"signing failed: {exc}")
        if result is not None:
            signature, selectors = result
            return signature + message, Signed(candidate, tuple(selectors))
    return message, Unsigned(domain, "no DKIM key for the From domain")


def _signed_by(signing: Signed | Unsigned) -> str | None:
    """The domain whose keys sign at delivery (:attr:`QueueMeta.sign_domain`)."""
    return signing.domain if isinstance(signing, Signed) else None
