"""Auto-replies (RFC 3834): vacation and out-of-office answers are not bounces.

RFC 3834 §5 has responders mark their answers ``Auto-Submitted: auto-replied``; many
do not, and are known by other header fields or by their subject.
"""

from __future__ import annotations

import re
from email.message import Message

from .util import header_text

_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|"
    r"away from (?:my|the) (?:desk|office)|on vacation|vacation reply|abwesenheit|"
    r"r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|"
    r"automatisch antwoord|autosvar|afwezig)",
    re.IGNORECASE,
)
_PREFIX = re.compile(r"^(?:(?:re|aw|fw|fwd|sv|antw)\s*:\s*)+", re.IGNORECASE)


def why(msg: Message, subject: str) -> str:
    """The evidence that ``msg`` is an auto-reply, or ''."""
    auto = header_text(msg.get("Auto-Submitted")).lower().split(";")[0].strip()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if msg.get(name) is not None:
            return name
    if header_text(msg.get("Precedence")).lower() == "auto_reply":
        return "Precedence: auto_reply"
    if header_text(msg.get("X-Auto-Response-Suppress")) and _SUBJECT.match(
        _PREFIX.sub("", subject)
    ):
        return "Exchange auto-reply"
    if _SUBJECT.match(_PREFIX.sub("", subject)):
        return "subject"
    return ""


def is_auto_reply(msg: Message, subject: str) -> bool:
    return bool(why(msg, subject))
