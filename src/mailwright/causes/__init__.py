"""Why a delivery failed: the fixed vocabulary of causes and the reply classifier.

:mod:`.vocabulary` holds the cause ids (a stable interface: ``mailwright explain
--json``, bounce events), :mod:`.classify` maps a remote reply or an MTA's failure text
to one of them. Pure, no I/O. It sits below both readers of failures that use it:
``mailwright explain`` (logs) and :mod:`mailwright.bounce` (inbound bounce messages).
"""

from __future__ import annotations

from .classify import Verdict, classify
from .vocabulary import CAUSE_ORDER, CAUSES, Cause

__all__ = ["CAUSES", "CAUSE_ORDER", "Cause", "Verdict", "classify"]
