"""SPF record syntax (RFC 7208 §4.5, §4.6.1, §5, §6, §12): text in, terms out, no I/O.

:func:`parse_record` either returns a :class:`Record` whose every term is valid, or
raises :class:`SpfSyntaxError` naming the bad term and its offset in the record:
RFC 7208 §4.6 requires that a syntax error *anywhere* in the record is a
permerror before anything is evaluated, and a publisher needs to know where.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import MailwrightError
from .macro import (
    MacroContextKind,
    MacroString,
    MacroSyntaxError,
    parse_domain_spec,
    parse_macro_string,
)

VERSION = "v=spf1"

# Mechanisms whose evaluation queries the DNS: they count toward the limit of 10 (§4.6.4),
# together with the redirect modifier.
DNS_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})

# §4.6.1: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ), "=" immediately after it.
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.\-]*)=", re.ASCII)
_MECHANISM = re.compile(r"([+\-~?]?)([A-Za-z0-9]*)", re.ASCII)
# §5.6: ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT); ip6 up to three digits.
_DUAL_CIDR = re.compile(r"(?:/(0|[1-9][0-9]{0,1}))?(?://(0|[1-9][0-9]{0,2}))?\Z", re.ASCII)
_CIDR4 = re.compile(r"/(0|[1-9][0-9]?)\Z", re.ASCII)
_CIDR6 = re.compile(r"/(0|[1-9][0-9]{0,2})\Z", re.ASCII)
# §5.6: qnum; leading zeros are not allowed.
_QNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"
_IP4_NETWORK = re.compile(rf"{_QNUM}\.{_QNUM}\.{_QNUM}\.{_QNUM}\Z", re.ASCII)
_IP6_CHARS = re.compile(r"[0-9A-Fa-f:.]+\Z", re.ASCII)


class Qualifier(enum.StrEnum):
    """§4.6.2: the result a matching mechanism produces."""

    PASS = "+"
    FAIL = "-"
    SOFTFAIL = "~"
    NEUTRAL = "?"

    @property
    def result(self) -> str:
        return {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}[self.value]


class SpfSyntaxError(MailwrightError, ValueError):
    """A record that violates RFC 7208's grammar.

    ``term`` is the offending term as written and ``offset`` its 0-based position
    in the record text (both None for record-level problems such as a missing version).
    """

    def __init__(self, message: str, term: str | None = None, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.term = term
        self.offset = offset

    def __str__(self) -> str:
        if self.term is None:
            return self.message
        return f"{self.message} (term {self.term!r} at offset {self.offset})"


@dataclass(frozen=True, slots=True)
class Mechanism:
    """One directive: qualifier + mechanism (§4.6.1, §5)."""

    qualifier: Qualifier
    name: str
    """Lowercase mechanism name: all, include, a, mx, ptr, ip4, ip6, exists."""
    text: str
    """The term as written in the record."""
    offset: int
    domain_spec: MacroString | None = None
    cidr4: int | None = None
    cidr6: int | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None

    @property
    def queries_dns(self) -> bool:
        return self.name in DNS_MECHANISMS

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Modifier:
    """``name=value`` (§6); ``redirect`` and ``exp`` have a parsed domain-spec value."""

    name: str
    """Lowercase modifier name."""
    value: MacroString
    text: str
    offset: int

    def __str__(self) -> str:
        return self.text


Term = Mechanism | Modifier


@dataclass(frozen=True, slots=True)
class Record:
    """A syntactically valid SPF record."""

    text: str
    terms: tuple[Term, ...]
    redirect: Modifier | None = None
    exp: Modifier | None = None
    mechanisms: tuple[Mechanism, ...] = field(default=())

    @property
    def has_all(self) -> bool:
        """§5.1/§6.1: with an "all" anywhere, redirect is ignored."""
        return any(m.name == "all" for m in self.mechanisms)

    @property
    def unknown_modifiers(self) -> tuple[Modifier, ...]:
        return tuple(
            t for t in self.terms if isinstance(t, Modifier) and t.name not in ("redirect", "exp")
        )


def is_spf_record(text: str) -> bool:
    """§4.5: the record starts with exactly "v=spf1" (any case) followed by SP or its end."""
    return text[:6].lower() == VERSION and (len(text) == 6 or text[6] == " ")


def split_terms(text: str) -> list[tuple[int, str]]:
    """The terms after the version, with offsets; §4.6.1: separated by one or more SP only."""
    terms: list[tuple[int, str]] = []
    i, n = len(VERSION), len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        j = text.find(" ", i)
        j = n if j < 0 else j
        terms.append((i, text[i:j]))
        i = j
    return terms


def parse_record(text: str) -> Record:
    """Parse an SPF record (which must pass :func:`is_spf_record`)."""
    if not is_spf_record(text):
        raise SpfSyntaxError(f"not an SPF record: it does not start with {VERSION!r}")
    terms: list[Term] = []
    redirect: Modifier | None = None
    exp: Modifier | None = None
    for offset, raw in split_terms(text):
        term = parse_term(raw, offset)
        if isinstance(term, Modifier) and term.name in ("redirect", "exp"):
            seen = redirect if term.name == "redirect" else exp
            if seen is not None:
                # §6: "These two modifiers MUST NOT appear in a record more than once each."
                raise SpfSyntaxError(f"{term.name}= appears more than once", raw, offset)
            if term.name == "redirect":
                redirect = term
            else:
                exp = term
        terms.append(term)
    mechanisms = tuple(t for t in terms if isinstance(t, Mechanism))
    return Record(text, tuple(terms), redirect, exp, mechanisms)


def parse_term(raw: str, offset: int) -> Term:
    """Parse one term; raises :class:`SpfSyntaxError` pointing at it."""
    for ch in raw:
        if not "\x21" <= ch <= "\x7e":
            # §3.1 / §4.6.1: records are 7-bit ASCII, terms are visible characters only.
            raise SpfSyntaxError(f"character {ch!r} is not allowed in a record", raw, offset)
    modifier = _MODIFIER.match(raw)
    if modifier is not None:
        return _parse_modifier(modifier.group(1).lower(), raw[modifier.end() :], raw, offset)
    return _parse_mechanism(raw, offset)


def _parse_modifier(name: str, value: str, raw: str, offset: int) -> Modifier:
    try:
        if name in ("redirect", "exp"):
            # §6.1, §6.2: the value is a domain-spec; an empty or malformed one is a
            # permerror (the suite's exp-empty-domain, redirect-empty-domain tests).
            parsed = parse_domain_spec(value)
        else:
            # §6: unknown modifiers are ignored, but their value must be a macro-string.
            parsed = parse_macro_string(value, MacroContextKind.MODIFIER)
    except MacroSyntaxError as exc:
        raise SpfSyntaxError(f"bad {name}= value: {exc.message}", raw, offset) from None
    return Modifier(name, parsed, raw, offset)


def _parse_mechanism(raw: str, offset: int) -> Mechanism:
    match = _MECHANISM.match(raw)
    assert match is not None  # the pattern matches the empty string
    qualifier = Qualifier(match.group(1) or "+")
    name = match.group(2).lower()
    rest = raw[match.end() :]
    if name not in MECHANISMS:
        what = f"unknown mechanism {match.group(2)!r}" if name else "missing mechanism name"
        raise SpfSyntaxError(what, raw, offset)
    if rest and rest[0] not in ":/":
        raise SpfSyntaxError(f"unexpected {rest[0]!r} after {name!r}", raw, offset)

    def bad(problem: str) -> SpfSyntaxError:
        return SpfSyntaxError(f"{name}: {problem}", raw, offset)

    if name == "all":
        if rest:
            raise bad("'all' takes no argument")  # §5.1: all = "all"
        return Mechanism(qualifier, name, raw, offset)

    if name in ("include", "exists", "ptr"):
        # §5.2, §5.7: ":" domain-spec required; §5.5: optional. None takes a CIDR length.
        if not rest:
            if name == "ptr":
                return Mechanism(qualifier, name, raw, offset)
            raise bad(f"'{name}' needs ':' and a domain")
        if rest[0] != ":":
            raise bad("no CIDR length is allowed here")
        return Mechanism(qualifier, name, raw, offset, domain_spec=_domain(rest[1:], bad))

    if name in ("a", "mx"):
        # §5.3, §5.4: [ ":" domain-spec ] [ dual-cidr-length ]
        spec_text = ""
        if rest.startswith(":"):
            cidr_match = _DUAL_CIDR.search(rest)
            assert cidr_match is not None  # everything in it is optional
            spec_text = rest[1 : cidr_match.start()]
            cidr_text = cidr_match.group(0)
        else:
            cidr_text = rest
        cidr = _DUAL_CIDR.match(cidr_text)
        if cidr is None or cidr.end() != len(cidr_text):
            raise bad(f"bad CIDR length {cidr_text!r}")
        cidr4 = int(cidr.group(1)) if cidr.group(1) is not None else None
        cidr6 = int(cidr.group(2)) if cidr.group(2) is not None else None
        if cidr4 is not None and cidr4 > 32:
            raise bad(f"IPv4 CIDR length {cidr4} is over 32")
        if cidr6 is not None and cidr6 > 128:
            raise bad(f"IPv6 CIDR length {cidr6} is over 128")
        spec = _domain(spec_text, bad) if rest.startswith(":") else None
        return Mechanism(qualifier, name, raw, offset, spec, cidr4, cidr6)

    # ip4 / ip6 (§5.6): ":" network [ cidr-length ]
    if not rest.startswith(":") or len(rest) == 1:
        raise bad(f"'{name}' needs ':' and a network")
    value = rest[1:]
    cidr_re = _CIDR4 if name == "ip4" else _CIDR6
    length: int | None = None
    cm = cidr_re.search(value)
    if cm is not None:
        length = int(cm.group(1))
        value = value[: cm.start()]
    elif "/" in value:
        raise bad(f"bad CIDR length in {rest[1:]!r}")
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    if name == "ip4":
        if not _IP4_NETWORK.match(value):
            raise bad(f"{value!r} is not a dotted-quad IPv4 address")
        if length is None:
            length = 32
        if length > 32:
            raise bad(f"IPv4 CIDR length {length} is over 32")
        network = ipaddress.IPv4Network(f"{value}/{length}", strict=False)
    else:
        try:
            if not _IP6_CHARS.match(value):
                raise ValueError
            address = ipaddress.IPv6Address(value)
        except ValueError:
            raise bad(f"{value!r} is not an IPv6 address") from None
        if length is None:
            length = 128
        if length > 128:
            raise bad(f"IPv6 CIDR length {length} is over 128")
        network = ipaddress.IPv6Network(f"{address}/{length}", strict=False)
    return Mechanism(qualifier, name, raw, offset, network=network)


def _domain(text: str, bad: Callable[[str], SpfSyntaxError]) -> MacroString:
    try:
        return parse_domain_spec(text)
    except MacroSyntaxError as exc:
        raise bad(exc.message) from None
