"""Inbound authentication: SPF at the envelope, DKIM + DMARC after DATA, the verdict and header."""

from __future__ import annotations

import asyncio
import gzip
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailwright import authres
from mailwright.config import parse_config
from mailwright.dkim import SigningKey, dns_record_value, generate_key, sign_message
from mailwright.dmarc_reports.observations import OBSERVATIONS_DB, Observation, ObservationStore
from mailwright.dmarc_reports.parse import reports_from_message
from mailwright.dmarc_reports.received import ReportStore
from mailwright.dmarc_reports.sender import send_due_reports
from mailwright.dns import MemoryResolver
from mailwright.inbound import (
    InboundChecker,
    apply_verdict,
    check_envelope,
    check_message,
    from_domains,
)
from mailwright.log import EventLogger

AUTHSERV = "mx.example.net"
GOOD_IP = "192.0.2.10"
BAD_IP = "203.0.113.66"
KEY = generate_key("ed25519")


def world(dmarc: str = "v=DMARC1; p=reject; rua=mailto:d@example.org") -> MemoryResolver:
    r = MemoryResolver()
    r.add("example.org", "TXT", f"v=spf1 ip4:{GOOD_IP} -all")
    r.add("mail.example.org", "TXT", f"v=spf1 ip4:{GOOD_IP} -all")
    r.add("mail.example.org", "A", GOOD_IP)
    r.add("sel._domainkey.example.org", "TXT", dns_record_value(KEY))
    r.add("_dmarc.example.org", "TXT", dmarc)
    return r


def message(signed: bool, from_line: bytes = b"From: Alice <alice@example.org>\r\n") -> bytes:
    body = (
        from_line + b"To: bob@example.net\r\nSubject: hello\r\n"
        b"Date: Tue, 24 Nov 2026 19:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nHi Bob.\r\n"
    )
    if not signed:
        return body
    key = SigningKey("example.org", "sel", "ed25519-sha256", KEY)
    return sign_message(body, [key]) + body


async def verdict(
    ip: str,
    signed: bool,
    *,
    resolver: MemoryResolver | None = None,
    mail_from: str = "alice@example.org",
    enforcement: str = "enforce",
    msg: bytes | None = None,
):  # type: ignore[no-untyped-def]
    resolver = resolver or world()
    envelope = await check_envelope(ip, "mail.example.org", mail_from, resolver, receiver=AUTHSERV)
    return await check_message(
        msg if msg is not None else message(signed),
        envelope,
        resolver,
        authserv_id=AUTHSERV,
        enforcement=enforcement,  # type: ignore[arg-type]
    )


async def test_authenticated_mail_passes_everything() -> None:
    v = await verdict(GOOD_IP, signed=True)
    assert v.action == "deliver"
    parsed = authres.parse(v.header.split(":", 1)[1])
    words = [(r.method, r.result) for r in parsed.results]
    assert ("spf", "pass") in words
    assert ("dkim", "pass") in words
    assert ("dmarc", "pass") in words


async def test_spoofed_mail_is_rejected_naming_the_policy() -> None:
    v = await verdict(BAD_IP, signed=False)
    assert v.action == "reject"
    assert v.reply is not None
    assert v.reply.startswith("550 5.7.1 ")
    assert "DMARC policy of example.org" in v.reply
    assert "p=reject" in v.reply


async def test_dkim_alone_satisfies_dmarc_from_a_forwarder() -> None:
    v = await verdict(BAD_IP, signed=True)
    assert v.action == "deliver"
    assert v.dmarc_word == "pass"


async def test_list_mail_failing_dmarc_goes_to_junk_not_rejected() -> None:
    # RFC 9989 §8: a list re-signs with its own domain; p=reject alone must not reject it.
    resolver = world()
    list_key = generate_key("ed25519")
    resolver.add("list._domainkey.lists.example", "TXT", dns_record_value(list_key))
    body = message(False)
    signed = sign_message(body, [SigningKey("lists.example", "list", "ed25519-sha256", list_key)])
    v = await verdict(BAD_IP, signed=False, resolver=resolver, msg=signed + body)
    assert v.dmarc_word == "fail"
    assert v.action == "junk"
    assert any("RFC 9989 §8" in n for n in v.notes)


async def test_quarantine_policy_goes_to_junk() -> None:
    v = await verdict(BAD_IP, signed=False, resolver=world("v=DMARC1; p=quarantine"))
    assert v.action == "junk"
    assert v.reply is None


async def test_testing_mode_lowers_reject_to_quarantine() -> None:
    v = await verdict(BAD_IP, signed=False, resolver=world("v=DMARC1; p=reject; t=y"))
    assert v.action == "junk"


async def test_p_none_delivers() -> None:
    v = await verdict(BAD_IP, signed=False, resolver=world("v=DMARC1; p=none"))
    assert v.action == "deliver"
    assert v.dmarc_word == "fail"


async def test_report_only_mode_delivers_and_says_so() -> None:
    v = await verdict(BAD_IP, signed=False, enforcement="report-only")
    assert v.action == "deliver"
    assert any("report-only" in n for n in v.notes)


async def test_null_sender_uses_the_helo_identity() -> None:
    v = await verdict(GOOD_IP, signed=False, mail_from="")
    assert v.envelope.spf_mailfrom.domain == "mail.example.org"
    assert str(v.envelope.spf_mailfrom.result) == "pass"
    assert "smtp.helo=mail.example.org" in v.header


async def test_message_without_from_goes_to_junk() -> None:
    # RFC 9989 §11.5: DMARC cannot protect a message without an Author Domain.
    msg = b"Subject: no from\r\n\r\nbody\r\n"
    v = await verdict(BAD_IP, signed=False, msg=msg)
    assert v.dmarc == ()
    assert v.action == "junk"
    assert "no From header field" in v.notes


async def test_malformed_from_cannot_bypass_a_reject_policy() -> None:
    # The reviewer's case: a quote swallowed the '<' and the "domain" became 'example.org>'.
    msg = message(False, b'From: "Bank\\" <alice@example.org>\r\n')
    v = await verdict(BAD_IP, signed=False, msg=msg)
    assert v.action in ("junk", "reject")
    assert v.action != "deliver"


async def test_at_most_five_author_domains_are_evaluated() -> None:
    many = ", ".join(f"x@d{i}.example" for i in range(50)).encode()
    resolver = world()
    v = await verdict(
        BAD_IP, signed=False, resolver=resolver, msg=message(False, b"From: " + many + b"\r\n")
    )
    assert len(v.dmarc) == 5
    assert v.action == "junk"
    assert sum(1 for name, _ in resolver.queries if name.startswith("_dmarc.")) <= 5 * 8


def test_from_domains_of_several_fields() -> None:
    msg = b"From: a@example.org\r\nFrom: b@Example.COM.\r\n\r\n"
    assert from_domains(msg) == (("example.org", "example.com"), "several From header fields")


async def test_strictest_of_several_from_domains_wins() -> None:
    resolver = world()
    resolver.add("_dmarc.example.com", "TXT", "v=DMARC1; p=none")
    msg = message(True, b"From: alice@example.org, eve@example.com\r\n")
    v = await verdict(GOOD_IP, signed=True, resolver=resolver, msg=msg)
    assert [str(d.result) for d in v.dmarc] == ["pass", "fail"]
    assert v.action == "deliver"  # example.com's p=none


@pytest.mark.parametrize("claimed", [AUTHSERV, "MX.Example.NET"])
async def test_forged_results_for_our_id_are_removed(claimed: str) -> None:
    forged = f"Authentication-Results: {claimed}; dmarc=pass header.from=example.org\r\n"
    foreign = "Authentication-Results: other.example; spf=pass smtp.mailfrom=x.example\r\n"
    msg = (forged + foreign).encode() + message(False)
    v = await verdict(BAD_IP, signed=False, msg=msg, enforcement="report-only")
    out = apply_verdict(msg, v, AUTHSERV)
    assert out.count(b"Authentication-Results:") == 2
    assert b"other.example; spf=pass" in out
    assert out.startswith(b"Authentication-Results: mx.example.net;")
    assert b"dmarc=fail" in out


# --- the server hook ------------------------------------------------------------------

REPORT = (
    b"<feedback><report_metadata><org_name>google.com</org_name><report_id>42</report_id>"
    b"<date_range><begin>1</begin><end>2</end></date_range></report_metadata>"
    b"<policy_published><domain>example.net</domain><p>none</p></policy_published>"
    b"<record><row><source_ip>192.0.2.1</source_ip><count>3</count><policy_evaluated>"
    b"<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>"
    b"<identifiers><header_from>example.net</header_from></identifiers></record></feedback>"
)


def _checker(tmp_path: Path, events: list[dict[str, str]], **inbound: object) -> InboundChecker:
    config = parse_config(
        {
            "hostname": AUTHSERV,
            "domains": ["example.net"],
            "data_dir": str(tmp_path),
            "inbound": inbound,
        },
        tmp_path / "mailwright.toml",
    )
    logger = EventLogger(stderr=False)
    logger.subscribe(events.append)
    return InboundChecker(config, world(), logger)


async def test_hook_rejects_forgery_and_logs_the_verdict(tmp_path: Path) -> None:
    events: list[dict[str, str]] = []
    decision = await _checker(tmp_path, events)(
        message(False),
        queue_id="Q1",
        client_ip=BAD_IP,
        helo="mail.example.org",
        mail_from="alice@example.org",
        recipients=["bob@example.net"],
    )
    assert decision.reply is not None and decision.reply.startswith("550 5.7.1")
    (event,) = events
    assert (event["event"], event["id"], event["action"], event["dmarc"]) == (
        "inbound",
        "Q1",
        "reject",
        "fail",
    )


async def test_hook_sends_quarantined_mail_to_the_junk_folder(tmp_path: Path) -> None:
    events: list[dict[str, str]] = []
    checker = _checker(tmp_path, events, quarantine_folder=".Spam")
    checker.resolver = world("v=DMARC1; p=quarantine")
    decision = await checker(
        message(False),
        queue_id="Q2",
        client_ip=BAD_IP,
        helo="mail.example.org",
        mail_from="alice@example.org",
        recipients=["bob@example.net"],
    )
    assert decision.reply is None
    assert decision.folder == ".Spam"
    assert decision.message.startswith(b"Authentication-Results: mx.example.net;")


async def test_hook_stores_reports_sent_to_the_rua_mailbox(tmp_path: Path) -> None:
    events: list[dict[str, str]] = []
    report_mail = EmailMessage()
    report_mail["From"] = "noreply-dmarc-support@example.org"
    report_mail["To"] = "dmarc-reports@example.net"
    report_mail["Subject"] = "Report Domain: example.net Submitter: google.com Report-ID: 42"
    report_mail.set_content("report attached")
    report_mail.add_attachment(
        gzip.compress(REPORT), maintype="application", subtype="gzip", filename="r.xml.gz"
    )
    foreign = REPORT.replace(b"<domain>example.net<", b"<domain>victim.example<").replace(
        b"<report_id>42<", b"<report_id>43<"
    )
    report_mail.add_attachment(foreign, maintype="text", subtype="xml", filename="r2.xml")
    checker = _checker(tmp_path, events)
    await checker(
        report_mail.as_bytes(),
        queue_id="Q3",
        client_ip=GOOD_IP,
        helo="mail.example.org",
        mail_from="alice@example.org",
        recipients=["DMARC-Reports@example.net"],
    )
    statuses = [(e["event"], e.get("status")) for e in events if e["event"] == "dmarc-report"]
    assert statuses == [("dmarc-report", "stored"), ("dmarc-report", "refused")]
    refused = next(e for e in events if e.get("status") == "refused")
    assert "victim.example" in refused["reason"]
    store = ReportStore.in_data_dir(tmp_path)
    assert store.summarize().messages == 3
    store.close()


async def test_observations_become_a_daily_report(tmp_path: Path) -> None:
    events: list[dict[str, str]] = []
    checker = _checker(tmp_path, events, send_aggregate_reports=True)
    for ip in (GOOD_IP, GOOD_IP, BAD_IP):
        await checker(
            message(ip == GOOD_IP),
            queue_id="Q",
            client_ip=ip,
            helo="mail.example.org",
            mail_from="alice@example.org",
            recipients=["bob@example.net"],
        )
    queued: list[tuple[str, list[str], bytes]] = []

    async def enqueue(sender: str, recipients: list[str], data: bytes) -> str:
        queued.append((sender, recipients, data))
        return "R1"

    sent = await send_due_reports(
        data_dir=tmp_path,
        hostname=AUTHSERV,
        from_address="dmarc-noreply@example.net",
        resolver=checker.resolver,
        enqueue=enqueue,
    )
    assert [(domain, qid) for domain, qid, _skipped in sent] == [("example.org", "R1")]
    ((sender, recipients, data),) = queued
    assert (sender, recipients) == ("dmarc-noreply@example.net", ["d@example.org"])
    (report,) = reports_from_message(data)
    assert not isinstance(report, Exception)
    rows = {(r.source_ip, r.count, r.disposition, r.dkim, r.spf) for r in report.records}
    assert rows == {
        (GOOD_IP, 2, "none", "pass", "pass"),
        (BAD_IP, 1, "reject", "fail", "fail"),
    }
    assert {r.spf_results[0].scope for r in report.records} == {"mfrom"}
    assert report.begin <= report.end
    assert report.end - report.begin < 3600  # the observations' own time, not a day back


async def test_report_rows_say_why_the_policy_was_not_applied(tmp_path: Path) -> None:
    # RFC 9990 §3.1.1.9: report-only delivered a p=reject forgery → local_policy.
    events: list[dict[str, str]] = []
    checker = _checker(
        tmp_path, events, send_aggregate_reports=True, dmarc_enforcement="report-only"
    )
    await checker(
        message(False),
        queue_id="Q",
        client_ip=BAD_IP,
        helo="mail.example.org",
        mail_from="alice@example.org",
        recipients=["bob@example.net"],
    )
    queued: list[bytes] = []

    async def enqueue(sender: str, recipients: list[str], data: bytes) -> str:
        queued.append(data)
        return "R"

    await send_due_reports(
        data_dir=tmp_path,
        hostname=AUTHSERV,
        from_address="dmarc-noreply@example.net",
        resolver=checker.resolver,
        enqueue=enqueue,
    )
    (report,) = reports_from_message(queued[0])
    assert not isinstance(report, Exception)
    (row,) = report.records
    assert (row.disposition, row.reasons) == ("none", ("local_policy",))


def test_quarantine_folder_must_be_a_maildirplus_name(tmp_path: Path) -> None:
    from mailwright.errors import ConfigError

    with pytest.raises(ConfigError, match=r"inbound\.quarantine_folder: 'Junk' is not a Maildir"):
        parse_config({"inbound": {"quarantine_folder": "Junk"}}, tmp_path / "m.toml")


# --- the report stores stay off the event loop ------------------------------------------


def _report_mail() -> bytes:
    mail = EmailMessage()
    mail["From"] = "noreply-dmarc-support@example.org"
    mail["To"] = "dmarc-reports@example.net"
    mail["Subject"] = "Report Domain: example.net Submitter: google.com Report-ID: 42"
    mail.set_content("report attached")
    mail.add_attachment(
        gzip.compress(REPORT), maintype="application", subtype="gzip", filename="r.xml.gz"
    )
    return mail.as_bytes()


async def test_report_stores_open_once_and_run_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several messages: each store is opened once, and every SQLite call (open, write,
    close) runs on one thread that is not the event loop's."""
    calls: list[tuple[str, int]] = []

    class Observations(ObservationStore):
        def __init__(self, path: Path) -> None:
            calls.append(("open observations", threading.get_ident()))
            super().__init__(path)

        def add(self, observation: Observation, rua: list[str]) -> None:  # type: ignore[override]
            calls.append(("add observation", threading.get_ident()))
            super().add(observation, rua)

        def close(self) -> None:
            calls.append(("close observations", threading.get_ident()))
            super().close()

    class Reports(ReportStore):
        def __init__(self, path: Path) -> None:
            calls.append(("open reports", threading.get_ident()))
            super().__init__(path)

        def close(self) -> None:
            calls.append(("close reports", threading.get_ident()))
            super().close()

    monkeypatch.setattr("mailwright.inbound.ObservationStore", Observations)
    monkeypatch.setattr("mailwright.inbound.ReportStore", Reports)
    events: list[dict[str, str]] = []
    checker = _checker(tmp_path, events, send_aggregate_reports=True)
    mails = [
        (message(True), ["bob@example.net"]),
        (message(False), ["bob@example.net"]),
        (_report_mail(), ["dmarc-reports@example.net"]),
        (message(True), ["bob@example.net"]),
    ]
    for data, recipients in mails:
        await checker(
            data,
            queue_id="Q",
            client_ip=GOOD_IP,
            helo="mail.example.org",
            mail_from="alice@example.org",
            recipients=recipients,
        )
    await checker.stores.aclose()

    names = [name for name, _thread in calls]
    assert names.count("open observations") == 1
    assert names.count("open reports") == 1
    assert names.count("add observation") == len(mails)
    assert sorted(names[-2:]) == ["close observations", "close reports"]
    threads = {thread for _name, thread in calls}
    assert len(threads) == 1
    assert threading.get_ident() not in threads
    assert [e["status"] for e in events if e["event"] == "dmarc-report"] == ["stored"]
    assert not [e for e in events if e["event"] == "error"]
    kept = ObservationStore(tmp_path / OBSERVATIONS_DB)
    try:
        ((_rua, observations),) = kept.take(until=float("inf")).values()
    finally:
        kept.close()
    assert len(observations) == len(mails)


async def test_a_slow_store_write_does_not_stall_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write held up (a sibling worker's lock, a slow disk) leaves the loop running."""
    entered, release = threading.Event(), threading.Event()

    class Stuck(ObservationStore):
        def add(self, observation: Observation, rua: list[str]) -> None:  # type: ignore[override]
            entered.set()
            release.wait(timeout=10)
            super().add(observation, rua)

    monkeypatch.setattr("mailwright.inbound.ObservationStore", Stuck)
    checker = _checker(tmp_path, [], send_aggregate_reports=True)
    task = asyncio.create_task(
        checker(
            message(True),
            queue_id="Q",
            client_ip=GOOD_IP,
            helo="mail.example.org",
            mail_from="alice@example.org",
            recipients=["bob@example.net"],
        )
    )
    for _ in range(1000):
        if entered.is_set():
            break
        await asyncio.sleep(0.01)
    assert entered.is_set()
    # The write is in progress, yet this coroutine runs: the loop is not blocked.
    assert not task.done()
    release.set()
    decision = await task
    assert decision.reply is None
    await checker.stores.aclose()
