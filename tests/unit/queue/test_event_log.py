"""The event log line format (docs/log-format.md) and its reader."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailwright.log import (
    EventLogger,
    angle,
    captured_events,
    format_line,
    format_value,
    log_event,
    parse_line,
)

WHEN = datetime(2026, 11, 24, 19, 0, 0, 123456, tzinfo=UTC)


def test_the_documented_example() -> None:
    line = format_line(
        "accepted",
        "4Xk2pQ9mZ0aB",
        [
            ("from_", "<app@example.com>"),
            ("size", 5120),
            ("nrcpt", 2),
            ("client", "127.0.0.1"),
            ("listener", "submission"),
        ],
        timestamp=WHEN,
        pid=4242,
    )
    assert line == (
        "2026-11-24T19:00:00.123456+00:00 mailwright[4242]: event=accepted id=4Xk2pQ9mZ0aB "
        "from=<app@example.com> size=5120 nrcpt=2 client=127.0.0.1 listener=submission"
    )


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "plain"),
        ("250 2.0.0 Ok", '"250 2.0.0 Ok"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("back\\slash", '"back\\\\slash"'),
        ("line\r\nbreak", '"line\\x0d\\x0abreak"'),
        ("nul\x00", '"nul\\x00"'),
        ("tab\there", '"tab\\x09here"'),
        ("sep\u2028", '"sep\\u2028"'),
        ("bad\udcff", '"bad\\xff"'),
        ("", '""'),
        ("<>", "<>"),
        (1.23456, "1.235"),
        (2.0, "2"),
        (("s1", "s2"), "s1,s2"),
        (True, "yes"),
    ],
)
def test_quoting_and_escaping(value: object, written: str) -> None:
    assert format_value(value) == written


@pytest.mark.parametrize(
    "value", ["250 2.0.0 Ok", 'q"uote', "x=y", "a\\b", "\x01\x7f", "é ü", "\\x41", ""]
)
def test_parse_is_the_inverse(value: str) -> None:
    line = format_line("rejected", None, [("reply", value), ("to", "<b@c>")], timestamp=WHEN)
    assert "\n" not in line
    parsed = parse_line(line)
    assert parsed is not None
    assert parsed["event"] == "rejected"
    assert parsed["reply"] == value
    assert parsed["to"] == "<b@c>"
    assert "id" not in parsed


def test_parse_rejects_other_lines() -> None:
    assert parse_line("hello world") is None
    assert parse_line("2026 postfix[1]: no pairs here") is None


def test_none_values_are_left_out_and_event_and_id_come_first() -> None:
    line = format_line("delivered", "ID1", [("to", "<a@b>"), ("dsn", None)], timestamp=WHEN)
    assert line.split(": ", 1)[1] == "event=delivered id=ID1 to=<a@b>"


def test_logger_writes_file_and_subscribers(tmp_path: Path) -> None:
    log = EventLogger(stderr=False, path=tmp_path / "sub" / "mailwright.log")
    seen: list[dict[str, str]] = []
    unsubscribe = log.subscribe(seen.append)
    log.event("accepted", "ID1", from_=angle(""), size=10)
    unsubscribe()
    log.event("connect", client="127.0.0.1")
    log.close()
    lines = (tmp_path / "sub" / "mailwright.log").read_text().splitlines()
    assert len(lines) == 2
    first = parse_line(lines[0])
    assert first is not None and first["from"] == "<>" and first["size"] == "10"
    assert seen == [{"event": "accepted", "id": "ID1", "from": "<>", "size": "10"}]


def test_captured_events() -> None:
    with captured_events() as events:
        log_event("held", "ID9")
    assert events == [{"event": "held", "id": "ID9"}]


def test_event_ids_are_uuid7_in_time_order() -> None:
    """RFC 9562 §5.7: version 7, the RFC variant, the Unix milliseconds first; IDs of
    later milliseconds sort after earlier ones (PostgreSQL's unique index grows at its end)."""
    import uuid

    from mailwright.queue.events import new_event_id

    at = 1_790_000_000.123
    made = uuid.UUID(new_event_id(at))
    assert (made.version, made.variant) == (7, uuid.RFC_4122)
    assert made.int >> 80 == 1_790_000_000_123
    assert len(made.hex) == 32
    ids = [new_event_id(at + i / 1000) for i in range(200)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    same_ms = {new_event_id(at) for _ in range(1000)}
    assert len(same_ms) == 1000  # 74 random bits apart


@pytest.mark.parametrize(
    "ts",
    [0.0, 1_790_000_000.0, 1_790_000_000.5, 1_790_000_000.9999994, 1_790_000_000.9999996, 1.25e9],
)
def test_event_time_is_what_datetime_writes(ts: float) -> None:
    from mailwright.queue.events import iso

    assert iso(ts) == datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
