"""Bad input and the streaming contract: truncated lines, other daemons, binary garbage,
over-long lines, 10 million lines in bounded memory, corrupt gzip, --since, rotations."""

from __future__ import annotations

import gzip
import io
import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailwright.errors import UsageError
from mailwright.explain import Explainer, Source, SourceStats, engine, parse_since, read_source
from mailwright.explain.engine import MAX_EXAMPLES, MAX_UNKNOWN_LINES
from mailwright.explain.logline import Clock
from mailwright.explain.sources import rotated_family

from .corpus import DATA

NOW = datetime(2026, 12, 1, 12, 0).astimezone()
BOUNCE = (
    "Nov 24 19:00:00 mail postfix/smtp[123]: 4A1B2C3D4E: to=<bob@example.net>, "
    "relay=mx.example.net[203.0.113.5]:25, delay=0.5, delays=0/0/0.2/0.3, dsn=5.1.1, "
    "status=bounced (host mx.example.net[203.0.113.5] said: 550 5.1.1 <bob@example.net>: "
    "Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO "
    "command))"
)


def run(data: bytes, since: datetime | None = None) -> dict[str, Any]:
    explainer = Explainer(since=since, now=NOW)
    explainer.consume(io.BytesIO(data), SourceStats("t"))
    return explainer.to_json()


def causes(report: dict[str, Any]) -> dict[str, int]:
    return {c["cause"]: c["count"] for c in report["causes"]}


# --- truncated, foreign and garbage lines -----------------------------------------------


def test_line_cut_inside_the_reply_is_classified_on_what_is_there() -> None:
    cut = BOUNCE[: BOUNCE.index("Recipient address rejected") + 20]
    report = run(cut.encode() + b"\n")
    assert causes(report) == {"recipient-unknown": 1}
    assert report["totals"]["truncated_lines"] == 1
    assert report["causes"][0]["examples"][0]["truncated"] is True


def test_line_cut_before_its_fields_is_skipped_and_counted() -> None:
    broken = "Nov 24 19:00:00 mail postfix/smtp[123]: 4A1B2C3D4E: to=<bob@exa status=bounced (x"
    report = run(broken.encode() + b"\n" + BOUNCE.encode() + b"\n")
    assert causes(report) == {"recipient-unknown": 1}
    assert report["skipped_lines"] == 1
    assert report["skipped_samples"] == [broken]


def test_last_line_without_newline_is_read() -> None:
    assert causes(run(BOUNCE.encode())) == {"recipient-unknown": 1}


def test_crlf_line_ends() -> None:
    report = run((BOUNCE + "\r\n").encode() * 2)
    assert causes(report) == {"recipient-unknown": 2}
    assert report["causes"][0]["sample"] == BOUNCE


def test_other_daemons_are_not_deliveries() -> None:
    lines = [
        "Nov 24 19:00:00 mail systemd[1]: postfix.service: Main process exited, status=1/FAILURE",
        "Nov 24 19:00:00 mail dovecot: lmtp(bob)<123><abc>: msgid=<x@y>: saved mail to INBOX",
        "Nov 24 19:00:00 mail myapp[99]: job 7 status=bounced retry=3",
        "Nov 24 19:00:00 mail opendkim[77]: 4A1B2C3D4E: DKIM-Signature field added (s=mail)",
        "Nov 24 19:00:00 mail postfix/smtpd[55]: NOQUEUE: reject: RCPT from x[198.51.100.1]: "
        "554 5.7.1 <a@b>: Relay access denied; from=<a@c> to=<a@b> proto=ESMTP helo=<x>",
    ]
    report = run("\n".join(lines).encode() + b"\n")
    assert report["causes"] == []
    assert report["skipped_lines"] == 0
    assert report["totals"]["lines"] == 5


def test_binary_garbage_and_invalid_utf8() -> None:
    rnd = random.Random(6)
    garbage = rnd.randbytes(3 << 20)
    # needles inside garbage, and a real line whose reply holds bytes that are not UTF-8
    noisy = BOUNCE.replace("User unknown", "User \xff\xfe unknown").encode("latin-1")
    data = (
        garbage[: 1 << 20]
        + b"\nstatus=bounced\x00\x01\nevent=deferred \xc3\x28\n"
        + noisy
        + b"\n"
        + garbage[1 << 20 :]
        + b"\n\xff status=deferred (\n"
    )
    report = run(data)
    assert causes(report) == {"recipient-unknown": 1}
    assert "\ufffd" in report["causes"][0]["sample"]


def test_over_long_line_is_skipped_and_the_next_one_read() -> None:
    huge = b"Nov 24 19:00:00 mail postfix/smtp[1]: " + b"status=bounced " * 200_000
    report = run(huge + b"\n" + BOUNCE.encode() + b"\n")
    assert causes(report) == {"recipient-unknown": 1}
    assert report["skipped_lines"] == 1


# --- ten million lines, bounded memory --------------------------------------------------


class Generated(io.RawIOBase):
    """A mail log of ``total`` lines produced on the fly: mostly successes and noise, one
    failure per 1000 lines with ever-new recipient domains and remote hosts (the worst
    case for per-cause and per-host state), ~1 MB per read."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.made = 0
        self.failures = 0
        noise = [
            b"Nov 24 19:00:00 mail postfix/smtpd[4711]: connect from unknown[198.51.100.7]",
            b"Nov 24 19:00:00 mail postfix/qmgr[812]: 8B2C1D0E9F: from=<app@example.com>, "
            b"size=5120, nrcpt=1 (queue active)",
            b"Nov 24 19:00:01 mail postfix/smtp[4712]: 8B2C1D0E9F: to=<u@example.net>, "
            b"relay=mx.example.net[203.0.113.5]:25, delay=0.4, delays=0/0/0.1/0.3, dsn=2.0.0, "
            b"status=sent (250 2.0.0 Ok: queued as 4Xk2pQ9mZ0aB)",
            b"Nov 24 19:00:01 mail postfix/qmgr[812]: 8B2C1D0E9F: removed",
            b"Nov 24 19:00:02 mail dovecot: imap(bob)<4713><x>: Logged out in=10 out=200",
        ]
        self.block = b"\n".join(noise[i % 5] for i in range(999)) + b"\n"

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        while self.made < self.total and len(parts) < 20:
            n = self.failures
            parts.append(self.block)
            parts.append(
                f"Nov 24 19:00:03 mail postfix/smtp[4714]: 9C3D2E1F{n % 100:02d}: "
                f"to=<u{n}@d{n}.example>, relay=mx.d{n}.example[203.0.113.9]:25, delay=1, "
                f"delays=0/0/0.5/0.5, dsn=4.0.0, status=deferred (host mx.d{n}.example"
                f"[203.0.113.9] said: 451 odd reply number {n} from this host (in reply to "
                f"RCPT TO command))\n".encode()
            )
            self.failures += 1
            self.made += 1000
        return b"".join(parts)


def test_ten_million_lines_in_bounded_memory() -> None:
    stream = Generated(10_000_000)
    explainer = Explainer(now=NOW)
    stats = SourceStats("generated")
    tracemalloc.start()
    try:
        explainer.consume(stream, stats)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    report = explainer.to_json()
    assert stats.lines == 10_000_000
    assert causes(report) == {"unknown": 10_000}
    assert report["totals"]["delivered"] == 10_000 * 200
    unknown = report["causes"][0]
    assert len(unknown["examples"]) == MAX_EXAMPLES
    kept = sum(len(g["lines"]) for g in report["unrecognised"])
    assert kept <= MAX_UNKNOWN_LINES
    assert peak < 16 << 20, f"peak traced memory {peak / 1e6:.1f} MB"


# --- gzip -------------------------------------------------------------------------------


def _gzip_log(path: Path, lines: int) -> bytes:
    body = b"".join(
        f"Nov 24 19:{i // 60 % 60:02d}:{i % 60:02d} mail postfix/smtpd[{i}]: connect from "
        f"host{i}.example[198.51.100.{i % 250}]\n".encode()
        + (BOUNCE.encode() + b"\n" if i % 100 == 0 else b"")
        for i in range(lines)
    )
    path.write_bytes(gzip.compress(body, compresslevel=6))
    return body


def test_gzip_is_read(tmp_path: Path) -> None:
    _gzip_log(tmp_path / "mail.log.2.gz", 5_000)
    explainer = Explainer(now=NOW)
    read_source(explainer, Source("mail.log.2.gz", tmp_path / "mail.log.2.gz"))
    assert causes(explainer.to_json()) == {"recipient-unknown": 50}
    assert explainer.errors == []


def test_gzip_corrupt_in_the_middle_keeps_what_was_read_and_goes_on(tmp_path: Path) -> None:
    bad = tmp_path / "mail.log.3.gz"
    _gzip_log(bad, 200_000)
    raw = bytearray(bad.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)  # a run of zeros in the deflate stream
    bad.write_bytes(bytes(raw))
    good = tmp_path / "mail.log"
    good.write_text(BOUNCE + "\n")
    explainer = Explainer(now=NOW)
    first = read_source(explainer, Source(str(bad), bad))
    read_source(explainer, Source(str(good), good))
    report = explainer.to_json()
    assert len(report["errors"]) == 1
    error = report["errors"][0]
    assert error.startswith(f"{bad}: gzip data corrupt or truncated at compressed byte ")
    position = int(error.split("compressed byte ")[1].split()[0])
    assert 0 < position <= len(raw)
    assert first.error == error
    # what came before the damage is counted (lines and bounces), then the next file
    assert 0 < first.lines < 200_000
    n = causes(report)["recipient-unknown"]
    assert 1 < n < 2_000
    assert report["files"][1] == {
        "name": str(good),
        "bytes": len(BOUNCE) + 1,
        "lines": 1,
        "error": None,
    }


def test_gzip_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "mail.log.1.gz"
    _gzip_log(path, 20_000)
    path.write_bytes(path.read_bytes()[:-5000])
    explainer = Explainer(now=NOW)
    stats = read_source(explainer, Source(str(path), path))
    assert stats.error is not None and "gzip data corrupt or truncated" in stats.error
    assert causes(explainer.to_json())["recipient-unknown"] > 0


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    misnamed = tmp_path / "mail.log.4.gz"  # plain text under a .gz name
    misnamed.write_text(BOUNCE + "\n")
    unnamed = tmp_path / "mail.log.5"  # gzip without the suffix
    unnamed.write_bytes(gzip.compress(BOUNCE.encode() + b"\n"))
    explainer = Explainer(now=NOW)
    read_source(explainer, Source(str(misnamed), misnamed))
    read_source(explainer, Source(str(unnamed), unnamed))
    read_source(
        explainer, Source("-", None), stdin=io.BytesIO(gzip.compress(BOUNCE.encode()))
    )  # cat mail.log.2.gz | mailwright explain -
    assert explainer.errors == []
    assert causes(explainer.to_json()) == {"recipient-unknown": 3}


def test_empty_and_one_byte_inputs(tmp_path: Path) -> None:
    explainer = Explainer(now=NOW)
    for name, data in (("empty", b""), ("one", b"\x1f"), ("magic-only", b"\x1f\x8b")):
        (tmp_path / name).write_bytes(data)
        read_source(explainer, Source(name, tmp_path / name))
    report = explainer.to_json()
    assert report["causes"] == []
    assert [f["error"] is None for f in report["files"]] == [True, True, False]


def test_unreadable_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    explainer = Explainer(now=NOW)
    stats = read_source(explainer, Source("gone", tmp_path / "gone"))
    assert stats.error is not None and stats.error.startswith("gone: cannot open:")


# --- time ------------------------------------------------------------------------------


def test_parse_since() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("3d", now) == now - timedelta(days=3)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("1w", now) == now - timedelta(weeks=1)
    assert parse_since("2026-11-24T10:00+00:00") == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert parse_since("2026-11-24") == datetime(2026, 11, 24).astimezone()
    with pytest.raises(UsageError, match="neither a duration nor a date"):
        parse_since("yesterday")


def test_since_filters_failures() -> None:
    data = (DATA / "postfix-rfc3339.log").read_bytes()
    everything = run(data)
    # the corpus runs from 06:25 to 06:33 (+01:00); keep the last part only
    cut = datetime(2026, 11, 24, 5, 30, tzinfo=UTC)
    later = run(data, since=cut)
    total = sum(causes(everything).values())
    kept = sum(causes(later).values())
    assert 0 < kept < total
    assert all(datetime.fromisoformat(c["first"]) >= cut for c in later["causes"])
    assert later["since"] == cut.isoformat()


def test_classic_timestamps_get_the_year_from_the_reference() -> None:
    clock = Clock(datetime(2027, 1, 2, 10, 0).astimezone())
    assert clock.parse("Dec 31 23:59:59") == datetime(2026, 12, 31, 23, 59, 59).astimezone()
    assert clock.parse("Jan  2 09:00:00") == datetime(2027, 1, 2, 9, 0).astimezone()
    assert clock.parse("Foo 12 00:00:00") is None
    assert clock.parse("Feb 30 00:00:00") is None


# --- rotations ------------------------------------------------------------------------


def test_rotated_family_oldest_first(tmp_path: Path) -> None:
    for name in (
        "mail.log",
        "mail.log.1",
        "mail.log.2.gz",
        "mail.log.10.gz",
        "mail.log.old",
        "mail.err",
        "mail.log.1.bak",
    ):
        (tmp_path / name).write_text("")
    names = [p.name for p in rotated_family(tmp_path / "mail.log")]
    assert names == ["mail.log.10.gz", "mail.log.2.gz", "mail.log.1", "mail.log"]


# --- chunk boundaries ------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 300, 4096])
def test_results_do_not_depend_on_chunk_boundaries(
    chunk_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (DATA / "postfix-classic.log").read_bytes()
    whole = run(data)
    monkeypatch.setattr(engine, "CHUNK_SIZE", chunk_size)
    pieces = run(data)
    assert causes(pieces) == causes(whole)
    assert pieces["totals"] == whole["totals"]
    assert pieces["skipped_lines"] == 0
    if chunk_size >= 4096:  # the from= line is in this chunk or the one before
        examples = [e for c in pieces["causes"] for e in c["examples"]]
        assert all(e["from"] == "app@example.com" for e in examples)


# --- anything at all ------------------------------------------------------------------


def test_mutated_corpus_lines_never_crash() -> None:
    """Corpus lines cut, spliced and overwritten at random: each gives a defined report
    (at most one failure event, never an exception)."""
    lines = [
        ln
        for name in ("postfix-classic.log", "postfix-rfc3339.log", "mailwright.log")
        for ln in (DATA / name).read_bytes().splitlines()
        if b"status=" in ln or b"event=" in ln
    ]
    inserts = [
        b"(",
        b")",
        b'"',
        b"\\",
        b"[",
        b"]",
        b"<",
        b">",
        b"=",
        b"\xff",
        b"\r",
        b"status=bounced (",
        b"event=deferred ",
        b"host x[1] said: ",
        b"Feb 30 ",
    ]
    rnd = random.Random(11)
    for _ in range(3000):
        line = bytearray(rnd.choice(lines))
        for _ in range(rnd.randrange(1, 6)):
            op, pos = rnd.randrange(4), rnd.randrange(len(line) + 1)
            if op == 0:
                del line[pos : pos + rnd.randrange(1, 40)]
            elif op == 1:
                line[pos:pos] = rnd.choice(inserts)
            elif op == 2 and line:
                line[pos : pos + 1] = bytes([rnd.randrange(256)])
            else:
                line = line[:pos]
        report = run(bytes(line) + b"\n")
        assert sum(causes(report).values()) + report["skipped_lines"] <= 2


def test_mailwright_lines_relayed_through_syslog() -> None:
    line = (
        "2026-11-24T19:00:00.5+01:00 mail mailwright[4242]: event=deferred id=4Xk2pQ9mZ0aB "
        'to=<a@example.net> relay=none delay=1 dsn=4.4.3 reply="451 4.4.3 example.net: MX '
        'lookup failed: SERVFAIL" next_retry=2026-11-24T19:05:00+01:00'
    )
    report = run(line.encode() + b"\n")
    assert causes(report) == {"recipient-domain-dns": 1}
    example = report["causes"][0]["examples"][0]
    assert example["text"] == "451 4.4.3 example.net: MX lookup failed: SERVFAIL"
    assert example["remote_host"] is None


# --- mailwright's own writer -----------------------------------------------------------


def test_lines_from_mailwrights_log_writer() -> None:
    """What :func:`mailwright.log.format_line` writes (quotes, backslashes, control
    characters, U+2028, bytes that were not UTF-8) is read back."""
    from mailwright.log import format_line

    reply = '550 5.1.1 <a"b\\c@example.net>: user\tunknown\u2028\udcff "quoted"'
    when = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
    lines = [
        format_line(
            "accepted",
            "4Xk2pQ9mZ0aB",
            [("from", "<app@example.com>"), ("size", 5120)],
            timestamp=when,
            pid=42,
        ),
        format_line(
            "bounced",
            "4Xk2pQ9mZ0aB",
            [
                ("to", "<bob@example.net>"),
                ("relay", "mx.example.net[203.0.113.5]:25"),
                ("delay", 1.5),
                ("dsn", "5.1.1"),
                ("reply", reply),
            ],
            timestamp=when,
            pid=42,
        ),
        format_line(
            "delivered",
            "4Xk2pQ9mZ0aC",
            [("to", "<c@example.net>"), ("dsn", "2.0.0")],
            timestamp=when,
            pid=42,
        ),
    ]
    report = run("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    assert causes(report) == {"recipient-unknown": 1}
    example = report["causes"][0]["examples"][0]
    # a byte that was not UTF-8 is written as \xNN and read back as U+00NN, as
    # mailwright.log.parse_line does; everything else exactly
    assert example["text"] == reply.replace("\udcff", "\xff")
    assert (example["from"], example["to"], example["queue_id"]) == (
        "app@example.com",
        "bob@example.net",
        "4Xk2pQ9mZ0aB",
    )
    assert example["remote_host"] == "mx.example.net[203.0.113.5]"
    assert report["totals"]["delivered"] == 1


def test_names_taken_from_replies_are_bounded() -> None:
    lines = [
        f"Nov 24 19:00:00 mail postfix/smtp[1]: 4A1B2C3D{i % 100:02d}: to=<u@d{i}.example>, "
        f"relay=mx.d{i}.example[203.0.113.5]:25, delay=1, delays=0/0/0/1, dsn=5.7.1, "
        f"status=bounced (host mx.d{i}.example[203.0.113.5] said: 554 5.7.1 Client host "
        f"[192.0.2.1] blocked using list{i}.example.org (in reply to RCPT TO command))"
        for i in range(12_000)
    ]
    report = run("\n".join(lines).encode() + b"\n")
    entry = report["causes"][0]
    assert entry["count"] == 12_000
    assert len(entry["lists"]) == engine.MAX_LISTS
    assert len(entry["checks"]) == engine.MAX_LISTS
    assert len(entry["recipient_domains"]) == 50  # the most frequent, of 10,000 tracked
