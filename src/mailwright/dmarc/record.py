"""DMARC Policy Record parsing (RFC 9989 §4.7, §4.8): sans-I/O, never raises.

A TXT string is classified in three ways, because RFC 9989 treats them differently:

* not a DMARC record at all (``v=DMARC1`` is not the first tag): the tree walk
  discards it as if nothing were published there (§4.7 "v", §4.10 step 2);
* a DMARC record that cannot be applied (an invalid ``p``/``sp``/``np`` and no
  usable ``rua``, §4.10.1; or a duplicated tag, which invalidates the whole
  tag-list as in RFC 6376 §3.2): it is *found* (it stops the walk) but
  evaluation gives ``permerror``;
* a usable record; syntax errors in other tags were replaced by their
  defaults (§4.8) and are listed in :attr:`DmarcRecord.problems`.
"""

from __future__ import annotations

import enum
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import TypeVar

from ..dns.names import is_hostname, name_problem, normalize, to_ascii

WSP = " \t"

T = TypeVar("T")
E = TypeVar("E", bound=enum.StrEnum)


class Policy(enum.StrEnum):
    """A Domain Owner Assessment Policy (RFC 9989 §4.7 "p")."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"

    def relaxed_one_level(self) -> Policy:
        """The policy one level below, as ``t=y`` asks (RFC 9989 §4.7 "t")."""
        if self is Policy.REJECT:
            return Policy.QUARANTINE
        return Policy.NONE


class AlignmentMode(enum.StrEnum):
    """``adkim``/``aspf`` (RFC 9989 §4.7)."""

    RELAXED = "r"
    STRICT = "s"


class PsdFlag(enum.StrEnum):
    """``psd`` (RFC 9989 §4.7): y = a public suffix, n = an organizational domain, u = unknown."""

    YES = "y"
    NO = "n"
    UNKNOWN = "u"


class Classification(enum.StrEnum):
    NOT_DMARC = "not-dmarc"
    """Not a DMARC record: ignored by receivers, as if absent."""
    INVALID = "invalid"
    """A DMARC record receivers cannot apply: DMARC evaluation gives permerror."""
    VALID = "valid"
    """A usable record (possibly with defaulted tags)."""


class ProblemKind(enum.StrEnum):
    SYNTAX = "syntax"
    """Not ``name=value``, or an invalid tag name: the piece is ignored."""
    INVALID_VALUE = "invalid-value"
    """A known tag with a value outside its grammar: the default applies (§4.8)."""
    DUPLICATE = "duplicate"
    """A tag given twice: the whole record is invalid (RFC 6376 §3.2)."""
    REMOVED = "removed"
    """pct, rf, ri: RFC 7489 tags that RFC 9989 removed (Appendix C.5.2)."""
    OBSOLETE = "obsolete"
    """Obsolete syntax still accepted, e.g. the ``!size`` suffix of a report URI (§4.8)."""
    UNKNOWN = "unknown"
    """A tag RFC 9989 does not define: ignored (§4.7)."""


@dataclass(frozen=True, slots=True)
class RecordProblem:
    """One thing wrong in a record, with the tag and value it concerns."""

    kind: ProblemKind
    tag: str
    value: str
    message: str


@dataclass(frozen=True, slots=True)
class ReportUri:
    """One ``rua``/``ruf`` destination (RFC 9989 §4.6, §4.8 ``dmarc-uri``)."""

    uri: str
    """The URI without any obsolete ``!size`` suffix."""
    scheme: str
    """Lowercase scheme: ``mailto``, ``https``..."""
    host: str | None
    """The destination host: the domain of a mailto address, the host of other URIs."""
    address: str | None = None
    """For mailto: the decoded addr-spec."""
    size_limit: str | None = None
    """The obsolete ``!10m`` suffix, if one was given (reporters ignore it)."""

    @property
    def is_mailto(self) -> bool:
        return self.scheme == "mailto"

    def as_json(self) -> dict[str, str | None]:
        return {
            "uri": self.uri,
            "scheme": self.scheme,
            "host": self.host,
            "address": self.address,
            "size_limit": self.size_limit,
        }


KNOWN_TAGS = ("v", "p", "sp", "np", "adkim", "aspf", "t", "psd", "rua", "ruf", "fo")
REMOVED_TAGS = ("pct", "rf", "ri")


@dataclass(frozen=True, slots=True)
class RemovedTag:
    """An RFC 7489 tag found in the record, and what RFC 9989 makes of it."""

    tag: str
    value: str
    meaning: str
    """The transition meaning (RFC 9989 Appendix A.6, C.5.2) in one sentence."""
    replacement: str | None
    """The RFC 9989 tag to publish instead (``t=y``), or None when nothing replaces it."""


@dataclass(frozen=True)
class DmarcRecord:
    """A parsed DMARC record: the explicit tags as given, and the effective values.

    Explicit attributes (``p``, ``sp``...) are None when the tag is absent or its
    value was invalid; the effective properties apply the defaults of RFC 9989.
    """

    text: str
    classification: Classification
    reason: str | None = None
    """Why the record is not DMARC or cannot be applied (None for usable records)."""
    p: Policy | None = None
    sp: Policy | None = None
    np: Policy | None = None
    adkim: AlignmentMode | None = None
    aspf: AlignmentMode | None = None
    t: bool | None = None
    psd: PsdFlag | None = None
    rua: tuple[ReportUri, ...] = ()
    ruf: tuple[ReportUri, ...] = ()
    fo: tuple[str, ...] | None = None
    tags: tuple[tuple[str, str], ...] = ()
    """Every ``name=value`` pair in order (names lowercased), known or not."""
    removed: tuple[RemovedTag, ...] = ()
    problems: tuple[RecordProblem, ...] = ()
    p_fallback: bool = False
    """True when an invalid p/sp/np was replaced by ``p=none`` because of a valid rua (§4.10.1)."""
    leading_whitespace: bool = False
    tag_names: tuple[str, ...] = field(default=())

    @property
    def is_dmarc(self) -> bool:
        """Starts with ``v=DMARC1``: the tree walk counts it as a DMARC record there."""
        return self.classification is not Classification.NOT_DMARC

    @property
    def usable(self) -> bool:
        return self.classification is Classification.VALID

    # Effective values (RFC 9989 §4.7 defaults) --------------------------------

    @property
    def policy(self) -> Policy:
        """``p``; absent means none (§4.7), and so does the §4.10.1 fallback."""
        if self.p_fallback or self.p is None:
            return Policy.NONE
        return self.p

    @property
    def subdomain_policy(self) -> Policy:
        """``sp``, else ``p`` (§4.7 "sp")."""
        if self.p_fallback:
            return Policy.NONE
        return self.sp if self.sp is not None else self.policy

    @property
    def nonexistent_policy(self) -> Policy:
        """``np``, else ``sp``, else ``p`` (§4.7 "np")."""
        if self.p_fallback:
            return Policy.NONE
        return self.np if self.np is not None else self.subdomain_policy

    @property
    def dkim_alignment(self) -> AlignmentMode:
        return self.adkim or AlignmentMode.RELAXED

    @property
    def spf_alignment(self) -> AlignmentMode:
        return self.aspf or AlignmentMode.RELAXED

    @property
    def psd_flag(self) -> PsdFlag:
        return self.psd or PsdFlag.UNKNOWN

    @property
    def pct(self) -> int | None:
        """The removed ``pct`` value when it was a valid integer 0-100."""
        for removed in self.removed:
            if removed.tag == "pct" and removed.value.isdigit() and int(removed.value) <= 100:
                return int(removed.value)
        return None

    @property
    def testing(self) -> bool:
        """Test mode: ``t=y``, or (transition, Appendix A.6) ``pct=0`` without a ``t`` tag.

        RFC 9989 made ``t=y`` the replacement for what ``pct=0`` came to mean;
        honouring the old spelling when no ``t`` is given keeps a domain owner who
        has not updated the record from getting stricter treatment than asked for.
        """
        if self.t is not None:
            return self.t
        return self.pct == 0

    @property
    def failure_options(self) -> tuple[str, ...]:
        """``fo`` (default "0"); it is ignored when there is no ``ruf`` (§4.7 "fo")."""
        return self.fo if self.fo is not None else ("0",)

    def as_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "classification": str(self.classification),
            "reason": self.reason,
            "tags": {name: value for name, value in self.tags},
            "p": _opt(self.p),
            "sp": _opt(self.sp),
            "np": _opt(self.np),
            "adkim": _opt(self.adkim),
            "aspf": _opt(self.aspf),
            "t": None if self.t is None else ("y" if self.t else "n"),
            "psd": _opt(self.psd),
            "fo": ":".join(self.fo) if self.fo is not None else None,
            "rua": [u.as_json() for u in self.rua],
            "ruf": [u.as_json() for u in self.ruf],
            "removed": [
                {
                    "tag": r.tag,
                    "value": r.value,
                    "meaning": r.meaning,
                    "replacement": r.replacement,
                }
                for r in self.removed
            ],
            "effective": {
                "p": str(self.policy),
                "sp": str(self.subdomain_policy),
                "np": str(self.nonexistent_policy),
                "adkim": str(self.dkim_alignment),
                "aspf": str(self.spf_alignment),
                "t": "y" if self.testing else "n",
                "psd": str(self.psd_flag),
                "fo": ":".join(self.failure_options),
            },
            "problems": [
                {"kind": str(p.kind), "tag": p.tag, "value": p.value, "message": p.message}
                for p in self.problems
            ],
        }


def _opt(value: enum.StrEnum | None) -> str | None:
    return None if value is None else str(value)


_TAG_RE = re.compile(r"^([A-Za-z]+)[ \t]*=[ \t]*(.*)$", re.DOTALL)
_VALUE_RE = re.compile(r"^[\x20-\x3a\x3c-\x7e]+$")  # RFC 9989 §4.8 dmarc-value
_SIZE_RE = re.compile(r"^(.*)!([0-9]+[kmgtKMGT]?)$", re.DOTALL)
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(.*)$", re.DOTALL)
# RFC 3986 §2: unreserved / reserved / "%" HEXDIG HEXDIG; "," and "!" must be
# percent-encoded in a DMARC URI (§4.8) because they separate list items and sizes.
_URI_REST_RE = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@$&'()*+;=]|%[0-9A-Fa-f]{2})*$")

_ATEXT = frozenset("!#$%&'*+-/=?^_`{|}~")

MAX_RECORD_LENGTH = 4096
"""Longer TXT strings are not parsed (a DNS answer this large is not a policy anyone wrote)."""
MAX_URIS = 32
"""At most this many URIs per rua/ruf list are kept; the rest are reported and dropped."""


def looks_like_dmarc(text: str) -> bool:
    """True when the first tag is ``v=DMARC1`` (RFC 9989 §4.10 step 2)."""
    return parse_record(text).is_dmarc


def parse_record(text: str) -> DmarcRecord:
    """Parse one TXT string (character-strings already joined, §4.5)."""
    if len(text) > MAX_RECORD_LENGTH:
        return DmarcRecord(
            text[:MAX_RECORD_LENGTH],
            Classification.NOT_DMARC,
            f"record longer than {MAX_RECORD_LENGTH} characters",
        )
    leading = text[:1] in (" ", "\t")
    pieces = text.split(";")
    first = pieces[0].strip(WSP)
    match = _TAG_RE.match(first)
    # §4.7 "v": MUST be first, value "DMARC1" case-sensitive; the name "v" is an
    # ABNF literal and so case-insensitive (RFC 5234 §2.3).
    if match is None or match.group(1).lower() != "v":
        return DmarcRecord(text, Classification.NOT_DMARC, "the first tag is not v=DMARC1")
    version = match.group(2).strip(WSP)
    if version != "DMARC1":
        if re.match(r"DMARC1[ \t]", version):
            reason = "no ';' after v=DMARC1: the record must start with \"v=DMARC1;\""
        else:
            reason = f"v={version!r}: the version must be exactly DMARC1 (case-sensitive)"
        return DmarcRecord(text, Classification.NOT_DMARC, reason)
    return _parse_tags(text, pieces[1:], leading)


def _parse_tags(text: str, pieces: list[str], leading: bool) -> DmarcRecord:
    problems: list[RecordProblem] = []
    tags: list[tuple[str, str]] = [("v", "DMARC1")]
    seen: dict[str, int] = {"v": 1}
    for index, raw in enumerate(pieces):
        piece = raw.strip(WSP)
        if not piece:
            # A trailing ";" is allowed (§4.8 dmarc-record); empty pieces elsewhere
            # are harmless separators that carry nothing.
            if index != len(pieces) - 1:
                problems.append(
                    RecordProblem(ProblemKind.SYNTAX, "", "", "empty tag between two semicolons")
                )
            continue
        match = _TAG_RE.match(piece)
        if match is None:
            problems.append(
                RecordProblem(
                    ProblemKind.SYNTAX,
                    "",
                    piece,
                    f"{piece!r} is not a tag=value pair (or the tag name is not letters only)",
                )
            )
            continue
        name, value = match.group(1).lower(), match.group(2).strip(WSP)
        seen[name] = seen.get(name, 0) + 1
        tags.append((name, value))
    tag_names = tuple(name for name, _ in tags)
    duplicates = sorted(name for name, count in seen.items() if count > 1)
    if duplicates:
        # RFC 9989 §4.7 uses the DKIM tag-value syntax; RFC 6376 §3.2: a tag given
        # twice makes the entire tag-list invalid.
        for name in duplicates:
            problems.append(
                RecordProblem(
                    ProblemKind.DUPLICATE,
                    name,
                    ", ".join(v for n, v in tags if n == name),
                    f"tag {name} appears {seen[name]} times; the whole record is invalid",
                )
            )
        return DmarcRecord(
            text,
            Classification.INVALID,
            f"duplicate tag{'s' if len(duplicates) > 1 else ''}: {', '.join(duplicates)}",
            tags=tuple(tags),
            problems=tuple(problems),
            leading_whitespace=leading,
            tag_names=tag_names,
        )

    values: dict[str, object] = {}
    removed: list[RemovedTag] = []
    invalid_policy_tags: list[str] = []
    for name, value in tags[1:]:
        if value and not _VALUE_RE.match(value):
            problems.append(
                RecordProblem(
                    ProblemKind.INVALID_VALUE,
                    name,
                    value,
                    f"{name}: the value contains characters outside printable ASCII",
                )
            )
            if name in ("p", "sp", "np"):
                invalid_policy_tags.append(name)
            continue
        if name in ("p", "sp", "np"):
            policy = _enum(Policy, value)
            if policy is None:
                invalid_policy_tags.append(name)
                problems.append(
                    RecordProblem(
                        ProblemKind.INVALID_VALUE,
                        name,
                        value,
                        f"{name}={value!r} is not none, quarantine or reject",
                    )
                )
            else:
                values[name] = policy
        elif name in ("adkim", "aspf"):
            mode = _enum(AlignmentMode, value)
            if mode is None:
                problems.append(
                    RecordProblem(
                        ProblemKind.INVALID_VALUE,
                        name,
                        value,
                        f"{name}={value!r} is not r or s; the default r applies",
                    )
                )
            else:
                values[name] = mode
        elif name == "t":
            lowered = value.lower()
            if lowered in ("y", "n"):
                values["t"] = lowered == "y"
            else:
                problems.append(
                    RecordProblem(
                        ProblemKind.INVALID_VALUE,
                        name,
                        value,
                        f"t={value!r} is not y or n; the default n applies",
                    )
                )
        elif name == "psd":
            flag = _enum(PsdFlag, value)
            if flag is None:
                problems.append(
                    RecordProblem(
                        ProblemKind.INVALID_VALUE,
                        name,
                        value,
                        f"psd={value!r} is not y, n or u; the default u applies",
                    )
                )
            else:
                values["psd"] = flag
        elif name == "fo":
            options, error = _parse_fo(value)
            if options is None:
                problems.append(
                    RecordProblem(
                        ProblemKind.INVALID_VALUE,
                        name,
                        value,
                        f"fo={value!r}: {error}; the default 0 applies",
                    )
                )
            else:
                values["fo"] = options
        elif name in ("rua", "ruf"):
            uris, uri_problems = _parse_uri_list(name, value)
            values[name] = uris
            problems.extend(uri_problems)
        elif name in REMOVED_TAGS:
            removed.append(_removed(name, value))
            problems.append(
                RecordProblem(
                    ProblemKind.REMOVED,
                    name,
                    value,
                    f"{name} was removed by RFC 9989: {removed[-1].meaning}",
                )
            )
        else:
            problems.append(
                RecordProblem(
                    ProblemKind.UNKNOWN,
                    name,
                    value,
                    f"unknown tag {name} is ignored (RFC 9989 §4.7)",
                )
            )

    rua = values.get("rua", ())
    assert isinstance(rua, tuple)
    classification = Classification.VALID
    reason = None
    fallback = False
    if invalid_policy_tags:
        # RFC 9989 §4.10.1: an invalid p, sp or np is survivable only with a usable rua.
        if rua:
            fallback = True
        else:
            classification = Classification.INVALID
            reason = (
                f"invalid {'/'.join(invalid_policy_tags)} and no valid rua: "
                "receivers apply no DMARC processing (RFC 9989 §4.10.1)"
            )
    return DmarcRecord(
        text,
        classification,
        reason,
        p=_get(values, "p", Policy),
        sp=_get(values, "sp", Policy),
        np=_get(values, "np", Policy),
        adkim=_get(values, "adkim", AlignmentMode),
        aspf=_get(values, "aspf", AlignmentMode),
        t=_get(values, "t", bool),
        psd=_get(values, "psd", PsdFlag),
        rua=rua,
        ruf=_get(values, "ruf", tuple) or (),
        fo=_get(values, "fo", tuple),
        tags=tuple(tags),
        removed=tuple(removed),
        problems=tuple(problems),
        p_fallback=fallback,
        leading_whitespace=leading,
        tag_names=tag_names,
    )


def _get(values: dict[str, object], name: str, kind: type[T]) -> T | None:
    value = values.get(name)
    return value if isinstance(value, kind) else None


def _enum(kind: type[E], value: str) -> E | None:
    # ABNF quoted strings are case-insensitive (RFC 5234 §2.3): "ReJect" is reject.
    try:
        return kind(value.lower())
    except ValueError:
        return None


def _parse_fo(value: str) -> tuple[tuple[str, ...] | None, str]:
    """§4.8 dmarc-fo: 0 or 1 (not both), d and s, each at most once, colon-separated."""
    items = value.split(":")
    for item in items:
        if item.lower() not in ("0", "1", "d", "s"):
            return None, f"{item!r} is not one of 0, 1, d, s"
    lowered = [item.lower() for item in items]
    if len(set(lowered)) != len(lowered):
        return None, "an option is repeated"
    if "0" in lowered and "1" in lowered:
        return None, "0 and 1 are mutually exclusive"
    return tuple(lowered), ""


def _parse_uri_list(tag: str, value: str) -> tuple[tuple[ReportUri, ...], list[RecordProblem]]:
    """§4.8 dmarc-urilist: URIs separated by commas with optional WSP around them."""
    uris: list[ReportUri] = []
    problems: list[RecordProblem] = []
    for raw in value.split(","):
        item = raw.strip(WSP)
        if not item:
            problems.append(
                RecordProblem(ProblemKind.SYNTAX, tag, value, f"{tag}: empty entry in the URI list")
            )
            continue
        uri, problem = parse_report_uri(item)
        if uri is None:
            problems.append(
                RecordProblem(ProblemKind.INVALID_VALUE, tag, item, f"{tag}: {problem}; ignored")
            )
            continue
        if len(uris) >= MAX_URIS:
            problems.append(
                RecordProblem(
                    ProblemKind.INVALID_VALUE,
                    tag,
                    item,
                    f"{tag}: more than {MAX_URIS} URIs; the rest are ignored",
                )
            )
            break
        if uri.size_limit is not None:
            problems.append(
                RecordProblem(
                    ProblemKind.OBSOLETE,
                    tag,
                    item,
                    f"{tag}: the size limit !{uri.size_limit} is obsolete; "
                    "RFC 9989 reporters ignore it (§4.8, Appendix C.4)",
                )
            )
        uris.append(uri)
    return tuple(uris), problems


def parse_report_uri(item: str) -> tuple[ReportUri | None, str]:
    """One report URI (RFC 3986 syntax, optional obsolete ``!size``); (None, why) when bad."""
    size = None
    sized = _SIZE_RE.match(item)
    if sized:
        item, size = sized.group(1), sized.group(2).lower()
    scheme_match = _SCHEME_RE.match(item)
    if scheme_match is None:
        return None, f"{item!r} is not a URI (no scheme such as mailto:)"
    scheme, rest = scheme_match.group(1).lower(), scheme_match.group(2)
    if not _URI_REST_RE.match(rest):
        return None, f"{item!r} is not a valid URI (unencoded space, comma, ! or non-ASCII)"
    if scheme == "mailto":
        address = urllib.parse.unquote(rest.split("?", 1)[0])
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain:
            return None, f"{item!r} has no mailbox (expected mailto:name@domain)"
        if not _dot_atom(local):
            # The address is decoded from %-escapes and goes into the report mail's
            # envelope and To: field: "%0D%0A", "%00", spaces or "<>" there would be
            # header or SMTP command injection, not an address.
            return None, f"{item!r}: the mailbox {local!r} is not a plain addr-spec local part"
        if domain != domain.strip():
            return None, f"{item!r}: the domain {domain!r} is not valid"
        domain = normalize(domain)
        problem = name_problem(domain)
        if problem is not None or "." not in domain:
            return None, f"{item!r}: the domain {domain!r} is not valid"
        ascii_domain = to_ascii(domain)
        if not is_hostname(ascii_domain):
            # RFC 5321 §4.1.2: a mail domain is letters, digits and hyphens.
            return None, f"{item!r}: the domain {domain!r} is not a mail domain"
        if not address.isascii():
            # The report is sent to this address: an IDN domain goes on the wire as its
            # A-label (RFC 5890); only a UTF-8 local part still needs SMTPUTF8.
            address = f"{local}@{ascii_domain}"
        return ReportUri(item, scheme, ascii_domain, address, size), ""
    try:
        host = urllib.parse.urlsplit(item).hostname
    except ValueError:
        return None, f"{item!r} is not a valid URI"
    return ReportUri(item, scheme, normalize(host) if host else None, None, size), ""


def _dot_atom(local: str) -> bool:
    """RFC 5322 §3.2.3 dot-atom-text, with UTF-8 letters as RFC 6532 §3.2 allows."""
    return all(
        atom
        and all(
            (c.isascii() and (c.isalnum() or c in _ATEXT))
            or (not c.isascii() and c.isprintable() and not c.isspace())
            for c in atom
        )
        for atom in local.split(".")
    )


def _removed(name: str, value: str) -> RemovedTag:
    """The transition meaning of an RFC 7489-only tag (RFC 9989 Appendix A.6, C.5.2)."""
    if name == "pct":
        if value == "0":
            return RemovedTag(
                name,
                value,
                "pct=0 is what t=y now means (Appendix A.6): publish t=y instead",
                "t=y",
            )
        if value == "100":
            return RemovedTag(
                name,
                value,
                "pct=100 was the default and is what t=n (the default) now means: drop it",
                None,
            )
        if value.isdigit() and int(value) <= 100:
            return RemovedTag(
                name,
                value,
                f"pct={value} has no RFC 9989 equivalent: receivers apply the policy to every "
                "failing message; use t=y while testing, or remove pct",
                "t=y",
            )
        return RemovedTag(
            name, value, f"pct={value!r} was never valid (0-100) and is ignored", None
        )
    if name == "rf":
        return RemovedTag(
            name,
            value,
            "failure reports always use the AFRF format (RFC 9991): drop it",
            None,
        )
    return RemovedTag(
        name,
        value,
        "aggregate reports are sent at least daily (RFC 9990 §3.1.1.4); "
        "the interval cannot be requested any more: drop it",
        None,
    )
