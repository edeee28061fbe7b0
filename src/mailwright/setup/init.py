"""``mailwright init``: write a commented config and DKIM keys for one domain.

Nothing is overwritten without ``force``: an existing config or key file is a
:class:`UserError` naming it, since replacing a published DKIM key breaks the
signatures of mail still in transit and a config holds decisions.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ..config import (
    DEFAULT_CONFIG_NAME,
    Config,
    DeliveryConfig,
    DkimKeyConfig,
    ListenerConfig,
    MailmanConfig,
    RelayConfig,
    TlsConfig,
    load_config,
)
from ..dns.names import is_hostname, name_problem, normalize
from ..errors import UsageError, UserError
from .keys import Algorithm, generate_private_key, write_private_key
from .records import DMARC_REPORT_LOCALPART, RecordPlan, build_records
from .template import render_config

KEY_DIR = "keys"
TLS_DIR = "tls"
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class InitOptions:
    domain: str
    ips: tuple[str, ...]
    hostname: str | None = None
    relay: str | None = None
    selector: str = "mail"
    directory: Path = Path()
    force: bool = False
    data_dir: Path | None = None
    """Default: ``mailwright-data`` beside the config (a server: /var/lib/mailwright)."""
    user: str | None = None
    """The system user ``serve`` runs as when started as root (``user``)."""
    inbound: bool = False
    """Also receive: an inbound listener on port 25 with STARTTLS, and ``[tls]`` pointing
    at ``tls/cert.pem`` and ``tls/key.pem`` beside the config (the certificate step)."""
    mailman: bool = False
    """Also a ``[mailman]`` section: Mailman 3 core on this machine is the list manager."""
    acme: bool = False
    """``serve`` gets and renews the certificate itself (``[tls] acme``, HTTP-01): an
    ``http`` listener on port 80, and no certificate files (the TLS of ``inbound``)."""
    acme_contact: str | None = None
    """Default: ``postmaster@DOMAIN`` (a mailbox ``init`` configures)."""


@dataclass(frozen=True)
class InitResult:
    config_path: Path
    key_paths: tuple[Path, ...]
    config: Config
    plan: RecordPlan


def key_path(directory: Path, domain: str, selector: str, algorithm: Algorithm) -> Path:
    return directory / KEY_DIR / f"{domain}.{selector}.{algorithm}.pem"


def validate_domain(text: str, what: str = "domain") -> str:
    problem = name_problem(text)
    name = normalize(text)
    if problem is None and "." not in name:
        problem = "needs at least two labels"
    if problem is not None:
        raise UsageError(f"{what} {text!r}: {problem}", "write e.g. example.com")
    return name


def plan_config(options: InitOptions) -> Config:
    """The config ``init`` writes, validated; raises :class:`UsageError` for bad options."""
    domain = validate_domain(options.domain)
    hostname = validate_domain(options.hostname or f"mail.{domain}", "hostname")
    ipv4: list[str] = []
    ipv6: list[str] = []
    for text in options.ips:
        try:
            addr = ipaddress.ip_address(text.strip())
        except ValueError:
            raise UsageError(
                f"--ip {text!r} is not an IP address", "write e.g. 192.0.2.10 or 2001:db8::25"
            ) from None
        target = ipv4 if addr.version == 4 else ipv6
        if str(addr) not in target:
            target.append(str(addr))
    selector = options.selector.lower()
    # A selector we publish is a host name (no underscore), though we read any DNS name.
    if not is_hostname(selector) or len(selector) > 60:
        raise UsageError(
            f"--selector {options.selector!r} is not a DNS label", "write e.g. mail or s2026"
        )
    relay = None
    if options.relay is not None:
        if not options.relay.startswith(("smtp://", "smtps://")):
            raise UsageError(
                f"--relay {options.relay!r} is not an smtp:// or smtps:// URL",
                "write e.g. smtp://user@smtp.mailgun.org:587",
            )
        relay = RelayConfig(url=options.relay)
    directory = options.directory
    keys = (
        DkimKeyConfig(domain, selector, key_path(directory, domain, selector, "rsa"), "rsa"),
        DkimKeyConfig(
            domain,
            f"{selector}-ed",
            key_path(directory, domain, f"{selector}-ed", "ed25519"),
            "ed25519",
        ),
    )
    config = Config(
        path=directory / DEFAULT_CONFIG_NAME,
        hostname=hostname,
        domains=(domain,),
        ipv4=tuple(ipv4),
        ipv6=tuple(ipv6),
        data_dir=directory / "mailwright-data",
        # RFC 5321 §4.5.1 requires postmaster; DMARC aggregate reports (rua) arrive here too.
        mailboxes=(f"postmaster@{domain}", f"{DMARC_REPORT_LOCALPART}@{domain}"),
        dkim=keys,
        delivery=DeliveryConfig(mode="relay" if relay else "direct", relay=relay),
    )
    if options.data_dir is not None:
        config = replace(config, data_dir=options.data_dir.absolute())
    if options.user is not None:
        if not _USER.match(options.user):
            raise UsageError(
                f"--user {options.user!r} is not a system user name", "write e.g. mailwright"
            )
        config = replace(config, user=options.user)
    if options.acme:
        contact = options.acme_contact or f"postmaster@{domain}"
        if contact.count("@") != 1 or any(c.isspace() or c in '<>",' for c in contact):
            raise UsageError(
                f"--acme-contact {contact!r} is not an address", "write e.g. you@example.com"
            )
        # HTTP-01 (RFC 8555 §8.3): the CA fetches the token from port 80 of the hostname.
        config = replace(
            config,
            tls=TlsConfig(acme=True, acme_contact=contact),
            listeners=(*config.listeners, ListenerConfig("http", "0.0.0.0", 80, "http")),
        )
    if options.inbound:
        tls = config.tls
        if not tls.acme:
            tls = TlsConfig(directory / TLS_DIR / "cert.pem", directory / TLS_DIR / "key.pem")
        config = replace(
            config,
            tls=tls,
            listeners=(
                *config.listeners,
                ListenerConfig("inbound", "0.0.0.0", 25, "inbound", tls="starttls"),
            ),
        )
    if options.mailman:
        config = replace(
            config, mailman=MailmanConfig(rest_password_file=directory / "mailman-rest-password")
        )
    return config


def init_domain(options: InitOptions) -> InitResult:
    """Write ``mailwright.toml`` and the DKIM keys into ``options.directory``."""
    config = plan_config(options)
    assert config.path is not None
    targets = [config.path, *(k.private_key for k in config.dkim)]
    if not options.force:
        for target in targets:
            if target.exists():
                raise UserError(f"{target} already exists", "use --force to overwrite it")
    options.directory.mkdir(parents=True, exist_ok=True)
    for key in config.dkim:
        write_private_key(key.private_key, generate_private_key(key.algorithm))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"mailwright configuration for {', '.join(config.domains)}, written by 'mailwright init'"
        f" on {stamp}.",
        "Every setting is shown with its default; lines starting with '#' are examples.",
        "Print the DNS records to publish: mailwright records",
        f"Check them once published:      mailwright check {config.domains[0]}",
    )
    text = render_config(config, options.directory, header)
    config.path.write_text(text, encoding="utf-8")
    loaded = load_config(config.path)  # what the server will read: never write a file it refuses
    return InitResult(
        config_path=config.path,
        key_paths=tuple(k.private_key for k in config.dkim),
        config=loaded,
        plan=build_records(loaded),
    )
