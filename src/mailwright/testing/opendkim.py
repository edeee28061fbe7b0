"""Sign with OpenDKIM's own library (libopendkim, Debian ``libopendkim11``) through ctypes.

``opendkim-testmsg`` can only make rsa-sha1 relaxed/simple signatures, so tests that
need an independent rsa-sha256 or ed25519-sha256 signer call ``dkim_sign()`` directly.
Test infrastructure only: the server never loads it.
"""

from __future__ import annotations

import ctypes

from ..dkim import SigningKey, private_key_pem

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
