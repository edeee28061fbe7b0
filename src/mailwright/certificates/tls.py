"""Server TLS contexts that follow a renewed certificate without restarting listeners.

An asyncio server (implicit TLS) keeps the ``SSLContext`` it was created with. The one
we give it only starts each handshake: its SNI callback — OpenSSL calls it for every
ClientHello, with or without a server name — moves the connection to the *current*
context, which the worker rebuilds when the certificate file changes. Sessions already
running keep the certificate they negotiated; STARTTLS reads the current context itself.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from ..config import Config
from .store import CertificateStore, tls_files


def make_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server TLS context from ``[tls]`` (None if there is no certificate)."""
    files = tls_files(config)
    if files is None and config.tls.acme:
        # never without TLS on an implicit-TLS port: serve's startup makes the placeholder,
        # but a server started another way (tests, an embedding) may not have
        CertificateStore(config.data_dir).ensure_placeholder(config.hostname)
        files = tls_files(config)
    if files is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(*files)
    context.options |= ssl.OP_NO_COMPRESSION
    return context


def switching_context(
    first: ssl.SSLContext, current: Callable[[], ssl.SSLContext | None]
) -> ssl.SSLContext:
    """``first``, made to hand each new handshake over to ``current()``."""

    def use_current(
        obj: ssl.SSLObject | ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext
    ) -> None:
        now = current()
        if now is not None and now is not ctx:
            obj.context = now

    first.sni_callback = use_current
    return first
