"""SMTP MTA Strict Transport Security (RFC 8461): the rules, without I/O.

What a sender needs: the ``_mta-sts`` TXT record (§3.1), the policy file (§3.2), the
MX pattern match (§4.1) and the decision whether a cached policy is still usable
(§5.1). Fetching the policy over HTTPS and keeping the cache live in
:mod:`mailwright.delivery.mtasts_fetch`; the delivery client only asks
:meth:`Policy.allows_mx`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .errors import MailwrightError

Mode = Literal["enforce", "testing", "none"]

MAX_AGE_LIMIT = 31_557_600
"""§3.2: the largest ``max_age`` a policy may give (one year)."""
MAX_POLICY_BYTES = 64 * 1024
"""§3.3: the suggested maximum size of a policy body."""
WELL_KNOWN_PATH = "/.well-known/mta-sts.txt"
RECORD_PREFIX = "v=STSv1"

_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_POLICY_FIELD = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(.*?)[ \t]*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class MtaStsError(MailwrightError):
    """A record or policy that RFC 8461 says to treat as absent; the text says why."""


@dataclass(frozen=True, slots=True)
class StsRecord:
    """The ``_mta-sts`` TXT record: its ``id`` says when the policy changed."""

    id: str


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed policy file (§3.2)."""

    mode: Mode
    max_age: int
    mx: tuple[str, ...]
    text: str = ""
    """The body as fetched (kept in the cache, shown by the doctor)."""

    def allows_mx(self, host: str) -> bool:
        """§4.1: does one of the ``mx`` patterns match this MX host name?"""
        return any(mx_matches(pattern, host) for pattern in self.mx)


def parse_record(text: str) -> StsRecord:
    """One TXT record (§3.1 ABNF); raises :class:`MtaStsError` naming the fault."""
    if not text.isascii():
        raise MtaStsError("the record is not US-ASCII")
    fields = [f.strip(" \t") for f in text.split(";")]
    if fields and fields[-1] == "":
        fields.pop()  # a trailing delimiter is allowed
    if not fields or fields[0] != RECORD_PREFIX:
        raise MtaStsError(f"the record does not begin with {RECORD_PREFIX}")
    record_id: str | None = None
    for field in fields[1:]:
        name, eq, value = field.partition("=")
        if not eq or not _EXT_NAME.fullmatch(name) or not _EXT_VALUE.fullmatch(value):
            raise MtaStsError(f"malformed field {field!r}")
        if name == "id" and record_id is None:
            if not _ID.fullmatch(value):
                raise MtaStsError(f"id {value!r} is not 1-32 letters and digits")
            record_id = value
    if record_id is None:
        raise MtaStsError("the record has no id")
    return StsRecord(record_id)


def select_record(txts: Iterable[str]) -> StsRecord:
    """§3.1: of the TXT records at ``_mta-sts``, exactly one may begin with ``v=STSv1;``."""
    candidates = [
        t for t in txts if t.startswith(RECORD_PREFIX + ";") or t.strip() == RECORD_PREFIX
    ]
    if not candidates:
        raise MtaStsError("no TXT record begins with v=STSv1")
    if len(candidates) > 1:
        raise MtaStsError(f"{len(candidates)} TXT records begin with v=STSv1; exactly one may")
    return parse_record(candidates[0])


def parse_policy(body: str) -> Policy:
    """A policy file (§3.2); unknown fields are ignored, repeated ones but ``mx`` too."""
    values: dict[str, str] = {}
    mx: list[str] = []
    lines = body.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, raw in enumerate(lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        match = _POLICY_FIELD.fullmatch(line)
        if match is None:
            raise MtaStsError(f"line {number}: not a 'key: value' field: {line[:60]!r}")
        name, value = match.groups()
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise MtaStsError(f"line {number}: control character in {name}")
        if name == "mx":
            mx.append(value.lower())
        else:
            values.setdefault(name, value)  # §3.2: only the first of a repeated field counts
    if values.get("version") != "STSv1":
        raise MtaStsError(f"version is {values.get('version')!r}, not 'STSv1'")
    mode = values.get("mode")
    if mode not in ("enforce", "testing", "none"):
        raise MtaStsError(f"mode is {mode!r}, not enforce, testing or none")
    age_text = values.get("max_age", "")
    if not (age_text.isascii() and age_text.isdigit() and len(age_text) <= 10):
        raise MtaStsError(f"max_age {age_text!r} is not 1-10 digits")
    max_age = min(int(age_text), MAX_AGE_LIMIT)
    for pattern in mx:
        if not valid_mx_pattern(pattern):
            raise MtaStsError(f"mx {pattern!r} is not a host name or *.suffix")
    if not mx and mode != "none":
        raise MtaStsError(f"mode {mode} needs at least one mx")
    return Policy(mode, max_age, tuple(mx), body)  # type: ignore[arg-type]  # checked above


def mx_matches(pattern: str, host: str) -> bool:
    """§4.1: ``*.example.com`` matches exactly one more label (``mail.example.com``),
    not ``example.com`` nor ``a.b.example.com``; comparison ignores case and the root dot."""
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:]
    return host == pattern


def policy_host(domain: str) -> str:
    """§3.2: the Policy Host is ``mta-sts.`` + the Policy Domain."""
    return "mta-sts." + domain.lower().rstrip(".")


def record_name(domain: str) -> str:
    return "_mta-sts." + domain.lower().rstrip(".")


def is_text_plain(content_type: str | None) -> bool:
    """§3.2: the policy SHOULD be ``text/plain``; parameters are ignored."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "text/plain"


def fresh(fetched_at: float, max_age: int, now: float) -> bool:
    """§3.2 / §5.1: a cached policy is usable until ``max_age`` seconds after its fetch."""
    return now < fetched_at + max_age


def valid_mx_pattern(pattern: str) -> bool:
    """§3.2: a host name or ``*.`` and a domain (A-labels, lower case)."""
    name = pattern[2:] if pattern.startswith("*.") else pattern
    labels = name.rstrip(".").split(".")
    return len(labels) >= 1 and all(_LABEL.fullmatch(label) for label in labels)


def render_policy(mode: Mode, mx: Iterable[str], max_age: int) -> str:
    """Our policy file (§3.2), CRLF line ends; parsing it gives back the same values."""
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return "".join(f"{line}\r\n" for line in lines)


def policy_id(text: str) -> str:
    """An ``id`` that changes whenever the policy text does (§3.1: 1-32 letters/digits)."""
    return hashlib.sha256(text.encode()).hexdigest()[:20]
