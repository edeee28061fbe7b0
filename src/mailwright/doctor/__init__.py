"""The doctor: ``mailwright check DOMAIN``, every DNS and server fact a receiver looks at.

Usage::

    report = await run_checks("example.com", DoctorOptions.from_config(config, "example.com"),
                              resolver)
    for check in report.checks: print(check.id, check.status, check.observed, check.fix)

All checks run concurrently over one memoizing resolver; each is isolated, so
an exception or stall becomes an ``error`` row and never hides the others.
"""

from .context import DoctorOptions, SelectorSpec, SharedResolver
from .model import CheckResult, Finding, Report, Status
from .runner import plan_checks, run_checks

__all__ = [
    "CheckResult",
    "DoctorOptions",
    "Finding",
    "Report",
    "SelectorSpec",
    "SharedResolver",
    "Status",
    "plan_checks",
    "run_checks",
]
