"""DMARC aggregate reports (RFC 9990): the ones we receive and the ones we send.

A concern of its own, beside :mod:`mailwright.dmarc` (RFC 9989 policy: record,
discovery, alignment, evaluation, the domain check). This package may import
:mod:`mailwright.dmarc`; :mod:`mailwright.dmarc` never imports this one.

Reports in, from the world's receivers to our ``rua`` mailbox:

- :mod:`.parse`: unpack the attachment and parse the XML, refusing what is unsafe.
- :mod:`.received`: store received reports in SQLite and summarize them per source.

Reports out, from what our inbound checks saw (off unless
``[inbound] send_aggregate_reports``):

- :mod:`.observations`: one :class:`Observation` per inbound DMARC evaluation,
  kept in SQLite until the daily report.
- :mod:`.writer`: the RFC 9990 XML of one report, its file name and compression.
- :mod:`.sender`: once a day, re-check each policy domain's ``rua`` (destination
  verification, RFC 9990 §4, is :mod:`mailwright.dmarc.external`, which the
  domain check uses too) and compose the report mails for the queue.
"""

from .observations import OBSERVATIONS_DB, Observation, ObservationStore
from .parse import AggregateReport, ReportRefused, parse_report, reports_from_message
from .received import DB_NAME, ReportStore, ReportSummary
from .sender import compose_reports, send_due_reports
from .writer import build_report

__all__ = [
    "DB_NAME",
    "OBSERVATIONS_DB",
    "AggregateReport",
    "Observation",
    "ObservationStore",
    "ReportRefused",
    "ReportStore",
    "ReportSummary",
    "build_report",
    "compose_reports",
    "parse_report",
    "reports_from_message",
    "send_due_reports",
]
