"""``[log] format`` and journald (issue 12 item 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailwright.config import parse_config
from mailwright.errors import ConfigError
from mailwright.log import EventLogger, format_json, format_untimed, parse_line

WHEN = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


def test_json_lines_carry_the_same_keys_and_parse_back() -> None:
    line = format_json(
        "accepted",
        "4XK2PQ9MZ0AB",
        [("from_", "<a@b>"), ("size", 10), ("x", None)],
        timestamp=WHEN,
        pid=7,
    )
    record = json.loads(line)
    assert list(record) == ["timestamp", "pid", "event", "id", "from", "size"]
    assert record["timestamp"] == "2026-11-24T19:00:00.000000+00:00"
    assert record["size"] == "10"
    assert parse_line(line) == record


def test_json_never_breaks_a_line() -> None:
    line = format_json("rejected", None, [("reply", "a\nb\u2028c\udcff")], timestamp=WHEN, pid=1)
    assert "\n" not in line and "\u2028" not in line
    assert parse_line(line)["reply"] == "a\nb\u2028c\udcff"  # type: ignore[index]


def test_untimed_text_is_the_line_after_the_prefix() -> None:
    assert format_untimed("stopped", None, [("workers", 2)]) == "event=stopped workers=2"


def test_the_logger_writes_json_to_its_file(tmp_path: Path) -> None:
    logger = EventLogger(stderr=False, path=tmp_path / "log")
    logger.set_format("json")
    logger.event("started", workers=1)
    logger.close()
    record = json.loads((tmp_path / "log").read_text())
    assert record["event"] == "started" and record["workers"] == "1" and "timestamp" in record
    with pytest.raises(ValueError):
        logger.set_format("xml")


def test_the_config_key() -> None:
    assert parse_config({"log": {"format": "json"}}).log.format == "json"
    assert parse_config({}).log.format == "text"
    with pytest.raises(ConfigError, match=r"log\.format"):
        parse_config({"log": {"format": "xml"}})


SCRIPT = """
import sys
from pathlib import Path
from mailwright.log import EventLogger
logger = EventLogger(path=Path(sys.argv[1]))
logger.set_format(sys.argv[2])
logger.event("started", workers=1)
"""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_under_journald_stderr_has_no_timestamp_of_ours(tmp_path: Path, fmt: str) -> None:
    stderr_file = tmp_path / "stderr"
    with stderr_file.open("wb") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tmp_path / "log"), fmt],
            stderr=err,
            env=env,
            check=True,
            timeout=60,
        )
    journal_line = stderr_file.read_text().strip()
    file_line = (tmp_path / "log").read_text().strip()
    assert "2026" not in journal_line and "T" not in journal_line.split()[0]
    assert "mailwright[" not in journal_line
    if fmt == "json":
        assert "timestamp" not in json.loads(journal_line)
        assert "timestamp" in json.loads(file_line)
    else:
        assert journal_line == "event=started workers=1"
        assert parse_line(file_line) is not None


def test_a_journal_stream_of_another_file_is_ignored(tmp_path: Path) -> None:
    """systemd.exec(5): only when stderr is that stream (a redirect in the unit is not)."""
    stderr_file = tmp_path / "stderr"
    with stderr_file.open("wb") as err:
        env = {**os.environ, "JOURNAL_STREAM": "1:1"}
        subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tmp_path / "log"), "text"],
            stderr=err,
            env=env,
            check=True,
            timeout=60,
        )
    assert parse_line(stderr_file.read_text().strip()) is not None  # with its timestamp
