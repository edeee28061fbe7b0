"""The corpus: every cause, in Postfix's classic and RFC 3339 formats and in mailwright's
own log, classified exactly (cause, and the list and check id where the line names them)."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime

import pytest

from mailwright.explain import CAUSES, Explainer, SourceStats

from .corpus import CORPUS_FILES, DATA, Case, cases

ALL_CASES = [c for name in CORPUS_FILES for c in cases(name)]


NOW = datetime(2026, 12, 1, 12, 0)  # classic syslog stamps have no year: Nov 24 is 2026


def explain_bytes(data: bytes) -> Explainer:
    explainer = Explainer(now=NOW)
    explainer.consume(io.BytesIO(data), SourceStats("test"))
    return explainer


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_each_line_gets_its_cause(case: Case) -> None:
    explainer = explain_bytes(case.line.encode() + b"\n")
    report = explainer.to_json()
    assert [(c["cause"], c["count"]) for c in report["causes"]] == [(case.cause, 1)]
    entry = report["causes"][0]
    if case.listname is not None:
        assert entry["lists"] == [case.listname]
        assert entry["examples"][0]["list"] == case.listname
    if case.check is not None:
        assert entry["check"] == case.check
    assert report["skipped_lines"] == 0


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_every_cause_is_in_every_corpus_file(name: str) -> None:
    assert {c.cause for c in cases(name)} == set(CAUSES)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_whole_file_counts_match_the_expectations(name: str) -> None:
    explainer = explain_bytes((DATA / name).read_bytes())
    report = explainer.to_json()
    expected = Counter(c.cause for c in cases(name))
    assert {c["cause"]: c["count"] for c in report["causes"]} == dict(expected)
    assert report["skipped_lines"] == 0
    assert report["errors"] == []


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_failed_messages_are_followed_by_queue_id(name: str) -> None:
    report = explain_bytes((DATA / name).read_bytes()).to_json()
    examples = [e for c in report["causes"] for e in c["examples"]]
    assert examples
    assert all(e["from"] == "app@example.com" for e in examples)
    if name.startswith("postfix"):
        # cleanup's message-id line, found by the queue ID of the status line
        assert all(e["message_id"].endswith("@example.com>") for e in examples)


def test_unknown_replies_are_listed_verbatim_by_remote_host() -> None:
    report = explain_bytes((DATA / "postfix-classic.log").read_bytes()).to_json()
    groups = {g["remote_host"]: g for g in report["unrecognised"]}
    assert set(groups) == {
        "us-smtp-inbound-1.mimecast.com[198.51.100.77]",
        "(no remote host)",
    }
    mimecast = groups["us-smtp-inbound-1.mimecast.com[198.51.100.77]"]
    assert mimecast["count"] == 2
    lines = [entry["line"] for entry in mimecast["lines"]]
    assert any("451 Internal resource temporarily unavailable" in ln for ln in lines)
    assert any("550 5.7.1 Transaction failed" in ln for ln in lines)
    corpus_lines = (DATA / "postfix-classic.log").read_text().splitlines()
    assert all(ln in corpus_lines for ln in lines)  # verbatim


def test_times_of_both_timestamp_styles() -> None:
    classic = explain_bytes((DATA / "postfix-classic.log").read_bytes()).to_json()
    rfc = explain_bytes((DATA / "postfix-rfc3339.log").read_bytes()).to_json()
    first = {c["cause"]: c["first"] for c in rfc["causes"]}
    # RFC 3339 stamps keep their offset's instant: 06:25:02+01:00 is 05:25:02 UTC.
    assert datetime.fromisoformat(first["reverse-dns"]).astimezone(UTC) == datetime(
        2026, 11, 24, 5, 25, 2, 123456, tzinfo=UTC
    )
    # Classic stamps are local time with the year guessed: 2026 (the reference "now").
    assert all(c["first"].startswith("2026-11-24T06:") for c in classic["causes"])
