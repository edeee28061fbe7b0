"""DNS blocklists: is a sending address (DNSBL) or the domain (DBL) listed?

RFC 5782 §2.1: an address is looked up as its reversed octets (IPv6: reversed
nibbles, §2.4) under the list's zone, a domain as itself under the zone; an A
answer in 127.0.0.0/8 means listed, NXDOMAIN means not. Lists also answer
codes that mean "your query was refused" — Spamhaus 127.255.255.252/254/255
(bad DQS key, public resolver, over the limit), SURBL and URIBL 127.0.0.1
(blocked resolver), Spamhaus DBL 127.0.1.255 (an IP asked of a domain list) —
and resolvers that rewrite NXDOMAIN answer public addresses. Those are
``error`` ("could not check"), never "listed": calling a clean address listed
sends an admin chasing a delisting that does not exist.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..dns.names import reverse_name
from .context import Context
from .host import dig
from .model import Finding, combine

_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_REFUSED_NET = ipaddress.ip_network("127.255.255.0/24")


@dataclass(frozen=True)
class ListInfo:
    lookup: str
    """Where a person looks up a listing and asks for removal ({subject} is replaced)."""
    refused: dict[str, str]
    """Answer address → what it means, for codes that are not listings."""


_SPAMHAUS_REFUSED = {
    "127.255.255.252": "typo in the Data Query Service key",
    "127.255.255.254": "query through a public/open resolver, which Spamhaus refuses",
    "127.255.255.255": "too many queries (over the free-use limit)",
}
KNOWN_LISTS: dict[str, ListInfo] = {
    "zen.spamhaus.org": ListInfo("https://check.spamhaus.org/", _SPAMHAUS_REFUSED),
    "dbl.spamhaus.org": ListInfo(
        "https://check.spamhaus.org/",
        {**_SPAMHAUS_REFUSED, "127.0.1.255": "IP queries are not allowed in the DBL"},
    ),
    "bl.spamcop.net": ListInfo("https://www.spamcop.net/bl.shtml?{subject}", {}),
    "b.barracudacentral.org": ListInfo(
        "https://www.barracudacentral.org/lookups/lookup-reputation", {}
    ),
    "psbl.surriel.com": ListInfo("https://psbl.org/listing?ip={subject}", {}),
    "dnsbl-1.uceprotect.net": ListInfo(
        "https://www.uceprotect.net/en/rblcheck.php?ipr={subject}", {}
    ),
    "multi.surbl.org": ListInfo(
        "https://www.surbl.org/surbl-analysis",
        {"127.0.0.1": "query blocked: SURBL refuses public resolvers and heavy users"},
    ),
    "multi.uribl.com": ListInfo(
        "https://admin.uribl.com/",
        {"127.0.0.1": "query blocked: URIBL refuses public resolvers and heavy users"},
    ),
}


def list_info(zone: str) -> ListInfo:
    return KNOWN_LISTS.get(zone.lower(), ListInfo(f"the website of {zone}", {}))


def query_name(ip: str, zone: str) -> str:
    """RFC 5782 §2.1, §2.4: ``10.2.0.192.zen.spamhaus.org`` for 192.0.2.10."""
    reverse = reverse_name(ip)
    for suffix in (".in-addr.arpa", ".ip6.arpa"):
        if reverse.endswith(suffix):
            reverse = reverse[: -len(suffix)]
    return f"{reverse}.{zone}"


def classify(addresses: list[str], zone: str) -> tuple[str, str]:
    """("listed"|"refused", why) for the A answer of a blocklist query."""
    info = list_info(zone)
    for text in addresses:
        if text in info.refused:
            return "refused", f"{text}: {info.refused[text]}"
        addr = ipaddress.ip_address(text)
        if addr in _REFUSED_NET:
            return "refused", f"{text}: the list refused the query (127.255.255.x)"
        if addr not in _LOOPBACK:
            return "refused", (
                f"{text}: not a blocklist code (outside 127.0.0.0/8): a resolver "
                "that rewrites NXDOMAIN answers?"
            )
        if text == "127.0.0.1":
            return "refused", (
                "127.0.0.1: not a listing code (RFC 5782 §5); lists use it for refused queries"
            )
    return "listed", ", ".join(addresses)


async def _lookup(ctx: Context, subject: str, name: str, zone: str) -> Finding:
    result = await ctx.resolver.a(name)
    if result.is_error:
        return Finding.error(dig(result), f"could not check: query {zone} again later")
    if not result.ok:
        return Finding.ok(f"{subject} not listed ({name}: {result.outcome})")
    kind, why = classify([str(r) for r in result.records], zone)
    if kind == "refused":
        return Finding.error(
            f"could not check: {dig(result)}\n{why}",
            f"query {zone} through your own resolver (not a public one), or register for "
            "the list's data service",
        )
    reason = await ctx.resolver.txt(name)
    lines = [dig(result)] + ([dig(reason)] if reason.ok else [])
    page = list_info(zone).lookup.format(subject=subject)
    return Finding.fail(
        "\n".join([f"{subject} is listed on {zone} ({why})", *lines]),
        f"find the cause (compromised account, open relay, bad list hygiene), fix it, then "
        f"request removal at {page}",
    )


def dnsbl_check(zone: str) -> Callable[[Context], Awaitable[Finding]]:
    async def check(ctx: Context) -> Finding:
        ips = await ctx.sending_ips()
        if not ips:
            if ctx.options.relay_url:
                return Finding.ok("mail leaves through the relay: its reputation is the provider's")
            return Finding.error("no sending IP known", "pass --ip IP or set ipv4/ipv6")
        found = await asyncio.gather(*(_lookup(ctx, ip, query_name(ip, zone), zone) for ip in ips))
        return combine(list(zip(ips, found, strict=True)))

    return check


def dbl_check(zone: str) -> Callable[[Context], Awaitable[Finding]]:
    async def check(ctx: Context) -> Finding:
        return await _lookup(ctx, ctx.domain, f"{ctx.domain}.{zone}", zone)

    return check
