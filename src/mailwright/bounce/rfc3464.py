"""RFC 3464 delivery status notifications (and RFC 6533's global ones).

A DSN is ``multipart/report; report-type=delivery-status`` (RFC 6522) whose
``message/delivery-status`` part has one per-message block, then one block per
recipient (RFC 3464 §2.1), blocks separated by blank lines.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections.abc import Iterator
from email.message import Message

from .model import MAX_RECIPIENTS, RecipientReport, Report, clip, recipient_report
from .util import author, embedded_headers, header_text, part_text

_ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}
_BLANK = re.compile(r"\r?\n[ \t]*\r?\n")


def _blocks(part: Message) -> Iterator[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        for block in payload:
            if not isinstance(block, Message):
                continue
            yield block
            rest = block.get_payload()
            # message/global-delivery-status is parsed as one message: its body holds
            # the per-recipient blocks.
            if isinstance(rest, str) and rest.strip():
                yield from _text_blocks(rest)
        return
    yield from _text_blocks(part_text(part))


def _text_blocks(text: str) -> Iterator[Message]:
    parser = email.parser.Parser(policy=email.policy.compat32)
    for chunk in _BLANK.split(text):
        if chunk.strip():
            yield parser.parsestr(chunk.strip() + "\n", headersonly=True)


def _type_value(value: str) -> str:
    """``smtp; 550 5.1.1 ...`` → ``550 5.1.1 ...`` (RFC 3464 §2.3.6 diagnostic-type)."""
    kind, sep, rest = value.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else value


def _host(remote_mta: str) -> str:
    """``gmail-smtp-in.l.google.com. (142.250.102.27, the server for ...)`` → the name:
    receivers add comments after the RFC 3464 §2.3.5 ``mta-name``."""
    words = remote_mta.split()
    return words[0].rstrip(".") if words else ""


def parse(msg: Message, parts: list[Message]) -> Report:
    status_types = ("message/delivery-status", "message/global-delivery-status")
    status_part = next((p for p in parts if p.get_content_type() in status_types), None)
    if status_part is None:
        return Report(
            "unknown", "rfc3464", reason="report-type=delivery-status without a status part"
        )
    recipients: list[RecipientReport] = []
    per_message: Message | None = None
    truncated = False
    for block in _blocks(status_part):
        if per_message is None:
            per_message = block
            if not block.get("Final-Recipient"):
                continue
        if len(recipients) >= MAX_RECIPIENTS:
            truncated = True
            break
        final = header_text(block.get("Final-Recipient"))
        if not final:
            continue  # RFC 3464 §2.3.2: required; a block without it names nobody
        action = header_text(block.get("Action")).lower().split(" ")[0]
        if action not in _ACTIONS:
            action = "failed" if header_text(block.get("Status")).startswith("5") else "delayed"
        status = header_text(block.get("Status")).split(" ")[0]
        if not re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", status):
            status = ""
        recipients.append(
            recipient_report(
                final,
                action,
                status,
                _type_value(header_text(block.get("Diagnostic-Code"))),
                remote_mta=_host(_type_value(header_text(block.get("Remote-MTA")))),
                original_recipient=header_text(block.get("Original-Recipient")),
            )
        )
    original = _original(parts)
    actions = {r.action for r in recipients}
    if "failed" in actions:
        kind = "bounce"
    elif "delayed" in actions:
        kind = "delayed"
    elif recipients:
        kind = "delivered"
    else:
        kind = "unknown"
    head = per_message or Message()
    envid = header_text(head.get("Original-Envelope-Id")) or None
    return Report(
        kind,  # type: ignore[arg-type]
        "rfc3464",
        recipients=tuple(recipients),
        original_message_id=clip(header_text(original.get("Message-ID")), 998) or None
        if original is not None
        else None,
        original_envelope_id=clip(envid, 100) if envid else None,
        original_sender=None,
        original_from=author(original),
        reporting_mta=_type_value(header_text(head.get("Reporting-MTA"))) or None,
        reason="" if recipients else "a delivery-status part without recipient blocks",
        truncated=truncated,
    )


def _original(parts: list[Message]) -> Message | None:
    for part in parts:
        found = embedded_headers(part)
        if found is not None:
            return found
    return None
