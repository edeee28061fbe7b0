"""check_host() (RFC 7208 §4-§6) over the async :class:`~mailwright.dns.Resolver`.

The evaluation itself is strictly sequential, exactly as the RFC describes it:
terms are counted toward the limits (§4.6.4) when they are reached, the first
matching mechanism wins, and DNS errors surface in that order. What runs
concurrently is only the *fetching*: when a record is parsed, the first-level
lookups of its DNS-querying terms (and, when an include's record arrives, of the
included record's terms) are started at once, into a per-check cache that the
sequential evaluation then reads. So the result and the counted lookups are
those of a sequential evaluation, while the waiting overlaps. Speculation is
bounded by the same budget as the evaluation (10 terms, 10 names per mx/ptr),
so a check never sends more queries than a worst-case sequential one could.
``concurrent=False`` turns it off (the benchmark compares both).

Choices where RFC 7208 leaves room (the test suite allows either):

* A <target-name> that cannot be a DNS name after expansion (empty label, label
  over 63 octets; §4.8 leaves it undefined) makes its mechanism *not match*,
  like the "none" of §4.3 and unlike a permerror: the suite's first preference.
* ``%{p}`` prefers the <domain> itself, then a subdomain of it, then the first
  validated name (§7.3 SHOULD); so ``p-macro-multiple`` gives pass.
* Void lookups (§4.6.4) are counted per term: the MX query of ``mx``, the A/AAAA
  query of ``a``, the A query of ``exists``, the PTR query of ``ptr``. The address
  lookups of the names an MX or PTR set lists are not terms and do not count.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any

from ..dns import DnsResult, MXRecord, Outcome, Resolver, name_problem, reverse_name, to_ascii
from .macro import (
    MacroContext,
    MacroContextKind,
    MacroString,
    MacroSyntaxError,
    expand,
    expand_domain,
    parse_macro_string,
    split_sender,
)
from .record import Mechanism, Modifier, Record, SpfSyntaxError, is_spf_record, parse_record
from .result import Result, SpfResult, TraceStep

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_DNS_TERMS = 10
"""RFC 7208 §4.6.4: include, a, mx, ptr, exists and redirect, per whole evaluation."""
MAX_VOID_LOOKUPS = 2
"""RFC 7208 §4.6.4: "SPF implementations SHOULD limit 'void lookups' to two"."""
MAX_MX_NAMES = 10
"""RFC 7208 §4.6.4: more MX records than this is a permerror."""
MAX_PTR_NAMES = 10
"""RFC 7208 §4.6.4: PTR names beyond the first 10 are ignored."""
DEFAULT_TIMEOUT = 20.0
"""RFC 7208 §4.6.4: a limit on the whole evaluation "SHOULD allow at least 20 seconds"."""
MAX_EXPLANATION = 400
"""§6.2 allows limiting the explanation; it has to fit in one SMTP reply line."""
DEFAULT_EXPLANATION = "%{o} does not designate %{c} as a permitted sender"
"""Used for fail when the publisher gave no usable exp= (§6.2: a default is allowed)."""


class _Abort(Exception):
    """Ends the evaluation with temperror or permerror (§4.6.2: an exception)."""

    def __init__(
        self,
        result: Result,
        problem: str,
        domain: str | None = None,
        term: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(problem)
        self.result = result
        self.problem = problem
        self.domain = domain
        self.term = term
        self.offset = offset


@dataclass(frozen=True, slots=True)
class _Outcome:
    """The result of one check_host() level and where it was decided (for exp=)."""

    result: Result
    domain: str
    mechanism: Mechanism | None = None
    record: Record | None = None
    ctx: MacroContext | None = None
    problem: str | None = None
    record_text: str | None = None


def domain_problem(domain: str) -> str | None:
    """Why ``domain`` cannot be checked (RFC 7208 §4.3: the result is then none)."""
    if not domain:
        return "empty domain"
    if domain.startswith("["):
        return "an address literal is not a domain"
    try:
        ascii_name = to_ascii(domain.rstrip("."))
    except UnicodeError:
        return "not a valid internationalized domain name"
    for ch in ascii_name:
        if not "\x21" <= ch <= "\x7e":
            return f"character {ch!r} is not allowed in a domain"
    problem = name_problem(ascii_name)
    if problem is not None:
        return problem
    labels = ascii_name.split(".")
    if len(labels) < 2:
        return "not a fully qualified (multi-label) domain"
    if labels[-1].isdigit():
        return "an IP address is not a domain"
    return None


def parse_client_ip(ip: str | IPAddress) -> IPAddress:
    """The client address; IPv4-mapped IPv6 becomes IPv4 (RFC 7208 §5: "MUST still be
    considered an IPv4 address"). Raises ValueError for anything that is not an address."""
    if isinstance(ip, str):
        try:
            addr: IPAddress = ipaddress.ip_address(ip.strip())
        except ValueError:
            raise ValueError(f"{ip!r} is not an IPv4 or IPv6 address") from None
    else:
        addr = ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        # A peer on a link-local address arrives as "fe80::1%eth0": the zone is local
        # routing data, not part of the address SPF records list.
        addr = ipaddress.IPv6Address(str(addr).partition("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class _Evaluation:
    """The state of one check: the limits are global to it (§4.1), so are the caches."""

    def __init__(
        self,
        *,
        ip: IPAddress,
        sender: str,
        helo: str,
        resolver: Resolver,
        receiver: str,
        concurrent: bool,
        max_void_lookups: int,
    ) -> None:
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.resolver = resolver
        self.receiver = receiver
        self.concurrent = concurrent
        self.max_void = max_void_lookups
        self.timestamp = int(time.time())
        self.lookups = 0
        self.void = 0
        self.trace: list[TraceStep] = []
        self._queries: dict[tuple[str, str], asyncio.Task[DnsResult[Any]]] = {}
        self._helpers: list[asyncio.Task[None]] = []
        self._prefetch_budget = MAX_DNS_TERMS
        self._prefetched: set[str] = set()
        self._parsed: dict[str, Record | SpfSyntaxError] = {}
        self._validated: dict[str, str | None] = {}
        self._addr_type = "A" if ip.version == 4 else "AAAA"

    # -- DNS ---------------------------------------------------------------------------

    def _start(self, name: str, rdtype: str) -> asyncio.Task[DnsResult[Any]]:
        key = (name.lower(), rdtype)
        task = self._queries.get(key)
        if task is None:
            task = asyncio.ensure_future(self.resolver.query(name, rdtype))
            self._queries[key] = task
        return task

    async def query(self, name: str, rdtype: str) -> DnsResult[Any]:
        """One lookup, shared with any prefetch of the same name and type."""
        return await self._start(name, rdtype)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run speculative work; its failures are ignored (the evaluation re-reads the
        same queries and meets any problem itself)."""
        task = asyncio.ensure_future(coro)
        task.add_done_callback(_consume)
        self._helpers.append(task)

    async def close(self) -> None:
        """Cancel speculative lookups that the evaluation did not need."""
        pending = [t for t in (*self._queries.values(), *self._helpers) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- helpers -------------------------------------------------------------------------

    def note(self, depth: int, domain: str, message: str) -> None:
        self.trace.append(TraceStep(depth, domain, message))

    def context(self, domain: str) -> MacroContext:
        return MacroContext(
            sender=self.sender,
            domain=domain,
            ip=self.ip,
            helo=self.helo,
            receiver=self.receiver,
            timestamp=self.timestamp,
        )

    def parse(self, text: str) -> Record | SpfSyntaxError:
        cached = self._parsed.get(text)
        if cached is None:
            try:
                cached = parse_record(text)
            except SpfSyntaxError as exc:
                cached = exc
            self._parsed[text] = cached
        return cached

    def count_term(self, term: Mechanism | Modifier, domain: str) -> None:
        self.lookups += 1
        if self.lookups > MAX_DNS_TERMS:
            raise _Abort(
                Result.PERMERROR,
                f"more than {MAX_DNS_TERMS} DNS-querying terms (RFC 7208 §4.6.4)",
                domain,
                term.text,
                term.offset,
            )

    def count_void(self, term: Mechanism, domain: str) -> None:
        self.void += 1
        if self.void > self.max_void:
            raise _Abort(
                Result.PERMERROR,
                f"more than {self.max_void} void lookups (RFC 7208 §4.6.4)",
                domain,
                term.text,
                term.offset,
            )

    async def target(self, spec: MacroString, ctx: MacroContext) -> str:
        """Expand a domain-spec, resolving ``%{p}`` first when it is used."""
        if "p" in spec.letters:
            ctx = replace(ctx, validated_name=await self.validated_name(ctx.domain))
        return expand_domain(spec, ctx)

    def matches(self, address: str, mech: Mechanism) -> bool:
        try:
            addr = ipaddress.ip_address(address)
        except ValueError:
            return False  # a malformed address in a DNS answer matches nothing
        if addr.version != self.ip.version:
            return False
        cidr = mech.cidr4 if addr.version == 4 else mech.cidr6
        if cidr is None:
            return addr == self.ip
        network = ipaddress.ip_network(f"{addr}/{cidr}", strict=False)
        return self.ip in network

    # -- check_host() ----------------------------------------------------------------------

    async def check(self, domain: str, depth: int) -> _Outcome:
        """One level of check_host(): §4.3 to §4.7 and §6.1."""
        problem = domain_problem(domain)
        if problem is not None:
            self.note(depth, domain, f"not checked: {problem} (§4.3) → none")
            return _Outcome(Result.NONE, domain, problem=f"{domain!r}: {problem}")
        domain = to_ascii(domain.rstrip("."))
        txt = await self.query(domain, "TXT")
        if txt.is_error:
            # §4.4: server failure or timeout → temperror.
            raise _Abort(Result.TEMPERROR, f"TXT lookup for {domain} failed: {txt.error}", domain)
        records = [r for r in txt.records if is_spf_record(r)] if txt.ok else []
        if not records:
            why = "no such domain" if txt.outcome is Outcome.NXDOMAIN else "no SPF record"
            self.note(depth, domain, f"{why} → none")
            return _Outcome(Result.NONE, domain, problem=f"{domain}: {why}")
        if len(records) > 1:
            # §4.5: more than one v=spf1 record → permerror.
            raise _Abort(
                Result.PERMERROR,
                f"{domain} publishes {len(records)} SPF records; exactly one is allowed "
                "(RFC 7208 §4.5)",
                domain,
            )
        text = records[0]
        self.note(depth, domain, f"record: {text}")
        parsed = self.parse(text)
        if isinstance(parsed, SpfSyntaxError):
            raise _Abort(
                Result.PERMERROR,
                f"syntax error in the SPF record of {domain}: {parsed.message}",
                domain,
                parsed.term,
                parsed.offset,
            )
        record = parsed
        ctx = self.context(domain)
        if self.concurrent:
            self.prefetch(record, ctx)
        for mech in record.mechanisms:
            if await self.mechanism(mech, ctx, depth):
                result = Result(mech.qualifier.result)
                self.note(depth, domain, f"{mech.text} matched → {result}")
                return _Outcome(result, domain, mech, record, ctx, record_text=text)
            self.note(depth, domain, f"{mech.text}: no match")
        if record.redirect is not None and not record.has_all:
            # §6.1: only when no mechanism matched and there is no "all".
            self.count_term(record.redirect, domain)
            target = await self.target(record.redirect.value, ctx)
            self.note(depth, domain, f"{record.redirect.text} → {target}")
            outcome = await self.check(target, depth + 1)
            if outcome.result is Result.NONE:
                raise _Abort(
                    Result.PERMERROR,
                    f"redirect target {target} has no usable SPF record (RFC 7208 §6.1)",
                    domain,
                    record.redirect.text,
                    record.redirect.offset,
                )
            return replace(outcome, record_text=text)
        self.note(depth, domain, "no mechanism matched → neutral (§4.7)")
        return _Outcome(Result.NEUTRAL, domain, None, record, ctx, record_text=text)

    async def mechanism(self, mech: Mechanism, ctx: MacroContext, depth: int) -> bool:
        """Whether ``mech`` matches; raises :class:`_Abort` for its exceptions (§4.6.2)."""
        name = mech.name
        domain = ctx.domain
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            assert mech.network is not None
            return self.ip.version == mech.network.version and self.ip in mech.network
        self.count_term(mech, domain)
        target = domain if mech.domain_spec is None else await self.target(mech.domain_spec, ctx)
        if name == "include":
            self.note(depth, domain, f"{mech.text} → check {target}")
            outcome = await self.check(target, depth + 1)
            if outcome.result is Result.NONE:
                # §5.2: a recursive result of none makes include a permerror.
                raise _Abort(
                    Result.PERMERROR,
                    f"included domain {target} has no usable SPF record (RFC 7208 §5.2)",
                    domain,
                    mech.text,
                    mech.offset,
                )
            return outcome.result is Result.PASS
        problem = name_problem(target) if name != "ptr" else None
        if problem is not None:
            self.note(depth, domain, f"{mech.text}: {target!r} is not a DNS name ({problem})")
            return False
        if name == "a":
            return await self.mech_a(mech, target, depth, domain)
        if name == "mx":
            return await self.mech_mx(mech, target, depth, domain)
        if name == "ptr":
            return await self.mech_ptr(mech, target, depth, domain)
        if name == "exists":
            return await self.mech_exists(mech, target, depth, domain)
        raise AssertionError(f"unhandled mechanism {name}")  # pragma: no cover

    def _dns_error(self, mech: Mechanism, result: DnsResult[Any], domain: str) -> _Abort:
        # §5: "if the DNS server returns an error ... or the query times out, the
        # mechanism stops and the topmost check_host() returns 'temperror'".
        return _Abort(
            Result.TEMPERROR,
            f"{mech.text}: {result.rdtype} lookup for {result.name} failed: {result.error}",
            domain,
            mech.text,
            mech.offset,
        )

    async def mech_a(self, mech: Mechanism, target: str, depth: int, domain: str) -> bool:
        res = await self.query(target, self._addr_type)
        if res.is_error:
            raise self._dns_error(mech, res, domain)
        if not res.ok:
            self.note(depth, domain, f"{mech.text}: no {self._addr_type} for {target} (void)")
            if res.is_void:
                self.count_void(mech, domain)
            return False
        return any(self.matches(a, mech) for a in res.records)

    async def mech_mx(self, mech: Mechanism, target: str, depth: int, domain: str) -> bool:
        res = await self.query(target, "MX")
        if res.is_error:
            raise self._dns_error(mech, res, domain)
        if not res.ok:
            self.note(depth, domain, f"{mech.text}: no MX for {target} (void)")
            if res.is_void:
                self.count_void(mech, domain)
            return False
        records: tuple[MXRecord, ...] = res.records
        if len(records) > MAX_MX_NAMES:
            # §4.6.4: "If this limit is exceeded, the 'mx' mechanism MUST produce a
            # 'permerror' result."
            raise _Abort(
                Result.PERMERROR,
                f"{mech.text}: {target} has {len(records)} MX records, "
                f"more than {MAX_MX_NAMES} (RFC 7208 §4.6.4)",
                domain,
                mech.text,
                mech.offset,
            )
        # §5.4: the null MX of RFC 7505 (".") names no host.
        names = [r.exchange for r in records if r.exchange]
        return await self._any_address_matches(mech, names, domain, skip_errors=False)

    async def _any_address_matches(
        self, mech: Mechanism, names: list[str], domain: str, *, skip_errors: bool
    ) -> bool:
        """Look up each name's addresses (concurrently) and judge them in list order."""
        names = [n for n in names if name_problem(n) is None]
        if self.concurrent:
            for n in names:
                self._start(n, self._addr_type)
        for n in names:
            res = await self.query(n, self._addr_type)
            if res.is_error:
                if skip_errors:
                    continue
                raise self._dns_error(mech, res, domain)
            if res.ok and any(self.matches(a, mech) for a in res.records):
                return True
        return False

    async def ptr_names(self) -> DnsResult[Any]:
        return await self.query(reverse_name(self.ip), "PTR")

    async def mech_ptr(self, mech: Mechanism, target: str, depth: int, domain: str) -> bool:
        res = await self.ptr_names()
        if not res.ok:
            # §5.5: "If a DNS error occurs while doing the PTR RR lookup, then this
            # mechanism fails to match."
            self.note(depth, domain, f"{mech.text}: no PTR for {self.ip} ({res.outcome})")
            if res.is_void:
                self.count_void(mech, domain)
            return False
        target = target.lower()
        # §4.6.4: only the first 10 PTR names are considered; the others are ignored.
        candidates = [
            n for n in res.records[:MAX_PTR_NAMES] if n == target or n.endswith("." + target)
        ]
        for name in candidates:
            # §5.5: a DNS error while validating a name skips that name.
            if await self._any_address_matches(mech, [name], domain, skip_errors=True):
                self.note(depth, domain, f"{mech.text}: {self.ip} validated as {name}")
                return True
        return False

    async def mech_exists(self, mech: Mechanism, target: str, depth: int, domain: str) -> bool:
        # §5.7: always an A lookup, even for an IPv6 client.
        res = await self.query(target, "A")
        if res.is_error:
            raise self._dns_error(mech, res, domain)
        if not res.ok:
            self.note(depth, domain, f"{mech.text}: {target} does not exist (void)")
            if res.is_void:
                self.count_void(mech, domain)
            return False
        return True

    async def validated_name(self, domain: str) -> str | None:
        """``%{p}`` (§7.3): a validated PTR name, preferring <domain>, then its subdomains."""
        if domain in self._validated:
            return self._validated[domain]
        res = await self.ptr_names()
        validated: list[str] = []
        if res.ok:
            names = [n for n in res.records[:MAX_PTR_NAMES] if name_problem(n) is None]
            if self.concurrent:
                for n in names:
                    self._start(n, self._addr_type)
            for n in names:
                addrs = await self.query(n, self._addr_type)
                if addrs.ok and any(_same_ip(a, self.ip) for a in addrs.records):
                    validated.append(n)
        low = domain.lower()
        chosen = next((n for n in validated if n == low), None)
        if chosen is None:
            chosen = next((n for n in validated if n.endswith("." + low)), None)
        if chosen is None and validated:
            chosen = validated[0]
        self._validated[domain] = chosen
        return chosen

    # -- speculative prefetch ----------------------------------------------------------------

    def prefetch(self, record: Record, ctx: MacroContext) -> None:
        """Start the lookups the evaluation of ``record`` will most likely need (once per
        domain: the evaluation and an earlier speculative fetch may both ask)."""
        key = ctx.domain.lower()
        if key in self._prefetched:
            return
        self._prefetched.add(key)
        for mech in record.mechanisms:
            if mech.name == "all":
                return  # §5.1: mechanisms after "all" are never evaluated
            if not mech.queries_dns:
                continue
            if self._prefetch_budget <= 0:
                return
            spec = mech.domain_spec
            if spec is not None and "p" in spec.letters:
                continue  # needs PTR validation first; left to the evaluation
            self._prefetch_budget -= 1
            target = ctx.domain if spec is None else expand_domain(spec, ctx)
            if mech.name != "include" and name_problem(target) is not None:
                continue
            if mech.name == "a":
                self._start(target, self._addr_type)
            elif mech.name == "exists":
                self._start(target, "A")
            elif mech.name == "mx":
                self._spawn(self._prefetch_mx(target))
            elif mech.name == "ptr":
                self._spawn(self._prefetch_ptr(target))
            elif mech.name == "include":
                self._spawn(self._prefetch_record(target))
        redirect = record.redirect
        if (
            redirect is not None
            and not record.has_all
            and self._prefetch_budget > 0
            and "p" not in redirect.value.letters
        ):
            self._prefetch_budget -= 1
            self._spawn(self._prefetch_record(expand_domain(redirect.value, ctx)))

    async def _prefetch_record(self, domain: str) -> None:
        if domain_problem(domain) is not None:
            return
        domain = to_ascii(domain.rstrip("."))
        txt = await self.query(domain, "TXT")
        records = [r for r in txt.records if is_spf_record(r)] if txt.ok else []
        if len(records) == 1:
            parsed = self.parse(records[0])
            if isinstance(parsed, Record):
                self.prefetch(parsed, self.context(domain))

    async def _prefetch_mx(self, target: str) -> None:
        res = await self.query(target, "MX")
        if res.ok and len(res.records) <= MAX_MX_NAMES:
            for r in res.records:
                if r.exchange and name_problem(r.exchange) is None:
                    self._start(r.exchange, self._addr_type)

    async def _prefetch_ptr(self, target: str) -> None:
        res = await self.ptr_names()
        if res.ok:
            target = target.lower()
            for n in res.records[:MAX_PTR_NAMES]:
                if (n == target or n.endswith("." + target)) and name_problem(n) is None:
                    self._start(n, self._addr_type)

    # -- explanation ---------------------------------------------------------------------

    async def explain(self, outcome: _Outcome, default: str | None) -> tuple[str | None, str]:
        """§6.2: the exp= text of the record whose mechanism gave fail, else the default."""
        record, ctx = outcome.record, outcome.ctx
        if record is not None and ctx is not None and record.exp is not None:
            text = await self._exp_text(record.exp.value, ctx, outcome.domain)
            if text is not None:
                return text, "exp"
        if default is None or ctx is None:
            return None, "default"
        try:
            spec = parse_macro_string(default, MacroContextKind.EXPLAIN)
        except MacroSyntaxError:
            return default, "default"
        return await self._expand_explain(spec, ctx), "default"

    async def _exp_text(self, spec: MacroString, ctx: MacroContext, domain: str) -> str | None:
        # Every problem here means "proceed as if no exp modifier was given" (§6.2);
        # the lookup does not count toward any limit (§4.6.4).
        target = await self.target(spec, ctx)
        if name_problem(target) is not None:
            return None
        res = await self.query(target, "TXT")
        if not res.ok or len(res.records) != 1:
            self.note(
                0,
                domain,
                f"exp={spec.text}: unusable ({res.outcome}, "
                f"{len(res.records)} records); default explanation",
            )
            return None
        try:
            explain = parse_macro_string(res.records[0], MacroContextKind.EXPLAIN)
        except MacroSyntaxError as exc:
            self.note(0, domain, f"exp={spec.text}: bad explanation text ({exc.message})")
            return None
        return await self._expand_explain(explain, ctx)

    async def _expand_explain(self, spec: MacroString, ctx: MacroContext) -> str:
        if "p" in spec.letters:
            ctx = replace(ctx, validated_name=await self.validated_name(ctx.domain))
        text = expand(spec, ctx, limit=MAX_EXPLANATION)
        # §6.2: US-ASCII only (the parser already refused other characters in the
        # record; macro values such as a UTF-8 local-part could still bring some).
        text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
        return text[:MAX_EXPLANATION]


def _consume(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _same_ip(address: str, ip: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(address) == ip
    except ValueError:
        return False


async def check_host(
    ip: str | IPAddress,
    domain: str,
    sender: str,
    *,
    helo: str,
    resolver: Resolver,
    receiver: str = "unknown",
    identity: str = "mailfrom",
    timeout: float = DEFAULT_TIMEOUT,
    concurrent: bool = True,
    default_explanation: str | None = DEFAULT_EXPLANATION,
    max_void_lookups: int = MAX_VOID_LOOKUPS,
) -> SpfResult:
    """RFC 7208 check_host(<ip>, <domain>, <sender>), never raising for DNS or record content.

    ``ip`` may be IPv4, IPv6 or IPv4-mapped IPv6 (evaluated as IPv4); anything else
    raises ValueError, a caller's mistake. ``sender`` is ``local@domain`` (an empty
    local-part becomes ``postmaster``, §4.3). ``receiver`` is this host's name for
    ``%{r}`` and the Received-SPF header. ``timeout`` bounds the whole evaluation
    (temperror when exceeded, §4.6.4).
    """
    addr = parse_client_ip(ip)
    local, sender_domain = split_sender(sender)
    sender = f"{local}@{sender_domain}"
    domain = domain.strip()
    evaluation = _Evaluation(
        ip=addr,
        sender=sender,
        helo=helo,
        resolver=resolver,
        receiver=receiver,
        concurrent=concurrent,
        max_void_lookups=max_void_lookups,
    )
    base: dict[str, Any] = {
        "ip": str(addr),
        "domain": domain,
        "sender": sender,
        "helo": helo,
        "identity": identity,
        "receiver": receiver,
    }
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        try:
            async with asyncio.timeout_at(deadline):
                outcome = await evaluation.check(domain, 0)
        except _Abort as abort:
            evaluation.note(0, abort.domain or domain, f"{abort.result}: {abort.problem}")
            return SpfResult(
                result=abort.result,
                problem=abort.problem,
                problem_domain=abort.domain,
                problem_term=abort.term,
                problem_offset=abort.offset,
                record=_top_record(evaluation, domain),
                lookups=min(evaluation.lookups, MAX_DNS_TERMS + 1),
                void_lookups=evaluation.void,
                trace=tuple(evaluation.trace),
                **base,
            )
        except TimeoutError:
            return SpfResult(
                result=Result.TEMPERROR,
                problem=f"the evaluation took longer than {timeout:g} s (RFC 7208 §4.6.4)",
                problem_domain=domain,
                lookups=evaluation.lookups,
                void_lookups=evaluation.void,
                trace=tuple(evaluation.trace),
                **base,
            )
        explanation: str | None = None
        source: str | None = None
        if outcome.result is Result.FAIL:
            try:
                remaining = max(deadline - asyncio.get_running_loop().time(), 1.0)
                async with asyncio.timeout(remaining):
                    explanation, source = await evaluation.explain(outcome, default_explanation)
            except TimeoutError:
                explanation, source = None, None
        mech = outcome.mechanism
        return SpfResult(
            result=outcome.result,
            mechanism=mech.text if mech is not None else None,
            mechanism_domain=outcome.domain if mech is not None else None,
            explanation=explanation,
            explanation_source=source,
            problem=outcome.problem,
            record=outcome.record_text,
            lookups=evaluation.lookups,
            void_lookups=evaluation.void,
            trace=tuple(evaluation.trace),
            **base,
        )
    finally:
        await evaluation.close()


def _top_record(evaluation: _Evaluation, domain: str) -> str | None:
    """The checked domain's SPF record, if its TXT lookup already finished."""
    task = evaluation._queries.get((domain.rstrip(".").lower(), "TXT"))
    if task is None or not task.done() or task.cancelled() or task.exception() is not None:
        return None
    records = [r for r in task.result().records if is_spf_record(r)]
    return records[0] if len(records) == 1 else None


async def check_mail_from(
    ip: str | IPAddress,
    sender: str,
    helo: str,
    resolver: Resolver,
    *,
    receiver: str = "unknown",
    **options: Any,
) -> SpfResult:
    """The MAIL FROM identity (RFC 7208 §2.4); a null reverse path checks postmaster@<helo>."""
    sender = sender.strip()
    if sender in ("", "<>"):
        sender = f"postmaster@{helo}"
    domain = split_sender(sender)[1]
    return await check_host(
        ip,
        domain,
        sender,
        helo=helo,
        resolver=resolver,
        receiver=receiver,
        identity="mailfrom",
        **options,
    )


async def check_helo(
    ip: str | IPAddress,
    helo: str,
    resolver: Resolver,
    *,
    receiver: str = "unknown",
    **options: Any,
) -> SpfResult:
    """The HELO identity (RFC 7208 §2.3): <domain> is the HELO name, <sender> postmaster@it."""
    return await check_host(
        ip,
        helo,
        f"postmaster@{helo}",
        helo=helo,
        resolver=resolver,
        receiver=receiver,
        identity="helo",
        **options,
    )
