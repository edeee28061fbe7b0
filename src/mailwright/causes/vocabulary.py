"""The fixed vocabulary of delivery-failure causes: id, what it means, the fix, the check.

The ids are a stable interface (``mailwright explain --json``, README.md):
new causes may be added, existing ids keep their meaning.  ``check`` names the
``mailwright check`` item that confirms the cause on *our* side; it is ``None``
for causes that live at the recipient (a full mailbox, an unknown user), where
no check of our domain can confirm anything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    fix: str
    check: str | None
    fix_relay: str | None = None
    """The fix when mail leaves through a relay host, where it differs."""


_CAUSES = (
    Cause(
        "reverse-dns",
        "reverse DNS (PTR) of the sending IP missing, generic or not forward-confirmed",
        "ask the owner of the sending IP (your hosting provider) for a PTR record naming your "
        "mail hostname, make that name resolve back to the IP, and use it as the HELO name",
        "fcrdns",
    ),
    Cause(
        "blocklisted",
        "the sending IP (or domain) is on a blocklist",
        "look the IP up on the named list, remove the reason (open relay, compromised account, "
        "bad list hygiene), then request delisting through the list's removal page",
        "dnsbl:*",
    ),
    Cause(
        "dmarc",
        "the message failed DMARC: neither SPF nor DKIM passed aligned with the From domain",
        "sign with a DKIM key of the From domain (d= equal to or a parent of it) and/or send from "
        "an IP the From domain's SPF authorizes; publish a DMARC record",
        "dmarc-alignment",
    ),
    Cause(
        "spf",
        "SPF did not pass for the envelope sender",
        "add the sending IP (or your relay's include:) to the sender domain's SPF record",
        "spf-authorizes",
    ),
    Cause(
        "dkim",
        "no valid DKIM signature",
        "publish the DKIM public key for every selector you sign with and make sure outgoing "
        "mail is signed (mailwright signs when [[dkim]] keys are configured)",
        "dkim-record:*",
    ),
    Cause(
        "sender-null-mx",
        "the sender domain publishes a null MX (RFC 7505): it says it receives no mail",
        "remove the '0 .' MX of the sender domain and publish a real MX, or send from a domain "
        "that receives mail (bounces must be deliverable)",
        "mx-null",
    ),
    Cause(
        "sender-domain",
        "the envelope sender's domain does not resolve or is refused",
        "send from a domain that exists in public DNS (MX or A record), not from a local name",
        "mx",
    ),
    Cause(
        "recipient-unknown",
        "the recipient address does not exist (or is disabled)",
        "remove the address from your list; check it for typos",
        None,
    ),
    Cause(
        "mailbox-full",
        "the recipient's mailbox is over quota",
        "nothing to fix on your side; the recipient must make room (retries continue for 4xx)",
        None,
    ),
    Cause(
        "message-too-large",
        "the message exceeds the receiver's size limit",
        "send large files as links, or lower attachment sizes below the receiver's SIZE limit",
        None,
    ),
    Cause(
        "greylisted",
        "greylisting: the receiver asks first-time senders to retry later",
        "nothing to do: the queue retries and the next attempt after a few minutes passes; "
        "keep a stable sending IP and HELO name",
        None,
    ),
    Cause(
        "rate-limited",
        "the receiver throttles this IP or domain (volume or reputation)",
        "send more slowly (fewer connections per domain), warm up new IPs, keep complaint and "
        "bounce rates low; if it persists, check the provider's postmaster pages",
        None,
    ),
    Cause(
        "tls-required",
        "the receiver (or our policy) requires TLS that was not negotiated",
        "enable STARTTLS for outgoing mail and make sure the peer's certificate verifies "
        "(CA bundle, clock)",
        "tls",
    ),
    Cause(
        "spam-content",
        "the message content was rejected as spam or by policy",
        "check the message: links and domains on blocklists, URL shorteners, missing "
        "List-Unsubscribe for bulk mail, image-only bodies; send a test with mailwright send-test",
        "dbl:*",
    ),
    Cause(
        "connection-failed",
        "no SMTP conversation: connection refused, timed out, no route, or lost",
        "if it happens for every domain, your provider blocks outbound port 25: ask them to "
        "open it or use a relay host; otherwise the receiving server is down (retries continue)",
        None,
        fix_relay="the relay host could not be reached: check the host and port of "
        "[delivery.relay] url (587 or 465), that the machine may connect there, and the "
        "relay provider's status page; the queue retries meanwhile",
    ),
    Cause(
        "recipient-domain-dns",
        "the recipient domain's DNS fails: no MX/A, lookup errors, or a null MX",
        "check the recipient domain (mailwright dns RECIPIENT-DOMAIN MX); a typo in the domain "
        "is the usual reason, a SERVFAIL is the recipient's problem",
        "mx",
    ),
    Cause(
        "unknown",
        "not recognised: the reply is listed verbatim, grouped by remote host",
        "read the reply text; the receiver's postmaster page usually explains its codes",
        None,
    ),
)

CAUSES: dict[str, Cause] = {c.id: c for c in _CAUSES}
"""Every cause id, in the documented order."""

CAUSE_ORDER: dict[str, int] = {c.id: i for i, c in enumerate(_CAUSES)}
