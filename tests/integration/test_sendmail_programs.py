"""``sendmail`` as real programs use it: bsd-mailx (``mail -s "some test" root``), a
cron-style ``sendmail -t -i`` with a Bcc, PHP-style ``-t -i -f``, ``git send-email`` and
swaks speaking SMTP to ``sendmail -bs`` — with the server stopped (queued once it starts)
and running, and the message DKIM-signed for our domain and delivered to root's alias
at a real Postfix MX. Then the bad inputs, each with its exit code and nothing left
half-written.

The programs find our sendmail through their own settings (mailx's ``sendmail``
variable, git's ``--smtp-server``, a ``sendmail`` link in a temporary directory): the
real ``/usr/sbin/sendmail`` is never touched.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_delivery_postfix import strip_postfix_headers
from test_delivery_serve import events, publish_keys, serve, start, write_config
from test_dkim_interop import ORIGIN, opendkim_testmsg_verify  # same directory

from mailwright.sendmail import maildrop
from mailwright.testing.nsd import NsdServer
from mailwright.testing.ports import free_port
from mailwright.testing.postfix import PostfixServer

pytestmark = pytest.mark.integration
__all__ = ["serve"]  # the fixture, imported for pytest

SENDMAIL = str(Path(sys.executable).parent / "mailwright-sendmail")
ADMIN = "admin@example.net"


@pytest.fixture
def world(tmp_path: Path, dns_world: NsdServer, postfix_mx: PostfixServer) -> Iterator[Path]:
    """A config: our domain with DKIM keys published, root aliased to an administrator
    whose mail is at the Postfix MX, direct delivery; ``$MAILWRIGHT_CONFIG`` names it."""
    config, port = write_config(
        tmp_path,
        [
            f'domains = ["{ORIGIN}"]',
            "[dns]",
            f'nameserver = "{dns_world.nameserver}"',
            "[delivery]",
            'mode = "direct"',
            f"outbound_port = {postfix_mx.port}",
            "[aliases]",
            f'"root@{ORIGIN}" = "{ADMIN}"',
        ],
    )
    (tmp_path / "port").write_text(str(port))
    publish_keys(dns_world, tmp_path)
    dns_world.set_zone("example.net", "@ MX 10 mx\nmx A 127.0.0.1\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sendmail").symlink_to(SENDMAIL)
    with _environment(MAILWRIGHT_CONFIG=str(config)):
        yield config


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_server(procs: list[subprocess.Popen[bytes]], config: Path) -> None:
    start(procs, config, int((config.parent / "port").read_text()))


def drop_dir(config: Path) -> Path:
    return maildrop.directory(config.parent / "data")


def sendmail(
    args: list[str], message: bytes, program: str = SENDMAIL
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([program, *args], input=message, capture_output=True, timeout=60)
    assert b"Traceback" not in proc.stderr
    return proc


def mailx(config: Path, subject: str, body: bytes, *recipients: str) -> None:
    rc = config.parent / "mailrc"
    rc.write_text(f"set sendmail={config.parent / 'bin' / 'sendmail'}\n")
    proc = subprocess.run(
        ["mail", "-s", subject, *recipients],
        input=body,
        capture_output=True,
        timeout=60,
        env={**os.environ, "MAILRC": str(rc)},
    )
    assert (proc.returncode, proc.stderr) == (0, b"")


def delivered_to_admin(postfix_mx: PostfixServer, count: int = 1) -> list[bytes]:
    return [strip_postfix_headers(m) for m in postfix_mx.wait_for_messages(count, timeout=60)]


def test_mail_to_root_with_the_server_down_arrives_signed_once_it_starts(
    world: Path,
    tmp_path: Path,
    dns_world: NsdServer,
    postfix_mx: PostfixServer,
    serve: list[subprocess.Popen[bytes]],
) -> None:
    mailx(world, "some test", b"hello from mailx\n", "root")
    [waiting] = maildrop.pending(drop_dir(world))  # durable, nobody running yet
    start_server(serve, world)
    [pickup] = events(tmp_path, "pickup")
    assert pickup["id"] == waiting
    assert pickup["from"] == f"<root@{ORIGIN}>"
    [message] = delivered_to_admin(postfix_mx)
    assert maildrop.pending(drop_dir(world)) == []
    assert f"From: root@{ORIGIN}\r\n".encode() in message
    assert f"To: root@{ORIGIN}\r\n".encode() in message
    assert b"Subject: some test\r\n" in message
    assert message.count(b"DKIM-Signature:") == 2
    assert b"\r\n\r\nhello from mailx\r\n" in message
    assert opendkim_testmsg_verify(dns_world, message, tmp_path) == (0, "")
    assert f"<{ADMIN}>" in postfix_mx.log()


def test_programs_with_the_server_running(
    world: Path,
    tmp_path: Path,
    postfix_mx: PostfixServer,
    serve: list[subprocess.Popen[bytes]],
) -> None:
    start_server(serve, world)
    shim = str(world.parent / "bin" / "sendmail")
    # cron (cronie): -t -i with a Bcc that must not show.
    cron = (
        b"From: root (Cron Daemon)\n"
        b"To: root\n"
        b"Bcc: bcc-admin@example.net\n"
        b"Subject: Cron <root@web1> run-parts /etc/cron.daily\n"
        b"\n"
        b"output\n"
    )
    proc = sendmail(["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"], cron, shim)
    assert (proc.returncode, proc.stderr) == (0, b"")
    # PHP's mail(): sendmail_path "sendmail -t -i" plus -f from the fifth argument.
    php = b"To: admin@example.net\nSubject: contact form\nFrom: webmaster@localhost\n\n.\nform\n"
    assert sendmail(["-t", "-i", "-fwebmaster@localhost"], php, shim).returncode == 0
    messages = delivered_to_admin(postfix_mx, 3)
    by_subject = {m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]: m for m in messages}
    cron_copies = [m for s, m in by_subject.items() if s.startswith(b"Cron")]
    assert len(messages) == 3  # root's copy, the Bcc copy, PHP's
    for message in cron_copies:
        assert b"Bcc" not in message and b"bcc-admin" not in message
        assert f"From: root@{ORIGIN} (Cron Daemon)\r\n".encode() in message or (
            f"From: Cron Daemon <root@{ORIGIN}>".encode() in message
        )
    form = by_subject[b"contact form"]
    assert f"From: webmaster@{ORIGIN}\r\n".encode() in form
    assert b"\r\n.\r\nform\r\n" in form  # -i: the lone dot is data
    assert form.count(b"DKIM-Signature:") == 2
    log = postfix_mx.log()
    assert "bcc-admin@example.net" in log


def test_git_send_email_and_swaks_over_bs(
    world: Path,
    tmp_path: Path,
    postfix_mx: PostfixServer,
    serve: list[subprocess.Popen[bytes]],
) -> None:
    start_server(serve, world)
    patch = tmp_path / "0001-fix.patch"
    patch.write_text(
        "From 1234567890abcdef1234567890abcdef12345678 Mon Sep 17 00:00:00 2001\n"
        f"From: Dev <dev@{ORIGIN}>\n"
        "Date: Fri, 4 Dec 2026 12:00:00 +0000\n"
        "Subject: [PATCH] fix\n"
        "\n"
        "---\n"
        " a | 1 +\n"
    )
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
        "HOME": str(tmp_path),
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": f"dev@{ORIGIN}",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": f"dev@{ORIGIN}",
    }
    proc = subprocess.run(
        [
            "git",
            "send-email",
            f"--smtp-server={world.parent / 'bin' / 'sendmail'}",
            f"--envelope-sender=dev@{ORIGIN}",
            f"--to={ADMIN}",
            "--confirm=never",
            "--no-validate",
            "--suppress-cc=all",
            str(patch),
        ],
        capture_output=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    swaks = subprocess.run(
        [
            "swaks",
            "--to",
            ADMIN,
            "--from",
            f"app@{ORIGIN}",
            "--header",
            "Subject: over -bs",
            "--pipe",
            f"{SENDMAIL} -bs",
        ],
        capture_output=True,
        timeout=60,
    )
    assert swaks.returncode == 0, swaks.stdout.decode()
    assert b"250 2.0.0 Ok: queued as " in swaks.stdout
    messages = delivered_to_admin(postfix_mx, 2)
    subjects = sorted(m.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0] for m in messages)
    assert subjects == [b"[PATCH] fix", b"over -bs"]
    assert all(m.count(b"DKIM-Signature:") == 2 for m in messages)


# -- bad input: exit code, one line on stderr, nothing in the maildrop --------------------------


@pytest.fixture
def local_config(tmp_path: Path) -> Iterator[Path]:
    config = tmp_path / "mailwright.toml"
    config.write_text(
        f'hostname = "mail.{ORIGIN}"\ndomains = ["{ORIGIN}"]\n'
        f'data_dir = "{tmp_path / "data"}"\nallow_root = true\n'
        "message_size_limit = 1048576\nworkers = 1\n"
        f'[[listeners]]\naddress = "127.0.0.1"\nport = {free_port()}\n'
    )
    with _environment(MAILWRIGHT_CONFIG=str(config)):
        yield config


def refused(args: list[str], message: bytes, code: int, stderr: str, config: Path) -> None:
    proc = sendmail(args, message)
    assert (proc.returncode, proc.stderr.decode()) == (code, f"mailwright-sendmail: {stderr}\n")
    assert maildrop.pending(drop_dir(config)) == []
    path = drop_dir(config)
    assert not path.exists() or [p for p in os.listdir(path) if p.startswith(".tmp")] == []


def test_nul_bytes(local_config: Path) -> None:
    refused(
        ["root"],
        b"Subject: x\n\nNUL\0here\n",
        65,
        "the message contains a NUL byte (octet 15) (mail carries text; send binary data as a"
        " MIME attachment)",
        local_config,
    )


def test_100_megabytes_over_the_limit(local_config: Path) -> None:
    refused(
        ["root"],
        b"Subject: big\n\n" + (b"x" * 99 + b"\n") * 1_000_000,
        65,
        "the message is over the size limit of 1048576 octets; nothing was queued (send a"
        " smaller message, or raise message_size_limit in the config)",
        local_config,
    )


def test_unknown_option(local_config: Path) -> None:
    refused(["-Z", "root"], b"x\n", 64, "unknown option -Z (see 'sendmail --help')", local_config)


def test_no_recipients(local_config: Path) -> None:
    refused(
        ["-t"],
        b"Subject: nobody\n\nx\n",
        64,
        "no recipients (name them as arguments, or use -t with To:, Cc: or Bcc: in the message)",
        local_config,
    )


def test_unwritable_maildrop(local_config: Path) -> None:
    path = drop_dir(local_config)
    maildrop.ensure_directory(path.parent)
    # chattr +i stops root too; chmod is enough for anyone else.
    lock = ["chattr", "+i", str(path)] if os.geteuid() == 0 else ["chmod", "555", str(path)]
    subprocess.run(lock, check=True)
    try:
        proc = sendmail(["root"], b"Subject: x\n\nbody\n")
    finally:
        unlock = ["chattr", "-i", str(path)] if os.geteuid() == 0 else ["chmod", "3733", str(path)]
        subprocess.run(unlock, check=True)
    assert proc.returncode == 73
    assert proc.stderr.decode() == (
        f"mailwright-sendmail: cannot write into the maildrop {path}: Operation not permitted"
        " ('mailwright serve' creates it at start; else check the data directory's"
        " permissions)\n"
    )
    assert os.listdir(path) == []


def test_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("no_such_key = 1\n")
    proc = sendmail(["-C", str(bad), "root"], b"x\n")
    assert proc.returncode == 78
    assert (
        proc.stderr.decode()
        == f"mailwright-sendmail: {bad}: no_such_key: unknown setting (remove it)\n"
    )


def test_odd_but_valid_input_is_queued_normalised(local_config: Path) -> None:
    raw = b"To: root\rSubject: mixed\r\n\n" + b"y" * 1500 + b"\rend"  # no header end, bare CR
    proc = sendmail(["root"], raw)
    assert (proc.returncode, proc.stderr) == (0, b"")
    [drop_id] = maildrop.pending(drop_dir(local_config))
    drop = maildrop.decode((drop_dir(local_config) / drop_id).read_bytes())
    assert (
        drop.message
        == b"To: root\r\nSubject: mixed\r\n\r\n"
        + b"y" * 998
        + b"\r\n "
        + b"y" * 502
        + b"\r\nend\r\n"
    )


def test_ten_thousand_recipients_are_queued(
    local_config: Path, tmp_path: Path, serve: list[subprocess.Popen[bytes]]
) -> None:
    recipients = [f"user{i}@example.net" for i in range(10_000)]
    proc = sendmail(["-i", *recipients], b"Subject: many\n\nhi\n")
    assert (proc.returncode, proc.stderr) == (0, b"")
    [drop_id] = maildrop.pending(drop_dir(local_config))
    drop = maildrop.decode((drop_dir(local_config) / drop_id).read_bytes())
    assert len(drop.recipients) == 10_000
    port = int(local_config.read_text().rsplit("port = ", 1)[1].split()[0])
    start(serve, local_config, port)
    [pickup] = events(tmp_path, "pickup")
    assert (pickup["id"], pickup["nrcpt"]) == (drop_id, "10000")
    assert maildrop.pending(drop_dir(local_config)) == []


def test_closed_stdin(local_config: Path) -> None:
    proc = subprocess.run(
        [SENDMAIL, "root"], capture_output=False, stderr=subprocess.PIPE, preexec_fn=_close_stdin
    )
    assert proc.returncode == 66
    assert proc.stderr == b"mailwright-sendmail: no standard input to read the message from\n"


def _close_stdin() -> None:
    os.close(0)
