"""The one config file, ``mailwright.toml``, parsed into typed, validated objects.

Every problem is reported as a :class:`ConfigError` naming the file, the key
(``section.key``) and the fix. Unknown keys are errors too: a typo in a mail
server's config should not silently fall back to a default.

Sections grow with the features; each section is one dataclass here, and
``mailwright init`` writes a commented file covering all of them
(:mod:`mailwright.setup`).
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from .dns.names import name_problem, normalize
from .errors import ConfigError, UserError

T = TypeVar("T")

DEFAULT_CONFIG_NAME = "mailwright.toml"
ENV_CONFIG = "MAILWRIGHT_CONFIG"
ENV_NAMESERVER = "MAILWRIGHT_NAMESERVER"

# Postfix's defaults (postconf(5)): minimal_backoff_time, maximal_backoff_time,
# maximal_queue_lifetime, delay_warning_time, message_size_limit.
DEFAULT_FIRST_RETRY = 300
DEFAULT_MAX_BACKOFF = 4000
DEFAULT_MAX_QUEUE_LIFETIME = 5 * 86400
DEFAULT_MESSAGE_SIZE_LIMIT = 10_240_000

DEFAULT_DNSBLS = (
    "zen.spamhaus.org",
    "bl.spamcop.net",
    "b.barracudacentral.org",
    "psbl.surriel.com",
    "dnsbl-1.uceprotect.net",
)
DEFAULT_DBLS = ("dbl.spamhaus.org", "multi.surbl.org")


@dataclass(frozen=True)
class DnsConfig:
    nameserver: str | None = None
    """Send every query to this server (``HOST[:PORT]``) instead of the system resolver."""
    timeout: float = 5.0
    dnssec: bool = False
    """The nameserver is a DNSSEC-validating resolver we trust (Unbound on loopback): its
    AD flag makes answers secure, which DANE needs (RFC 7672 §2.1)."""


@dataclass(frozen=True)
class DkimKeyConfig:
    domain: str
    selector: str
    private_key: Path
    algorithm: Literal["rsa", "ed25519"] = "rsa"


LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class TlsConfig:
    certificate: Path | None = None
    private_key: Path | None = None
    acme: bool = False
    """Obtain and renew the certificate automatically (RFC 8555) instead of the files above."""
    acme_contact: str | None = None
    """The address the CA writes to about the account (expiry, policy changes)."""
    acme_directory: str = LETS_ENCRYPT_DIRECTORY
    acme_ca_file: Path | None = None
    """PEM file of CAs to trust for the ACME server's HTTPS (a private CA) instead of
    the system store."""
    acme_names: tuple[str, ...] = ()
    """Names besides ``hostname`` that the certificate covers."""


@dataclass(frozen=True)
class ListenerConfig:
    name: str
    address: str
    port: int
    role: Literal["submission", "inbound", "http"] = "submission"
    """``submission``: the application and users send through it; ``inbound``: the world
    delivers mail for our domains to it (port 25); ``http``: ACME HTTP-01 challenges and
    ``/healthz`` (port 80)."""
    tls: Literal["none", "starttls", "implicit"] = "none"
    auth: Literal["none", "optional", "required"] = "none"


@dataclass(frozen=True)
class RelayConfig:
    url: str
    """``smtp://user@host:587`` (STARTTLS required unless ``?tls=none``) or ``smtps://user@host:465``."""
    password_file: Path | None = None
    password_env: str | None = None
    ca_file: Path | None = None
    """PEM file of CAs to trust for the relay's certificate instead of the system store."""


@dataclass(frozen=True)
class RetryConfig:
    first_retry: int = DEFAULT_FIRST_RETRY
    max_backoff: int = DEFAULT_MAX_BACKOFF
    max_queue_lifetime: int = DEFAULT_MAX_QUEUE_LIFETIME
    delay_warning: int = 0
    """Seconds after which the sender gets a delay notice; 0 turns it off (as Postfix)."""


@dataclass(frozen=True)
class DeliveryConfig:
    mode: Literal["direct", "relay", "local"] = "local"
    """``direct``: to each recipient's MX; ``relay``: everything to ``relay.url``;
    ``local``: development mode, every outgoing message lands in ``data_dir/outbox``."""
    relay: RelayConfig | None = None
    outbound_port: int = 25
    source_ipv4: str | None = None
    source_ipv6: str | None = None
    max_connections: int = 100
    max_connections_per_domain: int = 20
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    retry: RetryConfig = field(default_factory=RetryConfig)
    ca_file: Path | None = None
    """PEM file of CAs to trust for MTA-STS (policy hosts and MX certificates) instead of
    the system store."""
    mta_sts: bool = True
    """Apply the MTA-STS policies of recipient domains (RFC 8461)."""
    dane: bool = True
    """Authenticate MX hosts by DNSSEC-secure TLSA records (RFC 7672); needs ``[dns] dnssec``."""


@dataclass(frozen=True)
class UserConfig:
    name: str
    password_hash: str


@dataclass(frozen=True)
class ApiKeyConfig:
    """``[[api_keys]]``: a key of the HTTP API (``mailwright passwd --api-key``)."""

    name: str
    hash: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class HttpConfig:
    """``[http]``: the HTTP API and status page."""

    password_hash: str | None = None
    """scrypt hash (``mailwright passwd``) of the status page password; the admin key
    also logs in."""
    max_body: int = 0
    """Largest request body in bytes (0: ``message_size_limit`` × 4/3 for base64, + 64 KiB)."""
    body_timeout: float = 60.0
    """Seconds a client has to send its whole request body (then ``408``)."""
    metrics_open_to_trusted: bool = True
    """``/metrics`` answers clients in ``trusted_networks`` without a key (Prometheus on
    the same host or network); everyone else needs a key with the ``metrics`` scope."""


@dataclass(frozen=True)
class InboundConfig:
    dmarc_enforcement: Literal["enforce", "report-only"] = "enforce"
    """``enforce``: p=reject → 550 at end of DATA, p=quarantine → the Junk folder;
    ``report-only``: deliver everything, record the verdict in Authentication-Results."""
    quarantine_folder: str = ".Junk"
    send_aggregate_reports: bool = False
    trusted_arc_sealers: tuple[str, ...] = ()
    """Forwarders and lists (ARC sealing domains, ``d=`` of their ARC-Seal) whose
    authentication verdict we accept when DMARC fails after their changes (RFC 9989 §5.3.6
    local policy, RFC 8617 §7.2)."""


@dataclass(frozen=True)
class MailmanConfig:
    """Mailman 3 core as the list manager (mailwright.mailman)."""

    lmtp_host: str = "127.0.0.1"
    lmtp_port: int = 8024
    rest_url: str = "http://127.0.0.1:8001/3.1"
    rest_user: str = "restadmin"
    rest_password_file: Path | None = None
    cache_seconds: float = 30.0
    """How long the REST API's list of lists is trusted."""
    unsubscribe_url: str | None = None
    """The public HTTPS base of RFC 8058 one-click links (``https://lists.example/unsubscribe``,
    served by an ``http`` listener at ``/unsubscribe/TOKEN``); None: list posts leave
    with Mailman's mailto URI only."""
    unsubscribe_max_age_days: int = 180
    """How long a one-click link works after the message was sent."""


@dataclass(frozen=True)
class SrsConfig:
    """Forwarding to outside addresses (mailwright.srs): the SRS secret and lifetime."""

    secret_file: Path | None = None
    """One secret per line, the first signs (``data_dir/srs-secret`` when unset, made on
    first use)."""
    max_age_days: int = 21
    """Bounces to a rewritten sender are accepted this long."""


@dataclass(frozen=True)
class MtaStsConfig:
    """Our own MTA-STS policy (RFC 8461), served at https://mta-sts.DOMAIN/ by the
    ``http`` listener; unset ``mode``: none is served or published."""

    mode: Literal["enforce", "testing", "none"] | None = None
    max_age: int = 604_800
    """Seconds senders keep the policy (RFC 8461 §3.2: weeks are typical; max one year)."""
    mx: tuple[str, ...] = ()
    """MX patterns (``mail.example.com``, ``*.example.com``); empty: ``hostname``."""


@dataclass(frozen=True)
class CheckConfig:
    dnsbls: tuple[str, ...] = DEFAULT_DNSBLS
    dbls: tuple[str, ...] = DEFAULT_DBLS


@dataclass(frozen=True)
class DkimRotationConfig:
    """``[dkim_rotation]``: ``serve`` rotates each DKIM key this often (``mailwright dkim
    rotate`` on a schedule); None: never."""

    every: int | None = None
    """Seconds between rotations of a key (``every = "180d"``)."""
    overlap: int = 7 * 86400
    server: str | None = None
    """The zone's primary (``HOST[:PORT]``) for the dynamic update; None: by hand."""
    tsig_key: Path | None = None
    authoritative: tuple[str, ...] = ()


@dataclass(frozen=True)
class BouncesConfig:
    """VERP return paths (mailwright.verp) and inbound bounce processing."""

    verp: bool = True
    local_part: str = "bounces"
    token_max_age_days: int = 30


@dataclass(frozen=True)
class SuppressionConfig:
    soft_bounce_limit: int = 5
    soft_bounce_days: float = 7.0
    complaint_days: float = 0.0
    """How long a complaint suppresses (0: for ever)."""
    hard_bounce_days: float = 0.0
    """How long a hard bounce suppresses (0: for ever)."""


@dataclass(frozen=True)
class EventsConfig:
    retention_days: float = 30.0


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str
    events: tuple[str, ...] = ()
    """Event types sent (empty: all)."""
    timeout: float = 10.0


@dataclass(frozen=True)
class QueueConfig:
    url: str | None = None
    """``postgresql://user@host:5432/dbname``: the queue in PostgreSQL, shared by several
    nodes; unset: the embedded SQLite queue in ``data_dir`` (the default)."""
    password_file: Path | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class LogConfig:
    file: Path | None = None
    """Where event lines go besides stderr (``data_dir/mailwright.log`` when unset)."""
    format: Literal["text", "json"] = "text"
    """``text``: ``key=value`` lines (docs/log-format.md); ``json``: one object per line."""


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    hostname: str = "localhost"
    domains: tuple[str, ...] = ()
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    data_dir: Path = Path("mailwright-data")
    trusted_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    message_size_limit: int = DEFAULT_MESSAGE_SIZE_LIMIT
    strict_8bitmime: bool = False
    workers: int = 0
    """Worker processes sharing the listeners; 0 means one per CPU core."""
    user: str | None = None
    """Started as root, ``serve`` binds the listeners and then becomes this system user."""
    allow_root: bool = False
    """Keep running as root (no ``user``): refused unless this is true."""
    dns: DnsConfig = field(default_factory=DnsConfig)
    dkim: tuple[DkimKeyConfig, ...] = ()
    tls: TlsConfig = field(default_factory=TlsConfig)
    listeners: tuple[ListenerConfig, ...] = (
        ListenerConfig("submission", "127.0.0.1", 2525, "submission"),
    )
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    users: tuple[UserConfig, ...] = ()
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Address (or ``@domain`` for a catch-all) → local addresses it delivers to."""
    mailboxes: tuple[str, ...] = ()
    """Local addresses with a Maildir of their own (``user@one-of-domains``)."""
    inbound: InboundConfig = field(default_factory=InboundConfig)
    mta_sts: MtaStsConfig = field(default_factory=MtaStsConfig)
    srs: SrsConfig = field(default_factory=SrsConfig)
    mailman: MailmanConfig | None = None
    check: CheckConfig = field(default_factory=CheckConfig)
    dkim_rotation: DkimRotationConfig = field(default_factory=DkimRotationConfig)
    log: LogConfig = field(default_factory=LogConfig)
    require_dkim: bool = False
    """Refuse a submission whose From domain has no DKIM key (instead of a warning)."""
    bounces: BouncesConfig = field(default_factory=BouncesConfig)
    suppression: SuppressionConfig = field(default_factory=SuppressionConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    webhooks: tuple[WebhookConfig, ...] = ()
    queue: QueueConfig = field(default_factory=QueueConfig)
    api_keys: tuple[ApiKeyConfig, ...] = ()
    http: HttpConfig = field(default_factory=HttpConfig)

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "(built-in defaults)"


def find_config(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file to use: ``--config``, then ``$MAILWRIGHT_CONFIG``, then ./mailwright.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.exists() else None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate ``path``; raises :class:`ConfigError` for every problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        env = os.environ.get(ENV_CONFIG)
        if env and Path(env) == path:  # say where a name the user did not type came from
            raise ConfigError(
                str(path),
                None,
                f"file not found (from ${ENV_CONFIG})",
                f"fix or unset ${ENV_CONFIG}, or run 'mailwright init DOMAIN --ip IP'",
            ) from None
        raise ConfigError(
            str(path), None, "file not found", "create one with 'mailwright init DOMAIN --ip IP'"
        ) from None
    except OSError as exc:
        raise ConfigError(
            str(path), None, f"cannot read: {exc.strerror}", "name a readable TOML file"
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), None, "not UTF-8 text", "save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            str(path), None, f"TOML syntax error: {exc}", "fix the TOML at that line"
        ) from None
    return parse_config(data, path)


def parse_config(data: Mapping[str, Any], path: Path | None = None) -> Config:
    """Validate an already-parsed TOML document."""
    # Relative paths in the file are relative to its directory, made absolute now so that
    # a later chdir (the server's) cannot move them.
    base = path.absolute().parent if path else Path()
    top = _Table(str(path) if path else "<config>", "", data, base)
    hostname = top.domain("hostname", "localhost")
    domains = tuple(top.items("domains", str, [], check=_domain_check))
    config = Config(
        path=path,
        hostname=hostname,
        domains=domains,
        ipv4=tuple(top.items("ipv4", str, [], check=_ip_check(4))),
        ipv6=tuple(top.items("ipv6", str, [], check=_ip_check(6))),
        data_dir=top.path("data_dir", Path("mailwright-data")),
        trusted_networks=tuple(
            ipaddress.ip_network(n, strict=False)
            for n in top.items(
                "trusted_networks", str, ["127.0.0.0/8", "::1/128"], check=_net_check
            )
        ),
        message_size_limit=top.integer(
            "message_size_limit", DEFAULT_MESSAGE_SIZE_LIMIT, minimum=1024
        ),
        strict_8bitmime=top.flag("strict_8bitmime", False),
        workers=top.integer("workers", 0, minimum=0),
        user=top.text("user", None) or None,
        allow_root=top.flag("allow_root", False),
        dns=_dns(top.table("dns")),
        dkim=tuple(_dkim_key(t) for t in top.tables("dkim")),
        tls=_tls(top.table("tls")),
        listeners=tuple(_listener(t) for t in top.tables("listeners")) or Config.listeners,
        delivery=_delivery(top.table("delivery")),
        users=tuple(_user(t) for t in top.tables("users")),
        aliases=_aliases(top.table("aliases")),
        mailboxes=tuple(m.lower() for m in top.items("mailboxes", str, [], check=_mailbox_check)),
        inbound=_inbound(top.table("inbound")),
        mta_sts=_mta_sts(top.table("mta_sts")),
        srs=_srs(top.table("srs")),
        mailman=_mailman(top.table("mailman")) if "mailman" in top.data else None,
        check=_check(top.table("check")),
        dkim_rotation=_dkim_rotation(top.table("dkim_rotation")),
        log=_log(top.table("log")),
        require_dkim=top.flag("require_dkim", False),
        bounces=_bounces(top.table("bounces")),
        suppression=_suppression(top.table("suppression")),
        events=_events(top.table("events")),
        webhooks=tuple(_webhook(t) for t in top.tables("webhooks")),
        queue=_queue(top.table("queue")),
        api_keys=tuple(_api_key(t) for t in top.tables("api_keys")),
        http=_http(top.table("http")),
    )
    top.finish()
    for index, listener in enumerate(config.listeners):
        if listener.role == "http" and listener.tls == "starttls":
            raise ConfigError(
                top.file,
                f"listeners[{index}].tls",
                "HTTP has no STARTTLS",
                'write tls = "none" or tls = "implicit"',
            )
        if listener.tls != "none" and config.tls.certificate is None and not config.tls.acme:
            raise ConfigError(
                top.file,
                f"listeners[{index}].tls",
                f"{listener.tls!r} needs a certificate",
                "set [tls] certificate and private_key, or [tls] acme = true",
            )
    if config.tls.acme and not any(lst.role == "http" for lst in config.listeners):
        raise ConfigError(
            top.file,
            "tls.acme",
            'ACME HTTP-01 challenges need a listener with role = "http"',
            'add [[listeners]] role = "http" with port = 80',
        )
    if config.delivery.mode == "relay" and config.delivery.relay is None:
        raise ConfigError(
            top.file, "delivery.mode", "'relay' needs [delivery.relay] url", "add the relay URL"
        )
    return config


def _log(t: _Table) -> LogConfig:
    result = LogConfig(
        file=t.finish_path("file", finish=False),
        format=cast(Any, t.choice("format", ("text", "json"), "text")),
    )
    t.finish()
    return result


def _dns(t: _Table) -> DnsConfig:
    nameserver = t.text("nameserver", None)
    if nameserver is not None:
        from .dns.resolver import parse_nameserver  # here, not at the top: avoids an import cycle

        try:
            parse_nameserver(nameserver)
        except UserError as exc:
            raise ConfigError(t.file, t.key("nameserver"), exc.message, exc.hint) from None
    result = DnsConfig(
        nameserver=nameserver,
        timeout=t.number("timeout", 5.0, minimum=0.1),
        dnssec=t.flag("dnssec", False),
    )
    t.finish()
    return result


def _dkim_key(t: _Table) -> DkimKeyConfig:
    algorithm = t.choice("algorithm", ("rsa", "ed25519"), "rsa")
    result = DkimKeyConfig(
        domain=t.domain("domain", None),
        selector=t.required_str("selector"),
        private_key=t.required_path("private_key"),
        algorithm=cast(Literal["rsa", "ed25519"], algorithm),
    )
    t.finish()
    return result


def _tls(t: _Table) -> TlsConfig:
    acme = t.flag("acme", False)
    contact = t.text("acme_contact", None)
    if contact is not None and (
        "@" not in contact or any(c.isspace() or c in '<>",' for c in contact)
    ):
        raise ConfigError(
            t.file, t.key("acme_contact"), f"{contact!r} is not an address", 'write "you@domain"'
        )
    directory = t.text("acme_directory", LETS_ENCRYPT_DIRECTORY) or LETS_ENCRYPT_DIRECTORY
    if not directory.startswith("https://"):
        raise ConfigError(
            t.file,
            t.key("acme_directory"),
            f"{directory!r} is not an https:// URL",
            f'write e.g. acme_directory = "{LETS_ENCRYPT_DIRECTORY}"',
        )
    result = TlsConfig(
        t.finish_path("certificate", finish=False),
        t.finish_path("private_key", finish=False),
        acme=acme,
        acme_contact=contact,
        acme_directory=directory,
        acme_ca_file=t.finish_path("acme_ca_file", finish=False),
        acme_names=tuple(normalize(n) for n in t.items("acme_names", str, [], check=_domain_check)),
    )
    t.finish()
    if acme and result.certificate is not None:
        raise ConfigError(
            t.file,
            t.key("certificate"),
            "acme = true obtains the certificate itself",
            "remove certificate and private_key, or set acme = false",
        )
    if (result.certificate is None) != (result.private_key is None):
        missing = "private_key" if result.private_key is None else "certificate"
        raise ConfigError(
            t.file,
            t.key(missing),
            "missing: certificate and private_key go together",
            f'add {missing} = "PATH", or remove the other one',
        )
    return result


def _listener(t: _Table) -> ListenerConfig:
    name = t.text("name", None) or f"listener{t.index}"
    result = ListenerConfig(
        name=name,
        address=t.text("address", "127.0.0.1") or "127.0.0.1",
        port=t.integer("port", 2525, minimum=1, maximum=65535),
        role=cast(Any, t.choice("role", ("submission", "inbound", "http"), "submission")),
        tls=cast(Any, t.choice("tls", ("none", "starttls", "implicit"), "none")),
        auth=cast(Any, t.choice("auth", ("none", "optional", "required"), "none")),
    )
    _ip_check(None)(result.address, t, "address")
    t.finish()
    return result


def _delivery(t: _Table) -> DeliveryConfig:
    relay_table = t.table("relay")
    relay = None
    if relay_table.data:
        url = relay_table.required_str("url")
        if not url.startswith(("smtp://", "smtps://")):
            raise ConfigError(
                t.file,
                relay_table.key("url"),
                f"{url!r} is not an smtp:// or smtps:// URL",
                "write e.g. smtp://user@smtp.example.net:587",
            )
        relay = RelayConfig(
            url=url,
            password_file=relay_table.finish_path("password_file", finish=False),
            password_env=relay_table.text("password_env", None),
            ca_file=relay_table.finish_path("ca_file", finish=False),
        )
        relay_table.finish()
    retry_table = t.table("retry")
    retry = RetryConfig(
        first_retry=retry_table.integer("first_retry", DEFAULT_FIRST_RETRY, minimum=1),
        max_backoff=retry_table.integer("max_backoff", DEFAULT_MAX_BACKOFF, minimum=1),
        max_queue_lifetime=retry_table.integer(
            "max_queue_lifetime", DEFAULT_MAX_QUEUE_LIFETIME, minimum=0
        ),
        delay_warning=retry_table.integer("delay_warning", 0, minimum=0),
    )
    retry_table.finish()
    default_mode = "relay" if relay else "local"
    result = DeliveryConfig(
        mode=cast(Any, t.choice("mode", ("direct", "relay", "local"), default_mode)),
        relay=relay,
        outbound_port=t.integer("outbound_port", 25, minimum=1, maximum=65535),
        source_ipv4=t.text("source_ipv4", None),
        source_ipv6=t.text("source_ipv6", None),
        max_connections=t.integer("max_connections", 100, minimum=1),
        max_connections_per_domain=t.integer("max_connections_per_domain", 20, minimum=1),
        connect_timeout=t.number("connect_timeout", 30.0, minimum=0.1),
        command_timeout=t.number("command_timeout", 300.0, minimum=0.1),
        retry=retry,
        ca_file=t.finish_path("ca_file", finish=False),
        mta_sts=t.flag("mta_sts", True),
        dane=t.flag("dane", True),
    )
    t.finish()
    return result


def _queue(t: _Table) -> QueueConfig:
    url = t.text("url", None)
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            t.file,
            t.key("url"),
            f"{url!r} is not a postgresql:// URL",
            "write e.g. postgresql://mailwright@db.example.net/mailwright, or remove it "
            "for the embedded SQLite queue",
        )
    result = QueueConfig(
        url=url,
        password_file=t.finish_path("password_file", finish=False),
        password_env=t.text("password_env", None),
    )
    t.finish()
    if url is None and (result.password_file or result.password_env):
        raise ConfigError(
            t.file, t.key("url"), "a password but no url", 'add url = "postgresql://..."'
        )
    return result


def _user(t: _Table) -> UserConfig:
    result = UserConfig(t.required_str("name"), t.required_str("password_hash"))
    t.finish()
    return result


def _api_key(t: _Table) -> ApiKeyConfig:
    from .apikeys import SCOPES, BadKeyHash, parse_key_hash

    name = t.required_str("name")
    hashed = t.required_str("hash")
    try:
        parse_key_hash(hashed)
    except BadKeyHash as exc:
        raise ConfigError(
            t.file, t.key("hash"), str(exc), "make a key with 'mailwright passwd --api-key'"
        ) from None
    scopes = t.items("scopes", str, ["send"])
    for scope in scopes:
        if scope not in SCOPES:
            raise ConfigError(
                t.file,
                t.key("scopes"),
                f"{scope!r} is not a scope",
                f"use some of {', '.join(SCOPES)}",
            )
    result = ApiKeyConfig(name, hashed, tuple(scopes))
    t.finish()
    return result


def _http(t: _Table) -> HttpConfig:
    from .smtp.auth import BadHash, parse_hash

    password_hash = t.text("password_hash", None)
    if password_hash is not None:
        try:
            parse_hash(password_hash)
        except BadHash as exc:
            raise ConfigError(
                t.file, t.key("password_hash"), str(exc), "make one with 'mailwright passwd'"
            ) from None
    result = HttpConfig(
        password_hash=password_hash,
        max_body=t.integer("max_body", 0, minimum=0),
        body_timeout=t.number("body_timeout", 60.0, minimum=0.5),
        metrics_open_to_trusted=t.flag("metrics_open_to_trusted", True),
    )
    t.finish()
    return result


def _aliases(t: _Table) -> dict[str, tuple[str, ...]]:
    aliases: dict[str, tuple[str, ...]] = {}
    for key, value in t.data.items():
        targets = [value] if isinstance(value, str) else value
        if not isinstance(targets, list) or not all(isinstance(v, str) for v in targets):
            raise ConfigError(
                t.file,
                t.key(key),
                "must be an address or a list of addresses",
                'write e.g. "postmaster@example.com" = "admin@example.com"',
            )
        aliases[key.lower()] = tuple(targets)
    t.seen.update(t.data)
    return aliases


def _inbound(t: _Table) -> InboundConfig:
    result = InboundConfig(
        dmarc_enforcement=cast(
            Any, t.choice("dmarc_enforcement", ("enforce", "report-only"), "enforce")
        ),
        quarantine_folder=_maildir_folder(t, "quarantine_folder", ".Junk"),
        send_aggregate_reports=t.flag("send_aggregate_reports", False),
        trusted_arc_sealers=tuple(
            d.lower().rstrip(".")
            for d in t.items("trusted_arc_sealers", str, [], check=_domain_check)
        ),
    )
    t.finish()
    return result


def _mta_sts(t: _Table) -> MtaStsConfig:
    mode = t.text("mode", None)
    if mode is not None and mode not in ("enforce", "testing", "none"):
        raise ConfigError(
            t.file, t.key("mode"), f"{mode!r} is not an MTA-STS mode", 'write "testing" first'
        )
    result = MtaStsConfig(
        mode=cast(Any, mode),
        max_age=t.integer("max_age", 604_800, minimum=0, maximum=31_557_600),
        mx=tuple(t.items("mx", str, [], check=_mx_pattern_check)),
    )
    t.finish()
    return result


def _mx_pattern_check(value: str, t: _Table, key: str) -> None:
    from .mtasts import valid_mx_pattern

    if not valid_mx_pattern(value.lower()):
        raise ConfigError(
            t.file,
            t.key(key),
            f"{value!r} is not a host name or *.domain",
            "write mail.example.com",
        )


def _mailman(t: _Table) -> MailmanConfig:
    url = t.text("rest_url", "http://127.0.0.1:8001/3.1") or ""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            t.file,
            t.key("rest_url"),
            f"{url!r} is not an http URL",
            'write "http://127.0.0.1:8001/3.1"',
        )
    unsubscribe_url = t.text("unsubscribe_url", None) or None
    if unsubscribe_url is not None:
        from .rfc8058 import url_problem

        problem = url_problem(unsubscribe_url)
        if problem is not None:
            raise ConfigError(
                t.file,
                t.key("unsubscribe_url"),
                f"{unsubscribe_url!r}: {problem}",
                'write the public HTTPS address of an http listener, e.g. "https://lists.example'
                '/unsubscribe"',
            )
    return MailmanConfig(
        lmtp_host=t.text("lmtp_host", "127.0.0.1") or "127.0.0.1",
        lmtp_port=t.integer("lmtp_port", 8024, minimum=1, maximum=65535),
        rest_url=url,
        rest_user=t.text("rest_user", "restadmin") or "restadmin",
        cache_seconds=t.number("cache_seconds", 30.0, minimum=0.0),
        unsubscribe_url=unsubscribe_url,
        unsubscribe_max_age_days=t.integer(
            "unsubscribe_max_age_days", 180, minimum=1, maximum=3650
        ),
        rest_password_file=t.finish_path("rest_password_file"),
    )


def _srs(t: _Table) -> SrsConfig:
    max_age = t.integer("max_age_days", 21, minimum=1, maximum=1000)
    return SrsConfig(secret_file=t.finish_path("secret_file"), max_age_days=max_age)


def _maildir_folder(t: _Table, key: str, default: str) -> str:
    value = t.text(key, default) or default
    if not value.startswith(".") or "/" in value or value in (".", ".."):
        raise ConfigError(
            t.file, t.key(key), f"{value!r} is not a Maildir++ folder name", 'write e.g. ".Junk"'
        )
    return value


def _bounces(t: _Table) -> BouncesConfig:
    local_part = t.text("local_part", "bounces") or "bounces"
    if not all(c.isascii() and (c.isalnum() or c in "-_.") for c in local_part):
        raise ConfigError(
            t.file,
            t.key("local_part"),
            f"{local_part!r} is not a plain local part",
            'use letters, digits, "-", "_" or ".", e.g. "bounces"',
        )
    result = BouncesConfig(
        verp=t.flag("verp", True),
        local_part=local_part.lower(),
        token_max_age_days=t.integer("token_max_age_days", 30, minimum=1, maximum=3650),
    )
    t.finish()
    return result


def _suppression(t: _Table) -> SuppressionConfig:
    result = SuppressionConfig(
        soft_bounce_limit=t.integer("soft_bounce_limit", 5, minimum=1),
        soft_bounce_days=t.number("soft_bounce_days", 7.0, minimum=0.001),
        complaint_days=t.number("complaint_days", 0.0, minimum=0),
        hard_bounce_days=t.number("hard_bounce_days", 0.0, minimum=0),
    )
    t.finish()
    return result


def _events(t: _Table) -> EventsConfig:
    result = EventsConfig(retention_days=t.number("retention_days", 30.0, minimum=0.01))
    t.finish()
    return result


def _webhook(t: _Table) -> WebhookConfig:
    url = t.required_str("url")
    if not url.startswith(("http://", "https://")) or len(url) > 2000:
        raise ConfigError(
            t.file,
            t.key("url"),
            f"{url[:80]!r} is not an http(s) URL",
            'write url = "https://app.example/mailwright/events"',
        )
    secret = t.required_str("secret")
    if len(secret) < 16:
        raise ConfigError(
            t.file,
            t.key("secret"),
            "is shorter than 16 characters",
            "use a long random secret, e.g. the output of: openssl rand -base64 32",
        )
    from .queue.events import EVENT_TYPES  # the one list of event types (not at import)

    events = tuple(t.items("events", str, []))
    for name in events:
        if name not in EVENT_TYPES:
            raise ConfigError(
                t.file,
                t.key("events"),
                f"{name!r} is not an event type",
                "use some of: " + ", ".join(EVENT_TYPES),
            )
    result = WebhookConfig(
        url=url,
        secret=secret,
        events=events,
        timeout=t.number("timeout", 10.0, minimum=0.1),
    )
    t.finish()
    return result


def _check(t: _Table) -> CheckConfig:
    result = CheckConfig(
        dnsbls=tuple(t.items("dnsbls", str, list(DEFAULT_DNSBLS), check=_domain_check)),
        dbls=tuple(t.items("dbls", str, list(DEFAULT_DBLS), check=_domain_check)),
    )
    t.finish()
    return result


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def _duration(t: _Table, name: str, default: int | None) -> int | None:
    value = t.text(name, None)
    if value is None:
        return default
    m = _DURATION.match(value.lower())
    if m is None:
        raise ConfigError(t.file, t.key(name), f"{value!r} is not a duration", 'write e.g. "180d"')
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]


def _dkim_rotation(t: _Table) -> DkimRotationConfig:
    every = _duration(t, "every", None)
    if every is not None and every < 86400:
        raise ConfigError(
            t.file, t.key("every"), "rotating more than once a day defeats the overlap",
            'write e.g. every = "180d"',
        )  # fmt: skip
    result = DkimRotationConfig(
        every=every,
        overlap=_duration(t, "overlap", 7 * 86400) or 0,
        server=t.text("server", None),
        tsig_key=t.finish_path("tsig_key", finish=False),
        authoritative=tuple(t.items("authoritative", str, [])),
    )
    t.finish()
    return result


def _mailbox_check(value: str, t: _Table, key: str) -> None:
    local, _, domain = value.rpartition("@")
    domains = {normalize(d) for d in t.data.get("domains", []) if isinstance(d, str)}
    if not local or name_problem(domain) or any(c.isspace() or c in '<>"' for c in value):
        raise ConfigError(t.file, t.key(key), f"{value!r} is not an address", 'write "user@domain"')
    if normalize(domain) not in domains:
        raise ConfigError(
            t.file,
            t.key(key),
            f"{value!r} is not in one of the domains",
            f"add {domain!r} to domains",
        )


def _domain_check(value: str, t: _Table, key: str) -> None:
    problem = name_problem(value)
    if problem:
        raise ConfigError(t.file, t.key(key), f"{value!r}: {problem}", "write a domain name")


def _ip_check(version: int | None) -> Callable[[str, _Table, str], None]:
    def check(value: str, t: _Table, key: str) -> None:
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            raise ConfigError(
                t.file, t.key(key), f"{value!r} is not an IP address", _IP_EXAMPLES[version]
            ) from None
        if version is not None and addr.version != version:
            raise ConfigError(
                t.file,
                t.key(key),
                f"{value!r} is not an IPv{version} address",
                _IP_EXAMPLES[version],
            )

    return check


_IP_EXAMPLES = {
    4: "write e.g. 192.0.2.10",
    6: "write e.g. 2001:db8::25",
    None: "write e.g. 192.0.2.10 or 2001:db8::25",
}


def _net_check(value: str, t: _Table, key: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ConfigError(
            t.file, t.key(key), f"{value!r} is not a network", "write e.g. 10.0.0.0/8"
        ) from None


_TYPE_HINTS: dict[type, str] = {
    str: 'put the value in quotes: {name} = "..."',
    int: "write a whole number: {name} = 10",
    float: "write a number: {name} = 2.5",
    bool: "write {name} = true or {name} = false",
}
_TYPE_NAMES: dict[type, str] = {str: "strings", int: "integers", float: "numbers"}


class _Table:
    """A TOML table being read: typed getters that name ``section.key`` in errors."""

    def __init__(
        self, file: str, prefix: str, data: Any, base: Path, index: int | None = None
    ) -> None:
        if not isinstance(data, Mapping):
            # An element of an array of tables is named "name[i]"; it is written [[name]].
            header = f"[{prefix.rsplit('[', 1)[0]}]" if index is not None else prefix
            raise ConfigError(file, prefix or None, "must be a table", f"write [{header}]")
        self.file = file
        self.prefix = prefix
        self.data: Mapping[str, Any] = data
        self.base = base
        self.index = index
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def _get(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def _typed(self, name: str, kind: type[T], default: T, what: str) -> T:
        value = self._get(name)
        if value is None:
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(
                self.file,
                self.key(name),
                f"must be {what}, not {type(value).__name__}",
                _TYPE_HINTS[kind].format(name=name),
            )
        return value

    def text(self, name: str, default: str | None) -> str | None:
        return self._typed(name, str, default, "a string")

    def required_str(self, name: str) -> str:
        value = self.text(name, None)
        if not value:
            raise ConfigError(self.file, self.key(name), "is required", f"add {name} = ...")
        return value

    def flag(self, name: str, default: bool) -> bool:
        return self._typed(name, bool, default, "true or false")

    def integer(
        self, name: str, default: int, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self._typed(name, int, default, "an integer")
        self._range(name, value, minimum, maximum)
        return value

    def number(self, name: str, default: float, minimum: float | None = None) -> float:
        value = self._typed(name, float, default, "a number")
        if not math.isfinite(value):  # TOML allows inf and nan; neither bounds a wait
            raise ConfigError(
                self.file, self.key(name), f"must be a finite number, not {value}", "write e.g. 2.5"
            )
        self._range(name, value, minimum, None)
        return value

    def _range(self, name: str, value: float, minimum: float | None, maximum: float | None) -> None:
        if minimum is not None and value < minimum:
            raise ConfigError(
                self.file,
                self.key(name),
                f"{value} is below the minimum {minimum}",
                f"use a value of at least {minimum}",
            )
        if maximum is not None and value > maximum:
            raise ConfigError(
                self.file,
                self.key(name),
                f"{value} is above the maximum {maximum}",
                f"use a value of at most {maximum}",
            )

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name, default) or default
        if value not in choices:
            raise ConfigError(
                self.file,
                self.key(name),
                f"{value!r} is not one of {', '.join(choices)}",
                f'write e.g. {name} = "{default}"',
            )
        return value

    def domain(self, name: str, default: str | None) -> str:
        value = self.text(name, default)
        if value is None:
            raise ConfigError(self.file, self.key(name), "is required", f"add {name} = ...")
        _domain_check(value, self, name)
        return normalize(value)

    def items(
        self,
        name: str,
        kind: type[T],
        default: list[T],
        check: Callable[[T, _Table, str], None] | None = None,
    ) -> list[T]:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
            raise ConfigError(
                self.file,
                self.key(name),
                f"must be a list of {_TYPE_NAMES.get(kind, kind.__name__)}",
                f'write {name} = ["...", "..."]' if kind is str else f"write {name} = [...]",
            )
        if check:
            for item in value:
                check(item, self, name)
        return value

    def path(self, name: str, default: Path) -> Path:
        value = self.text(name, None)
        if value is None:
            return self.base / default if not default.is_absolute() else default
        return self._resolve(name, value)

    def required_path(self, name: str) -> Path:
        return self._resolve(name, self.required_str(name))

    def finish_path(self, name: str, finish: bool = True) -> Path | None:
        value = self.text(name, None)
        if finish:
            self.finish()
        return self._resolve(name, value) if value else None

    def _resolve(self, name: str, value: str) -> Path:
        """``~`` expanded, relative to the file's directory; a path no OS call accepts is
        an error here rather than a ValueError at the first open()."""
        if "\0" in value:
            raise ConfigError(
                self.file, self.key(name), "contains a NUL byte", "write a plain file path"
            )
        try:
            return self.base / Path(value).expanduser()
        except RuntimeError:  # "~someone/..." for a user that does not exist
            raise ConfigError(
                self.file,
                self.key(name),
                f"{value!r}: cannot expand '~' (no such user or no home directory)",
                "write an absolute path or one relative to the config file",
            ) from None

    def table(self, name: str) -> _Table:
        value = self._get(name)
        return _Table(self.file, self.key(name), value if value is not None else {}, self.base)

    def tables(self, name: str) -> list[_Table]:
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(
                self.file, self.key(name), "must be an array of tables", f"write [[{name}]]"
            )
        return [
            _Table(self.file, f"{self.key(name)}[{i}]", v, self.base, i)
            for i, v in enumerate(value)
        ]

    def finish(self) -> None:
        """Reject keys nobody asked for: they are typos or options from a newer version."""
        for name in self.data:
            if name not in self.seen:
                close = difflib.get_close_matches(name, list(self.seen), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "remove it"
                raise ConfigError(self.file, self.key(name), "unknown setting", hint)
