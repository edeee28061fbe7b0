"""The checks ``serve`` makes before it starts and before SIGHUP swaps the config in.

``mailwright config check`` runs exactly these (plus loading users and DKIM keys in
:func:`mailwright.server.build_runtime`), so that a config that passes the check is one
the running server accepts, and one that fails is refused by SIGHUP with the same line.
Each check returns a :class:`Finding` for the report, or raises :class:`UserError`.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from .certificates.tls import make_ssl_context
from .config import Config
from .errors import UserError
from .privileges import check_files, run_as

EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True)
class Finding:
    """One line of the report: ``ok`` (checked), ``note`` (said at startup), ``warn``."""

    check: str
    detail: str
    status: Literal["ok", "note", "warn"] = "ok"

    def to_json(self) -> dict[str, object]:
        return {"check": self.check, "status": self.status, "detail": self.detail}


def _acme_finding(config: Config, now: datetime) -> Finding:
    """What ``serve`` will do about the certificate: the names it asks for, where, and
    whether one has been issued yet (before that, TLS listeners serve a self-signed one)."""
    from .certificates.store import CertificateStore, wanted_names

    names = ", ".join(wanted_names(config))
    detail = f"acme: {names} from {config.tls.acme_directory}"
    current = CertificateStore(config.data_dir).current_info()
    if current is None:
        detail += (
            "; none issued yet: TLS serves a self-signed certificate until the log says"
            " certificate-issued"
        )
    elif current.not_after <= now:
        return Finding("tls", f"{detail}; expired on {current.not_after:%Y-%m-%d}", "warn")
    else:
        detail += f"; issued, valid until {current.not_after:%Y-%m-%d}"
    return Finding("tls", detail)


def check_tls(config: Config, now: datetime | None = None) -> list[Finding]:
    """The certificate and key load into a TLS context as the listeners will load them."""
    if config.tls.acme:
        return [_acme_finding(config, now or datetime.now(UTC))]
    certificate, key = config.tls.certificate, config.tls.private_key
    if certificate is None or key is None:
        return []
    try:
        make_ssl_context(config)
    except OSError as exc:  # ssl.SSLError is an OSError too: checked first
        if isinstance(exc, ssl.SSLError):
            raise UserError(
                f"{config.source}: tls: {certificate} with {key}: "
                f"{exc.reason or exc.strerror or exc}",
                "both must be PEM and the key must belong to the certificate",
            ) from None
        path = exc.filename or certificate
        raise UserError(
            f"{config.source}: tls: {path}: {exc.strerror or exc}",
            "fix the path in [tls], or make it readable by the server's user",
        ) from None
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    except (OSError, ValueError):
        return [Finding("tls", f"{certificate} loaded")]
    until = cert.not_valid_after_utc
    when = now or datetime.now(UTC)
    names = _certificate_names(cert)
    detail = f"{certificate}: {', '.join(names) or 'no names'}, valid until {until:%Y-%m-%d}"
    findings = [Finding("tls", detail)]
    if until <= when:
        findings.append(Finding("tls", f"the certificate expired on {until:%Y-%m-%d}", "warn"))
    elif (until - when).days < 14:
        findings.append(
            Finding("tls", f"the certificate expires in {(until - when).days} days", "warn")
        )
    if names and config.hostname not in names and not _wildcard_covers(names, config.hostname):
        findings.append(
            Finding("tls", f"the certificate does not name hostname {config.hostname}", "warn")
        )
    return findings


def _certificate_names(cert: object) -> list[str]:
    from cryptography import x509

    assert isinstance(cert, x509.Certificate)
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [name.lower() for name in extension.value.get_values_for_type(x509.DNSName)]


def _wildcard_covers(names: list[str], hostname: str) -> bool:
    parent = hostname.partition(".")[2]
    return f"*.{parent}" in names


def check_relay(config: Config) -> list[Finding]:
    """The relay URL and its password resolve (the file is readable, the variable set)."""
    delivery = config.delivery
    if delivery.mode != "relay" or delivery.relay is None:
        return [Finding("delivery", delivery.mode)]
    from .delivery.routing import relay_target

    target = relay_target(delivery.relay, file=config.source)
    login = f"{target.username}@" if target.username else ""
    return [Finding("delivery", f"relay {login}{target.host}:{target.port} (tls={target.tls})")]


def check_listeners(config: Config) -> list[Finding]:
    """No two listeners on one address and port; every address is one of this machine's.

    The ports themselves are not bound: the running server holds them.
    """
    seen: dict[tuple[str, int], str] = {}
    findings = []
    for listener in config.listeners:
        where = (listener.address, listener.port)
        if where in seen:
            raise UserError(
                f"{config.source}: listeners {seen[where]} and {listener.name} both use "
                f"{listener.address}:{listener.port}",
                "give each [[listeners]] its own port",
            )
        seen[where] = listener.name
        family = socket.AF_INET6 if ":" in listener.address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((listener.address, 0))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise UserError(
                        f"{config.source}: listener {listener.name}: {listener.address} is not "
                        "an address of this machine",
                        "use one of 'ip -brief address', or 0.0.0.0",
                    ) from None
        findings.append(
            Finding(
                "listener",
                f"{listener.name}: {listener.role} on {listener.address}:{listener.port} "
                f"(tls={listener.tls}, auth={listener.auth})",
            )
        )
    return findings


def check_account(config: Config, dev_mode: bool) -> list[Finding]:
    """Who serve runs as, and that this account can use the data directory and keys."""
    account = run_as(config, dev_mode)
    check_files(config, account)
    if account.uid != 0:
        return [Finding("user", f"serve runs as {account.name}")]
    why = "allow_root = true" if config.allow_root else "development mode"
    # said at startup: a root server should be a decision, not an accident
    return [Finding("user", f"serve runs as root ({why})", "note")]


def check_runtime(config: Config, dev_mode: bool = False) -> list[Finding]:
    """Everything except users and DKIM keys (those are loaded by ``build_runtime``)."""
    return [
        *check_account(config, dev_mode),
        *check_listeners(config),
        *check_tls(config),
        *check_relay(config),
    ]
