"""Tag=value lists (RFC 6376 §3.2), shared by DKIM-Signature fields and key records.

Parsing is strict where the RFC is: duplicate tag names invalidate the whole
list, tag names follow ``ALPHA *ALNUMPUNC``.  It is lenient where real mail
is: empty tag-specs (``a=1;;b=2``) are skipped, values may carry 8-bit bytes
(the RFC's informative note asks not to preclude UTF-8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import MailwrightError

__all__ = ["TagList", "TagSyntaxError", "parse_tag_list", "shown"]

_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_FWS_EDGES = " \t\r\n"


def shown(value: str, limit: int = 40) -> str:
    """A value from a message or DNS, safe to put in a one-line reason or log line.

    Truncated, with control characters (CR, LF, ESC ...) escaped, so that no
    sender can break a log line or a terminal with a crafted tag.
    """
    cut = value[:limit]
    if not cut.isprintable():
        cut = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut)
    return cut + ("..." if len(value) > limit else "")


class TagSyntaxError(MailwrightError, ValueError):
    """The tag list is malformed; DKIM treats this as a permanent error."""


@dataclass(frozen=True, slots=True)
class TagList:
    """Parsed tags in order, plus where each value sits in the input text.

    ``spans[name]`` is the (start, end) of the value *region*: from just after
    ``=`` up to the next ``;`` (or the end), whitespace included.  The verifier
    needs it to blank ``b=`` exactly as RFC 6376 §3.7 says ("including all
    surrounding whitespace").
    """

    tags: dict[str, str]
    spans: dict[str, tuple[int, int]]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.tags.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self.tags

    def __getitem__(self, name: str) -> str:
        return self.tags[name]

    def names(self) -> list[str]:
        return list(self.tags)


def parse_tag_list(text: str) -> TagList:
    """Parse ``text`` as an RFC 6376 §3.2 tag-list; raise :class:`TagSyntaxError`."""
    tags: dict[str, str] = {}
    spans: dict[str, tuple[int, int]] = {}
    pos = 0
    length = len(text)
    while pos <= length:
        end = text.find(";", pos)
        if end < 0:
            end = length
        segment = text[pos:end]
        if segment.strip(_FWS_EDGES):
            eq = segment.find("=")
            if eq < 0:
                raise TagSyntaxError(f"tag-spec without '=': '{shown(segment.strip())}'")
            name = segment[:eq].strip(_FWS_EDGES)
            if not _TAG_NAME.match(name):
                raise TagSyntaxError(f"invalid tag name '{shown(name)}'")
            if name in tags:
                # RFC 6376 §3.2: a duplicate tag name invalidates the entire tag-list.
                raise TagSyntaxError(f"duplicate tag {name}=")
            tags[name] = segment[eq + 1 :].strip(_FWS_EDGES)
            spans[name] = (pos + eq + 1, end)
        pos = end + 1
    return TagList(tags, spans)
