"""The intake step, without sockets: each decision it makes between DATA and the queue."""

from __future__ import annotations

import pytest

from mailwright.inbound import InboundDecision
from mailwright.queue import DsnRecipient
from mailwright.smtp.address import Mailbox
from mailwright.smtp.intake import (
    Accepted,
    Arrival,
    IntakePolicy,
    Refused,
    Signed,
    Unsigned,
    originate,
    prepare,
    screen,
)
from mailwright.smtp.protocol import Envelope

BODY = b"From: App <app@example.com>\r\nTo: x@example.net\r\nSubject: hi\r\n\r\nhello\r\n"
COMPLETE = b"Message-ID: <1@example.com>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n" + BODY
SUBMISSION = Arrival(client_ip="192.0.2.1", listener="submission", helo="app.example", user="app")
INBOUND = Arrival(client_ip="198.51.100.7", listener="mx", helo="mx.example.net", inbound=True)


class FakeSigner:
    """Keys (selector ``sel``) for ``domains``; records what it was asked to sign."""

    def __init__(self, *domains: str) -> None:
        self.domains = domains
        self.seen: list[bytes] = []

    def selectors(self, domain: str) -> list[str]:
        return ["sel"] if domain in self.domains else []

    def __call__(
        self, message: bytes, domain: str, body_hashes: object = None
    ) -> tuple[bytes, list[str]] | None:
        if domain not in self.domains:
            return None
        self.seen.append(message)
        return f"DKIM-Signature: d={domain}\r\n".encode(), ["sel"]


def signer_for(*domains: str) -> FakeSigner:
    return FakeSigner(*domains)


POLICY = IntakePolicy(hostname="mail.example.com", signer=signer_for("example.com"))


def envelope(*recipients: str, **kw: object) -> Envelope:
    env = Envelope(Mailbox("app", "example.com"), **kw)  # type: ignore[arg-type]
    env.recipients = [Mailbox(*r.split("@")) for r in recipients]
    return env


def accepted(result: Accepted | Refused) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


def test_hop_limit_refuses_a_looping_message() -> None:
    # RFC 5321 §6.3: more Received fields than the limit is a loop: 554 5.4.6, not queued.
    looping = b"Received: from a by b; x\r\n" * 51 + BODY
    refused = screen(looping, POLICY)
    assert isinstance(refused, Refused)
    assert refused.reply.code == 554 and refused.reply.text.startswith("554 5.4.6")
    assert screen(b"Received: from a by b; x\r\n" * 50 + BODY, POLICY) is None
    assert isinstance(
        prepare(envelope("x@example.net"), looping, SUBMISSION, POLICY, queue_id="Q"), Refused
    )


@pytest.mark.parametrize(
    ("arrival", "smtputf8", "word"),
    [
        (Arrival("192.0.2.1", "l", esmtp=False), False, "SMTP"),
        (Arrival("192.0.2.1", "l"), False, "ESMTP"),
        (Arrival("192.0.2.1", "l", tls="using TLSv1.3"), False, "ESMTPS"),
        (Arrival("192.0.2.1", "l", user="u"), False, "ESMTPA"),
        (Arrival("192.0.2.1", "l", user="u", tls="using TLSv1.3"), False, "ESMTPSA"),
        (Arrival("192.0.2.1", "l", user="u", tls="using TLSv1.3"), True, "UTF8SMTPSA"),
        (Arrival("192.0.2.1", "l", esmtp=False, tls="using TLSv1.3"), False, "ESMTPS"),
    ],
)
def test_received_protocol_word(arrival: Arrival, smtputf8: bool, word: str) -> None:
    # RFC 3848 §2 and RFC 6531 §3.7.3; HELO inside TLS has no registered "SMTPS".
    assert arrival.protocol(smtputf8) == word


def test_received_is_topmost_and_names_a_single_recipient() -> None:
    result = accepted(
        prepare(envelope("x@example.net"), COMPLETE, SUBMISSION, POLICY, queue_id="Q1")
    )
    # Received above the message (the signature goes above it when the message leaves)
    lines = result.message.split(b"\r\n")
    assert lines[0].startswith(b"Received: from app.example")
    assert b"with ESMTPA id Q1" in result.message and b"for <x@example.net>" in result.message
    two = accepted(
        prepare(
            envelope("x@example.net", "y@example.net"), COMPLETE, SUBMISSION, POLICY, queue_id="Q2"
        )
    )
    assert b"for <" not in two.message  # RFC 5321 §7.2: do not reveal the other recipients


def test_submission_gets_message_id_and_date_when_missing() -> None:
    # RFC 6409 §8.3, §8.4
    result = accepted(prepare(envelope("x@example.net"), BODY, SUBMISSION, POLICY, queue_id="Q"))
    assert b"\r\nMessage-ID: <" in result.message and b"@mail.example.com>\r\n" in result.message
    assert b"\r\nDate: " in result.message
    kept = accepted(prepare(envelope("x@example.net"), COMPLETE, SUBMISSION, POLICY, queue_id="Q"))
    assert kept.message.count(b"Message-ID:") == 1 and kept.message.count(b"Date:") == 1
    # the queue metadata names the Message-ID the message carries: ours, or the client's
    added = result.message.split(b"\r\nMessage-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
    assert result.meta.message_id == added
    assert kept.meta.message_id == "<1@example.com>"


def test_inbound_mail_is_not_completed_or_signed() -> None:
    result = accepted(prepare(envelope("bob@example.com"), BODY, INBOUND, POLICY, queue_id="Q"))
    assert b"Message-ID:" not in result.message and b"DKIM-Signature" not in result.message
    assert result.signing is None


def test_trusted_network_counts_as_submission() -> None:
    trusted = Arrival(client_ip="127.0.0.1", listener="mx", trusted=True, inbound=True)
    result = accepted(prepare(envelope("x@example.net"), COMPLETE, trusted, POLICY, queue_id="Q"))
    assert result.signing == Signed("example.com", ("sel",))


def test_inbound_verdict_rejects_or_replaces_the_message() -> None:
    rejected = prepare(
        envelope("bob@example.com"),
        BODY,
        INBOUND,
        POLICY,
        queue_id="Q",
        inbound=InboundDecision(BODY, "550 5.7.1 Rejected by DMARC policy"),
    )
    assert isinstance(rejected, Refused)
    assert (
        rejected.reply.code == 550 and rejected.reply.text == "550 5.7.1 Rejected by DMARC policy"
    )
    checked = b"Authentication-Results: mail.example.com; dmarc=fail\r\n" + BODY
    result = accepted(
        prepare(
            envelope("bob@example.com"),
            BODY,
            INBOUND,
            POLICY,
            queue_id="Q",
            inbound=InboundDecision(checked, None, ".Junk"),
        )
    )
    # our Received stays topmost, the verdict right below it
    assert result.message.startswith(b"Received: ")
    assert result.message.endswith(checked)
    assert result.meta.folder == ".Junk"


@pytest.mark.parametrize(
    ("data", "signer", "expected"),
    [
        (COMPLETE, signer_for("example.com"), Signed("example.com", ("sel",))),
        (
            b"Subject: no author\r\n\r\nx\r\n",
            signer_for("example.com"),
            Unsigned("-", "no From address"),
        ),
        (COMPLETE, None, Unsigned("example.com", "no DKIM key for the From domain")),
        (
            COMPLETE,
            signer_for("other.example"),
            Unsigned("example.com", "no DKIM key for the From domain"),
        ),
    ],
)
def test_which_key_signs_a_submission(data: bytes, signer: object, expected: object) -> None:
    policy = IntakePolicy(hostname="mail.example.com", signer=signer)  # type: ignore[arg-type]
    result = accepted(prepare(envelope("x@example.net"), data, SUBMISSION, policy, queue_id="Q"))
    assert result.signing == expected


def test_a_submission_is_not_signed_by_a_parent_domain() -> None:
    data = COMPLETE.replace(b"app@example.com", b"app@news.example.com")
    result = accepted(prepare(envelope("x@example.net"), data, SUBMISSION, POLICY, queue_id="Q"))
    assert result.signing == Unsigned("news.example.com", "no DKIM key for the From domain")


def test_a_submission_is_signed_when_it_leaves_not_at_intake() -> None:
    # intake decides (the signed/unsigned log line, require_dkim) and records the domain;
    # the delivery agent signs with the keys current when the message leaves
    signer = signer_for("example.com")
    policy = IntakePolicy(hostname="mail.example.com", signer=signer)
    result = accepted(
        prepare(envelope("x@example.net"), COMPLETE, SUBMISSION, policy, queue_id="Q")
    )
    assert result.signing == Signed("example.com", ("sel",))
    assert b"DKIM-Signature" not in result.message and signer.seen == []
    assert result.meta.sign_domain == "example.com" and result.meta.body_hashes is None
    unsigned = accepted(
        prepare(envelope("x@example.net"), COMPLETE, SUBMISSION, IntakePolicy("mx"), queue_id="Q")
    )
    assert unsigned.meta.sign_domain is None
    inbound = accepted(prepare(envelope("bob@example.com"), BODY, INBOUND, policy, queue_id="Q"))
    assert inbound.meta.sign_domain is None


def test_a_signing_failure_never_loses_the_message() -> None:
    class Broken(FakeSigner):
        def selectors(self, domain: str) -> list[str]:
            raise RuntimeError("key gone")

    policy = IntakePolicy(hostname="mail.example.com", signer=Broken("example.com"))
    result = accepted(
        prepare(envelope("x@example.net"), COMPLETE, SUBMISSION, policy, queue_id="Q")
    )
    assert result.signing == Unsigned("example.com", "signing failed: key gone")
    assert result.message.endswith(COMPLETE)


def test_queue_metadata_carries_session_facts_and_dsn_parameters() -> None:
    params = {"x@example.net": DsnRecipient(notify=("SUCCESS",), orcpt="rfc822;x@example.net")}
    env = envelope("x@example.net", smtputf8=True, ret="HDRS", envid="E-1", dsn=params)
    meta = accepted(prepare(env, COMPLETE, SUBMISSION, POLICY, queue_id="Q")).meta
    assert (meta.origin, meta.client, meta.listener, meta.helo, meta.user) == (
        "smtp",
        "192.0.2.1",
        "submission",
        "app.example",
        "app",
    )
    assert meta.smtputf8 and meta.ret == "HDRS" and meta.envid == "E-1"
    assert meta.recipient_dsn("x@example.net").notify == ("SUCCESS",)


def test_originated_dsn_is_completed_signed_by_a_parent_domain_and_asks_for_no_dsn() -> None:
    dsn = (
        b"From: Mail Delivery System <MAILER-DAEMON@mail.example.com>\r\nSubject: x\r\n\r\nbody\r\n"
    )
    result = originate(
        "", ["app@example.com"], dsn, POLICY, queue_id="D1", origin="dsn", original="Q9"
    )
    assert result.signing == Signed("example.com", ("sel",))
    assert result.meta.sign_domain == "example.com"  # signed when it leaves
    assert b"DKIM-Signature" not in result.message
    assert b"Message-ID: <" in result.message and b"\r\nDate: " in result.message
    assert result.sender == "" and result.recipients == ("app@example.com",)
    assert result.meta.origin == "dsn" and result.meta.original == "Q9"
    # RFC 3461 §5.2.1 spirit: no DSN about a DSN
    assert result.meta.recipient_dsn("app@example.com").notify == ()


def test_originated_report_keeps_its_own_fields() -> None:
    report = (
        b"From: dmarc-noreply@example.com\r\nMessage-ID: <r@example.com>\r\nDate: x\r\n\r\nz\r\n"
    )
    result = originate(
        "dmarc-noreply@example.com",
        ["rua@example.org"],
        report,
        POLICY,
        queue_id="R",
        origin="report",
    )
    assert result.message.count(b"Message-ID:") == 1
    assert result.meta.origin == "report" and not result.meta.dsn


# -- the application's loop: tracking fields, suppression, 8-bit, require_dkim, VERP --------


def test_tracking_fields_are_read_into_meta_and_removed_before_signing() -> None:
    data = b'X-Mailwright-Tags: welcome\r\nX-Mailwright-Metadata: {"u": 1}\r\n' + COMPLETE
    result = accepted(
        prepare(
            envelope("x@example.net"),
            data,
            SUBMISSION,
            POLICY,
            queue_id="Q",
        )
    )
    assert result.meta.tags == ("welcome",) and result.meta.metadata == {"u": 1}
    assert result.meta.tracked and result.meta.message_id == "<1@example.com>"
    # the queued message is what the delivery agent signs
    assert b"X-Mailwright" not in result.message and result.meta.sign_domain == "example.com"


def test_bad_metadata_is_refused_with_a_clear_reply() -> None:
    data = b"X-Mailwright-Metadata: nope\r\n" + COMPLETE
    refused = prepare(envelope("x@example.net"), data, SUBMISSION, POLICY, queue_id="Q")
    assert isinstance(refused, Refused)
    assert refused.reply.text == "554 5.6.0 Error: X-Mailwright-Metadata is not valid JSON"


def test_tracking_fields_of_inbound_mail_are_left_alone() -> None:
    data = b"X-Mailwright-Tags: not ours\r\n" + COMPLETE
    result = accepted(prepare(envelope("x@example.com"), data, INBOUND, POLICY, queue_id="Q"))
    assert b"X-Mailwright-Tags: not ours" in result.message and result.meta.tags == ()
    assert not result.meta.tracked


def test_suppressed_recipients_are_dropped_the_others_go_on() -> None:
    result = accepted(
        prepare(
            envelope("a@example.net", "b@example.net"),
            COMPLETE,
            SUBMISSION,
            POLICY,
            queue_id="Q",
            suppressed=("b@example.net",),
        )
    )
    assert result.recipients == ("a@example.net",) and result.suppressed == ("b@example.net",)
    alone = accepted(
        prepare(
            envelope("b@example.net"),
            COMPLETE,
            SUBMISSION,
            POLICY,
            queue_id="Q",
            suppressed=("b@example.net",),
        )
    )
    assert alone.recipients == () and alone.suppressed == ("b@example.net",)


def test_8bit_submission_is_made_7bit_before_signing() -> None:
    # RFC 6152 §3: one signed form that every next hop can take (the queued message is
    # what the delivery agent signs).
    data = COMPLETE.replace(b"hello\r\n", "café\r\n".encode())
    result = accepted(
        prepare(
            envelope("x@example.net"),
            data,
            SUBMISSION,
            POLICY,
            queue_id="Q",
        )
    )
    assert result.converted and result.message.isascii()
    assert result.meta.sign_domain == "example.com"
    assert result.message.endswith(b"\r\n\r\ncaf=C3=A9\r\n")


def test_require_dkim_refuses_unsigned_submissions() -> None:
    policy = IntakePolicy("mail.example.com", signer=signer_for("other.example"), require_dkim=True)
    refused = prepare(envelope("x@example.net"), COMPLETE, SUBMISSION, policy, queue_id="Q")
    assert isinstance(refused, Refused)
    assert refused.reply.code == 550 and "require_dkim" in refused.reply.text
    assert refused.reason == "unsigned: no DKIM key for the From domain"
    # without require_dkim the message goes, unsigned (the server warns)
    loose = IntakePolicy("mail.example.com", signer=signer_for("other.example"))
    result = accepted(prepare(envelope("x@example.net"), COMPLETE, SUBMISSION, loose, queue_id="Q"))
    assert isinstance(result.signing, Unsigned)


def test_verp_only_for_senders_of_our_domains() -> None:
    policy = IntakePolicy(
        "mail.example.com",
        signer=signer_for("example.com"),
        verp=True,
        local_domains=frozenset({"example.com"}),
    )
    ours = accepted(prepare(envelope("x@example.net"), COMPLETE, SUBMISSION, policy, queue_id="Q"))
    assert ours.meta.verp
    foreign = Envelope(Mailbox("app", "elsewhere.example"))
    foreign.recipients = [Mailbox("x", "example.net")]
    other = accepted(prepare(foreign, COMPLETE, SUBMISSION, policy, queue_id="Q"))
    assert not other.meta.verp
    null = Envelope(None)
    null.recipients = [Mailbox("x", "example.net")]
    assert not accepted(prepare(null, COMPLETE, SUBMISSION, policy, queue_id="Q")).meta.verp


def test_no_verp_for_senders_with_their_own_bounce_handling() -> None:
    """Mailman's -bounces addresses keep their return path (Mailman does its own VERP)
    and so get our DSNs, which its bounce runner scores."""
    policy = IntakePolicy(
        "mail.example.com",
        signer=signer_for("example.com"),
        verp=True,
        local_domains=frozenset({"example.com"}),
        own_bounces=lambda address: address.startswith("team-bounces@"),
    )
    lists = Envelope(Mailbox("team-bounces", "example.com"))
    lists.recipients = [Mailbox("x", "example.net")]
    assert not accepted(prepare(lists, COMPLETE, SUBMISSION, policy, queue_id="Q")).meta.verp
    app = accepted(prepare(envelope("x@example.net"), COMPLETE, SUBMISSION, policy, queue_id="Q"))
    assert app.meta.verp
