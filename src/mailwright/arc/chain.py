"""The ARC header fields of a message, grouped into ARC Sets (RFC 8617 §4.1, §4.2).

Pure: no DNS, no keys. :func:`collect` reads every ARC-Authentication-Results (AAR),
ARC-Message-Signature (AMS) and ARC-Seal (AS) field, reads its instance tag and
checks the structure rules of RFC 8617 §5.2 step 1-3; the verifier and the sealer
both start from it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ..dkim.message import ParsedMessage
from ..dkim.tags import TagList, TagSyntaxError, parse_tag_list, shown
from ..errors import MailwrightError

__all__ = [
    "AAR",
    "AMS",
    "ARC_FIELDS",
    "AS",
    "MAX_INSTANCES",
    "ArcField",
    "ArcSet",
    "ArcStatus",
    "Chain",
    "ChainError",
    "collect",
    "tag_field",
]

MAX_INSTANCES = 50
"""RFC 8617 §4.2.1 and §5.2 step 1: instance values range over 1-50."""

AAR = "arc-authentication-results"
AMS = "arc-message-signature"
AS = "arc-seal"
ARC_FIELDS = (AAR, AMS, AS)
_AAR_INSTANCE = re.compile(r"[ \t\r\n]*i[ \t\r\n]*=[ \t\r\n]*([0-9]{1,6})[ \t\r\n]*;")
_DIGITS = re.compile(r"[0-9]{1,6}\Z")


class ArcStatus(enum.StrEnum):
    """The Chain Validation Status (RFC 8617 §4.4), as in ``cv=`` and ``arc=``."""

    NONE = "none"
    PASS = "pass"
    FAIL = "fail"


class ChainError(MailwrightError, ValueError):
    """The ARC fields do not form a valid chain; the status is ``fail`` (RFC 8617 §5.2)."""


@dataclass(frozen=True, slots=True)
class ArcField:
    """One ARC header field: its raw lines, the value as text (1 char per byte) and tags."""

    key: str
    raw: bytes
    instance: int
    value: str
    start: int
    """Offset of ``value`` in ``raw`` (after the colon)."""
    tags: TagList | None
    """The tag-list of an AMS or AS (None for the AAR, which is not a tag-list)."""

    def blanked(self) -> bytes:
        """The field with the ``b=`` value removed (RFC 6376 §3.7, RFC 8617 §5.1.1)."""
        assert self.tags is not None
        b_start, b_end = self.tags.spans["b"]
        return self.raw[: self.start + b_start] + self.raw[self.start + b_end :]

    @property
    def results(self) -> str:
        """An AAR's value after ``i=N;``: authserv-id and results (RFC 8617 §4.1.1)."""
        match = _AAR_INSTANCE.match(self.value)
        return self.value[match.end() :] if match else self.value


@dataclass(frozen=True, slots=True)
class ArcSet:
    """The three fields of one instance (RFC 8617 §4.2)."""

    instance: int
    aar: ArcField
    ams: ArcField
    seal: ArcField

    @property
    def cv(self) -> str:
        assert self.seal.tags is not None
        return (self.seal.tags.get("cv") or "").lower()

    @property
    def domain(self) -> str:
        assert self.seal.tags is not None
        return (self.seal.tags.get("d") or "").lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class Chain:
    """What :func:`collect` found: the sets in instance order, or why they are invalid."""

    sets: tuple[ArcSet, ...]
    highest: int
    """The greatest instance value seen (0: no ARC field at all)."""
    newest_cv: str | None
    """The cv= of the highest-instance ARC-Seal that could be read."""
    error: str | None = None

    @property
    def present(self) -> bool:
        return self.highest > 0 or self.error is not None


def tag_field(key: str, raw: bytes) -> ArcField:
    """Read one ARC field; raise :class:`ChainError` if it cannot be."""
    colon = raw.find(b":")
    start = colon + 1
    value = raw[start:-2].decode("latin-1")
    name = {AAR: "ARC-Authentication-Results", AMS: "ARC-Message-Signature", AS: "ARC-Seal"}[key]
    if key == AAR:
        match = _AAR_INSTANCE.match(value)
        if match is None:
            raise ChainError(f"{name} without an i= instance tag")
        return ArcField(key, raw, int(match.group(1)), value, start, None)
    try:
        tags = parse_tag_list(value)
    except TagSyntaxError as exc:
        raise ChainError(f"{name} syntax: {exc}") from None
    text = tags.get("i")
    if text is None or not _DIGITS.match(text):
        raise ChainError(f"{name} without a valid i= instance tag")
    if "b" not in tags:
        raise ChainError(f"{name} i={text} has no b= tag")
    return ArcField(key, raw, int(text), value, start, tags)


def collect(parsed: ParsedMessage) -> Chain:
    """The ARC Sets of a message, checked against RFC 8617 §5.2 steps 1-3.

    A chain that breaks a rule comes back with ``error`` set (its status is ``fail``);
    ``highest`` and ``newest_cv`` are filled in as far as the fields could be read, since
    a sealer needs them even for a broken chain (§5.1 steps 2-3).
    """
    fields: list[ArcField] = []
    problem: str | None = None
    for key, raw in parsed.headers:
        if key not in ARC_FIELDS:
            continue
        try:
            fields.append(tag_field(key, raw))
        except ChainError as exc:
            problem = problem or str(exc)
    if not fields:
        return Chain((), 0, None, problem)
    highest = max(f.instance for f in fields)
    seals = [f for f in fields if f.key == AS and f.instance == highest]
    newest_cv = None
    if seals and seals[0].tags is not None:
        newest_cv = (seals[0].tags.get("cv") or "").lower()
    if problem is not None:
        return Chain((), highest, newest_cv, problem)
    if highest > MAX_INSTANCES or len(fields) > 3 * MAX_INSTANCES:
        # RFC 8617 §5.2 step 1: more than 50 ARC Sets is a failed chain.
        return Chain((), highest, newest_cv, f"more than {MAX_INSTANCES} ARC Sets (i={highest})")
    if newest_cv == ArcStatus.FAIL:
        # §5.2 step 2: the last sealer already found the chain broken.
        return Chain((), highest, newest_cv, f"ARC-Seal i={highest} says cv=fail")
    by_instance: dict[int, dict[str, list[ArcField]]] = {}
    for f in fields:
        by_instance.setdefault(f.instance, {}).setdefault(f.key, []).append(f)
    sets: list[ArcSet] = []
    for instance in range(1, highest + 1):
        group = by_instance.get(instance)
        if group is None:
            # §5.2 step 3B: instances 1..N with no gap.
            return Chain((), highest, newest_cv, f"ARC Set i={instance} is missing")
        for key in ARC_FIELDS:
            found = group.get(key, [])
            if len(found) != 1:
                # §5.2 step 3A: exactly one of each field per set.
                what = "no" if not found else f"{len(found)}"
                return Chain(
                    (), highest, newest_cv, f"ARC Set i={instance} has {what} {_name(key)}"
                )
        arc_set = ArcSet(instance, group[AAR][0], group[AMS][0], group[AS][0])
        assert arc_set.seal.tags is not None
        if "h" in arc_set.seal.tags:
            # §4.1.3: an h= tag in an ARC-Seal MUST result in cv=fail.
            return Chain((), highest, newest_cv, f"ARC-Seal i={instance} has an h= tag")
        expected = ArcStatus.NONE if instance == 1 else ArcStatus.PASS
        if arc_set.cv != expected:
            # §5.2 step 3C: cv=none on the first set, cv=pass on every later one.
            return Chain(
                (),
                highest,
                newest_cv,
                f"ARC-Seal i={instance} has cv={shown(arc_set.cv, 10)}, expected {expected}",
            )
        sets.append(arc_set)
    return Chain(tuple(sets), highest, newest_cv)


def _name(key: str) -> str:
    return {AAR: "ARC-Authentication-Results", AMS: "ARC-Message-Signature", AS: "ARC-Seal"}[key]
