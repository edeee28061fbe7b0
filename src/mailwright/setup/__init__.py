"""Setting up a domain: ``mailwright init`` (config + DKIM keys) and ``mailwright records``
(the DNS records to publish, as explained text, a zone-file fragment or JSON)."""

from .init import InitOptions, InitResult, init_domain, plan_config
from .records import DnsRecord, RecordPlan, build_records, render_json, render_zone, split_zone
from .template import render_config

__all__ = [
    "DnsRecord",
    "InitOptions",
    "InitResult",
    "RecordPlan",
    "build_records",
    "init_domain",
    "plan_config",
    "render_config",
    "render_json",
    "render_zone",
    "split_zone",
]
