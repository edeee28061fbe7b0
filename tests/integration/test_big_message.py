"""A 12 MB message through ``mailwright serve`` (real sockets): spooled to disk, DKIM
signed a piece at a time, stored and sent from the queue in pieces, it arrives at an
``smtp-sink`` intact and its signatures verify (dkimpy for RSA, our verifier for both);
three at once keep the server's resident set bounded (issue 16 item 4)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import smtplib
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dkim
import pytest

from mailwright.dkim import (
    dns_record_value,
    generate_key,
    load_private_key,
    private_key_pem,
    verify_message,
)
from mailwright.dns import MemoryResolver
from mailwright.testing.ports import free_port
from mailwright.testing.postfix import SmtpSink
from mailwright.testing.serve import start_serve, stop_serve

pytestmark = pytest.mark.integration

DOMAIN = "example.com"
SENDER = f"app@{DOMAIN}"
RSS_LIMIT_MB = 130


def big_message(n: int, size: int = 12_000_000) -> bytes:
    head = (
        f"From: App <{SENDER}>\r\nTo: <sink@example.net>\r\nSubject: big {n}\r\n"
        f"Message-ID: <big{n}@{DOMAIN}>\r\nDate: Sat, 05 Dec 2026 01:00:00 +0000\r\n\r\n"
    ).encode()
    lines = []
    seed = hashlib.sha256(b"%d" % n).digest()
    for i in range(size // 78):
        line = base64.b64encode(hashlib.sha256(seed + b"%d" % i).digest() * 2)[:76]
        if i % 997 == 0:
            line = b"." + line[1:]  # dot-stuffed on the wire, both ways
        if i % 1009 == 0:
            line = line[:40] + b" \t  " + line[40:70] + b"  "  # relaxed canonicalization
        lines.append(line + b"\r\n")
    return head + b"".join(lines) + b"\r\n\r\n"  # trailing empty lines (RFC 6376 §3.4)


class RssSampler:
    """The largest resident set of any process of the server's tree, every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self) -> list[int]:
        out = [self.pid]
        for child in Path(f"/proc/{self.pid}/task").glob("*/children"):
            out += [int(p) for p in child.read_text().split()]
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self._pids():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_big_messages_arrive_intact_signed_and_memory_stays_bounded(tmp_path: Path) -> None:
    dump = Path(tempfile.mkdtemp(prefix="mailwright-big-sink-"))  # smtp-sink runs as nobody
    try:
        _big_messages(tmp_path, dump)
    finally:
        shutil.rmtree(dump, ignore_errors=True)


def _big_messages(tmp_path: Path, dump: Path) -> None:
    keys = []
    for selector, algorithm in (("rsa", "rsa"), ("ed", "ed25519")):
        path = tmp_path / f"{selector}.private"
        path.write_bytes(private_key_pem(generate_key(algorithm, 2048)))
        keys += [
            "[[dkim]]",
            f'domain = "{DOMAIN}"',
            f'selector = "{selector}"',
            f'private_key = "{path}"',
            f'algorithm = "{algorithm}"',
        ]
    with SmtpSink(dump_dir=dump) as sink:
        port = free_port()
        config = tmp_path / "mailwright.toml"
        config.write_text(
            "\n".join(
                [
                    f'hostname = "mail.{DOMAIN}"',
                    f'data_dir = "{tmp_path / "data"}"',
                    "allow_root = true",
                    "workers = 1",
                    "message_size_limit = 20000000",
                    "[[listeners]]",
                    'name = "submission"',
                    'address = "127.0.0.1"',
                    f"port = {port}",
                    "[delivery]",
                    'mode = "relay"',
                    "[delivery.relay]",
                    f'url = "smtp://127.0.0.1:{sink.port}?tls=none"',
                    *keys,
                ]
            )
            + "\n"
        )
        messages = [big_message(n) for n in range(3)]
        proc = start_serve(port, config=config)
        try:

            def send(message: bytes) -> None:
                with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
                    client.sendmail(SENDER, ["sink@example.net"], message)

            with RssSampler(proc.pid) as sampler, ThreadPoolExecutor(3) as pool:
                list(pool.map(send, messages))
                assert sink.wait_for(3, timeout=120) == 3
                time.sleep(0.3)  # smtp-sink finishes writing its files
        finally:
            stop_serve(proc)
        assert sampler.peak_kb / 1024 < RSS_LIMIT_MB, f"peak RSS {sampler.peak_kb / 1024:.0f} MB"
        assert not list((tmp_path / "data" / "spool").iterdir())  # spool files are gone

    resolver = MemoryResolver()
    records = {}
    for selector in ("rsa", "ed"):
        key = load_private_key((tmp_path / f"{selector}.private").read_bytes())
        records[selector] = dns_record_value(key)
        resolver.add(f"{selector}._domainkey.{DOMAIN}", "TXT", records[selector])
    received = sorted(
        p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for p in dump.iterdir()
    )
    assert len(received) == 3
    by_subject = {m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]: m for m in received}
    for n, sent in enumerate(messages):
        got = by_subject[b"big %d" % n]
        sent_body = sent.split(b"\r\n\r\n", 1)[1]
        assert got.endswith(b"\r\n\r\n")
        got = got[:-2]  # smtp-sink writes the end-of-data line as an empty line
        assert got.split(b"\r\n\r\n", 1)[1] == sent_body  # intact, dot lines included
        results = asyncio.run(verify_message(got, resolver))
        assert sorted((r.algorithm, r.status) for r in results) == [
            ("ed25519-sha256", "pass"),
            ("rsa-sha256", "pass"),
        ]

        def dns(name: bytes, timeout: int = 5) -> bytes:
            return records[name.decode().split(".")[0]].encode()

        checker = dkim.DKIM(got)
        signatures = [v for k, v in checker.headers if k.lower() == b"dkim-signature"]
        rsa = [i for i, value in enumerate(signatures) if b"a=rsa-sha256" in value]
        assert rsa and checker.verify(idx=rsa[0], dnsfunc=dns)  # an independent verifier
