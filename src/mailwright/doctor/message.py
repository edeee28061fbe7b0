"""``check --message FILE``: an offline "mail-tester" on the user's real message.

What the receivers look at in the message itself: the DKIM signatures verify against
the published keys (an unsigned message is signed here as the server would sign it),
DMARC passes aligned with the From domain (SPF of our sending IPs for the envelope
domain), the RFC 5322 form (§2.1.1 line length, §3.6 field counts, ``Date`` and
``Message-ID``), one-click unsubscribe for bulk mail (RFC 8058: ``List-Unsubscribe``
with an HTTPS URI, ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``, both under a
valid DKIM signature), the size, and the content traits filters punish.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.utils
import re
from email.policy import compat32

from .. import message as rfc5322
from ..dkim import DkimResult, DkimSignError, DkimStatus, sign_message, verify_message
from ..dmarc import DmarcStatus, evaluate
from ..spf.evaluator import check_host
from . import dmarc
from .context import Context
from .model import Finding

MAX_LINE = 998
"""RFC 5322 §2.1.1: a line is at most 998 characters plus CRLF."""
FAIL_SIZE = 25 * 1024 * 1024
"""Gmail refuses messages over 25 MB (Outlook.com at 20 MB after encoding overhead)."""
WARN_SIZE = 10 * 1024 * 1024
HTML_CLIP = 102 * 1024
"""Gmail shows only the first 102 KB of an HTML body ("[Message clipped]")."""
# RFC 5322 §3.6: fields that may occur at most once (From and Date exactly once).
_SINGLE = ("from", "sender", "reply-to", "to", "cc", "bcc", "message-id", "in-reply-to",
           "references", "subject", "date")  # fmt: skip
_SHORTENERS = re.compile(
    r"https?://(?:bit\.ly|tinyurl\.com|t\.co|goo\.gl|ow\.ly|is\.gd|buff\.ly|rebrand\.ly|"
    r"cutt\.ly|shorturl\.at|tiny\.cc)/",
    re.IGNORECASE,
)
_BULK_MARKERS = ("list-id", "list-unsubscribe", "feedback-id")


def _field_names(data: bytes) -> list[str]:
    """Every field name of the header, lower-cased, repeats kept (to count them)."""
    return [field.name for field in rfc5322.fields(data) if field.name]


def _parsed(ctx: Context) -> email.message.Message:
    data = ctx.options.message or b""
    return email.message_from_bytes(data, policy=compat32)


async def check_format(ctx: Context) -> Finding:
    """RFC 5322: From and Date exactly once, other single fields at most once, lines
    of at most 998 characters, header fields in ASCII (or RFC 2047 encoded)."""
    data = ctx.options.message or b""
    names = _field_names(data)
    problems: list[str] = []
    warnings: list[str] = []
    for name in _SINGLE:
        count = names.count(name)
        if count > 1:
            problems.append(f"{count} {name.title()} fields (RFC 5322 §3.6: at most one)")
    if names.count("from") == 0:
        problems.append("no From field (RFC 5322 §3.6: required)")
    long_lines = sum(1 for line in data.splitlines() if len(line) > MAX_LINE)
    if long_lines:
        problems.append(f"{long_lines} line(s) over {MAX_LINE} characters (RFC 5322 §2.1.1)")
    if not rfc5322.split_header(data)[0].isascii():
        warnings.append("raw 8-bit bytes in the header: encode them (RFC 2047) or send SMTPUTF8")
    if problems:
        return Finding.fail(
            "\n".join([*problems, *warnings]),
            "let the application's mail library build the message (one From, one Date, "
            "quoted-printable or base64 bodies)",
        )
    if warnings:
        return Finding.warn("\n".join(warnings), "encode non-ASCII header text (RFC 2047)")
    return Finding.ok(f"{len(names)} header fields, lines ≤ {MAX_LINE}")


async def check_date_message_id(ctx: Context) -> Finding:
    msg = _parsed(ctx)
    date, message_id = msg.get("Date"), msg.get("Message-ID")
    lines: list[str] = []
    bad: list[str] = []
    missing: list[str] = []
    if date is None:
        missing.append("Date")
    else:
        try:
            email.utils.parsedate_to_datetime(str(date))
            lines.append(f"Date: {date}")
        except (TypeError, ValueError):
            bad.append(f"Date {str(date)!r} is not an RFC 5322 date (§3.3)")
    if message_id is None:
        missing.append("Message-ID")
    elif not re.fullmatch(r"\s*<[^<>@\s]+@[^<>@\s]+>\s*", str(message_id)):
        bad.append(f"Message-ID {str(message_id)!r} is not <left@right> (RFC 5322 §3.6.4)")
    else:
        lines.append(f"Message-ID: {str(message_id).strip()}")
    if bad:
        return Finding.fail(
            "\n".join([*lines, *bad]), "let the mail library set Date and Message-ID"
        )
    if missing:
        return Finding.warn(
            "\n".join([*lines, f"missing: {', '.join(missing)}"]),
            "mailwright adds them at submission (RFC 6409 §8); other servers may not, and "
            "receivers score their absence: set them in the application",
        )
    return Finding.ok("\n".join(lines))


async def _dkim(ctx: Context) -> tuple[list[DkimResult], str, bytes]:
    """The message's signatures verified (once per run); an unsigned message is signed
    first with the configured keys of its From domain, as the server would."""

    async def compute() -> tuple[list[DkimResult], str, bytes]:
        data = ctx.options.message or b""
        if "dkim-signature" in _field_names(data):
            return await verify_message(data, ctx.resolver), "", data
        domain = rfc5322.author_domain(data)  # the domain the server signs for
        keys, _notes = await dmarc.signing_keys(ctx)
        keys = [k for k in keys if domain is not None and k.domain == domain]
        if not keys:
            return [], "unsigned, and no configured key for its From domain", data
        try:
            signed = await asyncio.to_thread(sign_message, data, keys) + data
        except DkimSignError as exc:
            return [], f"unsigned; signing it failed: {exc}", data
        note = f"unsigned: signed here as the server would (s={','.join(k.selector for k in keys)})"
        return await verify_message(signed, ctx.resolver), note, signed

    return await ctx.once("message-dkim", compute)


async def check_dkim(ctx: Context) -> Finding:
    results, note, _ = await _dkim(ctx)
    lines = [note] if note else []
    for r in results:
        lines.append(f"d={r.domain} s={r.selector} a={r.algorithm}: {r.status} ({r.reason})")
    if any(r.status is DkimStatus.PASS for r in results):
        failing = [r for r in results if r.status is not DkimStatus.PASS]
        if failing:
            return Finding.warn(
                "\n".join(lines),
                "one signature does not verify: publish its key or stop signing with it",
            )
        return Finding.ok("\n".join(lines))
    if any(r.status is DkimStatus.TEMPERROR for r in results):
        return Finding.error("\n".join(lines))
    return Finding.fail(
        "\n".join(lines or ["no DKIM signature"]),
        "send through mailwright with a [[dkim]] key for the From domain, and publish the "
        "record mailwright records prints",
    )


async def check_alignment(ctx: Context) -> Finding:
    """DMARC for the From domain with this message's DKIM results and SPF of our sending
    IPs for the envelope domain (Return-Path, else From)."""
    msg = _parsed(ctx)
    domain = rfc5322.author_domain(ctx.options.message or b"")
    if domain is None:
        return Finding.fail("no From address", "set a From address of your domain")
    envelope = email.utils.parseaddr(str(msg.get("Return-Path") or msg.get("From") or ""))[1]
    envelope_domain = envelope.rpartition("@")[2].lower() or domain
    results, _note, _ = await _dkim(ctx)
    ips = await ctx.sending_ips()
    helo = await ctx.helo_name() or ctx.domain
    spf = None
    lines: list[str] = []
    if ips:
        spf = await check_host(
            ips[0], envelope_domain, envelope or f"postmaster@{envelope_domain}",
            helo=helo, resolver=ctx.resolver,
        )  # fmt: skip
        lines.append(f"SPF {ips[0]} for {envelope_domain}: {spf.result}")
    verdict = await evaluate(domain, spf, results, ctx.resolver)
    lines.append(
        f"DMARC for {domain}: {verdict.result}"
        + (f" (aligned by {', '.join(verdict.aligned_by)})" if verdict.aligned_by else "")
    )
    if verdict.result is DmarcStatus.PASS:
        return Finding.ok("\n".join(lines))
    if verdict.result is DmarcStatus.TEMPERROR:
        return Finding.error("\n".join(lines))
    return Finding.fail(
        "\n".join([*lines, verdict.reason] if verdict.reason else lines),
        f"sign with a key of {domain} (d= aligned with From) or send with an envelope "
        f"domain under {domain} whose SPF authorizes the sending IP",
    )


def is_bulk(msg: email.message.Message) -> bool:
    """Mail to a list: List-Id, List-Unsubscribe, Feedback-ID or Precedence bulk/list."""
    if any(msg.get(name) is not None for name in _BULK_MARKERS):
        return True
    return str(msg.get("Precedence") or "").strip().lower() in ("bulk", "list", "junk")


async def check_unsubscribe(ctx: Context) -> Finding:
    """RFC 8058 one-click unsubscribe in bulk mail (required by Gmail and Yahoo)."""
    msg = _parsed(ctx)
    if not is_bulk(msg):
        return Finding.ok(
            "not bulk mail (no List-Id, List-Unsubscribe, Feedback-ID or Precedence: bulk); "
            "newsletters need one-click unsubscribe"
        )
    problems: list[str] = []
    unsubscribe = str(msg.get("List-Unsubscribe") or "")
    post = " ".join(str(msg.get("List-Unsubscribe-Post") or "").split())
    if not unsubscribe:
        problems.append("no List-Unsubscribe field")
    elif not re.search(r"<https://[^>]+>", unsubscribe, re.IGNORECASE):
        problems.append("List-Unsubscribe has no <https://...> URI (RFC 8058 §3.1)")
    if post.lower() != "list-unsubscribe=one-click":
        problems.append(
            "no List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058 §3.1)"
            if not post
            else f"List-Unsubscribe-Post is {post!r}, not List-Unsubscribe=One-Click"
        )
    results, _note, _ = await _dkim(ctx)
    covered = any(
        r.status is DkimStatus.PASS
        and {"list-unsubscribe", "list-unsubscribe-post"} <= {h.lower() for h in r.signed_headers}
        for r in results
    )
    if unsubscribe and not covered:
        problems.append(
            "List-Unsubscribe and List-Unsubscribe-Post are not under a valid DKIM "
            "signature (RFC 8058 §4)"
        )
    if problems:
        return Finding.fail(
            "\n".join(problems),
            "add List-Unsubscribe: <https://example.com/unsubscribe?id=...> and "
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click; mailwright signs both",
        )
    return Finding.ok(f"List-Unsubscribe: {unsubscribe}\nList-Unsubscribe-Post: {post}")


async def check_size(ctx: Context) -> Finding:
    data = ctx.options.message or b""
    size = len(data)
    text = f"{size:,} bytes"
    if size > FAIL_SIZE:
        return Finding.fail(text, "receivers refuse it (Gmail over 25 MB): send a link instead")
    if size > WARN_SIZE:
        return Finding.warn(text, "large messages are refused by smaller servers: send a link")
    for part in _parsed(ctx).walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes) and len(payload) > HTML_CLIP:
                return Finding.warn(
                    f"{text}; HTML body {len(payload):,} bytes",
                    "Gmail clips HTML over 102 KB (and the unsubscribe link with it): trim it",
                )
    return Finding.ok(text)


async def check_content(ctx: Context) -> Finding:
    """Traits spam filters score: HTML without a text part, an empty or shouting
    subject, URL shorteners, an address in the From display name."""
    msg = _parsed(ctx)
    problems: list[str] = []
    types = [part.get_content_type() for part in msg.walk()]
    if "text/html" in types and "text/plain" not in types:
        problems.append("HTML without a text/plain alternative")
    subject = str(msg.get("Subject") or "").strip()
    if not subject:
        problems.append("no Subject")
    elif len(subject) > 10 and subject.upper() == subject and any(c.isalpha() for c in subject):
        problems.append("Subject in capitals")
    display, _address = email.utils.parseaddr(str(msg.get("From") or ""))
    if "@" in display:
        problems.append(f"From display name contains an address ({display!r}): looks spoofed")
    bodies = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                bodies.append(payload.decode("utf-8", "replace"))
    shorteners = sorted({m.group(0) for m in _SHORTENERS.finditer("\n".join(bodies))})
    if shorteners:
        problems.append(f"URL shorteners: {', '.join(shorteners)} (often on blocklists)")
    if problems:
        return Finding.warn(
            "\n".join(problems),
            "add a text/plain part, a plain subject, full links to your own domain",
        )
    return Finding.ok("text part, subject and links look ordinary")
