"""Inbound reports: RFC 3464 DSNs, plain-text bounces, ARF (RFC 5965), auto-replies."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mailwright.bounce import MAX_RECIPIENTS, bounce_type, parse_report

from . import samples


def test_rfc3464_dsn_hard_bounce() -> None:
    report = parse_report(samples.dsn(samples.UNKNOWN_USER_BLOCK))
    assert (report.kind, report.format) == ("bounce", "rfc3464")
    [rcpt] = report.recipients
    assert rcpt.recipient == "nobody@remote.example"  # domain case folded
    assert (rcpt.action, rcpt.status, rcpt.bounce_type) == ("failed", "5.1.1", "hard")
    assert rcpt.cause == "recipient-unknown"
    assert rcpt.diagnostic.startswith("550 5.1.1 <nobody@remote.example>: Recipient address")
    assert rcpt.remote_mta == "inbox.remote.example"
    assert report.original_message_id == "<welcome.1@app.example>"
    assert report.original_envelope_id == "ENV-42"
    assert report.reporting_mta == "mx.remote.example"


def test_rfc3464_soft_and_delayed() -> None:
    report = parse_report(samples.dsn(samples.MAILBOX_FULL_BLOCK + "\n" + samples.DELAYED_BLOCK))
    full, slow = report.recipients
    assert (full.bounce_type, full.cause) == ("soft", "mailbox-full")
    assert (slow.action, slow.bounce_type, slow.cause) == ("delayed", None, "connection-failed")
    assert report.kind == "bounce"
    only_delayed = parse_report(samples.dsn(samples.DELAYED_BLOCK))
    assert only_delayed.kind == "delayed"


def test_policy_refusal_is_soft_not_hard() -> None:
    block = (
        "Final-Recipient: rfc822; r@remote.example\nAction: failed\nStatus: 5.7.1\n"
        "Diagnostic-Code: smtp; 550 5.7.1 Message rejected as spam\n"
    )
    [rcpt] = parse_report(samples.dsn(block)).recipients
    assert (rcpt.bounce_type, rcpt.cause) == ("soft", "spam-content")


@pytest.mark.parametrize(
    ("status", "cause", "expected"),
    [
        ("5.1.1", "unknown", "hard"),
        ("5.1.10", "recipient-domain-dns", "hard"),
        ("", "recipient-unknown", "hard"),
        ("4.1.1", "recipient-unknown", "soft"),
        ("5.2.2", "mailbox-full", "soft"),
        ("5.7.1", "dmarc", "soft"),
    ],
)
def test_bounce_type(status: str, cause: str, expected: str) -> None:
    assert bounce_type(status, cause) == expected


def test_dsn_with_10000_recipients_is_read_quickly() -> None:
    blocks = "\n".join(
        f"Final-Recipient: rfc822; u{i}@remote.example\nAction: failed\nStatus: 5.1.1\n"
        for i in range(10_000)
    )
    data = samples.dsn(blocks)
    started = time.perf_counter()
    report = parse_report(data)
    elapsed = time.perf_counter() - started
    assert len(report.recipients) == 10_000 and not report.truncated
    assert report.recipients[-1].recipient == "u9999@remote.example"
    assert elapsed < 10  # ~1 s on a loaded 2-core machine


def test_recipients_beyond_the_limit_are_cut_and_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    import mailwright.bounce.rfc3464 as rfc3464

    monkeypatch.setattr(rfc3464, "MAX_RECIPIENTS", 3)
    blocks = "\n".join(
        f"Final-Recipient: rfc822; u{i}@remote.example\nAction: failed\nStatus: 5.1.1\n"
        for i in range(5)
    )
    report = parse_report(samples.dsn(blocks))
    assert len(report.recipients) == 3 and report.truncated
    assert MAX_RECIPIENTS >= 10_000


@pytest.mark.parametrize(
    ("data", "fmt", "expected"),
    [
        (samples.EXCHANGE, "exchange", [("gone@corp.example", "5.1.1", "hard")]),
        (samples.GMAIL, "gmail", [("missing.person@gmail.example", "5.1.1", "hard")]),
        (
            samples.QMAIL,
            "qmail",
            [("nouser@qmail.example", "5.1.1", "hard"), ("quota@qmail.example", "5.2.2", "soft")],
        ),
        (samples.EXIM, "exim", [("dead@exim.example", "5.1.1", "hard")]),
        (samples.POSTFIX_TEXT, "postfix", [("ghost@pf.example", "5.1.1", "hard")]),
    ],
)
def test_plain_text_bounces(data: bytes, fmt: str, expected: list[tuple[str, str, str]]) -> None:
    report = parse_report(data)
    assert (report.kind, report.format) == ("bounce", fmt)
    assert [(r.recipient, r.status, r.bounce_type) for r in report.recipients] == expected


def test_plain_text_bounce_ignores_the_returned_copy() -> None:
    # the copy's To: (someone.else@, other@) must not be read as failed recipients
    assert [r.recipient for r in parse_report(samples.EXIM).recipients] == ["dead@exim.example"]
    assert parse_report(samples.EXIM).original_message_id == "<welcome.6@app.example>"
    assert parse_report(samples.GMAIL).original_message_id == "<welcome.4@app.example>"


def test_arf_complaint() -> None:
    report = parse_report(samples.ARF)
    assert (report.kind, report.format, report.feedback_type) == ("complaint", "arf", "abuse")
    assert report.original_recipients == ("reader@provider.example",)
    assert report.original_sender == "bounces+0abc-1-2-xyz@app.example"
    assert report.original_message_id == "<welcome.2@app.example>"
    assert report.details["Source-IP"] == "192.0.2.1"


def test_arf_with_redacted_recipient_keeps_the_verp_sender() -> None:
    report = parse_report(samples.ARF_REDACTED)
    assert report.kind == "complaint" and report.original_recipients == ()
    assert report.original_sender == "bounces+0abc-1-2-xyz@app.example"


def test_auto_replies_are_not_bounces() -> None:
    report = parse_report(samples.AUTO_REPLY)
    assert (report.kind, report.format) == ("autoreply", "rfc3834")
    assert report.reason == "Auto-Submitted: auto-replied"
    assert report.original_message_id == "<welcome.7@app.example>"
    assert report.original_recipients == ("reader@provider.example",)
    ooo = parse_report(samples.OUT_OF_OFFICE_SUBJECT_ONLY)
    assert (ooo.kind, ooo.reason) == ("autoreply", "subject")


def test_ordinary_mail_is_unknown() -> None:
    report = parse_report(samples.PLAIN_MAIL)
    assert report.kind == "unknown" and report.recipients == ()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe" * 1000,
        b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno boundary",
        samples.dsn("").replace(b"message/delivery-status", b"message/delivery-status\r\n"),
        samples.dsn("garbage without colon\n\n::::\n"),
        samples.dsn("Final-Recipient: \nAction: explode\nStatus: 9.9.9\n"),
        samples.ARF.replace(b"message/feedback-report", b"text/plain"),
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n--x--",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"--a\r\n" * 5000,
        b"Subject: " + b"=?utf-8?q?" + b"A" * 100_000 + b"?=\r\n\r\n",
    ],
)
def test_malformed_reports_have_a_defined_outcome(data: bytes) -> None:
    report = parse_report(data)
    assert report.kind in ("unknown", "bounce", "delayed", "complaint")
    assert all(r.recipient for r in report.recipients)


def test_status_of_unusable_block_is_dropped() -> None:
    report = parse_report(samples.dsn("Final-Recipient: rfc822; x@r.example\nStatus: 9.9.9\n"))
    [rcpt] = report.recipients
    assert rcpt.status == "" and rcpt.action == "delayed"


def test_oversized_input_is_cut() -> None:
    from mailwright.bounce import MAX_INPUT

    data = samples.dsn(samples.UNKNOWN_USER_BLOCK) + b"x" * (MAX_INPUT + 10)
    report = parse_report(data)
    assert report.truncated and report.recipients[0].bounce_type == "hard"


# --- what ``mailwright explain`` read on its own before it used this parser ---------------

EXPLAIN_BOUNCES = Path(__file__).parents[2] / "data" / "explain" / "bounces"


def test_the_remote_reply_is_cut_from_the_mta_words_around_it() -> None:
    carol, dave = parse_report((EXPLAIN_BOUNCES / "qmail.eml").read_bytes()).recipients
    assert carol.diagnostic.startswith("550 5.1.1 <carol@example.net>: Recipient address")
    assert dave.diagnostic == "Sorry, I couldn't find any host named example.invalid. (#5.1.2)"
    [erin] = parse_report((EXPLAIN_BOUNCES / "exim.eml").read_bytes()).recipients
    assert erin.diagnostic.startswith("550-5.7.1 Message rejected")
    assert erin.remote_mta == "mx.example.org"


def test_remote_mta_is_the_name_without_the_receivers_comment() -> None:
    report = parse_report((EXPLAIN_BOUNCES / "gmail-rfc3464.eml").read_bytes())
    assert report.recipients[0].remote_mta == "gmail-smtp-in.l.google.com"
    assert report.original_from == "app@example.com"


def test_x_failed_recipients_names_the_addresses_of_a_bounce_in_no_known_wording() -> None:
    data = samples.crlf(
        "From: relay@mail.example.net\nTo: app@example.com\nSubject: Re: hello\n"
        "X-Failed-Recipients: frank@example.net, <gina@example.net>\n\n"
        "Sorry.\n\n552 5.2.2 Mailbox full\n"
    )
    report = parse_report(data)
    assert (report.kind, report.format) == ("bounce", "generic")
    assert [(r.recipient, r.status, r.diagnostic) for r in report.recipients] == [
        ("frank@example.net", "5.2.2", "552 5.2.2 Mailbox full"),
        ("gina@example.net", "5.2.2", "552 5.2.2 Mailbox full"),
    ]


def test_a_bounce_with_only_an_html_part_is_read() -> None:
    data = samples.crlf(
        "From: MAILER-DAEMON@mail.example.net\nTo: app@example.com\n"
        "Subject: Undeliverable: hello\nContent-Type: text/html\n\n"
        "<p>Delivery has failed to these recipients or groups:</p>\n"
        "<p><a href='mailto:hal@example.net'>hal@example.net</a></p>\n"
        "<p>Remote Server returned '550 5.1.1 User unknown'</p>\n"
    )
    [hal] = parse_report(data).recipients
    assert (hal.recipient, hal.status, hal.diagnostic) == (
        "hal@example.net",
        "5.1.1",
        "550 5.1.1 User unknown",
    )
