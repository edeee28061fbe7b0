"""Who our local addresses are: mailboxes, aliases, catch-alls, postmaster and abuse.

Pure: built from the config once (and again on SIGHUP), asked at ``RCPT TO`` whether an
address exists (``550 5.1.1`` if not) and at queueing time what it expands to.

Matching rules, in order (like Postfix's virtual alias + mailbox maps):

1. an alias for the exact address;
2. a mailbox with that address;
3. with a ``+extension`` (``user+tag@domain``), 1 and 2 for ``user@domain``;
4. a catch-all alias ``@domain``.

An SRS address of a local domain (``SRS0=...``, :mod:`mailwright.srs`: the envelope
sender of mail we forwarded) resolves to the address it stands for, if its hash and age
are right: that is how bounces of forwarded mail reach the original sender. A forged
or expired one resolves to nobody (``550 5.1.1``).

Mailman's list addresses exist when Mailman says the list does. While it cannot be
asked, an address that could be a list's and is no mailbox or alias is neither found
nor not found but :attr:`Lookup.UNKNOWN` (``451 4.3.0`` at RCPT: the sender retries).

Local parts compare case-insensitively. RFC 5321 §2.4 lets a server treat them as
case-sensitive, but for an application's own domain ``Billing@`` and ``billing@`` being
two people is a trap, not a feature. Domains compare case-insensitively (RFC 5321 §2.4).

RFC 5321 §4.5.1 requires ``postmaster`` at every domain (and RFC 2142 ``abuse``): when
the config does not say who they are, they go to the first mailbox of that domain (or of
any domain), and :attr:`LocalDirectory.notes` says so for the startup log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from .dns.names import normalize
from .mailman import list_address, unanswerable
from .srs import Srs, SrsError, is_srs

REQUIRED_ROLES = ("postmaster", "abuse")
MAX_ALIAS_DEPTH = 10
RECIPIENT_DELIMITER = "+"


class Lookup(Enum):
    """Whether a local address exists: three answers, because one part of the directory
    (Mailman's lists) lives in another program that can be down."""

    FOUND = "found"
    NOT_FOUND = "not found"
    UNKNOWN = "unknown"
    """It could be a list address and Mailman cannot be asked now (``451``, not ``550``)."""


def _key(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local.lower()}@{domain.lower().rstrip('.')}" if local else address.lower()


@dataclass(frozen=True)
class LocalDirectory:
    """Local domains and the addresses that exist in them."""

    domains: frozenset[str]
    mailboxes: frozenset[str]
    aliases: Mapping[str, tuple[str, ...]]
    notes: tuple[str, ...] = ()
    """What was implied (``postmaster@d → first mailbox``): logged at startup."""
    problems: tuple[str, ...] = ()
    """Required addresses that resolve to nobody (no mailbox to map them to)."""
    first_domain: str | None = field(default=None)
    bounce_local_part: str | None = None
    """``bounces``: ``bounces@`` and ``bounces+TOKEN@`` exist at every local domain and
    are consumed by the bounce processor (mailwright.feedback), never a mailbox."""
    srs: Srs | None = None
    """Reverses SRS addresses (None: no forwarding set up, SRS addresses are unknown)."""
    lists: Callable[[str], bool | None] | None = None
    """Whether Mailman has a list (``fqdn_listname``; None: Mailman cannot say now); its
    addresses resolve to themselves and are delivered over LMTP (mailwright.mailman)."""

    @classmethod
    def build(
        cls,
        domains: Iterable[str],
        mailboxes: Iterable[str] = (),
        aliases: Mapping[str, Iterable[str]] | None = None,
        srs: Srs | None = None,
    ) -> LocalDirectory:
        domain_list = [normalize(d) for d in domains]
        boxes = [_key(m) for m in mailboxes]
        table: dict[str, tuple[str, ...]] = {}
        for source, targets in (aliases or {}).items():
            table[_key(source) if not source.startswith("@") else source.lower()] = tuple(
                _key(t) for t in targets
            )
        notes: list[str] = []
        problems: list[str] = []
        for domain in domain_list:
            for role in REQUIRED_ROLES:
                address = f"{role}@{domain}"
                if address in table or address in boxes:
                    continue
                target = next((b for b in boxes if b.endswith("@" + domain)), None) or next(
                    iter(boxes), None
                )
                if target is None:
                    problems.append(address)
                    continue
                table[address] = (target,)
                notes.append(f"{address} is not configured: delivering it to {target}")
        return cls(
            domains=frozenset(domain_list),
            mailboxes=frozenset(boxes),
            aliases=table,
            notes=tuple(notes),
            problems=tuple(problems),
            first_domain=domain_list[0] if domain_list else None,
            srs=srs,
        )

    @classmethod
    def from_config(cls, config: object, srs: Srs | None = None) -> LocalDirectory:
        """From a :class:`mailwright.config.Config` (typed loosely to keep this module pure)."""
        directory = cls.build(
            getattr(config, "domains", ()),
            getattr(config, "mailboxes", ()),
            getattr(config, "aliases", {}),
            srs,
        )
        bounces = getattr(config, "bounces", None)
        if bounces is not None and getattr(bounces, "verp", False):
            return replace(directory, bounce_local_part=str(bounces.local_part).lower())
        return directory

    def forwards_outside(self) -> bool:
        """Some alias points to an address outside our domains (so SRS is needed)."""
        return any(
            t.rpartition("@")[2] not in self.domains for ts in self.aliases.values() for t in ts
        )

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in self.domains

    def is_local(self, address: str) -> bool:
        local, _, domain = address.rpartition("@")
        return bool(local) and self.is_local_domain(domain)

    def resolve(self, address: str) -> tuple[str, ...] | None:
        """The final addresses ``address`` delivers to (local mailboxes or external
        forwards); ``None`` if it is a local address nobody has, or aliases loop."""
        if "@" not in address and address.lower() == "postmaster" and self.first_domain:
            address = f"postmaster@{self.first_domain}"  # RFC 5321 §4.5.1: bare "postmaster"
        if is_srs(address) and self.is_local(address):
            if self.srs is None:
                return None
            try:
                return (self.srs.reverse(address),)
            except SrsError:
                return None
        if self.lists is not None and self.is_local(address):
            if self.is_list_address(address):
                return (address,)
            if self.is_list_address_unknown(address) and not self._own_entry(_key(address)):
                return None  # perhaps a list's: not the catch-all's while Mailman is down
        return self._resolve(_key(address), 0)

    def is_list_address(self, address: str) -> bool:
        """A Mailman list address (posting, -request, -bounces+VERP, ...) of a list that exists."""
        return self.lists is not None and list_address(address, self.lists) is not None

    def exists(self, address: str) -> bool:
        return self.lookup(address) is Lookup.FOUND

    def lookup(self, address: str) -> Lookup:
        """Whether ``address`` exists; UNKNOWN for an address of a local domain that no
        mailbox or alias has and that could be a list address while Mailman is not
        answering (mailwright.mailman.ListCache)."""
        if self.resolve(address) is not None or self.is_bounce_address(address):
            return Lookup.FOUND
        if self.is_list_address_unknown(address):
            return Lookup.UNKNOWN
        return Lookup.NOT_FOUND

    def is_list_address_unknown(self, address: str) -> bool:
        """A local address that is a list address if Mailman has that list, which it
        cannot be asked now."""
        return (
            self.lists is not None
            and self.is_local(address)
            and not is_srs(address)
            and unanswerable(address, self.lists)
        )

    def is_bounce_address(self, address: str) -> bool:
        """A bounce address of ours (``bounces@`` or ``bounces+...@`` a local domain)."""
        if self.bounce_local_part is None:
            return False
        local, _, domain = address.rpartition("@")
        base = local.lower().split(RECIPIENT_DELIMITER, 1)[0]
        return base == self.bounce_local_part and self.is_local_domain(domain)

    def _resolve(self, key: str, depth: int) -> tuple[str, ...] | None:
        if depth > MAX_ALIAS_DEPTH:
            return None
        local, _, domain = key.rpartition("@")
        if domain not in self.domains:
            return (key,) if depth > 0 else None  # an alias forwarding elsewhere
        targets = self._lookup(key)
        if targets is None and RECIPIENT_DELIMITER in local:
            base = local.split(RECIPIENT_DELIMITER, 1)[0]
            if base:
                targets = self._lookup(f"{base}@{domain}")
        if targets is None:
            targets = self.aliases.get(f"@{domain}")
        if targets is None:
            return None
        if targets == (key,):
            return targets  # a mailbox
        out: list[str] = []
        for target in targets:
            if target == key and key in self.mailboxes:
                out.append(target)
                continue
            resolved = self._resolve(target, depth + 1)
            if resolved is None:
                return None
            out.extend(r for r in resolved if r not in out)
        return tuple(out)

    def _own_entry(self, key: str) -> bool:
        """An alias or mailbox of this very address (or of it without ``+extension``)."""
        local, _, domain = key.rpartition("@")
        base = local.split(RECIPIENT_DELIMITER, 1)[0]
        return self._lookup(key) is not None or self._lookup(f"{base}@{domain}") is not None

    def _lookup(self, key: str) -> tuple[str, ...] | None:
        if key in self.aliases:
            return self.aliases[key]
        if key in self.mailboxes:
            return (key,)
        return None
