"""``mailwright explain``: why mail was deferred or bounced, from Postfix's and our logs.

:mod:`.causes` is the fixed vocabulary, :mod:`.classify` maps a reply text to a cause,
:mod:`.logline` parses the lines that matter, :mod:`.engine` streams and aggregates,
:mod:`.sources` opens files, rotations, gzip and stdin.
"""

from __future__ import annotations

from .causes import CAUSES, Cause
from .classify import Verdict, classify
from .engine import Explainer, SourceStats
from .sources import Source, parse_since, read_source, resolve_sources

__all__ = [
    "CAUSES",
    "Cause",
    "Explainer",
    "Source",
    "SourceStats",
    "Verdict",
    "classify",
    "parse_since",
    "read_source",
    "resolve_sources",
]
