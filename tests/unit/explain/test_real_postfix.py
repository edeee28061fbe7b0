"""``explain`` on a log written by a real Postfix, not by hand.

A relay Postfix sends every message to an MX Postfix that answers chosen recipients
with chosen replies (an access map), and a transport entry sends one domain to a
closed port.  The relay's own ``maillog_file`` (Postfix's postlogd, classic syslog
format) is then explained: each recipient gets the expected cause, every failure is
followed back to its sender and Message-ID by queue ID.
"""

from __future__ import annotations

import io
import re
import smtplib
import time
from email.message import EmailMessage

import pytest

from mailwright.explain import Explainer, SourceStats
from mailwright.testing.ports import free_port
from mailwright.testing.postfix import PostfixServer

pytestmark = pytest.mark.integration

# recipient → (the MX's answer at RCPT, the cause explain must give)
ANSWERS = {
    "nosuch@example.net": (
        "550 5.1.1 User unknown in virtual mailbox table",
        "recipient-unknown",
    ),
    "full@example.net": ("452 4.2.2 Mailbox full", "mailbox-full"),
    "grey@example.net": (
        "450 4.2.0 Greylisted, see http://postgrey.example/help/example.net.html",
        "greylisted",
    ),
    "listed@example.net": (
        "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using "
        "zen.spamhaus.org; https://www.spamhaus.org/query/ip/127.0.0.1",
        "blocklisted",
    ),
    "ptr@example.net": (
        "450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.1]",
        "reverse-dns",
    ),
    "dmarc@example.net": (
        "550 5.7.26 Unauthenticated email from example.com is not accepted due to "
        "domain's DMARC policy",
        "dmarc",
    ),
}
REFUSED = "someone@refused.example"
BIG = "big@example.org"  # more than the MX's SIZE limit


def _send(port: int, rcpt: str, body: str = "hello\n") -> None:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = rcpt
    msg["Subject"] = "explain test"
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.send_message(msg, from_addr="app@example.com", to_addrs=[rcpt])


def test_explain_reads_a_real_postfix_log() -> None:
    closed = free_port()
    with (
        PostfixServer(
            domains=["example.net", "example.org"],
            hostname="mx.example.net",
            recipient_access={rcpt: answer for rcpt, (answer, _) in ANSWERS.items()},
            settings={"message_size_limit": "20000"},
        ) as mx,
        PostfixServer(
            domains=["relay.example"],
            hostname="relay.example",
            relayhost=f"[127.0.0.1]:{mx.port}",
            settings={
                "transport_maps": f"inline:{{ {{refused.example=smtp:[127.0.0.1]:{closed}}} }}",
                "message_size_limit": "1000000",
            },
        ) as relay,
    ):
        recipients = [*ANSWERS, REFUSED, "ok@example.net"]
        for rcpt in recipients:
            _send(relay.port, rcpt)
        _send(relay.port, BIG, "x" * 60 + "\n" * 1 + ("y" * 70 + "\n") * 500)
        deadline = time.monotonic() + 60
        pending = [*recipients, BIG]
        while pending and time.monotonic() < deadline:
            log = relay.log()
            pending = [r for r in pending if not re.search(rf"to=<{re.escape(r)}>.* status=", log)]
            time.sleep(0.1)
        assert not pending, relay.log()[-3000:]
        data = relay.log_file.read_bytes()

    explainer = Explainer()
    explainer.consume(io.BytesIO(data), SourceStats(str(relay.log_file)))
    report = explainer.to_json()
    by_recipient = {e["to"]: (c["cause"], e) for c in report["causes"] for e in c["examples"]}
    expected = {rcpt: cause for rcpt, (_, cause) in ANSWERS.items()}
    expected[REFUSED] = "connection-failed"
    expected[BIG] = "message-too-large"
    assert {r: by_recipient[r][0] for r in expected} == expected, data.decode()[-4000:]
    assert "ok@example.net" not in by_recipient
    assert report["totals"]["delivered"] >= 1
    assert report["skipped_lines"] == 0
    blocklisted = next(c for c in report["causes"] if c["cause"] == "blocklisted")
    assert blocklisted["lists"] == ["zen.spamhaus.org"]
    for rcpt in expected:
        cause, example = by_recipient[rcpt]
        assert example["from"] == "app@example.com", (cause, example)
        assert example["message_id"] and example["message_id"].startswith("<")
        if cause != "connection-failed":
            assert example["remote_host"] == "127.0.0.1[127.0.0.1]"
    # the relay's own bounce notices (null sender) to app@example.com were too big too
    notice = by_recipient["app@example.com"]
    assert notice[0] == "message-too-large" and notice[1]["from"] == ""
