"""SPF, RFC 7208: record syntax, the macro language, check_host() and a linter.

Usage::

    result = await check_mail_from("192.0.2.10", "app@example.com", "mail.example.com", resolver)
    if result.result is Result.FAIL: ...
    header = received_spf(result)          # "Received-SPF: fail (...) client-ip=...; ..."

Parsing (:mod:`.record`) and macro expansion (:mod:`.macro`) are pure; only the
evaluator (:mod:`.evaluator`) and the linter (:mod:`.lint`) talk to a
:class:`~mailwright.dns.Resolver`.
"""

from .evaluator import (
    DEFAULT_EXPLANATION,
    MAX_DNS_TERMS,
    MAX_VOID_LOOKUPS,
    check_helo,
    check_host,
    check_mail_from,
    domain_problem,
    parse_client_ip,
)
from .header import received_spf
from .macro import MacroContext, MacroSyntaxError, expand, parse_domain_spec, parse_macro_string
from .record import (
    Mechanism,
    Modifier,
    Qualifier,
    Record,
    SpfSyntaxError,
    is_spf_record,
    parse_record,
)
from .result import Result, SpfResult, TraceStep

__all__ = [
    "DEFAULT_EXPLANATION",
    "MAX_DNS_TERMS",
    "MAX_VOID_LOOKUPS",
    "MacroContext",
    "MacroSyntaxError",
    "Mechanism",
    "Modifier",
    "Qualifier",
    "Record",
    "Result",
    "SpfResult",
    "SpfSyntaxError",
    "TraceStep",
    "check_helo",
    "check_host",
    "check_mail_from",
    "domain_problem",
    "expand",
    "is_spf_record",
    "parse_client_ip",
    "parse_domain_spec",
    "parse_macro_string",
    "parse_record",
    "received_spf",
]
