"""The maildrop's permission model with real users: a submitter who is not the server
drops a message, the server's user (not root) reads and removes it, and a third user
can neither list the maildrop nor read the file. Each role runs in a forked child that
has switched to that user (the test runs as root, as CI does)."""

from __future__ import annotations

import ast
import contextlib
import io
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailwright.cli.sendmail import run
from mailwright.sendmail import maildrop

pytestmark = pytest.mark.integration

SERVER = pwd.getpwnam("daemon")
SUBMITTER = pwd.getpwnam("nobody")
STRANGER = pwd.getpwnam("bin")


def as_user(user: pwd.struct_passwd, action: Callable[[], object]) -> object:
    """Run ``action`` in a child process as ``user``; its result (or exception) back."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            result: object = action()
        except BaseException as exc:
            result = exc
        os.write(write, repr(result).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    assert os.geteuid() == 0, "switching users needs root (CI runs the tests as root)"
    top = Path(tempfile.mkdtemp(prefix="mailwright-perm-"))
    os.chmod(top, 0o711)
    data = top / "data"
    data.mkdir(mode=0o711)
    os.chown(data, SERVER.pw_uid, SERVER.pw_gid)
    try:
        yield data
    finally:
        shutil.rmtree(top)


def test_submitter_drops_server_reads_stranger_cannot(data_dir: Path) -> None:
    path = maildrop.directory(data_dir)
    assert as_user(SERVER, lambda: str(maildrop.ensure_directory(data_dir))) == repr(str(path))
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
        SERVER.pw_uid,
        SERVER.pw_gid,
        0o3733,
    )
    drop = maildrop.Drop(("root",), b"Subject: from nobody\r\n\r\nhi\r\n")
    drop_id = as_user(SUBMITTER, lambda: maildrop.write(path, drop)).strip("'")
    file = path / drop_id
    fst = file.stat()
    # The submitter's file, the server's group (setgid directory), nobody else.
    assert (fst.st_uid, fst.st_gid, stat.S_IMODE(fst.st_mode)) == (
        SUBMITTER.pw_uid,
        SERVER.pw_gid,
        0o640,
    )
    assert "PermissionError" in str(as_user(STRANGER, lambda: os.listdir(path)))
    assert "PermissionError" in str(as_user(STRANGER, lambda: file.read_bytes()))
    assert "PermissionError" in str(as_user(SUBMITTER, lambda: os.listdir(path)))
    assert "PermissionError" in str(as_user(STRANGER, lambda: os.unlink(file)))

    def server_takes_it() -> object:
        claimed = maildrop.claim(path, drop_id, 1 << 20)
        assert claimed is not None
        decoded = maildrop.decode(claimed.data)
        claimed.done()
        return (claimed.uid, decoded.message)

    assert as_user(SERVER, server_takes_it) == repr((SUBMITTER.pw_uid, drop.message))
    assert os.listdir(path) == []


def test_sendmail_as_another_user(data_dir: Path) -> None:
    """The whole command as nobody: no maildrop yet in the server's data directory is an
    error (73) that creates nothing; once the server made it, the message is dropped."""
    config = data_dir.parent / "mailwright.toml"
    config.write_text(f'domains = ["example.com"]\ndata_dir = "{data_dir}"\n')
    os.chmod(config, 0o644)

    def send() -> object:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = run(["-C", str(config), "root"], stdin=io.BytesIO(b"Subject: hi\n\nx\n"))
        return (code, err.getvalue())

    code, stderr = ast.literal_eval(str(as_user(SUBMITTER, send)))
    path = maildrop.directory(data_dir)
    assert code == 73
    assert stderr == (
        f"sendmail: cannot write into the maildrop {path}: no such directory ('mailwright"
        " serve' creates it at start; else check the data directory's permissions)\n"
    )
    assert not path.exists()
    as_user(SERVER, lambda: maildrop.ensure_directory(data_dir))
    assert ast.literal_eval(str(as_user(SUBMITTER, send))) == (0, "")
    [drop_id] = os.listdir(path)
    assert (path / drop_id).stat().st_uid == SUBMITTER.pw_uid
