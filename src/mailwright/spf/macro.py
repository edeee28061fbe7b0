"""The SPF macro language (RFC 7208 §7): parsing and expansion, without I/O.

A macro string is parsed once into literal text and :class:`MacroExpand` items, so
that a syntax error is found when the record is parsed (RFC 7208 §4.6: errors
anywhere in the record are a permerror before anything is evaluated) and
expansion is a pure function of a :class:`MacroContext`.

The one macro that needs DNS, ``%{p}`` (the validated domain name of the client,
§7.3), is resolved by the evaluator beforehand and passed in the context.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

from ..dns.names import MAX_NAME_LENGTH
from ..errors import MailwrightError

# RFC 7208 §7.1: macro-letter; c, r and t only in explanation text (§7.2).
DOMAIN_LETTERS = frozenset("slodiphv")
EXPLAIN_LETTERS = DOMAIN_LETTERS | frozenset("crt")
DELIMITERS = frozenset(".-+,/_=")

# RFC 7208 §7.1: toplabel = ( *alphanum ALPHA *alphanum ) /
#                           ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
_TOPLABEL = re.compile(
    r"(?:[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9])\Z", re.ASCII
)


class MacroContextKind(Enum):
    """Where a macro string appears: it decides the letters and characters allowed."""

    DOMAIN = "domain-spec"
    """A mechanism or modifier target (§4.8): letters ``slodiphv``."""
    MODIFIER = "unknown-modifier"
    """The value of an unknown modifier (§6, ABNF ``macro-string``): every letter."""
    EXPLAIN = "explain-string"
    """The TXT record an ``exp=`` points at (§6.2): spaces and ``c``/``r``/``t`` allowed."""


class MacroSyntaxError(MailwrightError, ValueError):
    """A macro string that does not follow RFC 7208 §7.1; ``offset`` is where it goes wrong."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True, slots=True)
class MacroExpand:
    """One ``%{...}`` item: letter, transformers and delimiters (§7.3)."""

    letter: str
    """Lowercase macro letter."""
    url_escape: bool
    """An uppercase letter: the value is URL-escaped after transformation (§7.3)."""
    digits: int | None
    """Keep this many right-hand parts (None: all)."""
    reverse: bool
    delimiters: str
    """Characters to split on; empty means the default ".". """
    text: str
    """The macro as written, for messages."""


Token = str | MacroExpand


@dataclass(frozen=True, slots=True)
class MacroString:
    """A parsed macro string: literal text (``%%``, ``%_``, ``%-`` already resolved) and macros."""

    text: str
    tokens: tuple[Token, ...]

    @property
    def letters(self) -> frozenset[str]:
        """The macro letters used, lowercase."""
        return frozenset(t.letter for t in self.tokens if isinstance(t, MacroExpand))

    @property
    def is_constant(self) -> bool:
        return not any(isinstance(t, MacroExpand) for t in self.tokens)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class MacroContext:
    """Everything a macro can expand to (§7.2), for one check_host() level.

    ``ip`` must already be an IPv4 address when the client used an IPv4-mapped IPv6
    address (RFC 7208 §5: it is treated as IPv4 everywhere).
    """

    sender: str
    """``local-part@domain``, with ``postmaster`` for a missing local-part (§4.3)."""
    domain: str
    """The current <domain> (changes with include and redirect)."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    helo: str
    receiver: str = "unknown"
    """``%{r}``: the checking host's name; "unknown" when none is configured (§7.3)."""
    timestamp: int = 0
    """``%{t}``: seconds since the epoch when the check ran."""
    validated_name: str | None = None
    """``%{p}``: found by the evaluator; None expands to "unknown" (§7.3)."""

    @property
    def local_part(self) -> str:
        return split_sender(self.sender)[0]

    @property
    def sender_domain(self) -> str:
        return split_sender(self.sender)[1]


def split_sender(sender: str) -> tuple[str, str]:
    """Split ``local@domain`` at the last "@"; a missing local-part becomes ``postmaster``.

    RFC 7208 §4.3: "If the <sender> has no local-part, substitute the string
    'postmaster' for the local-part." A sender without any "@" is a bare domain
    (the HELO identity, §2.3).
    """
    local, at, domain = sender.rpartition("@")
    if not at:
        return "postmaster", sender
    return (local or "postmaster"), domain


def parse_macro_string(text: str, kind: MacroContextKind = MacroContextKind.DOMAIN) -> MacroString:
    """Parse ``text`` as a macro-string (or explain-string), raising :class:`MacroSyntaxError`."""
    letters = DOMAIN_LETTERS if kind is MacroContextKind.DOMAIN else EXPLAIN_LETTERS
    tokens: list[Token] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "%":
            # RFC 7208 §7.1: macro-literal = %x21-24 / %x26-7E; explain-string adds SP.
            if not ("\x21" <= ch <= "\x7e" or (ch == " " and kind is MacroContextKind.EXPLAIN)):
                raise MacroSyntaxError(f"character {ch!r} is not allowed here", i)
            literal.append(ch)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt in ("%", "_", "-") and nxt:
            literal.append({"%": "%", "_": " ", "-": "%20"}[nxt])  # §7.1 special cases
            i += 2
            continue
        if nxt != "{":
            # RFC 7208 §7.3: "A '%' character not followed by a '{', '%', '-', or '_'
            # character is a syntax error."
            raise MacroSyntaxError("'%' must be followed by '{', '%', '_' or '-'", i)
        end = text.find("}", i + 2)
        if end < 0:
            raise MacroSyntaxError("unterminated macro: missing '}'", i)
        macro = _parse_expand(text[i : end + 1], letters, i)
        if literal:
            tokens.append("".join(literal))
            literal = []
        tokens.append(macro)
        i = end + 1
    if literal:
        tokens.append("".join(literal))
    return MacroString(text, tuple(tokens))


def _parse_expand(macro: str, letters: frozenset[str], offset: int) -> MacroExpand:
    # macro-expand = "%{" macro-letter transformers *delimiter "}"; transformers = *DIGIT ["r"]
    body = macro[2:-1]
    if not body:
        raise MacroSyntaxError("empty macro '%{}'", offset)
    letter = body[0]
    if letter.lower() not in letters:
        if letter.lower() in EXPLAIN_LETTERS:
            raise MacroSyntaxError(
                f"macro letter {letter!r} is allowed only in explanation text (RFC 7208 §7.2)",
                offset,
            )
        raise MacroSyntaxError(f"unknown macro letter {letter!r} in {macro}", offset)
    j = 1
    while j < len(body) and body[j].isdigit() and body[j].isascii():
        j += 1
    digits_text = body[1:j]
    digits: int | None = None
    if digits_text:
        digits = int(digits_text) if len(digits_text) <= 4 else 10_000
        if digits == 0:
            # §7.3: "If a DIGIT is specified, the value MUST be nonzero."
            raise MacroSyntaxError(f"{macro}: the number of parts must not be zero", offset)
    reverse = False
    if j < len(body) and body[j] in "rR":
        reverse = True
        j += 1
    delimiters = body[j:]
    for ch in delimiters:
        if ch not in DELIMITERS:
            raise MacroSyntaxError(f"{macro}: {ch!r} is not a macro delimiter", offset)
    return MacroExpand(
        letter=letter.lower(),
        url_escape=letter.isupper(),
        digits=digits,
        reverse=reverse,
        delimiters=delimiters,
        text=macro,
    )


def parse_domain_spec(text: str) -> MacroString:
    """Parse a domain-spec (§7.1): a macro-string ending in a macro or "." toplabel ["."].

    The end rule is what rejects ``a:foo-bar``, ``a:museum``, ``a:1.2.3.4`` and
    ``ip4``-style port suffixes; it is checked on the text as written, never after
    expansion (the suite's ``invalid-hello-macro`` test).
    """
    if not text:
        raise MacroSyntaxError("empty domain-spec", 0)
    spec = parse_macro_string(text, MacroContextKind.DOMAIN)
    last = spec.tokens[-1]
    if isinstance(last, MacroExpand) or _ends_with_special(text):
        return spec
    # The trailing literal text (after the last macro) must end with "." toplabel ["."].
    tail = text[_last_macro_end(text) :]
    body = tail[:-1] if tail.endswith(".") else tail
    dot = body.rfind(".")
    if dot < 0 or not _TOPLABEL.match(body[dot + 1 :]):
        where = len(text) - len(tail) + max(dot + 1, 0)
        raise MacroSyntaxError(
            f"{text!r} does not end in a valid top-level label (RFC 7208 §7.1)", where
        )
    return spec


def _ends_with_special(text: str) -> bool:
    """True when the text ends with one of the two-character macro-expands %%, %_ or %-."""
    # Count the run of '%' before the final character: an odd run means "%x" is a macro.
    if len(text) < 2 or text[-1] not in "%_-":
        return False
    run = 0
    k = len(text) - 2
    while k >= 0 and text[k] == "%":
        run += 1
        k -= 1
    return run % 2 == 1


def _last_macro_end(text: str) -> int:
    """Index just after the last macro-expand in (already validated) ``text``."""
    last = 0
    i = 0
    while i < len(text):
        if text[i] == "%":
            if i + 1 < len(text) and text[i + 1] == "{":
                i = text.index("}", i) + 1
            else:
                i += 2
            last = i
        else:
            i += 1
    return last


def expand(spec: MacroString, ctx: MacroContext, limit: int | None = None) -> str:
    """Expand a parsed macro string (§7.3); the result is not truncated or stripped.

    With ``limit``, only the first ``limit`` characters are produced: an explanation
    is cut to a fixed length anyway, and a TXT record of thousands of macros would
    otherwise be expanded in full first.
    """
    out: list[str] = []
    size = 0
    for token in spec.tokens:
        if limit is not None and size >= limit:
            break
        piece = token if isinstance(token, str) else _expand_one(token, ctx)
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    return text if limit is None else text[:limit]


def expand_domain(spec: MacroString, ctx: MacroContext) -> str:
    """Expand a domain-spec into a <target-name>: trailing dot dropped, then truncated.

    RFC 7208 §7.3: a name longer than 253 characters loses labels from the left
    until it fits. Only the right-hand end of the expansion can survive that, so the
    tokens are expanded from the right and expansion stops as soon as the kept part
    is decided: a hostile record of thousands of macros then costs no more than a
    short one (§4.6.4 limits work per check_host(); this keeps one term cheap too).
    """
    pieces: list[str] = []
    size = 0
    has_dot = False
    seen_text = False
    for token in reversed(spec.tokens):
        piece = token if isinstance(token, str) else _expand_one(token, ctx)
        if not seen_text and piece:
            seen_text = True
            if piece.endswith("."):
                piece = piece[:-1]  # the trailing dot of the whole name (§7.3)
        pieces.append(piece)
        size += len(piece)
        has_dot = has_dot or "." in piece
        # Once the suffix is over 253 characters and holds a dot, the truncated name
        # lies inside it: the labels to the left would be removed anyway.
        if size > MAX_NAME_LENGTH and has_dot:
            break
    pieces.reverse()
    return truncate_name("".join(pieces))


def truncate_name(name: str) -> str:
    """Drop leftmost labels until ``name`` is at most 253 characters (RFC 7208 §7.3).

    One pass: the result starts after the first "." that leaves at most 253
    characters, or, with no such dot, is the last label (which cannot be shortened).
    """
    if len(name) <= MAX_NAME_LENGTH:
        return name
    dot = name.find(".", len(name) - MAX_NAME_LENGTH - 1)
    if dot < 0:
        dot = name.rfind(".")
    return name[dot + 1 :]


def _value(letter: str, ctx: MacroContext) -> str:
    ip = ctx.ip
    if letter == "s":
        local, domain = split_sender(ctx.sender)
        return f"{local}@{domain}"
    if letter == "l":
        return ctx.local_part
    if letter == "o":
        return ctx.sender_domain
    if letter == "d":
        return ctx.domain
    if letter == "i":
        return dotted_ip(ip)
    if letter == "p":
        return ctx.validated_name or "unknown"
    if letter == "v":
        return "in-addr" if ip.version == 4 else "ip6"
    if letter == "h":
        return ctx.helo
    if letter == "c":
        # §7.3: IPv4 dotted quad; IPv6 in any RFC 4291 §2.2 form (we use the compressed one).
        return str(ip)
    if letter == "r":
        return ctx.receiver or "unknown"
    if letter == "t":
        return str(ctx.timestamp)
    raise AssertionError(f"unparsed macro letter {letter!r}")  # pragma: no cover


def dotted_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``%{i}``: dotted quad for IPv4; for IPv6 the 32 nibbles separated by dots (§7.3)."""
    if ip.version == 4:
        return str(ip)
    return ".".join(ip.exploded.replace(":", ""))


def _expand_one(macro: MacroExpand, ctx: MacroContext) -> str:
    value = _value(macro.letter, ctx)
    if macro.digits is not None or macro.reverse or macro.delimiters:
        # §7.3: split on the delimiters (default "."), reverse, keep the right-most N,
        # and rejoin with "." whatever the delimiters were.
        delims = macro.delimiters or "."
        parts = re.split("[" + re.escape(delims) + "]", value)
        if macro.reverse:
            parts.reverse()
        if macro.digits is not None and macro.digits < len(parts):
            parts = parts[len(parts) - macro.digits :]
        value = ".".join(parts)
    if macro.url_escape:
        # §7.3: uppercase macros are URL-escaped: everything outside RFC 3986 "unreserved".
        value = quote(value, safe="-._~")
    return value
