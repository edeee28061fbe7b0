"""``mailwright explain`` end to end through the CLI entry point: files, stdin, defaults,
--json schema, -v, --since, and the exit codes."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from mailwright.cli.main import main
from mailwright.explain import CAUSES, sources

from .corpus import CORPUS_FILES, DATA, cases

SCHEMA_CAUSE_KEYS = {
    "cause",
    "title",
    "count",
    "bounced",
    "deferred",
    "expired",
    "recipient_domains",
    "first",
    "last",
    "sample",
    "fix",
    "advice",
    "check",
    "checks",
    "confirm",
    "lists",
    "examples",
}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", *args])
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--json", *(str(DATA / n) for n in CORPUS_FILES)], capsys)
    assert code == 1  # the corpus is all failures
    report = json.loads(out)
    assert list(report) == [
        "causes",
        "unrecognised",
        "totals",
        "since",
        "files",
        "refused",
        "skipped_lines",
        "skipped_samples",
        "errors",
    ]
    assert {c["cause"] for c in report["causes"]} == set(CAUSES)
    for c in report["causes"]:
        assert set(c) == SCHEMA_CAUSE_KEYS
        assert c["fix"] == CAUSES[c["cause"]].fix.replace(
            "RECIPIENT-DOMAIN", (c["recipient_domains"] or ["RECIPIENT-DOMAIN"])[0]
        )
        assert c["count"] == c["bounced"] + c["deferred"] + c["expired"]
    assert [f["name"] for f in report["files"]] == [str(DATA / n) for n in CORPUS_FILES]
    assert report["errors"] == [] and report["skipped_lines"] == 0


def test_human_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli([str(DATA / "postfix-classic.log")], capsys)
    assert code == 1
    assert "blocklisted" in out and "dnsbl:" in out
    assert "lists: " in out and "zen.spamhaus.org" in out
    assert "Unrecognised replies, by remote host" in out
    assert "us-smtp-inbound-1.mimecast.com[198.51.100.77]" in out


def test_verbose_lists_each_message(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(["-v", str(DATA / "postfix-classic.log")], capsys)
    assert "from=<app@example.com> to=<alice@gmail.com> bounced dsn=5.7.25" in out


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    data = (DATA / "mailwright.log").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run_cli(["--json", "-"], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["files"][0]["name"] == "-"
    assert sum(c["count"] for c in report["causes"]) == len(cases("mailwright.log"))


def test_since(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(DATA / "mailwright.log")  # 18:00 to 18:06 UTC
    _, out, _ = run_cli(["--json", "--since", "2026-11-24T18:05:00+00:00", path], capsys)
    report = json.loads(out)
    assert 0 < sum(c["count"] for c in report["causes"]) < 100
    _, out, _ = run_cli(["--json", "--since", "1m", path], capsys)  # the corpus is older
    assert json.loads(out)["causes"] == []


def test_nothing_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "mail.log"
    log.write_text("Nov 24 19:00:00 mail postfix/smtpd[1]: connect from x[198.51.100.1]\n")
    code, out, _ = run_cli([str(log)], capsys)
    assert code == 0
    assert "No deferred or bounced mail." in out


def test_corrupt_gzip_exit_1_with_the_rest_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "old.log.gz"
    bad.write_bytes(gzip.compress(b"x" * 100_000)[:50] + b"\x00" * 200)
    code, out, _ = run_cli(["--json", str(bad), str(DATA / "postfix-classic.log")], capsys)
    assert code == 1
    report = json.loads(out)
    assert len(report["errors"]) == 1 and report["errors"][0].startswith(str(bad))
    assert report["files"][1]["error"] is None
    assert sum(c["count"] for c in report["causes"]) > 0


def test_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["/nonexistent/mail.log"], capsys)
    assert code == 2
    assert "/nonexistent/mail.log: no such file" in err


def test_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["--since", "last tuesday", str(DATA / "mailwright.log")], capsys)
    assert code == 2
    assert "neither a duration nor a date" in err


def test_default_reads_mail_log_and_its_rotations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no mailwright.toml here
    monkeypatch.delenv("MAILWRIGHT_CONFIG", raising=False)
    lines = (DATA / "postfix-classic.log").read_bytes().splitlines(keepends=True)
    (tmp_path / "mail.log.2.gz").write_bytes(gzip.compress(b"".join(lines[:200])))
    (tmp_path / "mail.log.1").write_bytes(b"".join(lines[200:400]))
    (tmp_path / "mail.log").write_bytes(b"".join(lines[400:]))
    monkeypatch.setattr(sources, "DEFAULT_LOG", tmp_path / "mail.log")
    code, out, _ = run_cli(["--json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert [Path(f["name"]).name for f in report["files"]] == [
        "mail.log.2.gz",
        "mail.log.1",
        "mail.log",
    ]
    whole = sum(1 for ln in lines if ln.startswith(b"# expect:"))
    assert sum(c["count"] for c in report["causes"]) == whole


def test_no_default_log_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWRIGHT_CONFIG", raising=False)
    monkeypatch.setattr(sources, "DEFAULT_LOG", tmp_path / "mail.log")
    code, _, err = run_cli([], capsys)
    assert code == 2
    assert "no log found" in err and "journalctl" in err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    main(["explain", "--help"])
    out = capsys.readouterr().out
    assert "Examples:" in out and "mailwright explain -" in out.replace("|", "")


def test_progress_display_reads_the_same(tmp_path: Path) -> None:
    from mailwright.cli.explain import _read_with_progress
    from mailwright.explain import Explainer
    from mailwright.explain.sources import Source

    gz = tmp_path / "mail.log.1.gz"
    gz.write_bytes(gzip.compress((DATA / "postfix-classic.log").read_bytes()))
    plain = DATA / "mailwright.log"
    srcs = [Source(str(gz), gz), Source(str(plain), plain)]
    explainer = Explainer()
    _read_with_progress(explainer, srcs, sum(s.size() or 0 for s in srcs))
    total = sum(c["count"] for c in explainer.to_json()["causes"])
    assert total == len(cases("postfix-classic.log")) + len(cases("mailwright.log"))


def test_default_adds_mailwrights_own_log_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWRIGHT_CONFIG", raising=False)
    (tmp_path / "mailwright.toml").write_text('[log]\nfile = "own.log"\n')
    (tmp_path / "own.log").write_bytes((DATA / "mailwright.log").read_bytes())
    (tmp_path / "mail.log").write_bytes((DATA / "postfix-classic.log").read_bytes())
    monkeypatch.setattr(sources, "DEFAULT_LOG", tmp_path / "mail.log")
    code, out, _ = run_cli(["--json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert [Path(f["name"]).name for f in report["files"]] == ["mail.log", "own.log"]
    total = sum(c["count"] for c in report["causes"])
    assert total == len(cases("postfix-classic.log")) + len(cases("mailwright.log"))


def test_named_list_check_preferred_to_the_wildcard(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(["--json", str(DATA / "postfix-classic.log")], capsys)
    blocklisted = next(c for c in json.loads(out)["causes"] if c["cause"] == "blocklisted")
    assert blocklisted["check"] == "dnsbl:zen.spamhaus.org"  # 3 events; dnsbl:* has 8
    assert blocklisted["checks"][-1] == "dnsbl:*"
    assert "dbl:dbl.spamhaus.org" in blocklisted["checks"]


def test_escaped_lone_surrogate_is_printable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "mailwright.log"
    log.write_text(
        "2026-11-24T19:00:00+00:00 mailwright[1]: event=bounced id=4Xk2pQ9mZ0aB "
        'to=<a@example.net> relay=none delay=1 dsn=5.1.1 reply="550 5.1.1 no \\ud800 user"\n'
    )
    for args in (["--json"], ["-v"]):
        code, out, _ = run_cli([*args, str(log)], capsys)
        assert code == 1
        assert "550 5.1.1 no \ufffd user" in out
