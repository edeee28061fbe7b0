"""``mailwright dns NAME [TYPE]``: one query through the same resolver every command uses."""

from __future__ import annotations

import contextlib

import click

from ..dns import DnsResult, MXRecord, parse_ip, parse_rdtype, reverse_name
from ..dns.names import name_problem
from ..errors import UsageError
from .context import app, console, emit_json, run, safe, visible


@click.command(
    epilog="\b\nExamples:\n  mailwright dns example.com MX\n"
    "  mailwright --nameserver 127.0.0.1:5353 dns 10.2.0.192.in-addr.arpa PTR\n"
    "  mailwright dns 2001:db8::25 PTR           # the reverse name is built for you\n"
    "  mailwright dns example.com TXT --json"
)
@click.argument("name")
@click.argument("rdtype", default="A", metavar="[TYPE]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dns(name: str, rdtype: str, as_json: bool) -> None:
    """Look up NAME (A, AAAA, MX, TXT, PTR, CNAME, NS ...) and show the outcome.

    Exit 0 with an answer, 1 for NXDOMAIN, no data, server failure or timeout,
    2 for a name that cannot be a DNS name.
    """
    rdtype = parse_rdtype(rdtype)
    if rdtype == "PTR":
        with contextlib.suppress(ValueError):  # `dns 192.0.2.10 PTR`: the reverse name
            name = reverse_name(parse_ip(name))
    else:
        with contextlib.suppress(ValueError):
            parse_ip(name)
            raise UsageError(
                f"{name!r} is an IP address, not a name to look up {rdtype} for",
                f"write 'mailwright dns {name} PTR' for its reverse name",
            )
    problem = name_problem(name)
    if problem is not None:  # a typo, not a DNS outcome: nothing is sent
        raise UsageError(f"{name!r} is not a domain name: {problem}", "write e.g. example.com")
    result: DnsResult[object] = run(app().resolver.query(name, rdtype))
    if as_json:
        emit_json(
            {
                "name": result.name,
                "type": result.rdtype,
                "outcome": str(result.outcome),
                "records": [_record_json(r) for r in result.records],
                "cnames": list(result.cnames),
                "answer": list(result.text),
                "error": result.error,
            }
        )
    else:
        # Names and errors can carry text from the command line or from DNS answers:
        # never let them be read as rich markup.
        console.print(
            f"{safe(result.name)} {result.rdtype}: [bold]{result.outcome}[/]"
            + (f" ({safe(result.error)})" if result.error else ""),
            soft_wrap=True,
        )
        for line in result.text:  # never split: records are copied from here
            console.print(visible(line), markup=False, soft_wrap=True)
    raise SystemExit(0 if result.ok else 1)


def _record_json(record: object) -> object:
    if isinstance(record, MXRecord):
        return {"preference": record.preference, "exchange": record.exchange}
    return str(record)
