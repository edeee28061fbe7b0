"""Authentication-Results header fields (RFC 8601): produce, parse, and strip forged ones.

Producing: :func:`spf_result`, :func:`dkim_result`, :func:`dmarc_result` build one
``resinfo`` each from mailwright's (or any duck-typed) SPF/DKIM/DMARC results;
:class:`AuthenticationResults` formats the field, folded, with values quoted
only where the grammar requires it.

Parsing: :func:`parse` reads a field value into the same data object, handling
comments (CFWS, nested), quoted strings, versions and several results; it
raises :class:`AuthResSyntaxError` with the offset of the problem.

Trust: :func:`strip_forged` removes incoming fields that claim our authserv-id
or bear a version we do not support (RFC 8601 §5), before we add our own.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .dns.names import is_dns_name
from .errors import MailwrightError
from .message import split_header

if TYPE_CHECKING:
    from .dmarc.policy import DmarcResult
    from .dmarc.record import DmarcRecord, Policy

HEADER_NAME = "Authentication-Results"

# RFC 2045 §5.1 tspecials: a "value" containing any of these (or space/CTL) is quoted.
_TSPECIALS = set('()<>@,;:\\"/[]?=')
_KEYWORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")  # RFC 5321 Keyword
_DOT_ATOM_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+\Z")
_QUOTED_LOCAL = re.compile(r'^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"\Z')  # RFC 5321
MAX_FIELD_LENGTH = 64 * 1024
MAX_REASON_LENGTH = 200
"""Reasons we produce are cut here: they explain, and an SPF problem can quote a whole record."""
MAX_LINE_LENGTH = 998
"""RFC 5322 §2.1.1: a line MUST NOT be longer than this (CRLF excluded)."""
FOLD_WIDTH = 76
"""RFC 5322 §2.1.1: lines SHOULD stay under 78 characters; we break before this."""
"""Longer field values are refused by the parser: no legitimate field is this long."""
MAX_RESULTS = 100


class AuthResSyntaxError(MailwrightError, ValueError):
    """An Authentication-Results value that does not follow RFC 8601 §2.2."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Property:
    """One ``ptype.property=value`` (RFC 8601 §2.3), e.g. ``smtp.mailfrom=example.com``."""

    ptype: str
    name: str
    value: str

    def format(self) -> str:
        return f"{self.ptype}.{self.name}={format_pvalue(self.value)}"


@dataclass(frozen=True, slots=True)
class ResInfo:
    """One ``method=result`` statement with its reason and properties."""

    method: str
    result: str
    reason: str | None = None
    properties: tuple[Property, ...] = ()
    method_version: str | None = None
    comment: str | None = None
    """A comment written after the result, e.g. ``(p=reject dis=none)``."""

    def get(self, ptype: str, name: str) -> str | None:
        """The first value of ``ptype.name``, case-insensitively, or None."""
        for prop in self.properties:
            if prop.ptype.lower() == ptype.lower() and prop.name.lower() == name.lower():
                return prop.value
        return None

    def format(self) -> str:
        return " ".join(self.words())

    def words(self, limit: int | None = None) -> list[str]:
        """The statement as unbreakable words: a fold goes only between them.

        A quoted reason, a comment or a quoted pvalue is one word, so folding never
        lands inside a quoted string (where the added whitespace would change the
        value). With ``limit``, no word is longer: an over-long reason or comment is
        cut (marked "..."), an over-long property is left out, since a cut identity
        would be a different identity.
        """
        method = self.method + (f"/{self.method_version}" if self.method_version else "")
        parts = [f"{method}={self.result}"]
        if self.comment:
            parts.append(_fit(self.comment, lambda t: f"({_escape_comment(t)})", limit))
        if self.reason is not None:
            parts.append(_fit(self.reason, lambda t: f"reason={quote(t, always=True)}", limit))
        for prop in self.properties:
            word = prop.format()
            if limit is None or len(word) <= limit:
                parts.append(word)
        return parts


@dataclass(frozen=True)
class AuthenticationResults:
    """A whole Authentication-Results field: authserv-id, version and results.

    No results means ``none`` (RFC 8601 §2.2 no-result: nothing was checked).
    """

    authserv_id: str
    results: tuple[ResInfo, ...] = ()
    version: str | None = None

    def find(self, method: str) -> list[ResInfo]:
        return [r for r in self.results if r.method.lower() == method.lower()]

    @property
    def supported(self) -> bool:
        """False for a version we do not know: consumers must ignore the field (§2.6, §5)."""
        return is_supported_version(self.version)

    def value(self) -> str:
        """The field value on one line (no folding)."""
        head = quote(self.authserv_id) + (f" {self.version}" if self.version else "")
        if not self.results:
            return f"{head}; none"
        return "; ".join([head, *(r.format() for r in self.results)])

    def field(self, *, fold: bool = True, linesep: str = "\r\n") -> str:
        """``Authentication-Results: ...`` with each result on its own folded line.

        No trailing line break; RFC 5322 §2.1.1 asks for lines under 78 characters,
        which one result per line keeps for ordinary values.
        """
        if not fold:
            return f"{HEADER_NAME}: {self.value()}"
        head = quote(self.authserv_id) + (f" {self.version}" if self.version else "")
        if not self.results:
            return f"{HEADER_NAME}: {head}; none"
        lines = [f"{HEADER_NAME}: {head};"]
        # The longest word that still fits a line of 998 with the indent and the ";".
        limit = MAX_LINE_LENGTH - len(_CONTINUATION) - 1
        for index, result in enumerate(self.results):
            end = ";" if index < len(self.results) - 1 else ""
            lines.append(_fold_words(result.words(limit), linesep) + end)
        return linesep.join(lines)


_CONTINUATION = "\t  "


def _fit(text: str, render: Callable[[str], str], limit: int | None) -> str:
    """``render(text)``, with ``text`` cut (and marked) until the result fits ``limit``."""
    word = render(text)
    keep = len(text)
    while limit is not None and len(word) > limit and keep > 0:
        keep = min(keep - 1, (limit - 16) // 2)  # escaping at most doubles a character
        word = render(text[: max(keep, 0)] + "...")
    return word


def clean_reason(text: str, limit: int = MAX_REASON_LENGTH) -> str:
    """A reason fit for the field: printable ASCII, one line, at most ``limit`` characters.

    RFC 8601 §2.2 (reason is a MIME value; RFC 5322 fields are ASCII outside EAI):
    whitespace runs become one space, other characters outside 0x20-0x7E are escaped
    (``\\xe9``), and a longer text is cut and ends with "...".
    """
    flat = " ".join(text.split())
    out = "".join(
        ch if " " <= ch <= "~" else ch.encode("unicode_escape").decode("ascii") for ch in flat
    )
    if len(out) > limit:
        out = out[: limit - 3].rstrip() + "..."
    return out


def _fold_words(words: Sequence[str], linesep: str, width: int = FOLD_WIDTH) -> str:
    """Tab-indented continuation lines, breaking between words near ``width``."""
    lines: list[str] = []
    current = "\t"
    for word in words:
        if current != "\t" and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = _CONTINUATION + word
        else:
            current = word if current == "\t" else current + " " + word
            if not current.startswith("\t"):
                current = "\t" + current
    lines.append(current)
    return linesep.join(lines)


# ---------------------------------------------------------------------------
# quoting


def quote(value: str, *, always: bool = False) -> str:
    """A MIME ``value`` (RFC 2045 §5.1): a token when possible, else a quoted-string."""
    if not always and value and not any(c in _TSPECIALS or c <= " " or c == "\x7f" for c in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " or c == "\t" else " " for c in escaped)
    return f'"{escaped}"'


def format_pvalue(value: str) -> str:
    """A pvalue (RFC 8601 §2.2): ``[[local-part] "@"] domain-name`` bare, else a value."""
    local, at, domain = value.rpartition("@")
    # A quoted local part must be a whole quoted-string: '"a"b"' or '"\\"' would not parse
    # back, and CR, LF or NUL inside (a DKIM i= is the signer's text) would break the field.
    quoted_local = _QUOTED_LOCAL.match(local) is not None
    if at and is_dns_name(domain) and (not local or quoted_local or _DOT_ATOM_LOCAL.match(local)):
        return value
    if not at and is_dns_name(value):
        return value
    return quote(value)


def _escape_comment(text: str) -> str:
    cleaned = "".join(c if c >= " " else " " for c in text)
    return cleaned.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


# ---------------------------------------------------------------------------
# producing from SPF / DKIM / DMARC results


def _word(value: object) -> str:
    return str(getattr(value, "value", value)).strip().lower()


def spf_result(
    result: object,
    *,
    mailfrom: str | None = None,
    helo: str | None = None,
    reason: str | None = None,
) -> ResInfo:
    """``spf=RESULT smtp.mailfrom=DOMAIN`` (or ``smtp.helo``) (RFC 8601 §2.7.2).

    ``result`` may be a result word or an SPF result object (``.result``,
    ``.domain``, ``.identity``, ``.problem``). Only the domain of the MAIL FROM is
    reported: SPF does not authenticate the local-part (§4, Appendix B.3).
    """
    if hasattr(result, "result") and hasattr(result, "domain"):
        # Explicit mailfrom=/helo= win; otherwise the object's identity decides.
        if mailfrom is None and helo is None:
            domain = str(result.domain)
            if getattr(result, "identity", "mailfrom") == "helo":
                helo = domain
            else:
                mailfrom = domain
        if reason is None:
            problem = getattr(result, "problem", None)
            reason = str(problem) if problem else None
        result = result.result
    if reason is not None:
        # The problem can quote the record: any text, any length (RFC 5322 §2.1.1).
        reason = clean_reason(reason)
    props: list[Property] = []
    if mailfrom:
        props.append(Property("smtp", "mailfrom", mailfrom.rpartition("@")[2]))
    elif helo:
        props.append(Property("smtp", "helo", helo))
    return ResInfo("spf", _word(result), reason, tuple(props))


def dkim_result(
    result: object,
    *,
    domain: str | None = None,
    selector: str | None = None,
    identity: str | None = None,
    algorithm: str | None = None,
    header_b: str | None = None,
    reason: str | None = None,
) -> ResInfo:
    """``dkim=RESULT header.d=... header.i=... header.s=... header.a=... header.b=...``.

    RFC 8601 §2.7.1 (header.a, header.s), RFC 6008 (header.b: the first
    characters of b=, to tell several signatures apart). ``result`` may be a
    word or a DKIM result object (``.status``/``.result``, ``.domain``, ``.selector``,
    ``.identity``, ``.algorithm``, ``.header_b``, ``.reason``).
    """
    if not isinstance(result, str):
        obj = result
        domain = domain or getattr(obj, "domain", None)
        selector = selector or getattr(obj, "selector", None)
        identity = identity or getattr(obj, "identity", None)
        algorithm = algorithm or getattr(obj, "algorithm", None)
        header_b = header_b or getattr(obj, "header_b", None)
        if reason is None:
            reason = getattr(obj, "reason", None)
        verdict = getattr(obj, "status", None)
        if verdict is None:
            verdict = getattr(obj, "result", None)
        result = verdict
    word = _word(result)
    if word == "pass" and reason in ("", "ok", "good signature"):
        reason = None
    if reason:
        reason = clean_reason(reason)  # may quote the signer's or the key's text
    props: list[Property] = []
    if domain:
        props.append(Property("header", "d", domain))
    if identity:
        props.append(Property("header", "i", identity))
    if selector:
        props.append(Property("header", "s", selector))
    if algorithm:
        props.append(Property("header", "a", algorithm))
    if header_b:
        props.append(Property("header", "b", header_b[:8]))
    return ResInfo("dkim", word, reason or None, tuple(props))


def dmarc_result(result: DmarcResult, *, with_reason: bool = False) -> ResInfo:
    """``dmarc=RESULT (p=... dis=...) header.from=DOMAIN policy.dmarc=POLICY``.

    ``result`` is a :class:`mailwright.dmarc.DmarcResult`. ``policy.dmarc`` is the
    RFC 9989 §9.1 property: the policy after the record's options (sp/np, t=y)
    were processed, reported for pass and fail alike so a downstream filter can
    see what the domain asks for; ``dis`` in the comment is the disposition for
    this message.
    """
    status = _word(result.result)
    props = [Property("header", "from", result.from_domain)]
    comment = None
    record = result.record
    if status in ("pass", "fail") and record is not None:
        requested = result.requested_policy
        if requested is None:
            requested = _policy_for(result, record)
        # t=y lowers the policy one level (none stays none), RFC 9989 §4.7.
        effective = requested.relaxed_one_level() if record.testing else requested
        props.append(Property("policy", "dmarc", str(effective)))
        bits = [f"p={record.policy}"]
        if record.sp is not None:
            bits.append(f"sp={record.sp}")
        if record.testing:
            bits.append("t=y")
        bits.append(f"dis={result.disposition}")
        comment = " ".join(bits)
    return ResInfo(
        "dmarc",
        status,
        clean_reason(result.reason) if with_reason and result.reasons else None,
        tuple(props),
        None,
        comment,
    )


def arc_result(
    status: object, reason: str, *, oldest_pass: int | None = None, remote_ip: str | None = None
) -> ResInfo:
    """``arc=pass smtp.remote-ip=IP header.oldest-pass=N`` (RFC 8617 §6, §10.2).

    ``status`` is the Chain Validation Status; a failure carries its reason.
    """
    word = _word(status)
    props: list[Property] = []
    if remote_ip:
        props.append(Property("smtp", "remote-ip", remote_ip))
    if word == "pass" and oldest_pass is not None:
        props.append(Property("header", "oldest-pass", str(oldest_pass)))
    return ResInfo("arc", word, clean_reason(reason) if word == "fail" else None, tuple(props))


def _policy_for(result: DmarcResult, record: DmarcRecord) -> Policy:
    """The policy a failing message would get: p for the domain's own record, else sp."""
    if result.discovery is not None and result.discovery.at_author_domain:
        return record.policy
    return record.subdomain_policy


def build(
    authserv_id: str,
    *,
    spf: object | None = None,
    dkim: Iterable[object] = (),
    dmarc: DmarcResult | ResInfo | None = None,
    extra: Iterable[ResInfo] = (),
) -> AuthenticationResults:
    """One field with every result: SPF, each DKIM signature, DMARC, then ``extra``.

    With no DKIM signature at all, ``dkim=none`` is reported (RFC 8601 §2.7.1).
    """
    results: list[ResInfo] = []
    if spf is not None:
        results.append(spf if isinstance(spf, ResInfo) else spf_result(spf))
    dkim_items = [d if isinstance(d, ResInfo) else dkim_result(d) for d in dkim]
    results.extend(dkim_items or [ResInfo("dkim", "none")])
    if dmarc is not None:
        results.append(dmarc if isinstance(dmarc, ResInfo) else dmarc_result(dmarc))
    results.extend(extra)
    return AuthenticationResults(authserv_id, tuple(results))


# ---------------------------------------------------------------------------
# parsing


class _Scanner:
    """A cursor over the field value that skips CFWS (RFC 5322 §3.2.2)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.comments: list[str] = []

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_digit(self) -> bool:
        """An ASCII DIGIT (RFC 5234 B.1); str.isdigit() would also take "²" or "٥"."""
        return "0" <= self.peek() <= "9"

    def skip_cfws(self) -> bool:
        """Skip whitespace, folding and comments; True when anything was skipped."""
        start = self.pos
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t\r\n":
                self.pos += 1
            elif char == "(":
                self.comments.append(self._comment())
            else:
                break
        return self.pos > start

    def _comment(self) -> str:
        depth = 0
        out: list[str] = []
        start = self.pos
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if char == "(":
                depth += 1
                if depth > 1:
                    out.append(char)
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return " ".join("".join(out).split())
                out.append(char)
            else:
                out.append(char)
        raise AuthResSyntaxError("unterminated comment", start)

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "end of field"
            raise AuthResSyntaxError(f"expected {char!r}, found {found}", self.pos)
        self.pos += 1

    def keyword(self, what: str) -> str:
        match = _KEYWORD.match(self.text, self.pos)
        if match is None:
            raise AuthResSyntaxError(f"expected {what}", self.pos)
        self.pos = match.end()
        return match.group(0)

    def quoted_string(self) -> str:
        start = self.pos
        self.expect('"')
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char in "\r\n":
                continue  # folding inside a quoted string
            out.append(char)
        raise AuthResSyntaxError("unterminated quoted string", start)

    def value(self, what: str) -> str:
        """A MIME value: token or quoted-string."""
        if self.peek() == '"':
            return self.quoted_string()
        start = self.pos
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in _TSPECIALS or char <= " " or char == "\x7f":
                break
            self.pos += 1
        if self.pos == start:
            raise AuthResSyntaxError(f"expected {what}", start)
        return self.text[start : self.pos]

    def pvalue(self) -> str:
        """``value / [[local-part] "@"] domain-name`` (RFC 8601 §2.2), leniently.

        Anything up to whitespace, a comment or ";" is taken, so unquoted
        base64 in header.b (common in the wild) still parses.
        """
        if self.peek() == '"':
            text = self.quoted_string()
            if self.peek() == "@":  # a quoted local-part: "john doe"@example.com
                self.pos += 1
                return f"{quote(text, always=True)}@{self._bare()}"
            return text
        return self._bare()

    def _bare(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in " \t\r\n(;":
            self.pos += 1
        return self.text[start : self.pos]


SUPPORTED_VERSION = "1"


def is_supported_version(version: str | None) -> bool:
    """RFC 8601 §2.2: no version means "1"; a version is 1*DIGIT, so "01" is 1 too."""
    return version is None or version.lstrip("0") == SUPPORTED_VERSION


def parse(value: str) -> AuthenticationResults:
    """Parse a field value (the part after ``Authentication-Results:``).

    An unknown header version ends parsing after the authserv-id (RFC 8601 §2.6:
    the rest may not be in a known format); the result then has no results and
    the version set. Raises :class:`AuthResSyntaxError` for anything malformed.
    """
    if len(value) > MAX_FIELD_LENGTH:
        raise AuthResSyntaxError(f"field longer than {MAX_FIELD_LENGTH} characters", 0)
    scanner = _Scanner(value)
    scanner.skip_cfws()
    authserv_id = scanner.value("an authserv-id")
    had_space = scanner.skip_cfws()
    version = None
    if had_space and scanner.at_digit():
        start = scanner.pos
        while scanner.at_digit():
            scanner.pos += 1
        version = value[start : scanner.pos]
        scanner.skip_cfws()
        if not is_supported_version(version):
            return AuthenticationResults(authserv_id, (), version)
    results: list[ResInfo] = []
    scanner.expect(";")
    scanner.skip_cfws()
    if value[scanner.pos : scanner.pos + 4].lower() == "none" and not _KEYWORD.match(
        value, scanner.pos + 4
    ):
        after = scanner.pos + 4
        rest = _Scanner(value)
        rest.pos = after
        rest.skip_cfws()
        if rest.at_end():
            return AuthenticationResults(authserv_id, (), version)
    while True:
        if len(results) >= MAX_RESULTS:
            raise AuthResSyntaxError(f"more than {MAX_RESULTS} results", scanner.pos)
        results.append(_resinfo(scanner))
        scanner.skip_cfws()
        if scanner.at_end():
            break
        scanner.expect(";")
        scanner.skip_cfws()
        if scanner.at_end():
            break  # a trailing ";" is common enough to accept
    return AuthenticationResults(authserv_id, tuple(results), version)


def _resinfo(scanner: _Scanner) -> ResInfo:
    method = scanner.keyword("a method name")
    scanner.skip_cfws()
    method_version = None
    if scanner.peek() == "/":
        scanner.pos += 1
        scanner.skip_cfws()
        start = scanner.pos
        while scanner.at_digit():
            scanner.pos += 1
        if start == scanner.pos:
            raise AuthResSyntaxError("expected a method version", start)
        method_version = scanner.text[start : scanner.pos]
        scanner.skip_cfws()
    scanner.expect("=")
    scanner.skip_cfws()
    result = scanner.keyword("a result")
    result_comments = len(scanner.comments)
    scanner.skip_cfws()
    comment = " ".join(scanner.comments[result_comments:]) or None
    reason = None
    props: list[Property] = []
    while not scanner.at_end() and scanner.peek() != ";":
        start = scanner.pos
        word = scanner.keyword("a ptype or reason")
        scanner.skip_cfws()
        if word.lower() == "reason" and scanner.peek() == "=" and reason is None and not props:
            scanner.pos += 1
            scanner.skip_cfws()
            reason = scanner.value("a reason")
            scanner.skip_cfws()
            continue
        if scanner.peek() != ".":
            raise AuthResSyntaxError(f"expected '.' after ptype {word!r}", scanner.pos)
        scanner.pos += 1
        scanner.skip_cfws()
        name = scanner.keyword("a property")
        scanner.skip_cfws()
        scanner.expect("=")
        scanner.skip_cfws()
        pvalue = scanner.pvalue()
        if not pvalue:
            raise AuthResSyntaxError(f"empty value for {word}.{name}", start)
        props.append(Property(word.lower(), name.lower(), pvalue))
        scanner.skip_cfws()
    return ResInfo(method.lower(), result.lower(), reason, tuple(props), method_version, comment)


# ---------------------------------------------------------------------------
# removing forged fields (RFC 8601 §5)


def authserv_id_of(value: str) -> str | None:
    """The authserv-id of a field value, even when the rest does not parse."""
    scanner = _Scanner(value)
    try:
        scanner.skip_cfws()
        return scanner.value("an authserv-id")
    except AuthResSyntaxError:
        return None


def version_of(value: str) -> str | None:
    """The header version after the authserv-id (``relay.example 2; ...``), or None.

    Read like :func:`parse` reads it (CFWS, then ASCII digits), but without needing
    the rest of the field to parse: what follows an unknown version may be anything.
    """
    scanner = _Scanner(value)
    try:
        scanner.skip_cfws()
        scanner.value("an authserv-id")
        if not scanner.skip_cfws() or not scanner.at_digit():
            return None
    except AuthResSyntaxError:  # e.g. an unterminated comment: no version to read
        return None
    start = scanner.pos
    while scanner.at_digit():
        scanner.pos += 1
    return value[start : scanner.pos]


def same_id(a: str, b: str) -> bool:
    """Compare authserv-ids case-insensitively, A-labels decoded (RFC 8601 §5)."""
    return _unicode(a) == _unicode(b)


def _unicode(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    labels = []
    for label in name.split("."):
        if label.startswith("xn--"):
            with contextlib.suppress(UnicodeError):
                label = label.encode("ascii").decode("idna")
        labels.append(label)
    return ".".join(labels)


def strip_forged(message: bytes, authserv_ids: str | Iterable[str]) -> tuple[bytes, int]:
    """Remove Authentication-Results fields that claim one of our authserv-ids.

    For a message arriving from outside (not from a trusted internal MTA), RFC
    8601 §5: a field bearing our identifier was not added by us and must go before
    we add our own; and "an MTA MUST remove such a header field" -- one "bearing a
    version (express or implied) that it does not support" -- whatever its
    authserv-id, since consumers could not read it safely (§2.6). A field whose
    value cannot even yield an authserv-id is removed too (it cannot be trusted and
    could confuse consumers). Returns the message and how many fields went.
    Works on raw bytes; line endings and every other field are left untouched.
    """
    ids = [authserv_ids] if isinstance(authserv_ids, str) else list(authserv_ids)
    header, _ = split_header(message)
    rest = message[len(header) :]  # the empty line and the body, untouched
    fields: list[list[bytes]] = []
    # Stricter than message.field_lines: a bare CR ends a line here too, so that no
    # field hidden behind one survives for a consumer that splits lines that way.
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    kept: list[bytes] = []
    removed = 0
    for parts in fields:
        raw = b"".join(parts)
        name, colon, body = raw.partition(b":")
        if colon and name.strip().lower() == HEADER_NAME.lower().encode():
            text = body.decode("utf-8", "replace")
            found = authserv_id_of(text)
            if (
                found is None
                or any(same_id(found, ours) for ours in ids)
                or not is_supported_version(version_of(text))
            ):
                removed += 1
                continue
        kept.append(raw)
    return b"".join(kept) + rest, removed


__all__ = [
    "HEADER_NAME",
    "AuthResSyntaxError",
    "AuthenticationResults",
    "Property",
    "ResInfo",
    "authserv_id_of",
    "build",
    "clean_reason",
    "dkim_result",
    "dmarc_result",
    "format_pvalue",
    "is_supported_version",
    "parse",
    "quote",
    "spf_result",
    "strip_forged",
    "version_of",
]
