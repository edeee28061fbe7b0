"""Render a :class:`~mailwright.config.Config` as a commented ``mailwright.toml``.

Every setting appears with one line on what it does; settings left at their
default are written with the default value, and the few that have no value by
default (a nameserver, a TLS certificate, users) are written commented out with
an example. Rendering a config and loading the result gives the same config
(the tests check this round trip), so ``init`` cannot write a file the server
then refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..config import (
    LETS_ENCRYPT_DIRECTORY,
    Config,
    DkimKeyConfig,
    ListenerConfig,
    MailmanConfig,
)


def toml_value(value: object) -> str:
    """A TOML literal for a str/int/float/bool/path or a list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".eEn") else text + ".0"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        # JSON string escapes (\", \\, \n, \uXXXX) are valid TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Iterable):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _rel(path: Path, base: Path) -> str:
    """Paths under the config's directory are written relative to it (load_config's base)."""
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def comment(self, text: str) -> None:
        self.lines.append(f"# {text}" if text else "#")

    def setting(self, key: str, value: object, doc: str) -> None:
        self.comment(doc)
        self.lines.append(f"{key} = {toml_value(value)}")

    def example(self, key: str, value: object, doc: str) -> None:
        """A setting with no default value: shown commented out with an example."""
        self.comment(doc)
        self.lines.append(f"# {key} = {toml_value(value)}")

    def table(self, header: str, doc: str = "") -> None:
        self.lines.append("")
        if doc:
            self.comment(doc)
        self.lines.append(header)

    def blank(self) -> None:
        self.lines.append("")

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


def render_config(config: Config, base: Path, header: Iterable[str] = ()) -> str:
    """The commented TOML text for ``config``; relative paths are relative to ``base``."""
    w = _Writer()
    for line in header:
        w.comment(line)
    if header:
        w.blank()
    w.setting(
        "hostname",
        config.hostname,
        "This server's name: greeting and EHLO, MX target; each sending IP's PTR names it.",
    )
    w.setting("domains", list(config.domains), "Mail domains this server sends and receives for.")
    w.setting(
        "ipv4", list(config.ipv4), "Public IPv4 addresses mail leaves from (SPF ip4:, A, PTR)."
    )
    w.setting("ipv6", list(config.ipv6), "Public IPv6 addresses mail leaves from (SPF ip6:, AAAA).")
    w.setting(
        "data_dir",
        _rel(config.data_dir, base),
        "Queue, mailboxes, outbox and logs (relative to this file).",
    )
    user_doc = "Started as root, serve binds its ports, then runs as this user."
    if config.user:
        w.setting("user", config.user, user_doc)
    else:
        w.example("user", "mailwright", user_doc)
    w.setting(
        "allow_root",
        config.allow_root,
        "Without user, started as root: keep running as root only if this is true.",
    )
    w.setting(
        "trusted_networks",
        [str(n) for n in config.trusted_networks],
        "Clients in these networks may submit mail without authentication.",
    )
    w.setting(
        "mailboxes",
        list(config.mailboxes),
        "Local addresses with a Maildir of their own (postmaster@ is required, RFC 5321 §4.5.1).",
    )
    w.setting(
        "message_size_limit",
        config.message_size_limit,
        "Largest message accepted, in bytes (advertised as SIZE, RFC 1870).",
    )
    w.setting(
        "workers", config.workers, "Worker processes sharing the listeners; 0 = one per CPU core."
    )
    w.setting(
        "strict_8bitmime",
        config.strict_8bitmime,
        "Refuse 8-bit data sent without BODY=8BITMIME (554 5.6.1); false accepts it, as Postfix.",
    )
    w.setting(
        "require_dkim",
        config.require_dkim,
        "Refuse submissions whose From domain has no DKIM key (false: send, warn, emit an event).",
    )

    w.table("[dns]", "DNS lookups (SPF, DKIM, DMARC, MX) made by the server and the doctor.")
    if config.dns.nameserver:
        w.setting(
            "nameserver", config.dns.nameserver, "Send every query to this server (HOST[:PORT])."
        )
    else:
        w.example(
            "nameserver",
            "127.0.0.1:53",
            "Send every query to this server (HOST[:PORT]); unset = the system resolver.",
        )
    w.setting("timeout", config.dns.timeout, "Seconds one lookup may take, retries included.")
    w.setting(
        "dnssec",
        config.dns.dnssec,
        "The nameserver is a DNSSEC-validating resolver you trust (e.g. Unbound on "
        "127.0.0.1): its AD flag enables DANE (RFC 7672).",
    )

    w.blank()
    w.comment("DKIM signing keys (RFC 6376): one [[dkim]] table per key; every key whose")
    w.comment("domain matches the From: domain signs. Publish the public keys that")
    w.comment("'mailwright records' prints. Keys: RSA-2048 (RFC 8301), Ed25519 (RFC 8463).")
    if not config.dkim:
        w.comment("[[dkim]]")
        w.example("domain", "example.com", "The d= domain of the signature.")
        w.example("selector", "mail", "The s= selector: the key is at SELECTOR._domainkey.DOMAIN.")
        w.example("private_key", "keys/example.com.mail.rsa.pem", "PEM private key file.")
        w.example("algorithm", "rsa", "rsa or ed25519.")
    for key in config.dkim:
        _dkim(w, key, base)

    w.table(
        "[tls]",
        "Certificate for STARTTLS and implicit TLS (e.g. from certbot for the hostname).",
    )
    tls = config.tls
    contact = f"postmaster@{config.domains[0] if config.domains else config.hostname}"
    if tls.acme:
        w.comment("serve gets and renews the certificate itself (ACME HTTP-01, RFC 8555): the")
        w.comment('CA fetches a token from the [[listeners]] role = "http" on port 80, so the')
        w.comment("hostname's A/AAAA must point here and port 80 must be open. Until the first")
        w.comment("certificate arrives (log: certificate-issued), TLS uses a self-signed one.")
        w.setting("acme", True, "Instead of certificate and private_key.")
        if tls.acme_contact:
            w.setting("acme_contact", tls.acme_contact, "The CA writes here about the account.")
        else:
            w.example("acme_contact", contact, "The CA writes here about the account.")
        if tls.acme_names:
            w.setting("acme_names", list(tls.acme_names), "Names besides hostname.")
        else:
            w.example("acme_names", [f"smtp.{contact.split('@')[1]}"], "Names besides hostname.")
        w.setting("acme_directory", tls.acme_directory, "The CA (default: Let's Encrypt).")
        if tls.acme_ca_file is not None:
            w.setting("acme_ca_file", _rel(tls.acme_ca_file, base), "Trust this CA's HTTPS.")
        else:
            w.example(
                "acme_ca_file",
                "/etc/ssl/private-ca.pem",
                "Trust this CA for a private ACME server.",
            )
        w.comment("Or certificate files instead of acme (e.g. from certbot):")
        live = f"/etc/letsencrypt/live/{config.hostname}"
        w.example("certificate", f"{live}/fullchain.pem", "PEM chain, leaf first.")
        w.example("private_key", f"{live}/privkey.pem", "PEM private key.")
    elif tls.certificate and tls.private_key:
        w.setting("certificate", _rel(tls.certificate, base), "PEM chain, leaf first.")
        w.setting("private_key", _rel(tls.private_key, base), "PEM private key.")
    else:
        live = f"/etc/letsencrypt/live/{config.hostname}"
        w.example("certificate", f"{live}/fullchain.pem", "PEM chain, leaf first.")
        w.example("private_key", f"{live}/privkey.pem", "PEM private key.")
        w.comment("Or let serve get and renew one itself (ACME, Let's Encrypt by default); needs")
        w.comment('a [[listeners]] role = "http" on port 80 for the HTTP-01 challenges.')
        w.example("acme", True, "Instead of certificate and private_key.")
        w.example("acme_contact", contact, "The CA writes here about expiry and policy.")
        w.example("acme_names", [], "Names the certificate covers besides hostname.")
        w.example("acme_directory", LETS_ENCRYPT_DIRECTORY, "The CA (default: Let's Encrypt).")
        w.example(
            "acme_ca_file", "/etc/ssl/private-ca.pem", "Trust this CA for a private ACME server."
        )

    w.blank()
    w.comment("Listening sockets. role: submission (your application and users send) or")
    w.comment("inbound (the world delivers to your domains: port 25, needs the MX).")
    w.comment("tls: none, starttls or implicit (needs [tls]); auth: none, optional or required.")
    for listener in config.listeners:
        _listener(w, listener)
    if not any(listener.role == "inbound" for listener in config.listeners):
        w.blank()
        w.comment("To receive mail for your domains, get a certificate and add:")
        w.comment("[[listeners]]")
        w.comment('name = "inbound"')
        w.comment('address = "0.0.0.0"')
        w.comment("port = 25")
        w.comment('role = "inbound"')
        w.comment('tls = "starttls"')

    d = config.delivery
    w.table("[delivery]", "How outgoing mail leaves.")
    w.setting(
        "mode",
        d.mode,
        "direct: to each recipient's MX; relay: all through [delivery.relay]; "
        "local: kept in data_dir/outbox (development).",
    )
    w.setting("outbound_port", d.outbound_port, "Port of the receivers' MX (25 on the internet).")
    if d.source_ipv4:
        w.setting("source_ipv4", d.source_ipv4, "Bind outgoing IPv4 connections to this address.")
    else:
        w.example("source_ipv4", "192.0.2.10", "Bind outgoing IPv4 connections to this address.")
    if d.source_ipv6:
        w.setting("source_ipv6", d.source_ipv6, "Bind outgoing IPv6 connections to this address.")
    else:
        w.example("source_ipv6", "2001:db8::25", "Bind outgoing IPv6 connections to this address.")
    w.setting("max_connections", d.max_connections, "Outgoing SMTP connections at once, in all.")
    w.setting(
        "max_connections_per_domain",
        d.max_connections_per_domain,
        "Outgoing connections at once to one destination domain.",
    )
    w.setting("connect_timeout", d.connect_timeout, "Seconds to wait for a TCP connection.")
    w.setting(
        "command_timeout",
        d.command_timeout,
        "Seconds to wait for each SMTP reply (RFC 5321 §4.5.3.2 suggests 5 minutes).",
    )
    w.setting("mta_sts", d.mta_sts, "Apply receivers' MTA-STS policies (RFC 8461).")
    w.setting("dane", d.dane, "Authenticate MX hosts by DNSSEC-secure TLSA records (RFC 7672).")
    sts_ca_doc = "PEM CAs for MTA-STS policy hosts and MX certificates; unset = the system store."
    if d.ca_file:
        w.setting("ca_file", _rel(d.ca_file, base), sts_ca_doc)
    else:
        w.example("ca_file", "mx-ca.pem", sts_ca_doc)
    if d.relay is not None:
        w.table("[delivery.relay]", "The relay host ('smart host') every message goes through.")
        w.setting(
            "url",
            d.relay.url,
            "smtp://user@host:587 (STARTTLS required unless ?tls=none) or smtps://user@host:465.",
        )
        if d.relay.password_file:
            w.setting("password_file", _rel(d.relay.password_file, base), "The relay password.")
        else:
            w.example("password_file", "relay-password", "File holding the relay password.")
        if d.relay.password_env:
            w.setting("password_env", d.relay.password_env, "Environment variable with it.")
        else:
            w.example("password_env", "MAILWRIGHT_RELAY_PASSWORD", "Or an environment variable.")
        ca_doc = "PEM CAs to trust for the relay's certificate; unset = the system store."
        if d.relay.ca_file:
            w.setting("ca_file", _rel(d.relay.ca_file, base), ca_doc)
        else:
            w.example("ca_file", "relay-ca.pem", ca_doc)
    else:
        w.blank()
        w.comment('To send through a provider instead, set mode = "relay" and add:')
        w.comment("[delivery.relay]")
        w.comment('url = "smtp://user@smtp.example.net:587"')
        w.comment('password_file = "relay-password"    # or password_env = "VARIABLE"')
    r = d.retry
    w.table("[delivery.retry]", "Retries of temporary failures (Postfix's defaults).")
    w.setting("first_retry", r.first_retry, "Seconds before the first retry.")
    w.setting("max_backoff", r.max_backoff, "Longest wait between two retries, in seconds.")
    w.setting(
        "max_queue_lifetime",
        r.max_queue_lifetime,
        "Seconds before an undeliverable message bounces (RFC 5321 §4.5.4.1: 4-5 days).",
    )
    w.setting("delay_warning", r.delay_warning, "Seconds before a delay notice; 0 = none.")

    w.blank()
    w.comment("Accounts that may authenticate (AUTH PLAIN/LOGIN over TLS) to submit mail.")
    w.comment("Create hashes with 'mailwright passwd'.")
    if not config.users:
        w.comment("[[users]]")
        w.example("name", "app@example.com", "Login name.")
        w.example("password_hash", "$scrypt$...", "From 'mailwright passwd'.")
    for user in config.users:
        w.lines.append("[[users]]")
        w.setting("name", user.name, "Login name.")
        w.setting("password_hash", user.password_hash, "From 'mailwright passwd'.")

    w.table(
        "[aliases]",
        'Address (or "@domain" for a catch-all) = local address or list of addresses.',
    )
    for address, targets in config.aliases.items():
        w.lines.append(f"{toml_value(address)} = {toml_value(list(targets))}")

    i = config.inbound
    w.table("[inbound]", "Checks on mail the world delivers to us.")
    w.setting(
        "dmarc_enforcement",
        i.dmarc_enforcement,
        "enforce: honour p=reject/quarantine; report-only: deliver and only record the verdict.",
    )
    w.setting("quarantine_folder", i.quarantine_folder, "Where p=quarantine mail is filed.")
    w.setting(
        "send_aggregate_reports",
        i.send_aggregate_reports,
        "Send daily DMARC aggregate reports (RFC 9990) to domains that ask for them.",
    )

    w.setting(
        "trusted_arc_sealers",
        list(i.trusted_arc_sealers),
        "ARC sealers (d= of their ARC-Seal) whose verdict lets mail failing DMARC through.",
    )

    b = config.bounces
    w.table("[bounces]", "Return path: bounces+TOKEN@your-domain, one per message and recipient.")
    w.setting("verp", b.verp, "Send with a per-recipient, HMAC-signed return path (VERP).")
    w.setting("local_part", b.local_part, "The local part of the bounce addresses.")
    w.setting(
        "token_max_age_days", b.token_max_age_days, "Bounces to older tokens are not trusted."
    )

    s = config.suppression
    w.table("[suppression]", "Addresses mail is no longer sent to ('mailwright suppress list').")
    w.setting(
        "soft_bounce_limit", s.soft_bounce_limit, "This many soft bounces within soft_bounce_days"
    )
    w.setting("soft_bounce_days", s.soft_bounce_days, "... suppress the address.")
    w.setting(
        "hard_bounce_days", s.hard_bounce_days, "How long a hard bounce suppresses (0: for ever)."
    )
    w.setting("complaint_days", s.complaint_days, "How long a complaint suppresses (0: for ever).")

    w.table("[events]", "The event log ('mailwright events', webhooks).")
    w.setting("retention_days", config.events.retention_days, "Events older than this are pruned.")

    for hook in config.webhooks:
        w.blank()
        w.lines.append("[[webhooks]]")
        w.setting("url", hook.url, "POST events here (JSON, Standard Webhooks signature).")
        w.setting("secret", hook.secret, "Signing secret (whsec_<base64> or any long string).")
        w.setting("events", list(hook.events), "Event types to send (empty: all).")
        w.setting("timeout", hook.timeout, "Seconds per request.")
    if not config.webhooks:
        w.table("# [[webhooks]]", "Tell your application about every outcome (README: Webhooks).")
        w.example("url", "https://app.example.com/mailwright/events", "POST events here.")
        w.example("secret", "whsec_...", "Signing secret (whsec_<base64> or any long string).")
        w.example("events", ["delivered", "bounced", "complained"], "Event types (empty: all).")
        w.example("timeout", 10.0, "Seconds per request.")

    m = config.mta_sts
    w.table("[mta_sts]", "Our MTA-STS policy (RFC 8461), served by the http listener.")
    mode_doc = (
        "testing, enforce or none; unset = no policy. Start with testing "
        "(mta-sts.DOMAIN must be in the certificate)."
    )
    if m.mode:
        w.setting("mode", m.mode, mode_doc)
    else:
        w.example("mode", "testing", mode_doc)
    w.setting("max_age", m.max_age, "Seconds senders keep the policy (RFC 8461: weeks).")
    if m.mx:
        w.setting("mx", list(m.mx), "MX names the policy allows.")
    else:
        w.example("mx", [config.hostname], "MX names the policy allows; unset = hostname.")

    for api_key in config.api_keys:
        w.blank()
        w.lines.append("[[api_keys]]")
        w.setting("name", api_key.name, "Who uses it (shown in the log).")
        w.setting("hash", api_key.hash, "Its hash: mailwright passwd --api-key NAME.")
        w.setting("scopes", list(api_key.scopes), "send, read, suppressions, metrics, admin.")
    if not config.api_keys:
        w.table("# [[api_keys]]", "Keys of the HTTP API (an http listener; README: HTTP API).")
        w.example("name", "shop", "Who uses it (shown in the log).")
        w.example("hash", "$sha256$...", "Its hash: mailwright passwd --api-key NAME.")
        w.example("scopes", ["send", "read"], "send, read, suppressions, metrics, admin.")

    h = config.http
    w.table("[http]", "The HTTP API and status page of an http listener.")
    if h.password_hash:
        w.setting("password_hash", h.password_hash, "Status page password (mailwright passwd).")
    else:
        w.example("password_hash", "$scrypt$...", "Status page password (mailwright passwd).")
    w.setting("max_body", h.max_body, "Largest request body in bytes (0: from the size limit).")
    w.setting("body_timeout", h.body_timeout, "Seconds to send a request body, then 408.")
    w.setting(
        "metrics_open_to_trusted",
        h.metrics_open_to_trusted,
        "/metrics without a key from trusted_networks.",
    )

    w.table("[srs]", "Forwarding to outside addresses: the SRS envelope sender (README).")
    if config.srs.secret_file:
        w.setting("secret_file", _rel(config.srs.secret_file, base), "SRS secrets, one a line.")
    else:
        w.example("secret_file", "srs-secret", "SRS secrets; unset = data_dir/srs-secret.")
    w.setting("max_age_days", config.srs.max_age_days, "Bounces to rewritten senders, this long.")

    mm = config.mailman
    if mm is not None:
        w.table("[mailman]", "Mailman 3 core manages the lists here (README: Mailing lists).")
        set_ = w.setting
    else:
        w.blank()
        w.comment("Mailman 3 core as the list manager: uncomment (README: Mailing lists).")
        w.lines.append("# [mailman]")
        mm = MailmanConfig()
        set_ = w.example
    set_("lmtp_host", mm.lmtp_host, "Mailman's LMTP runner: its address...")
    set_("lmtp_port", mm.lmtp_port, "...and port (mailman.cfg [mta] lmtp_host, lmtp_port).")
    set_("rest_url", mm.rest_url, "Mailman's REST API.")
    set_("rest_user", mm.rest_user, "Mailman's [webservice] admin_user.")
    password = (
        _rel(mm.rest_password_file, base) if mm.rest_password_file else "mailman-rest-password"
    )
    set_("rest_password_file", password, "A file holding Mailman's [webservice] admin_pass.")
    set_("cache_seconds", mm.cache_seconds, "How long Mailman's list of lists is trusted.")
    if mm.unsubscribe_url:
        set_("unsubscribe_url", mm.unsubscribe_url, "RFC 8058 one-click links: an http listener.")
    else:
        w.example(
            "unsubscribe_url",
            f"https://{config.hostname}/unsubscribe",
            "RFC 8058 one-click links (https, an http listener); unset = none.",
        )
    set_(
        "unsubscribe_max_age_days",
        mm.unsubscribe_max_age_days,
        "A one-click link works this long after the post.",
    )

    w.table("[check]", "Blocklists 'mailwright check' queries (never from tests).")
    w.setting("dnsbls", list(config.check.dnsbls), "IP blocklists each sending IP is looked up in.")
    w.setting("dbls", list(config.check.dbls), "Domain blocklists each domain is looked up in.")

    w.table(
        "[dkim_rotation]",
        "serve rotates each DKIM key on a schedule (mailwright dkim rotate): a new key under a"
        " new selector, published, switched to once every authoritative server serves it.",
    )
    w.example("every", "180d", "How often; unset = never.")
    w.setting("overlap", "7d", "How long the old key stays published after the switch.")
    w.example("server", "ns1.example.com:53", "The zone's primary for RFC 2136; unset = by hand.")
    w.example("tsig_key", "tsig.key", "The TSIG key (name, algorithm, secret) for the update.")
    w.setting("authoritative", [], "Servers that must serve the new key; [] = the zone's NS.")

    q = config.queue
    w.table("[queue]", "Where the queue lives: unset = SQLite in data_dir (one node).")
    if q.url:
        w.setting("url", q.url, "PostgreSQL shared by several nodes.")
    else:
        w.example(
            "url",
            "postgresql://mailwright@db.example.net/mailwright",
            "PostgreSQL, shared by several nodes (needs mailwright[postgresql]).",
        )
    if q.password_file:
        w.setting("password_file", _rel(q.password_file, base), "The database password.")
    else:
        w.example("password_file", "db-password", "File holding the database password.")
    if q.password_env:
        w.setting("password_env", q.password_env, "Environment variable with it.")
    else:
        w.example("password_env", "MAILWRIGHT_DB_PASSWORD", "Or an environment variable.")

    w.table("[log]", "One line per event (docs/log-format.md).")
    if config.log.file:
        w.setting("file", _rel(config.log.file, base), "Log file besides stderr.")
    else:
        w.example(
            "file", "mailwright.log", "Log file besides stderr; unset = data_dir/mailwright.log."
        )
    w.setting("format", config.log.format, '"text" (key=value lines) or "json" (one object).')
    return w.text()


def _dkim(w: _Writer, key: DkimKeyConfig, base: Path) -> None:
    w.blank()
    w.lines.append("[[dkim]]")
    w.setting("domain", key.domain, "The d= domain of the signature.")
    w.setting("selector", key.selector, f"The s= selector: published at {key.selector}._domainkey.")
    w.setting("private_key", _rel(key.private_key, base), "PEM private key file (keep it 0600).")
    w.setting("algorithm", key.algorithm, "rsa (rsa-sha256) or ed25519 (ed25519-sha256).")


def _listener(w: _Writer, listener: ListenerConfig) -> None:
    w.blank()
    w.lines.append("[[listeners]]")
    w.setting("name", listener.name, "A name for logs.")
    w.setting("address", listener.address, "Address to listen on (0.0.0.0 / :: for all).")
    w.setting("port", listener.port, "TCP port.")
    w.setting("role", listener.role, "submission, inbound or http.")
    w.setting("tls", listener.tls, "none, starttls or implicit.")
    w.setting("auth", listener.auth, "none, optional or required.")
