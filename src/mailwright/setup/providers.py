"""Relay providers whose SPF include we know, matched by the relay URL's host name.

Sending through a relay means the relay's servers connect to the receivers, so
SPF (RFC 7208) must authorize *their* addresses: providers publish them behind
one name to ``include:``. Unknown relays get a sentence saying what to ask for.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RelayProvider:
    name: str
    host_suffixes: tuple[str, ...]
    spf_include: str
    note: str = ""


PROVIDERS: tuple[RelayProvider, ...] = (
    RelayProvider("Mailgun", ("mailgun.org",), "mailgun.org"),
    RelayProvider(
        "Amazon SES",
        ("amazonaws.com",),
        "amazonses.com",
        "applies when SES sends with a custom MAIL FROM domain under yours",
    ),
    RelayProvider("SendGrid", ("sendgrid.net",), "sendgrid.net"),
    RelayProvider("Postmark", ("postmarkapp.com",), "spf.mtasv.net"),
    RelayProvider("Brevo", ("brevo.com", "sendinblue.com"), "spf.brevo.com"),
    RelayProvider("Mailjet", ("mailjet.com",), "spf.mailjet.com"),
    RelayProvider("SparkPost", ("sparkpostmail.com",), "sparkpostmail.com"),
    RelayProvider("Mandrill", ("mandrillapp.com",), "spf.mandrillapp.com"),
    RelayProvider("Google Workspace", ("gmail.com", "google.com"), "_spf.google.com"),
    RelayProvider("Microsoft 365", ("office365.com", "outlook.com"), "spf.protection.outlook.com"),
    RelayProvider("Zoho Mail", ("zoho.com", "zoho.eu"), "zoho.com"),
)


def relay_host(url: str) -> str:
    """The host of ``smtp://user@host:587``; empty when the URL has none."""
    return (urlsplit(url).hostname or "").lower().rstrip(".")


def find_provider(url: str) -> RelayProvider | None:
    """The provider whose domain the relay host is in, or None."""
    host = relay_host(url)
    for provider in PROVIDERS:
        for suffix in provider.host_suffixes:
            if host == suffix or host.endswith("." + suffix):
                return provider
    return None


def unknown_relay_advice(url: str) -> str:
    host = relay_host(url) or url
    return (
        f"ask the operator of {host} which name to 'include:' in SPF (their documentation "
        "usually calls it the SPF include or sending domain authentication)"
    )
