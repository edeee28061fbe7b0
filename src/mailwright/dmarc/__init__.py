"""DMARC (RFC 9989): policy records, discovery by DNS Tree Walk, alignment, evaluation.

The API the MTA and the doctor call::

    discovery = await discover_policy("example.com", resolver)
    result = await evaluate("example.com", ("bounce.example.com", "pass"),
                            [("example.com", "pass")], resolver)
    report = await check_domain("example.com", resolver)

Aggregate reports (RFC 9990) are a package of their own, :mod:`mailwright.dmarc_reports`,
which builds on this one (never the reverse).
"""

from .alignment import Aligned, check_alignment, organizational_domain
from .check import DmarcReport, Finding, Severity, check_domain
from .discovery import DiscoveryStatus, PolicyDiscovery, discover_policy, tree_walk, walk_targets
from .external import ExternalCheck, ExternalStatus, verify_destination
from .policy import AuthOutcome, DmarcResult, DmarcStatus, evaluate
from .record import AlignmentMode, Classification, DmarcRecord, Policy, PsdFlag, parse_record

__all__ = [
    "Aligned",
    "AlignmentMode",
    "AuthOutcome",
    "Classification",
    "DiscoveryStatus",
    "DmarcRecord",
    "DmarcReport",
    "DmarcResult",
    "DmarcStatus",
    "ExternalCheck",
    "ExternalStatus",
    "Finding",
    "Policy",
    "PolicyDiscovery",
    "PsdFlag",
    "Severity",
    "check_alignment",
    "check_domain",
    "discover_policy",
    "evaluate",
    "organizational_domain",
    "parse_record",
    "tree_walk",
    "verify_destination",
    "walk_targets",
]
