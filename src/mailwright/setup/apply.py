"""DNS as code: publish the records ``mailwright records`` prints with an RFC 2136 dynamic
update signed with TSIG (RFC 8945), then wait until every authoritative server serves them.

Three steps, each usable alone:

* :func:`plan_changes` compares what the config needs with what the zone's primary
  serves and lists the changes (add / change / remove), touching only our names and
  types.  At a name that carries other TXT records (the apex: site verifications),
  only the ``v=spf1`` value is ours.
* :func:`apply_changes` sends them as one UPDATE message (RFC 2136 §2.5: all or
  nothing), idempotent: applying the same plan twice changes nothing the second time.
* :func:`wait_until_served` asks every authoritative server until each serves the
  new data (secondaries follow the primary by NOTIFY or SOA refresh).

Blocking I/O (dnspython's synchronous query functions): the CLI runs it directly, the
server runs it in a worker thread.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.update

from ..dns.names import normalize
from ..dns.resolver import Resolver
from ..dns.types import Outcome
from ..errors import MailwrightError, UsageError
from .records import DnsRecord, txt_rdata

QUERY_TIMEOUT = 5.0
SPF_PREFIX = "v=spf1"


class UpdateError(MailwrightError):
    """The primary refused the update, or could not be reached."""


class PrimaryNotFound(UpdateError):
    """The zone's primary could not be found through DNS (no SOA, an MNAME without an
    address): DNS data, not a usage mistake, so a failed run (exit 1), not exit 2."""


@dataclass(frozen=True)
class Primary:
    """Where a zone's updates go: ``--server``, or found from the zone's SOA."""

    address: tuple[str, int]
    mname: str | None = None
    """The SOA MNAME it was found from; None when given (``--server``)."""

    @property
    def text(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def find_primary(zone: str, resolver: Resolver, port: int = 53) -> Primary:
    """The zone's primary as ``nsupdate`` finds it: the MNAME field of the zone's SOA
    (RFC 2136 §4: "the primary master ... is named in the MNAME field"), its first IPv4
    address (else IPv6) through ``resolver``, on ``port``."""
    zone = normalize(zone).rstrip(".")
    hint = f"pass --server HOST[:PORT], the primary of {zone}"
    soa = await resolver.query(zone, "SOA")
    if not soa.ok or not soa.records:
        why = soa.error or soa.outcome.value
        if soa.outcome in (Outcome.ANSWER, Outcome.NODATA):
            why = "the name has none: is it the zone's apex?"
        raise PrimaryNotFound(f"zone {zone}: no SOA record to find its primary ({why}); {hint}")
    mname = normalize(str(soa.records[0]).split()[0]).rstrip(".")
    if not mname:
        raise PrimaryNotFound(f"zone {zone}: the SOA names no primary (MNAME is '.'); {hint}")
    a, aaaa = await resolver.addresses(mname)
    addresses = [*a.records, *aaaa.records]
    if not addresses:
        why = a.error or aaaa.error or "no A or AAAA record"
        raise PrimaryNotFound(
            f"zone {zone}: its primary {mname} (the SOA MNAME) has no address ({why}); {hint}"
        )
    return Primary((str(addresses[0]), port), mname)


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: str
    secret: str
    """Base64, as every DNS server's configuration writes it."""

    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        ring: dict[dns.name.Name, dns.tsig.Key] = dns.tsigkeyring.from_text(
            {self.name: (self.algorithm, self.secret)}
        )
        return ring


_KNOT_KEY = re.compile(
    r"id:\s*(?P<name>\S+)\s+algorithm:\s*(?P<alg>\S+)\s+secret:\s*(?P<secret>\S+)", re.S
)
_BIND_KEY = re.compile(
    r'key\s+"?(?P<name>[^"\s{]+)"?\s*\{[^}]*?algorithm\s+"?(?P<alg>[\w-]+)"?\s*;'
    r'[^}]*?secret\s+"(?P<secret>[^"]+)"',
    re.S,
)


def read_tsig_key(text: str, source: str = "the key file") -> TsigKey:
    """A TSIG key from Knot's ``keymgr -t`` output (YAML), BIND's ``tsig-keygen`` block,
    or one line ``ALGORITHM:NAME:SECRET``."""
    for pattern in (_KNOT_KEY, _BIND_KEY):
        m = pattern.search(text)
        if m is not None:
            return TsigKey(m.group("name"), m.group("alg").lower(), m.group("secret"))
    parts = text.strip().split(":")
    if len(parts) == 3 and all(parts):
        return TsigKey(parts[1], parts[0].lower(), parts[2])
    raise UsageError(
        f"{source}: no TSIG key found",
        "give Knot's 'keymgr -t NAME' output, BIND's 'tsig-keygen NAME' block, "
        "or one line hmac-sha256:NAME:BASE64SECRET",
    )


@dataclass(frozen=True)
class Change:
    action: Literal["add", "change", "remove"]
    name: str
    """Absolute owner name without the trailing dot."""
    rdtype: str
    before: tuple[str, ...]
    """Our values the zone serves now (presentation form)."""
    after: tuple[str, ...]
    """Our values after the update; empty for a removal."""
    ttl: int = 3600
    only_spf: bool = False
    """TXT at a name with other TXT values: only the ``v=spf1`` value is ours."""

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "name": self.name,
            "type": self.rdtype,
            "before": list(self.before),
            "after": list(self.after),
        }

    def describe(self) -> str:
        sign = {"add": "+", "change": "~", "remove": "-"}[self.action]
        head = f"{sign} {self.action:<6} {self.name} {self.rdtype}"
        if self.action == "add":
            return f"{head} {' | '.join(self.after)}"
        if self.action == "remove":
            return f"{head} {' | '.join(self.before)}"
        return f"{head} {' | '.join(self.before)}  →  {' | '.join(self.after)}"


@dataclass
class ZonePlan:
    zone: str
    changes: list[Change] = field(default_factory=list)
    outside: list[DnsRecord] = field(default_factory=list)
    """Records of the config outside this zone (PTR, a host elsewhere): by hand."""


def in_zone(name: str, zone: str) -> bool:
    name, zone = name.lower().rstrip("."), zone.lower().rstrip(".")
    return name == zone or name.endswith("." + zone)


def _rdata(rdtype: str, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text)


def _presentation(record: DnsRecord) -> str:
    return txt_rdata(record.value) if record.rdtype == "TXT" else record.value


def _key(rdtype: str, rdata: dns.rdata.Rdata) -> str:
    """What makes two values the same: TXT strings joined (a provider may split a long
    value differently, RFC 7208 §3.3 and RFC 6376 §3.6.2.2 join them), else the text."""
    if rdtype == "TXT":
        strings: Sequence[bytes] = rdata.strings  # type: ignore[attr-defined]
        return b"".join(strings).decode("utf-8", "replace")
    return rdata.to_text().lower()


def query_rrset(
    name: str, rdtype: str, server: tuple[str, int], timeout: float = QUERY_TIMEOUT
) -> list[dns.rdata.Rdata]:
    """The values ``server`` serves authoritatively at ``name``/``rdtype`` (TCP)."""
    query = dns.message.make_query(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
    try:
        response = dns.query.tcp(query, server[0], port=server[1], timeout=timeout)
    except (dns.exception.DNSException, OSError) as exc:
        raise UpdateError(
            f"{server[0]}:{server[1]} did not answer for {name} {rdtype}: {exc}"
        ) from None
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise UpdateError(
            f"{server[0]}:{server[1]} answered {dns.rcode.to_text(rcode)} for {name} {rdtype}"
        )
    wanted = dns.rdatatype.from_text(rdtype)
    return [rd for rrset in response.answer if rrset.rdtype == wanted for rd in rrset]


def plan_changes(
    zone: str,
    records: Iterable[DnsRecord],
    primary: tuple[str, int],
    remove: Iterable[tuple[str, str]] = (),
) -> ZonePlan:
    """The changes that make ``primary`` serve ``records`` (those inside ``zone``), and
    remove the RRsets ``remove`` names ((name, type) pairs, e.g. a retired DKIM key)."""
    plan = ZonePlan(zone.lower().rstrip("."))
    wanted: dict[tuple[str, str], list[DnsRecord]] = {}
    for record in records:
        if record.publish != "dns" or not in_zone(record.name, plan.zone):
            plan.outside.append(record)
            continue
        wanted.setdefault((record.name.lower(), record.rdtype), []).append(record)
    for (name, rdtype), group in wanted.items():
        served = query_rrset(name, rdtype, primary)
        served_keys = {_key(rdtype, rd): rd.to_text() for rd in served}
        after = [_presentation(r) for r in group]
        after_keys = {_key(rdtype, _rdata(rdtype, text)) for text in after}
        only_spf = rdtype == "TXT" and any(r.value.startswith(SPF_PREFIX) for r in group)
        if only_spf:
            ours = {k: v for k, v in served_keys.items() if k.startswith(SPF_PREFIX)}
        else:
            ours = served_keys
        if set(ours) == after_keys:
            continue
        action: Literal["add", "change"] = "change" if ours else "add"
        plan.changes.append(
            Change(action, name, rdtype, tuple(ours.values()), tuple(after), group[0].ttl, only_spf)
        )
    for name, rdtype in remove:
        if not in_zone(name, plan.zone):
            continue
        served = query_rrset(name, rdtype, primary)
        if served:
            plan.changes.append(
                Change("remove", name.lower(), rdtype, tuple(rd.to_text() for rd in served), ())
            )
    return plan


def apply_changes(
    plan: ZonePlan, primary: tuple[str, int], key: TsigKey, timeout: float = QUERY_TIMEOUT
) -> None:
    """Send the plan as one signed UPDATE (RFC 2136 §3.4: applied atomically)."""
    if not plan.changes:
        return
    update = dns.update.UpdateMessage(
        plan.zone + ".",
        keyring=key.keyring(),
        keyname=dns.name.from_text(key.name),
        keyalgorithm=key.algorithm,
    )
    for change in plan.changes:
        name = dns.name.from_text(change.name)
        if change.action == "remove":
            update.delete(name, change.rdtype)
        elif change.only_spf:  # leave the other TXT values of the name alone
            for text in change.before:
                update.delete(name, _rdata(change.rdtype, text))
            for text in change.after:
                update.add(name, change.ttl, _rdata(change.rdtype, text))
        else:
            update.replace(
                name, change.ttl, *(_rdata(change.rdtype, text) for text in change.after)
            )
    try:
        response = dns.query.tcp(update, primary[0], port=primary[1], timeout=timeout)
    except dns.tsig.PeerError as exc:
        raise UpdateError(f"{primary[0]}:{primary[1]} refused the TSIG key: {exc}") from None
    except (dns.exception.DNSException, OSError) as exc:
        raise UpdateError(
            f"{primary[0]}:{primary[1]}: the update was not answered: {exc}"
        ) from None
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        raise UpdateError(
            f"{primary[0]}:{primary[1]} refused the update: {dns.rcode.to_text(rcode)}"
            + (
                " (is the TSIG key allowed to update this zone?)"
                if rcode == dns.rcode.REFUSED
                else ""
            )
        )


def served(change: Change, server: tuple[str, int]) -> bool:
    """True when ``server`` serves the change's outcome."""
    keys = {_key(change.rdtype, rd) for rd in query_rrset(change.name, change.rdtype, server)}
    after = {_key(change.rdtype, _rdata(change.rdtype, t)) for t in change.after}
    if change.action == "remove":
        return not keys
    if change.only_spf:
        return {k for k in keys if k.startswith(SPF_PREFIX)} == after
    return keys == after


def wait_until_served(
    changes: Sequence[Change],
    servers: Sequence[tuple[str, int]],
    timeout: float,
    interval: float = 0.5,
) -> dict[tuple[str, int], bool]:
    """Ask every server until it serves every change, or ``timeout`` seconds passed;
    per server, whether it does.  A server that does not answer counts as not serving."""
    deadline = time.monotonic() + timeout
    pending = list(servers)
    done: dict[tuple[str, int], bool] = dict.fromkeys(servers, False)
    while True:
        for server in list(pending):
            try:
                ok = all(served(c, server) for c in changes)
            except UpdateError:
                ok = False
            if ok:
                done[server] = True
                pending.remove(server)
        if not pending or time.monotonic() >= deadline:
            return done
        time.sleep(interval)


def authoritative_servers(
    zone: str,
    primary: tuple[str, int],
    port: int = 53,
    resolve: Callable[[str], list[str]] | None = None,
) -> list[tuple[str, int]]:
    """The zone's name servers (its NS records; their addresses from the primary's data,
    else from ``resolve``, the resolver's lookup for names outside the zone), on
    ``port``; the primary itself is always included."""
    found: list[tuple[str, int]] = [primary]
    for ns in query_rrset(zone, "NS", primary):
        target = ns.to_text().rstrip(".")
        addresses: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                addresses += [a.to_text() for a in query_rrset(target, rdtype, primary)]
            except UpdateError:
                continue
        if not addresses and resolve is not None:
            addresses = resolve(target)
        for address in addresses:
            if (address, port) not in found:
                found.append((address, port))
    return found


def parse_server(text: str, default_port: int = 53) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT``."""
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    if not host:
        raise UsageError(f"{text!r} is not HOST[:PORT]", "write e.g. 192.0.2.53:53")
    return host, port


def _port(text: str, whole: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise UsageError(f"{whole!r}: bad port", "write e.g. 192.0.2.53:53")
    return int(text)
