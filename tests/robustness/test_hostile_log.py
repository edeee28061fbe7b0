"""The event log (docs/log-format.md) carries untrusted values (HELO names, addresses,
remote replies): every event stays exactly one line, and both readers — log.parse_line
and explain's parser — get the values back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from robust_support import NASTY_CHARS, robust

from mailwright.explain.logline import parse_mailwright
from mailwright.log import format_line, parse_line

WHEN = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
VALUE = st.one_of(
    st.text(max_size=30).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
    st.lists(
        st.sampled_from([*NASTY_CHARS, "x=y", "reply=", '"', "\\x41", "\\", "event=bounced"]),
        max_size=8,
    ).map("".join),
)


@robust(800)
@given(VALUE, VALUE, VALUE)
def test_every_event_is_one_line_and_reads_back(helo: str, sender: str, reply: str) -> None:
    line = format_line(
        "deferred",
        "ABC123",
        [("helo", helo), ("from_", sender), ("reply", reply), ("dsn", "4.0.0")],
        timestamp=WHEN,
        pid=42,
    )
    assert line.splitlines() == [line]
    parsed = parse_line(line)
    assert parsed is not None
    assert (parsed["event"], parsed["id"]) == ("deferred", "ABC123")
    assert (parsed["helo"], parsed["from"], parsed["reply"]) == (helo, sender, reply)
    mw = parse_mailwright(line)
    assert mw is not None and mw[1] == "deferred"
    fields = mw[2]
    assert fields["id"] == "ABC123" and fields["dsn"] == "4.0.0"
    assert (fields["helo"], fields["from"], fields["reply"]) == (helo, sender, reply)
