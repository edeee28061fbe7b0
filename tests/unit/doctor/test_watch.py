"""Issue 17 item 9: ``check --state`` reports only status changes; ``--notify`` mails them."""

from __future__ import annotations

import email
import json
from pathlib import Path

import pytest

from mailwright.doctor import CheckResult, Report, Status
from mailwright.doctor.watch import changes, load_state, notification, save_state
from mailwright.errors import UsageError


def report(**statuses: Status) -> Report:
    return Report(
        "example.com",
        tuple(
            CheckResult(i.replace("_", "-"), s, i, f"saw {i}", f"fix {i}")
            for i, s in statuses.items()
        ),
    )


def test_first_run_lists_rows_not_ok() -> None:
    found = changes(None, report(mx=Status.OK, ptr=Status.FAIL, tls=Status.WARN))
    assert [(c.id, c.before, c.after) for c in found] == [
        ("ptr", None, "fail"),
        ("tls", None, "warn"),
    ]


def test_only_status_changes_count(tmp_path: Path) -> None:
    state = tmp_path / "check.json"
    save_state(state, report(mx=Status.OK, ptr=Status.FAIL, tls=Status.OK, port_25=Status.OK))
    previous = load_state(state)
    now = Report(
        "example.com",
        (
            CheckResult("mx", Status.OK, "mx", "another observation", ""),  # text only: quiet
            CheckResult("ptr", Status.OK, "ptr", "fixed", ""),
            CheckResult("tls", Status.FAIL, "tls", "expired", "renew"),
            CheckResult("bulk-tls", Status.FAIL, "bulk-tls", "expired", "renew"),
        ),
    )
    found = changes(previous, now)
    assert [(c.id, c.before, c.after) for c in found] == [
        ("ptr", "fail", "ok"),
        ("tls", "ok", "fail"),
        ("bulk-tls", None, "fail"),
        ("port-25", "ok", None),
    ]
    save_state(state, now)
    assert changes(load_state(state), now) == []
    assert not list(tmp_path.glob(".check.json.*"))  # the temporary file was renamed


def test_another_domain_in_the_state_is_a_first_run(tmp_path: Path) -> None:
    state = tmp_path / "check.json"
    save_state(state, Report("example.org", (CheckResult("ptr", Status.FAIL, "ptr", "x"),)))
    found = changes(load_state(state), report(ptr=Status.FAIL))
    assert [(c.id, c.before) for c in found] == [("ptr", None)]


@pytest.mark.parametrize("content", ["not json", "[]", json.dumps({"version": 99})])
def test_a_file_that_is_not_a_state_is_a_usage_error(tmp_path: Path, content: str) -> None:
    state = tmp_path / "check.json"
    state.write_text(content)
    with pytest.raises(UsageError, match="not a mailwright check state file"):
        load_state(state)


def test_missing_state_is_a_first_run(tmp_path: Path) -> None:
    assert load_state(tmp_path / "none.json") is None


def test_notification_message() -> None:
    found = changes(None, report(ptr=Status.FAIL))
    data = notification(
        "example.com", found, "check@example.com", "me@example.com", "mail.example.com"
    )
    msg = email.message_from_bytes(data)
    assert msg["Subject"] == "mailwright check example.com: 1 change(s), 1 not ok"
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_payload()
    assert "ptr: new -> fail" in body and "fix: fix ptr" in body
