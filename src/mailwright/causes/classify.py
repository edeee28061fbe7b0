"""Classify one deferral or bounce text into a cause of :mod:`.vocabulary`.

Pure functions, no I/O.  The input is the text Postfix writes in parentheses after
``status=deferred``/``status=bounced`` (or mailwright's ``reply=``); its shape tells who
failed first:

* ``host H[IP] said: REPLY (in reply to CMD command)`` - the remote server replied;
* ``host H[IP] refused to talk to me: REPLY`` - rejected at the greeting;
* ``connect to H[IP]:25: Connection refused`` / ``lost connection with H[IP] while ...``
  / ``conversation with H[IP] timed out while ...`` - no SMTP conversation;
* ``Host or domain name not found. Name service error for name=D type=MX: ...``;
* anything else is a text of the local MTA.

The reply texts are matched by ordered rules (receivers' wording first, then RFC 3463 /
RFC 7372 enhanced status codes as the fallback).  Replies repeat a lot, with only IPs,
addresses and session ids changing, so each *masked* reply is classified once (LRU).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from .vocabulary import CAUSES


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a failure text means: the cause, the check that confirms it, and details."""

    cause: str
    check: str | None
    rule: str
    """Name of the rule that matched (shown with ``-v``; tests assert on it)."""
    listname: str | None = None
    """The blocklist the reply names, when it names one."""
    advice: tuple[str, str, str] | None = None
    """``(provider, code, fix)`` when the reply is a big provider's known code."""


@dataclass(frozen=True, slots=True)
class StatusText:
    """A status text split into its form, the remote host and the remote reply."""

    form: str
    """``said``, ``greeting``, ``connect``, ``lost``, ``timeout``, ``dns`` or ``local``."""
    host: str | None
    """``name[ip]`` of the remote server, when the text names one."""
    reply: str
    """The remote reply (``said``/``greeting``), else the whole text."""
    stage: str | None = None
    """The SMTP command the reply answered (``RCPT TO``, ``end of DATA``...)."""


_SUSPENDED = "delivery temporarily suspended: "
_SAID = re.compile(
    r"host (?P<host>[^\s\[\]]*\[[^\]\s]*\])(?::\d+)? (?:said|refused to talk to me): "
)
_IN_REPLY = " (in reply to "
_CONNECT = re.compile(r"^connect to (?P<host>[^\s\[\]]*\[[^\]\s]*\])(?::\d+)?: ")
_LOST = re.compile(r"^(?:lost connection|conversation) with (?P<host>[^\s\[\]]*\[[^\]\s]*\])")
_DNS = re.compile(
    r"^(?:Host or domain name not found|Name service error|MX host \S+ has no address|"
    r"unable to look up host|Domain \S+ does not accept mail \(nullMX\))",
    re.IGNORECASE,
)


def split_status_text(text: str) -> StatusText:
    """Tell apart the forms Postfix's smtp(8) client writes (see the module docstring)."""
    if text.startswith(_SUSPENDED):
        text = text[len(_SUSPENDED) :]
    m = _SAID.match(text)
    if m is not None:
        reply = text[m.end() :]
        stage = None
        cut = reply.rfind(_IN_REPLY)
        if cut >= 0 and reply.rstrip().endswith(")"):
            stage = reply[cut + len(_IN_REPLY) :].rstrip().rstrip(")")
            stage = stage.removesuffix(" command")
            reply = reply[:cut]
        form = "said" if " said: " in m.group(0) else "greeting"
        return StatusText(form, m.group("host"), reply.strip(), stage)
    m = _CONNECT.match(text)
    if m is not None:
        return StatusText("connect", m.group("host"), text)
    m = _LOST.match(text)
    if m is not None:
        form = "lost" if text.startswith("lost") else "timeout"
        return StatusText(form, m.group("host"), text)
    if _DNS.match(text):
        return StatusText("dns", None, text)
    return StatusText("local", None, text)


# --- masking: what varies between otherwise identical replies -------------------------

# Every alternative is tried at most once per token, so masking is linear in the reply
# (a hostile reply is up to the reader's 64 KiB line): an alternative that could restart
# inside a token and rescan it to its end from each position would make it quadratic.
_NOT_ADDR = r"\s<>()\[\]\"',;:"
"""What ends a bare address: it is the whole run of other characters around an ``@``."""
_ID = r"(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{12,}\b"
"""A session / queue id: 12+ word characters or ``-`` with a digit and a letter."""
_MASK = re.compile(
    r"(?P<url>(?:https?://)[^/\s]+)[^\s)>\]]*"  # keep a URL's host (it names the list/provider)
    r"|<[^<>\s@]*@[^<>\s]*>"  # <user@example.net>: up to its first @, no backtracking
    # bare user@example.net: only from the start of its run (the match, if any, is the
    # whole run), never from inside it
    rf"|(?<![^{_NOT_ADDR}])[^{_NOT_ADDR}][^{_NOT_ADDR}@]*@[^{_NOT_ADDR}]+"
    # IPv4, and an id glued to it by "-" (tried here: no id starts inside a token)
    rf"|\b\d{{1,3}}(?:\.\d{{1,3}}){{3}}\b(?P<ip_id>{_ID})?"
    r"|\[[0-9A-Fa-f]*:[0-9A-Fa-f:.]*\]"  # [IPv6]
    # ids: only from the start of a [\w-] token, its leading "-" kept: if the id test fails
    # there, it fails at every later word start of the token too
    rf"|(?<![\w-])(?P<dash>-*)\b{_ID}"
    r"|\b\d{6,}\b"  # long numbers
)


def _mask_one(m: re.Match[str]) -> str:
    url = m.group("url")
    if url:
        return url + "/*"
    if m.group("ip_id"):
        return "**"
    return (m.group("dash") or "") + "*"


def mask(reply: str) -> str:
    """The reply with IPs, addresses, URLs' paths and ids replaced by ``*``."""
    return _MASK.sub(_mask_one, " ".join(reply.split()))


# --- rules ------------------------------------------------------------------------------

_Rule = tuple[str, str, "re.Pattern[str]", str | None]


def _r(name: str, cause: str, pattern: str, check: str | None = None) -> _Rule:
    assert cause in CAUSES, cause
    return (name, cause, re.compile(pattern, re.IGNORECASE), check)


# Order matters: the more specific wording comes first (a Spamhaus listing mentions
# "spam"; Gmail's rate limit mentions "unsolicited"; a greylisting reply says
# "Recipient address rejected").
_REPLY_RULES: tuple[_Rule, ...] = (
    # RFC 7505 §4.2, §6: X.7.27 "Sender address has null MX"; Postfix: "(nullMX)".
    _r("null-mx-sender", "sender-null-mx", r"sender.{0,120}null ?mx|null ?mx.{0,40}sender"),
    _r("null-mx-recipient", "recipient-domain-dns", r"null ?mx|does not accept mail"),
    # --- the big providers' codes whose wording the generic rules below would misread ---
    # Gmail uses X.7.27 for "SPF did not pass" (its text says "either SPF or DKIM"); the
    # RFC 7505 meaning (sender has null MX) is caught by the wording rules above.
    _r("gmail-spf", "spf", r"\b[45]\.7\.27\b", "spf-authorizes"),
    # Microsoft (2025): bulk senders must pass SPF, DKIM and DMARC.
    _r("microsoft-auth", "dmarc", r"\b5\.7\.515\b|required authentication level"),
    # Yahoo [TSS09]: every message from the IP is refused from now on.
    _r("yahoo-tss09", "blocklisted", r"\[TSS09\]|permanently deferred"),
    # T-Online accepts only servers it knows (and whose PTR host has a web imprint).
    # (rules see the masked reply: its tosa@rx.t-online.de address is "*" by then)
    _r("t-online", "blocklisted", r"ask your postmaster for help or to contact|\(BL\)\s*$"),
    # GMX/WEB.DE: the envelope sender's domain has no MX and no A/AAAA record.
    _r(
        "gmx-sender-dns",
        "sender-domain",
        r"invalid DNS MX or A/AAAA resource record|sender address has no (?:mx|dns)",
        "mx",
    ),
    # Apple iCloud: [CS01] content, [HM07]/[HM08] policy.
    _r("apple-policy", "spam-content", r"\[(?:CS|HM)\d\d\]"),
    # Gmail 4.7.0 "suspicious due to the nature of the content and/or the links within".
    _r("gmail-content", "spam-content", r"suspicious due to the nature of the content"),
    # X.7.10 "Encryption Needed" (RFC 5248 registry); Gmail "TLS required for RCPT domain".
    _r(
        "tls",
        "tls-required",
        r"\btls (?:is )?required|requires? (?:a )?tls|must issue a starttls|starttls (?:is )?"
        r"required|encryption (?:is )?(?:required|needed)|must use (?:tls|encryption)"
        r"|\b[45]\.7\.10\b|not offered by host|cannot start tls|tls handshake|"
        r"does not offer starttls|without tls|tls negotiation failed|"
        r"certificate (?:verification failed|not (?:verified|trusted))",
    ),
    _r(
        "helo",
        "reverse-dns",
        r"helo command rejected|invalid helo|bad helo|helo(?:/ehlo)? .{0,40}"
        r"(?:hostname|host name|fully.qualified|does not resolve|mismatch)",
        "ptr-helo",
    ),
    _r(
        "ptr-missing",
        "reverse-dns",
        r"does not have a ptr|no ptr record|missing ptr|ptr record (?:is )?missing|"
        r"cannot find your (?:reverse )?hostname|no reverse dns|reverse dns (?:is )?missing|"
        r"no rdns|rdns (?:is )?missing",
        "ptr",
    ),
    # RFC 7372 §3.3: X.7.25 "Reverse DNS validation failed".
    _r(
        "ptr",
        "reverse-dns",
        r"\bptr\b|reverse dns|reverse hostname|\brdns\b|reverse (?:lookup|resolution)|"
        r"forward dns|fcrdns|forward.confirmed|\b[45]\.7\.25\b",
    ),
    # Gmail's "unusual rate of unsolicited mail" (4.7.0, 4.7.28) names the SPF domain,
    # so it comes before the SPF rule; Gmail uses X.7.28 for this rate limit only.
    _r("flood", "rate-limited", r"unusual rate of|\b[45]\.7\.28\b"),
    # Gmail 4.7.32/5.7.32 alignment, 4.7.40/5.7.40 no DMARC record, 5.7.26 unauthenticated;
    # Microsoft 5.7.509 "does not pass DMARC verification".
    _r(
        "dmarc",
        "dmarc",
        r"\bdmarc\b|\b[45]\.7\.(?:32|40)\b|not aligned|alignment|either spf or dkim|anti-spoofing|"
        r"spf (?:or|and) dkim|sender is unauthenticated|unauthenticated (?:e-?mail|mail|sender)",
    ),
    # RFC 7372 §3.2: X.7.23 "SPF validation failed", X.7.24 "SPF validation error";
    # Gmail 4.7.27/5.7.27 (SPF did not pass).
    _r(
        "spf",
        "spf",
        r"\bspf\b|sender policy framework|\b[45]\.7\.2[34]\b|\b[45]\.7\.27\b|"
        r"not (?:permitted|authori[sz]ed) to send (?:on behalf|for)|designates",
        "spf-authorizes",
    ),
    # RFC 7372 §3.1: X.7.20-X.7.22 DKIM; Gmail 4.7.30/5.7.30 "DKIM ... didn't pass".
    _r("dkim", "dkim", r"\bdkim\b|domainkeys|\b[45]\.7\.2[012]\b"),
    _r(
        "authentication",
        "dmarc",
        r"not authenticated|authentication (?:check|result)s? (?:did not pass|failed)|"
        r"failed authentication|could not be authenticated",
    ),
    _r(
        "rate",
        "rate-limited",
        r"rate.?limit|\brate of\b|at a rate|too many|unusual (?:rate|volume)|throttl|"
        r"\[TSS?\d+\]|temporarily deferred|unexpected volume|user complaints|server busy|"
        r"try again later from|\b[45]\.7\.28\b|sending (?:rate|quota)|too fast|slow down|"
        r"reputation",
    ),
    _r(
        "blocklist",
        "blocklisted",
        r"blocked using|block ?list|black ?list|\bbanned\b|\bS31[45]0\b|\b5\.7\.(?:606|511|708)\b"
        r"|\[BL\d+\]|email blocked|\bdnsbls?\b|\brbls?\b|spamhaus|barracuda|spamcop|uceprotect|"
        r"proofpoint|blocked - see|found on one or more|"
        r"\bpsbl\b|sorbs|listed (?:at|on|in|by)|on our (?:block|deny) ?list|"
        r"traffic not accepted from this ip|ip (?:address )?(?:is )?blocked|"
        r"not authori[sz]ed to send (?:e-?mail )?directly",
    ),
    _r(
        "greylist",
        "greylisted",
        r"gr[ae]y.?list|please try again later|try again later|come back later|"
        r"temporarily (?:rejected|refused).{0,40}later|\b4\.7\.1\b.{0,60}later",
    ),
    _r(
        "mailbox-full",
        "mailbox-full",
        r"mailbox (?:is )?full|over ?quota|quota (?:exceeded|limit)|exceeded .{0,30}quota|"
        r"out of (?:storage|space)|mailbox size limit|disk quota|insufficient storage|"
        r"storage space|\b[45]\.2\.2\b",
    ),
    _r(
        "too-large",
        "message-too-large",
        r"too (?:big|large)|size (?:limit|exceeds)|exceed(?:s|ed)? .{0,40}size|"
        r"message (?:length|size) exceeds|\b5\.3\.4\b|\b[45]\.2\.3\b",
    ),
    # RFC 3463: X.1.7 "Bad sender's mailbox address syntax", X.1.8 "Bad sender's system address".
    _r(
        "sender-domain",
        "sender-domain",
        r"sender address rejected|sender domain|domain of sender|sender .{0,40}(?:not exist|"
        r"not resolve|not found)|sender verify failed|\b[45]\.1\.[78]\b|"
        r"need fully.qualified address",
    ),
    _r(
        "recipient",
        "recipient-unknown",
        r"user unknown|unknown user|no such (?:user|mailbox|recipient)|does(?: not|n't) exist|"
        r"mailbox (?:not found|unavailable)|invalid (?:recipient|mailbox|address)|"
        r"unknown (?:recipient|address)|recipient not found|unrouteable address|"
        r"recipient address rejected|no mailbox|account (?:is )?(?:disabled|inactive|"
        r"suspended)|(?:doesn't|does not) have an? .{0,30}account|address rejected|"
        r"\b5\.1\.[0136]\b|\b5\.2\.1\b",
    ),
    _r(
        "recipient-dns",
        "recipient-domain-dns",
        r"host or domain name not found|name service error|mx lookup failed|"
        r"address lookup failed|no mx host has an address|domain not found \(nxdomain\)|"
        r"no mx and no address",
    ),
    _r(
        "relay-denied",
        "recipient-domain-dns",
        r"relay(?:ing)? (?:access )?(?:denied|not permitted)|not permitted to relay|"
        r"unable to relay",
    ),
    _r(
        "spam",
        "spam-content",
        r"\bspam\b|unsolicited|\bcontent\b|policy (?:reasons|restrictions|violation)|"
        r"local policy|security polic|"
        r"phish|virus|malware|suspicious|\bbulk\b|message rejected|not accepted for policy|"
        r"\b5\.7\.9\b|\bUBE\b|\bURL\b",
    ),
    # mailwright's own texts for a failed connection (4.4.1/4.4.2 replies it makes up).
    _r(
        "connection",
        "connection-failed",
        r"connection refused|timed out|no route to host|network is unreachable|"
        r"connection reset|lost connection|closed the connection|timeout (?:sending|waiting)",
    ),
)

_CONNECTION_RULES: tuple[_Rule, ...] = (
    _r("tls-local", "tls-required", r"tls is required|not offered by host|cannot start tls"),
    _r(
        "connect",
        "connection-failed",
        r"connection refused|connection timed out|no route to host|network is unreachable|"
        r"connection reset|lost connection|timed out while|host is unreachable|"
        r"server unavailable or unable to receive mail|no (?:such )?address",
    ),
)

_DNS_RULES: tuple[_Rule, ...] = (
    _r("null-mx-recipient", "recipient-domain-dns", r"null ?mx"),
    _r(
        "dns",
        "recipient-domain-dns",
        r"host or domain name not found|name service error|has no address|look up",
    ),
)

# RFC 3463 §3 (and RFC 7372, RFC 7505, RFC 8689 for the X.7.2x/X.7.30 entries): the
# enhanced code alone, when no wording matched.  X.7.1 and X.7.0 say nothing specific.
_CODE_FALLBACK: dict[str, tuple[str, str | None]] = {
    "1.1": ("recipient-unknown", None),
    "1.0": ("recipient-unknown", None),
    "1.6": ("recipient-unknown", None),
    "2.1": ("recipient-unknown", None),
    "1.2": ("recipient-domain-dns", "mx"),
    "1.10": ("recipient-domain-dns", "mx"),  # RFC 7505 §4.1, §6: recipient has null MX
    "4.3": ("recipient-domain-dns", "mx"),
    "4.4": ("recipient-domain-dns", "mx"),
    "4.1": ("connection-failed", None),
    "4.2": ("connection-failed", None),
    "4.7": ("connection-failed", None),
    "1.7": ("sender-domain", "mx"),
    "1.8": ("sender-domain", "mx"),
    "2.2": ("mailbox-full", None),
    "2.3": ("message-too-large", None),
    "3.4": ("message-too-large", None),
    "7.10": ("tls-required", "tls"),
    "7.11": ("tls-required", "tls"),
    "7.30": ("tls-required", "tls"),  # RFC 8689 (REQUIRETLS): "REQUIRETLS support required"
    "7.20": ("dkim", "dkim-record:*"),
    "7.21": ("dkim", "dkim-record:*"),
    "7.22": ("dkim", "dkim-record:*"),
    "7.23": ("spf", "spf-authorizes"),
    "7.24": ("spf", "spf-authorizes"),
    "7.25": ("reverse-dns", "fcrdns"),
    "7.26": ("dmarc", None),
    "7.27": ("sender-null-mx", None),  # RFC 7505 §4.2, §6: sender has null MX
    "7.28": ("rate-limited", None),
}

_CODE = re.compile(r"\b[245]\.(\d{1,3}\.\d{1,3})\b")

# Lists named in replies → the zone ``mailwright check`` queries (its dnsbl:LIST id).
_NAMED_LIST = re.compile(
    r"(?:blocked using|listed (?:at|on|in|by))\s+"
    r"(?P<zone>[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)+\.[a-z]{2,})",
    re.IGNORECASE,
)
_KNOWN_LISTS: tuple[tuple[re.Pattern[str], str, str | None], ...] = (
    (re.compile(r"\bdbl\.spamhaus", re.I), "Spamhaus DBL", "dbl:dbl.spamhaus.org"),
    (re.compile(r"spamhaus", re.I), "Spamhaus", "dnsbl:zen.spamhaus.org"),
    (re.compile(r"barracuda", re.I), "Barracuda", "dnsbl:b.barracudacentral.org"),
    (re.compile(r"spamcop", re.I), "SpamCop", "dnsbl:bl.spamcop.net"),
    (re.compile(r"uceprotect", re.I), "UCEPROTECT", "dnsbl:dnsbl-1.uceprotect.net"),
    (re.compile(r"\bpsbl\b|surriel", re.I), "PSBL", "dnsbl:psbl.surriel.com"),
    (re.compile(r"\bS3140\b"), "Microsoft (S3140)", None),
    (re.compile(r"\bS3150\b"), "Microsoft (S3150)", None),
    (
        re.compile(r"5\.7\.(?:606|511|708)|sender\.office\.com|delist@microsoft", re.I),
        "Microsoft",
        None,
    ),
    (re.compile(r"\[BL\d+\]"), "Yahoo", None),
    (re.compile(r"proofpoint", re.I), "Proofpoint", None),
    (re.compile(r"postmaster\.(?:gmx|web)\.|\bgmx\.net\b|\bweb\.de\b", re.I), "GMX/WEB.DE", None),
    (re.compile(r"\[TSS09\]", re.I), "Yahoo", None),
    (re.compile(r"t-online\.de", re.I), "T-Online", None),
)
_ZONE_SUFFIXES = {
    "spamhaus.org",
    "spamcop.net",
    "barracudacentral.org",
    "uceprotect.net",
    "surriel.com",
    "sorbs.net",
    "mailspike.net",
    "manitu.net",
    "surbl.org",
    "abuseat.org",
    "s5h.net",
    "0spam.org",
    "spameatingmonkey.net",
    "invaluement.com",
}


def _blocklist(reply: str) -> tuple[str | None, str]:
    """The list a blocklist reply names, and the check id that looks it up."""
    m = _NAMED_LIST.search(reply)
    if m is not None:
        zone = m.group("zone").lower().rstrip(".")
        if any(zone == s or zone.endswith("." + s) for s in _ZONE_SUFFIXES) or (
            m.group(0).lower().startswith("blocked using")
        ):
            kind = "dbl" if ("dbl" in zone or "surbl" in zone) else "dnsbl"
            return zone, f"{kind}:{zone}"
    for pattern, name, check in _KNOWN_LISTS:
        if pattern.search(reply):
            return name, check or "dnsbl:*"
    return None, "dnsbl:*"


# --- the big providers' codes: what the provider wants, on top of the cause's fix -------

_GMAIL = r"(?=.*(?:gsmtp|google|gmail))"
_MICROSOFT = r"(?=.*(?:outlook|hotmail|microsoft|protection\.outlook|office\.com|live\.com))"
_YAHOO = r"(?=.*(?:yahoo|aol|\[TSS\d+\]|\[BL\d+\]))"
_ADVICE: tuple[tuple[str, str, re.Pattern[str], str], ...] = tuple(
    (provider, code, re.compile(pattern, re.IGNORECASE | re.DOTALL), fix)
    for provider, code, pattern, fix in (
        (
            "Gmail",
            "5.7.26",
            _GMAIL + r".*\b5\.7\.26\b",
            "Gmail needs SPF or DKIM to pass (both for bulk senders, 5,000+ a day) and DMARC "
            "to pass aligned with the From domain: sign with a key of the From domain, publish "
            "SPF and DMARC (mailwright records), confirm with mailwright check",
        ),
        (
            "Gmail",
            "5.7.27",
            _GMAIL + r".*\b5\.7\.27\b",
            "Gmail found SPF not passing for the envelope sender's domain: authorize the "
            "sending IP in that domain's SPF record (mailwright spf check)",
        ),
        (
            "Gmail",
            "X.7.28",
            _GMAIL + r".*\b[45]\.7\.28\b",
            "Gmail limits IPs that sent spam recently: lower the volume, keep the user-reported "
            "spam rate below 0.3% (Postmaster Tools), add one-click unsubscribe (RFC 8058) to "
            "bulk mail; 4.7.28 retries on its own",
        ),
        (
            "Gmail",
            "5.7.25",
            _GMAIL + r".*\b[45]\.7\.25\b",
            "Gmail requires the sending IP's PTR name to resolve back to the same IP "
            "(forward-confirmed reverse DNS): ask the IP's provider to set the PTR",
        ),
        (
            "Gmail",
            "4.7.0 TLS",
            _GMAIL + r".*\b[45]\.7\.0\b.*(?:tls|starttls|encrypt)",
            "Gmail requires TLS from bulk senders: make sure outgoing mail uses STARTTLS "
            "and that the certificate store is current",
        ),
        (
            "Microsoft",
            "5.7.515",
            r".*\b5\.7\.515\b",
            "Outlook.com (since May 2025) requires senders of more than 5,000 messages a day "
            "to pass SPF, DKIM and DMARC (p=none at least), aligned with the From domain",
        ),
        (
            "Microsoft",
            "S3140",
            r".*\bS3140\b",
            "the IP is on Microsoft's own block list: request delisting through "
            "sender.office.com, and watch the IP in Microsoft SNDS",
        ),
        (
            "Microsoft",
            "5.7.708",
            r".*\b5\.7\.708\b",
            "Microsoft does not accept this IP (low or no reputation, often a new cloud IP): "
            "request delisting through sender.office.com, warm up slowly, or use a relay",
        ),
        (
            "Microsoft",
            "4.7.650",
            _MICROSOFT + r".*\b4\.7\.[56]\d\d\b",
            "Outlook.com throttles this IP: slow down, warm up a new IP over weeks",
        ),
        (
            "Yahoo",
            "TSS04",
            r".*\[TSS04\]",
            "Yahoo defers mail after user complaints: send only to people who asked, honour "
            "unsubscribes within two days, join Yahoo's Complaint Feedback Loop",
        ),
        (
            "Yahoo",
            "TSS09",
            r".*\[TSS09\]",
            "Yahoo refuses every message from this IP: fix what caused complaints, then "
            "ask Yahoo's Sender Hub for a review",
        ),
        (
            "Yahoo",
            "553 5.7.x",
            _YAHOO + r".*\b553[ -]5\.7\.\d+\b",
            "Yahoo refuses this IP by policy or a blocklist it names ([BLnn]): clear the "
            "listing, then ask Yahoo's Sender Hub",
        ),
        (
            "Yahoo",
            "5.7.9",
            _YAHOO + r".*\b5\.7\.9\b.*(?:unauthenticated|spf|dkim)",
            "Yahoo requires SPF or DKIM to pass (both, plus DMARC, for bulk senders)",
        ),
        (
            "Apple",
            "CS01/HM08",
            r".*(?:\[(?:CS|HM)\d\d\]|support\.apple\.com)",
            "iCloud Mail refused it by policy: follow Apple's 'Postmaster information for "
            "iCloud Mail' (SPF, DKIM, DMARC, PTR, no URL shorteners); if it persists, use the "
            "contact form there",
        ),
        (
            "GMX/WEB.DE",
            "case",
            r".*(?:postmaster\.(?:gmx|web)\.|\(mxgmx\d+\)|\(mxweb\d+\))",
            "GMX and WEB.DE name the reason in the c= of the postmaster URL in the reply (e.g. "
            "a PTR problem, a list, policy); open it, fix what it names, then use their form",
        ),
        (
            "T-Online",
            "BL",
            r".*(?:tosa@rx\.t-online\.de|t-online\.de\b.*\(BL\))",
            "T-Online accepts only servers it knows: the PTR host name must serve a website "
            "with an imprint (Impressum); then write to tosa@rx.t-online.de with the IP",
        ),
    )
)


def provider_advice(reply: str) -> tuple[str, str, str] | None:
    """``(provider, code, fix)`` of the first big provider's code the reply shows."""
    head = reply[:4096]
    for provider, code, pattern, fix in _ADVICE:
        if pattern.match(head):
            return provider, code, fix
    return None


def _verdict(rule: _Rule, reply: str) -> Verdict:
    name, cause, _pattern, check = rule
    advice = provider_advice(reply)
    if cause == "blocklisted":
        listname, list_check = _blocklist(reply)
        return Verdict(cause, list_check, name, listname, advice)
    return Verdict(cause, check if check is not None else CAUSES[cause].check, name, None, advice)


def _by_code(code: str | None) -> Verdict | None:
    if not code:
        return None
    m = _CODE.search(code)
    if m is None:
        return None
    subject_detail = m.group(1)
    hit = _CODE_FALLBACK.get(subject_detail)
    if hit is None:
        return None
    cause, check = hit
    return Verdict(cause, check if check is not None else CAUSES[cause].check, "code")


def classify_text(form: str, reply: str, dsn: str) -> Verdict:
    """The cause of one reply (uncached: :func:`classify` is the fast entry point)."""
    masked = mask(reply)
    if form in ("connect", "lost", "timeout"):
        rules = _CONNECTION_RULES
    elif form == "dns":
        rules = _DNS_RULES
    else:
        rules = _REPLY_RULES
    for rule in rules:
        if rule[2].search(masked):
            return _verdict(rule, reply)
    if form in ("connect", "lost", "timeout"):
        return Verdict("connection-failed", None, "connect")
    # The reply's own enhanced code is better evidence than dsn=, which Postfix may
    # have synthesised; the basic code alone is never specific enough.
    m = _CODE.search(masked[:40])
    verdict = _by_code(m.group(0) if m else None) or _by_code(dsn)
    if verdict is not None:
        return verdict
    return Verdict("unknown", None, "none")


_KEY_ADDRESS = re.compile(r"<[^<>\s]*@[^<>\s]*>|[\w.+-]+@[\w.-]+")
_KEY_DIGITS = re.compile(r"\d\w*")
_CACHE: OrderedDict[tuple[str, str, str, str], Verdict] = OrderedDict()
CACHE_SIZE = 4096
KEY_LENGTH = 2048
"""Only this much of a reply goes into its cache key, so the cache stays small."""


def cache_key(reply: str) -> str:
    """A cheap normal form of a reply: addresses masked, and every digit with the rest of
    its word.  Replies that differ only there are the same reply (IPs, session and queue
    ids, sizes); one regex with a literal-led pattern keeps it at a few microseconds."""
    reply = reply[:KEY_LENGTH]
    if "@" in reply:
        reply = _KEY_ADDRESS.sub("@", reply)
    return _KEY_DIGITS.sub("0", reply)


def classify(text: str, dsn: str = "") -> tuple[Verdict, StatusText]:
    """Classify a Postfix status text (or a mailwright ``reply=``) with its ``dsn=``.

    Each distinct reply is classified once (LRU keyed on :func:`cache_key` plus the
    reply's leading enhanced code, which the digit mask would hide).  The blocklist a
    reply names is read from the reply itself, since replies of one list differ only in
    the IP."""
    st = split_status_text(text)
    m = _CODE.search(st.reply, 0, 40)
    key = (st.form, dsn, m.group(0) if m else "", cache_key(st.reply))
    verdict = _CACHE.get(key)
    if verdict is None:
        verdict = classify_text(st.form, st.reply, dsn)
        _CACHE[key] = verdict
        if len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    elif verdict.cause == "blocklisted":
        listname, check = _blocklist(st.reply)
        if listname != verdict.listname:
            verdict = Verdict(verdict.cause, check, verdict.rule, listname, verdict.advice)
    return verdict, st
