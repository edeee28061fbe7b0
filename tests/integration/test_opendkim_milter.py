"""The OpenDKIM peer of bench/mta: Postfix with the opendkim milter signs, mailwright verifies."""

from __future__ import annotations

import shutil
import smtplib
import tempfile
import time
from pathlib import Path

import pytest

from mailwright.dkim import DkimStatus, dns_record_value, generate_key, verify_message
from mailwright.dkim.keys import PrivateKey
from mailwright.dns import MemoryResolver
from mailwright.testing.opendkim import OpenDkimMilter
from mailwright.testing.postfix import PostfixServer, SmtpSink

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kind", ["unix", "inet"])
async def test_postfix_with_the_opendkim_milter_signs_rsa_2048(kind: str) -> None:
    key = generate_key("rsa", 2048)
    dump = Path(tempfile.mkdtemp(prefix="mailwright-milter-sink-"))  # smtp-sink runs as nobody
    try:
        received = _send_through_postfix_and_opendkim(key, kind, dump)
    finally:
        shutil.rmtree(dump, ignore_errors=True)
    resolver = MemoryResolver().add("od._domainkey.example.com", "TXT", dns_record_value(key))
    results = await verify_message(received, resolver)
    assert [(r.status, r.algorithm, r.key_bits) for r in results] == [
        (DkimStatus.PASS, "rsa-sha256", 2048)
    ]


def _send_through_postfix_and_opendkim(key: PrivateKey, kind: str, dump: Path) -> bytes:
    with (
        SmtpSink(dump_dir=dump) as sink,
        OpenDkimMilter(key, domain="example.com", selector="od", socket_kind=kind) as milter,
        PostfixServer(
            domains=(),
            hostname="relay.example.com",
            relayhost=f"[127.0.0.1]:{sink.port}",
            settings={"smtpd_milters": milter.postfix_milter, "milter_default_action": "tempfail"},
        ) as postfix,
    ):
        message = (
            b"From: <app@example.com>\r\nTo: <user@example.net>\r\nSubject: hi\r\n"
            b"Date: Fri, 04 Dec 2026 22:00:00 +0000\r\n\r\nhello\r\n"
        )
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as client:
            client.sendmail("app@example.com", ["user@example.net"], message)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(dump.iterdir()):
            time.sleep(0.05)
        time.sleep(0.2)
        return next(dump.iterdir()).read_bytes()
