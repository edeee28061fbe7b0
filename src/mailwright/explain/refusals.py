"""What our own refusals mean (``event=rejected``): the replies mailwright's SMTP server
gives at submission and on inbound mail, each with the reason and the fix.

The reply texts are those of :mod:`mailwright.smtp.protocol` and the inbound policy;
a reply not in the table gets the generic explanation of its code class.
"""

from __future__ import annotations

import re

_REFUSALS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), why, fix)
    for pattern, why, fix in (
        (
            r"authentication required",
            "the client sent MAIL without logging in",
            "configure the application's SMTP login (user and password from mailwright "
            "passwd) on the submission port, or send from an address of [[listener]] trusted",
        ),
        (
            r"relay access denied",
            "mail to another domain from a client that is not logged in: relaying is refused",
            "log in (SMTP AUTH) on the submission port before sending to other domains",
        ),
        (
            r"authentication credentials invalid|too many failed authentication",
            "the login failed",
            "check the user and password (mailwright passwd USER sets it)",
        ),
        (
            r"user unknown|recipient address rejected",
            "the recipient is one of our domains but no such address exists",
            "add the address (or a catch-all) to the config's addresses, or fix the typo",
        ),
        (
            r"size|exceeds",
            "the message is larger than the configured maximum",
            "raise the size limit in the config, or send large files as links",
        ),
        (
            r"too many recipients",
            "more recipients in one transaction than allowed",
            "send in batches (the client retries the rest after 452 anyway)",
        ),
        (
            r"8-bit data|nul character|line longer than|8bitmime|not utf-8",
            "the client sent a malformed message (raw 8-bit, NUL bytes or over-long lines)",
            "let the application's mail library encode the message (quoted-printable or "
            "base64 bodies)",
        ),
        (
            r"address literals|syntax|bad .*address|unsupported",
            "the client sent an address or parameter the server does not accept",
            "fix the address in the application (a plain user@domain)",
        ),
        (
            r"too many hops",
            "the message passed too many servers: a mail loop",
            "look for forwarding that sends the message back here",
        ),
        (
            r"spf|dkim|dmarc|policy",
            "inbound mail failed our sender authentication policy",
            "nothing to fix here if the sender is forged; a real sender must fix its SPF, "
            "DKIM or DMARC",
        ),
    )
)


def explain_refusal(reply: str) -> dict[str, str]:
    """``{"why": ..., "fix": ...}`` for one of our replies."""
    for pattern, why, fix in _REFUSALS:
        if pattern.search(reply):
            return {"why": why, "fix": fix}
    if reply[:1] == "4":
        return {
            "why": "a temporary refusal",
            "fix": "the client retries; if it persists, read mailwright's log around that time",
        }
    return {"why": "refused", "fix": "read the reply; the client must change what it sends"}
