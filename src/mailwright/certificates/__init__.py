"""Automatic TLS certificates (ACME, RFC 8555): the files in ``DATA_DIR/certificates``
(:mod:`.store`), one issuance through certbot's ``acme`` library (:mod:`.issuer`), and the
renewal loop every worker runs (:mod:`.manager`).

HTTP-01, not TLS-ALPN-01: the challenge is answered by the ``http`` listener (port 80),
which issue 11's API shares; TLS-ALPN-01 would need port 443 answering with a special
certificate, a port a mail server does not otherwise serve.
"""

from __future__ import annotations

from .store import CertificateStore, tls_files

__all__ = ["CertificateStore", "tls_files"]
