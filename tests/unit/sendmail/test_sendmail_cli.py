"""The sendmail program in process: -bs over byte streams, -bi, -q, -bp, and the
install plan (dpkg-divert for a package's file, a link otherwise)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from mailwright.cli.sendmail import run
from mailwright.errors import UserError
from mailwright.sendmail import maildrop
from mailwright.sendmail.install import DIVERT_SUFFIX, apply, plan_install, plan_uninstall


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "mailwright.toml"
    path.write_text(
        'hostname = "mail.example.com"\ndomains = ["example.com"]\n'
        f'data_dir = "{tmp_path / "data"}"\nmailboxes = ["admin@example.com"]\n'
        '[aliases]\n"root@example.com" = "admin@example.com"\n'
    )
    monkeypatch.setenv("MAILWRIGHT_CONFIG", str(path))
    return path


def test_bs_speaks_smtp_and_drops_each_message(config: Path) -> None:
    session = (
        b"EHLO client\r\n"
        b"MAIL FROM:<app@example.com>\r\n"
        b"RCPT TO:<root@example.com>\r\n"
        b"RCPT TO:<nobody@example.com>\r\n"
        b"DATA\r\n"
        b"Subject: over stdin\r\n\r\nhi\r\n.\r\n"
        b"QUIT\r\n"
    )
    out = io.BytesIO()
    assert run(["-bs"], stdin=io.BytesIO(session), stdout=out) == 0
    replies = out.getvalue().decode().splitlines()
    assert replies[0] == "220 mail.example.com ESMTP mailwright"
    assert "250 2.1.5 Ok" in replies
    assert any(r.startswith("550 5.1.1 <nobody@example.com>") for r in replies)
    queued = next(r for r in replies if r.startswith("250 2.0.0 Ok: queued as "))
    assert replies[-1] == "221 2.0.0 Bye"
    path = maildrop.directory(config.parent / "data")
    [drop_id] = maildrop.pending(path)
    assert queued.endswith(drop_id)
    drop = maildrop.decode((path / drop_id).read_bytes())
    assert (drop.sender, drop.recipients) == ("app@example.com", ("root@example.com",))
    assert drop.message == b"Subject: over stdin\r\n\r\nhi\r\n"


def test_bs_ends_quietly_at_end_of_input(config: Path) -> None:
    out = io.BytesIO()
    assert run(["-bs"], stdin=io.BytesIO(b"EHLO x\r\nMAIL FROM:<a@b.c>\r\n"), stdout=out) == 0
    assert maildrop.pending(maildrop.directory(config.parent / "data")) == []


def test_newaliases_and_queue_run_do_nothing(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["-bi"]) == 0
    assert run([], program="/usr/bin/newaliases") == 0
    assert run(["-q"]) == 0
    out = capsys.readouterr().out
    assert f"sendmail: nothing to rebuild: aliases are [aliases] in {config}" in out


def test_mailq_counts_the_maildrop(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["root"], stdin=io.BytesIO(b"x\n")) == 0
    assert run([], program="mailq") == 0
    assert capsys.readouterr().out == (
        "1 message(s) in the maildrop, waiting for 'mailwright serve'\nThe queue is empty.\n"
    )


def test_deliver_reads_up_to_a_lone_dot(config: Path) -> None:
    assert run(["root"], stdin=io.BytesIO(b"Subject: x\n\nbody\n.\nnot this\n")) == 0
    path = maildrop.directory(config.parent / "data")
    [drop_id] = maildrop.pending(path)
    assert maildrop.decode((path / drop_id).read_bytes()).message == b"Subject: x\r\n\r\nbody\r\n"


# -- install -------------------------------------------------------------------------------------


def test_install_diverts_a_package_file_and_links_a_free_path(tmp_path: Path) -> None:
    program = tmp_path / "mailwright-sendmail"
    owned, free = tmp_path / "sendmail", tmp_path / "mailq"
    owned.write_text("postfix's")
    steps = plan_install(
        program,
        [owned, free],
        owner=lambda p: "postfix" if p == owned else None,
        is_diverted=lambda p: False,
    )
    assert [s.shell for s in steps] == [
        f"dpkg-divert --local --rename --divert {owned}{DIVERT_SUFFIX} --add {owned}",
        f"ln -sfn {program} {owned}",
        f"ln -sfn {program} {free}",
    ]


def test_install_refuses_to_replace_a_file_no_package_owns(tmp_path: Path) -> None:
    stray = tmp_path / "sendmail"
    stray.write_text("someone's")
    with pytest.raises(UserError, match="exists and belongs to no package"):
        plan_install(tmp_path / "prog", [stray], owner=lambda p: None, is_diverted=lambda p: False)


def test_install_and_uninstall_links_for_real(tmp_path: Path) -> None:
    program = tmp_path / "mailwright-sendmail"
    program.write_text("#!/bin/sh\n")
    target = tmp_path / "newaliases"
    steps = plan_install(program, [target], owner=lambda p: None, is_diverted=lambda p: False)
    apply(steps, echo=lambda line: None)
    assert os.readlink(target) == str(program)
    assert plan_install(program, [target], owner=lambda p: None, is_diverted=lambda p: False) == []
    apply(plan_uninstall(program, [target], is_diverted=lambda p: False), echo=lambda line: None)
    assert not target.exists() and not target.is_symlink()
