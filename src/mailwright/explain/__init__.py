"""``mailwright explain``: why mail was deferred or bounced, from Postfix's and our logs.

The cause vocabulary and the reply classifier are :mod:`mailwright.causes` (bounce
processing uses them too); :mod:`.logline` parses the lines that matter,
:mod:`.engine` streams and aggregates, :mod:`.sources` opens files, rotations, gzip
and stdin.
"""

from __future__ import annotations

from ..causes import CAUSES, Cause, Verdict, classify
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
