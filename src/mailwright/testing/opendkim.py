"""OpenDKIM as a peer: its library through ctypes, and its milter as a private instance.

``opendkim-testmsg`` can only make rsa-sha1 relaxed/simple signatures, so tests that
need an independent rsa-sha256 or ed25519-sha256 signer call ``dkim_sign()`` of
libopendkim (Debian ``libopendkim11``) directly. :class:`OpenDkimMilter` runs the
``opendkim`` daemon (Debian ``opendkim``) with a private config, key and socket, as
the Postfix + OpenDKIM setup this project replaces runs it. Test and benchmark
infrastructure only: the server never loads it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..dkim import SigningKey, private_key_pem
from ..dkim.keys import PrivateKey
from .ports import free_port, wait_for_port

OPENDKIM = "/usr/sbin/opendkim"


class OpenDkimMilter:
    """``opendkim -f`` signing ``domain`` with ``key`` (relaxed/relaxed, rsa-sha256).

    ``socket_kind`` is ``"inet"`` (``inet:PORT@127.0.0.1``, what most setup guides
    use) or ``"unix"`` (a socket file, Debian's packaged default). :attr:`postfix_milter`
    is the value for Postfix's ``smtpd_milters``.
    """

    def __init__(
        self, key: PrivateKey, *, domain: str, selector: str, socket_kind: str = "unix"
    ) -> None:
        if socket_kind not in ("inet", "unix"):
            raise ValueError("socket_kind is inet or unix")
        self.dir = Path(tempfile.mkdtemp(prefix="mailwright-opendkim-"))
        os.chmod(self.dir, 0o755)  # Postfix's smtpd (user postfix) connects to the socket
        self.key_file = self.dir / f"{selector}.private"
        self.key_file.write_bytes(private_key_pem(key))
        os.chmod(self.key_file, 0o600)
        self.socket_kind = socket_kind
        if socket_kind == "inet":
            self.port = free_port()
            socket_spec = f"inet:{self.port}@127.0.0.1"
            self.postfix_milter = f"inet:127.0.0.1:{self.port}"
        else:
            self.socket_path = self.dir / "opendkim.sock"
            socket_spec = f"local:{self.socket_path}"
            self.postfix_milter = f"unix:{self.socket_path}"
        self.config = self.dir / "opendkim.conf"
        self.config.write_text(
            "\n".join(
                [
                    "Syslog no",
                    "Mode s",
                    f"Domain {domain}",
                    f"Selector {selector}",
                    f"KeyFile {self.key_file}",
                    "Canonicalization relaxed/relaxed",
                    "SignatureAlgorithm rsa-sha256",
                    "OversignHeaders From",
                    f"Socket {socket_spec}",
                    f"PidFile {self.dir / 'opendkim.pid'}",
                    "UMask 0000",
                    "InternalHosts 127.0.0.1",
                    "RequireSafeKeys false",
                ]
            )
            + "\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OpenDkimMilter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [OPENDKIM, "-f", "-x", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                error = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.stop()
                raise RuntimeError(f"opendkim exited: {error.strip()}")
            if self._listening():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("opendkim did not open its socket within 10 s")

    def _listening(self) -> bool:
        if self.socket_kind == "unix":
            return self.socket_path.exists()
        return wait_for_port(self.port, 0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            with contextlib.suppress(OSError):
                self.proc.stderr.close()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


_CANON = {"simple": 0, "relaxed": 1}
_SIGNALG = {"rsa-sha256": 1, "ed25519-sha256": 2}


def libopendkim_sign(
    key: SigningKey, message: bytes, canon: tuple[str, str] = ("relaxed", "relaxed")
) -> bytes:
    """Sign with libopendkim's dkim_sign(); returns the DKIM-Signature field."""
    lib = ctypes.CDLL("libopendkim.so.11")
    lib.dkim_init.restype = ctypes.c_void_p
    lib.dkim_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.dkim_sign.restype = ctypes.c_void_p
    lib.dkim_sign.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
        ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ssize_t,
        ctypes.POINTER(ctypes.c_int),
    ]  # fmt: skip
    lib.dkim_chunk.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.dkim_eom.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.dkim_getsighdr_d.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p),
        ctypes.POINTER(ctypes.c_size_t),
    ]  # fmt: skip
    lib.dkim_free.argtypes = [ctypes.c_void_p]
    lib.dkim_close.argtypes = [ctypes.c_void_p]
    handle = lib.dkim_init(None, None)
    assert handle
    status = ctypes.c_int(-1)
    ctx = lib.dkim_sign(
        handle, b"interop", None, private_key_pem(key.private_key), key.selector.encode(),
        key.domain.encode(), _CANON[canon[0]], _CANON[canon[1]], _SIGNALG[key.algorithm], -1,
        ctypes.byref(status),
    )  # fmt: skip
    try:
        assert ctx and status.value == 0, f"dkim_sign status {status.value}"
        assert lib.dkim_chunk(ctx, message, len(message)) == 0
        assert lib.dkim_chunk(ctx, None, 0) == 0
        assert lib.dkim_eom(ctx, None) == 0
        buf = ctypes.c_char_p()
        length = ctypes.c_size_t()
        prefix = b"DKIM-Signature: "
        assert lib.dkim_getsighdr_d(ctx, len(prefix), ctypes.byref(buf), ctypes.byref(length)) == 0
        assert buf.value is not None
        return prefix + buf.value + b"\r\n"
    finally:
        if ctx:
            lib.dkim_free(ctx)
        lib.dkim_close(handle)
