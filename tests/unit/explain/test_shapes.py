"""Issue 17 items 1-5: every log line that carries a remote reply (Postfix's attempt
lines, Exim, no syslog prefix), pasted replies and bounce messages, our own refusals,
expired messages, fixes that apply, and the exit status."""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime
from pathlib import Path

import pytest

from mailwright.cli.main import main
from mailwright.explain import Explainer, SourceStats
from mailwright.explain.bounces import looks_like_message, parse_bounce
from mailwright.explain.logline import split_replies

from .corpus import DATA

BOUNCES = DATA / "bounces"
NOW = datetime(2026, 12, 1, 12, 0)
PTR_REFUSAL = (
    "host mx01.example.net[192.0.2.5] refused to talk to me: 554-mx01.example.net "
    "ESMTP not accepting messages 554 Bad DNS PTR resource record"
)


def explain(text: str, **kwargs: object) -> dict[str, object]:
    explainer = Explainer(now=NOW, **kwargs)  # type: ignore[arg-type]
    explainer.consume(io.BytesIO(text.encode()), SourceStats("test"))
    return explainer.to_json()


def causes(report: dict[str, object]) -> dict[str, int]:
    return {c["cause"]: c["count"] for c in report["causes"]}  # type: ignore[attr-defined]


# --- 1. log lines of every shape --------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        (f"Nov 24 06:25:11 mail postfix/smtp[3023]: B975729FAE9: {PTR_REFUSAL}", "reverse-dns"),
        (f"postfix/smtp[3023]: B975729FAE9: {PTR_REFUSAL}", "reverse-dns"),  # no syslog prefix
        (f"B975729FAE9: {PTR_REFUSAL}", "reverse-dns"),
        (
            "Nov 24 06:25:11 mail postfix/smtp[3023]: B975729FAE9: host mx.example.net"
            "[203.0.113.5] said: 450 4.7.1 Client host rejected: cannot find your reverse "
            "hostname, [192.0.2.10] (in reply to RCPT TO command)",
            "reverse-dns",
        ),
        (
            "Nov 24 06:25:11 mail postfix/smtp[3023]: B975729FAE9: lost connection with "
            "mx.example.net[203.0.113.5] while receiving the initial server greeting",
            "connection-failed",
        ),
        (
            "Nov 24 06:25:11 mail postfix/smtp[3023]: B975729FAE9: conversation with "
            "mx.example.net[203.0.113.5] timed out while sending end of data -- message may "
            "be sent more than once",
            "connection-failed",
        ),
        (
            "Nov 24 06:25:11 mail postfix/smtp[3023]: connect to mx.example.net"
            "[203.0.113.5]:25: Connection timed out",
            "connection-failed",
        ),
        (
            "B975729FAE9: to=<bob@example.net>, relay=mx.example.net[203.0.113.5]:25, "
            "delay=1, delays=0/0/0/1, dsn=5.1.1, status=bounced (host mx.example.net"
            "[203.0.113.5] said: 550 5.1.1 <bob@example.net>: User unknown (in reply to "
            "RCPT TO command))",
            "recipient-unknown",
        ),
        (
            "event=bounced id=4jM2jk60QD9z to=<bob@example.net> relay=mx.example.net"
            '[203.0.113.5]:25 dsn=5.1.1 reply="550 5.1.1 User unknown"',
            "recipient-unknown",
        ),
        (
            "2026-11-24 06:25:20 1tE8Xa-000Abc-12 ** erin@example.org R=dnslookup "
            "T=remote_smtp H=mx.example.org [198.51.100.30] X=TLS1.3:TLS_AES_256_GCM_SHA384:256 "
            "CV=yes DT=1s: SMTP error from remote mail server after end of data: "
            "550-5.7.1 Message rejected: 192.0.2.10 is listed at zen.spamhaus.org\\n"
            "550 5.7.1 see https://check.spamhaus.org/",
            "blocklisted",
        ),
        (
            "2026-11-24 06:25:20 1tE8Xa-000Abc-12 == erin@example.org R=dnslookup "
            "T=remote_smtp defer (-44) H=mx.example.org [198.51.100.30]: SMTP error from "
            "remote mail server after RCPT TO:<erin@example.org>: 451 4.7.1 Greylisted, "
            "please try again later",
            "greylisted",
        ),
    ],
)
def test_one_line_of_each_shape(line: str, cause: str) -> None:
    report = explain(line + "\n")
    assert causes(report) == {cause: 1}
    assert report["skipped_lines"] == 0


def test_exim_retry_time_not_reached_is_no_attempt() -> None:
    line = (
        "2026-11-24 06:30:00 1tE8Xa-000Abc-12 == erin@example.org R=dnslookup T=remote_smtp "
        "defer (-53): retry time not reached for any host for 'example.org'\n"
    )
    assert causes(explain(line)) == {}


def test_exim_multi_line_reply_is_joined() -> None:
    report = explain(
        "2026-11-24 06:25:20 1tE8Xa-000Abc-12 ** a@example.org R=dnslookup T=remote_smtp "
        "H=mx.example.org [198.51.100.30]: SMTP error from remote mail server after RCPT "
        "TO:<a@example.org>: 550-5.1.1 The email account that you tried to reach does\\n"
        "550 5.1.1 not exist.\n"
    )
    example = report["causes"][0]["examples"][0]  # type: ignore[index]
    assert "\\n" not in example["text"]
    assert example["remote_host"] == "mx.example.org[198.51.100.30]"
    assert example["dsn"] == "5.1.1"


ATTEMPT = (
    "Nov 24 06:25:10 mail postfix/smtp[3023]: B975729FAE9: host mx1.example.net"
    "[203.0.113.5] said: 451 4.7.1 Greylisted, please try again later (in reply to RCPT TO "
    "command)\n"
)
CONNECT = (
    "Nov 24 06:25:10 mail postfix/smtp[3023]: connect to mx1.example.net[203.0.113.5]:25: "
    "Connection refused\n"
)


def status(
    word: str,
    text: str = "host mx2.example.net[203.0.113.6] said: 550 5.1.1 "
    "User unknown (in reply to RCPT TO command)",
) -> str:
    dsn = {"sent": "2.0.0", "bounced": "5.1.1", "deferred": "4.4.1"}[word]
    tail = f" ({text})" if word != "sent" else " (250 2.0.0 Ok)"
    return (
        "Nov 24 06:25:11 mail postfix/smtp[3023]: B975729FAE9: to=<bob@example.net>, "
        f"relay=mx2.example.net[203.0.113.6]:25, delay=1, delays=0/0/0/1, dsn={dsn}, "
        f"status={word}{tail}\n"
    )


@pytest.mark.parametrize("attempt", [ATTEMPT, CONNECT])
def test_an_attempt_followed_by_its_status_line_counts_once(attempt: str) -> None:
    report = explain(attempt + status("bounced"))
    assert causes(report) == {"recipient-unknown": 1}


@pytest.mark.parametrize("attempt", [ATTEMPT, CONNECT])
def test_an_attempt_then_delivered_by_another_mx_is_no_failure(attempt: str) -> None:
    report = explain(attempt + status("sent"))
    assert causes(report) == {}
    assert report["totals"]["delivered"] == 1  # type: ignore[index]


def test_an_attempt_without_status_line_counts_with_its_status_from_the_code() -> None:
    report = explain(f"Nov 24 06:25:11 mail postfix/smtp[3023]: B975729FAE9: {PTR_REFUSAL}\n")
    entry = report["causes"][0]  # type: ignore[index]
    assert (entry["bounced"], entry["deferred"]) == (1, 0)  # 554: permanent
    assert entry["examples"][0]["remote_host"] == "mx01.example.net[192.0.2.5]"


# --- 4. expired messages, our own refusals ------------------------------------------------


def test_expired_message_gets_the_cause_of_its_last_deferral() -> None:
    report = explain(
        status(
            "deferred",
            "host mx.example.net[203.0.113.5] said: 451 4.7.1 Greylisted, "
            "please try again later (in reply to RCPT TO command)",
        )
        + "Nov 29 06:25:11 mail postfix/qmgr[812]: B975729FAE9: from=<app@example.com>, "
        "status=expired, returned to sender\n"
    )
    entry = report["causes"][0]  # type: ignore[index]
    assert (entry["cause"], entry["deferred"], entry["expired"], entry["count"]) == (
        "greylisted",
        1,
        1,
        2,
    )
    assert report["totals"]["expired"] == 1  # type: ignore[index]


def test_expired_without_earlier_failure_is_unknown_but_counted() -> None:
    report = explain(
        "2026-11-29T06:00:00+00:00 mailwright[1]: event=expired id=4jM2jk60QD9z "
        "to=<bob@example.net> delay=432000\n"
    )
    entry = report["causes"][0]  # type: ignore[index]
    assert (entry["cause"], entry["expired"]) == ("unknown", 1)
    assert entry["examples"][0]["to"] == "bob@example.net"


def test_our_refusals_are_counted_and_explained() -> None:
    report = explain(
        "2026-11-24T18:00:00+00:00 mailwright[1]: event=rejected client=192.0.2.99 "
        'session=s1 stage=mail reply="530 5.7.0 Authentication required"\n'
        "2026-11-24T18:00:01+00:00 mailwright[1]: event=rejected client=192.0.2.99 "
        'session=s2 stage=mail reply="530 5.7.0 Authentication required"\n'
        "2026-11-24T18:00:02+00:00 mailwright[1]: event=rejected client=192.0.2.98 "
        "session=s3 stage=rcpt from=<a@example.com> to=<x@example.net> "
        'reply="554 5.7.1 <x@example.net>: Relay access denied"\n'
    )
    assert report["totals"]["refused"] == 3  # type: ignore[index]
    refused = report["refused"]
    assert [(r["stage"], r["count"]) for r in refused] == [("mail", 2), ("rcpt", 1)]  # type: ignore[index]
    assert "logging in" in refused[0]["why"]  # type: ignore[index]
    assert "AUTH" in refused[1]["fix"]  # type: ignore[index]


# --- 5. fixes that apply --------------------------------------------------------------------

TIMEOUT = (
    "Nov 24 06:25:11 mail postfix/smtp[3023]: B975729FAE9: to=<bob@example.net>, "
    "relay=none, delay=30, delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to "
    "{host}:{port}: Connection timed out)\n"
)


def test_port_25_advice_only_for_direct_delivery() -> None:
    direct = explain(TIMEOUT.format(host="mx.example.net[203.0.113.5]", port=25))
    assert "port 25" in direct["causes"][0]["fix"]  # type: ignore[index]
    relay = explain(TIMEOUT.format(host="smtp.relay.example[198.51.100.9]", port=587))
    assert "port 25" not in relay["causes"][0]["fix"]  # type: ignore[index]
    assert "relay" in relay["causes"][0]["fix"]  # type: ignore[index]
    configured = explain(
        TIMEOUT.format(host="smtp.relay.example[198.51.100.9]", port=25), relay_mode=True
    )
    assert "port 25" not in configured["causes"][0]["fix"]  # type: ignore[index]


def test_domain_placeholders_are_filled() -> None:
    text = (DATA / "postfix-classic.log").read_text()
    report = explain(text)
    by = {c["cause"]: c for c in report["causes"]}  # type: ignore[attr-defined]
    assert by["dmarc"]["confirm"] == "mailwright check example.com"  # the senders' domain
    dns = by["recipient-domain-dns"]
    assert "RECIPIENT-DOMAIN" not in dns["fix"]
    assert f"mailwright dns {dns['recipient_domains'][0]} MX" in dns["fix"]
    assert dns["confirm"] == f"mailwright check {dns['recipient_domains'][0]}"
    own = explain(text, own_domain="example.org")
    assert {c["cause"]: c for c in own["causes"]}["dmarc"]["confirm"] == (  # type: ignore[attr-defined]
        "mailwright check example.org"
    )


# --- 2. pasted replies ----------------------------------------------------------------------


def test_split_replies_joins_multi_line_replies() -> None:
    assert split_replies(
        "550-5.7.26 Unauthenticated email\n550-5.7.26 from example.com\n550 5.7.26 gsmtp\n"
        "\n"
        "421 4.7.0 [TSS04] deferred\n"
        "552 5.2.2 full\n"
        "wrapped text of the last one\n"
    ) == [
        "550-5.7.26 Unauthenticated email 550-5.7.26 from example.com 550 5.7.26 gsmtp",
        "421 4.7.0 [TSS04] deferred",
        "552 5.2.2 full",
        "wrapped text of the last one",
    ]


def run_cli(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    stdin: bytes | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", *args])
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_reply_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(
        ["--json", "-"],
        capsys,
        b"550-5.7.26 Unauthenticated email from example.com is not accepted due to\n"
        b"550-5.7.26 domain's DMARC policy.\n550 5.7.26 gsmtp\n",
        monkeypatch,
    )
    assert code == 1
    report = json.loads(out)
    assert causes(report) == {"dmarc": 1}
    assert report["causes"][0]["bounced"] == 1


def test_pasted_postfix_status_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(["--json", "-"], capsys, PTR_REFUSAL.encode() + b"\n", monkeypatch)
    assert code == 1
    assert causes(json.loads(out)) == {"reverse-dns": 1}


def test_pasted_reply_without_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_cli(
        ["--json", "-"],
        capsys,
        b"The email account that you tried to reach does not exist.\n",
        monkeypatch,
    )
    assert code == 1
    assert causes(json.loads(out)) == {"recipient-unknown": 1}


def test_reply_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        [
            "--reply",
            "421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred",
            "--reply",
            "550 5.7.515 Access denied, sending domain [EXAMPLE.COM] doesn't meet the required "
            "authentication level.",
        ],
        capsys,
    )
    assert code == 1
    assert "rate-limited" in out and "Yahoo TSS04" in out
    assert "dmarc" in out and "Microsoft 5.7.515" in out


def test_nothing_failed_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "mail.log"
    log.write_text(status("sent"))
    code, out, _ = run_cli([str(log)], capsys)
    assert code == 0
    assert "No deferred or bounced mail." in out


# --- 3. bounce messages ---------------------------------------------------------------------


def test_rfc3464_bounce() -> None:
    [r] = parse_bounce((BOUNCES / "gmail-rfc3464.eml").read_bytes())  # "delivered" is left out
    assert (r.recipient, r.action, r.status, r.remote_mta, r.form) == (
        "alice@gmail.com",
        "failed",
        "5.7.26",
        "gmail-smtp-in.l.google.com",
        "rfc3464",
    )
    assert r.diagnostic.startswith("550-5.7.26 Unauthenticated email from example.com is not")
    assert r.diagnostic.endswith("- gsmtp")  # folded lines unfolded
    assert r.original_message_id == "<20261124062501.3007@example.com>"
    assert r.original_sender == "app@example.com"


def test_our_own_dsn_reads_back() -> None:
    """The DSNs mailwright sends (delivery/dsn.py) are read back field by field."""
    from mailwright.delivery.dsn import RecipientReport, build_dsn

    message = build_dsn(
        kind="failure",
        reporting_mta="mail.example.com",
        sender="app@example.com",
        queue_id="4jM2jk60QD9z",
        arrival=1_795_000_000.0,
        recipients=[
            RecipientReport(
                "bob@example.net",
                "5.1.1",
                diagnostic="550 5.1.1 User unknown",
                remote_mta="mx.example.net",
            ),
            RecipientReport(
                "carol@example.net",
                "4.4.1",
                action="delayed",
                diagnostic="connection timed out",
                remote=False,
            ),
        ],
        original=b"From: app@example.com\r\nMessage-ID: <m1@example.com>\r\n\r\nhi\r\n",
        now=1_795_000_100.0,
    )
    got = parse_bounce(message)
    assert [(r.recipient, r.action, r.status, r.remote_mta) for r in got] == [
        ("bob@example.net", "failed", "5.1.1", "mx.example.net"),
        ("carol@example.net", "delayed", "4.4.1", None),
    ]
    assert got[0].diagnostic == "550 5.1.1 User unknown"
    assert got[0].original_message_id == "<m1@example.com>"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "qmail.eml",
            [
                ("carol@example.net", "5.1.1", "recipient-unknown"),
                ("dave@example.net", "5.1.2", "recipient-domain-dns"),
            ],
        ),
        ("exim.eml", [("erin@example.org", "5.7.1", "blocklisted")]),
        ("generic.eml", [("frank@example.net", "5.2.2", "mailbox-full")]),
        ("gmail-rfc3464.eml", [("alice@gmail.com", "5.7.26", "dmarc")]),
    ],
)
def test_bounce_files_through_the_cli(
    name: str, expected: list[tuple[str, str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["--json", str(BOUNCES / name)], capsys)
    assert code == 1
    report = json.loads(out)
    got = sorted((e["to"], e["dsn"], c["cause"]) for c in report["causes"] for e in c["examples"])
    assert got == sorted(expected)


def test_a_message_that_is_not_a_bounce(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli([str(BOUNCES / "not-a-bounce.eml")], capsys)
    assert code == 1
    assert "not a bounce" in err


def test_message_sniffing() -> None:
    assert looks_like_message(b"Return-Path: <>\r\nFrom: x\r\n")
    assert looks_like_message(b"From MAILER-DAEMON Tue Nov 24 06:25:03 2026\n")
    assert not looks_like_message(b"A4C123B1612: to=<a@example.net>, relay=none\n")
    assert not looks_like_message(b"Nov 24 06:25:01 mail postfix/smtpd[3007]: connect\n")


def test_a_log_without_timestamps_and_without_failures_is_not_read_as_replies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "journal.txt"
    log.write_text(
        "postfix/smtpd[3007]: connect from localhost[127.0.0.1]\n"
        "postfix/smtpd[3007]: disconnect from localhost[127.0.0.1] ehlo=1 quit=1 commands=2\n"
    )
    code, out, _ = run_cli([str(log)], capsys)
    assert code == 0
    assert "No deferred or bounced mail." in out


@pytest.mark.parametrize(
    "body",
    [
        "a" * 2_000_000,  # one run without @: scanned once
        ("x" * 1000 + "@") * 2000,  # runs glued by @
        "550 5.1.1 " + "b@c." * 500_000,
        "The following address(es) failed:\n\n  " + "d" * 1_000_000 + "@e\n",
    ],
)
def test_hostile_bounce_texts_are_read_in_linear_time(body: str) -> None:
    import time

    data = (
        "From: MAILER-DAEMON@example.net\r\nTo: app@example.com\r\n"
        "X-Failed-Recipients: bob@example.net\r\nSubject: failure\r\n\r\n" + body
    ).encode()
    start = time.perf_counter()
    found = parse_bounce(data)
    assert time.perf_counter() - start < 5
    assert all(len(r.diagnostic) <= 8192 for r in found)


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-24 06:25:20 1tE8Xa-000Abc-12 ** a@b "
        + "SMTP error from remote mail server after x" * 1500,
        "postfix/smtp[1]: ABCDEF12345: host " + "x[" * 30000 + " said: 550 x",
        "postfix/smtp[1]: connect to " + "[" * 60000,
    ],
)
def test_hostile_attempt_and_exim_lines_stay_linear(line: str) -> None:
    import time

    start = time.perf_counter()
    explain(line + "\n")
    assert time.perf_counter() - start < 3
