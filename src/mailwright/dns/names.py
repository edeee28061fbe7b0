"""Domain-name and reverse-name helpers that do not touch the network."""

from __future__ import annotations

import ipaddress
import re

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63


def _dotted(label_chars: str) -> re.Pattern[str]:
    """Dot-separated labels of 1-63 of ``label_chars``, none starting or ending with a hyphen."""
    label = rf"(?!-)[{label_chars}]{{1,{MAX_LABEL_LENGTH}}}(?<!-)"
    return re.compile(rf"{label}(?:\.{label})*\Z")


# The one rule for names, in two strengths. A host or mail domain name is "letters,
# digits and hyphens" (RFC 1123 §2.1, RFC 5321 §4.1.2 Let-dig [Ldh-str]): no underscore.
# Any other DNS name may hold more (RFC 2181 §11): owner names such as _dmarc and
# _domainkey, and DKIM selectors, which RFC 6376 §3.1 defines as sub-domains but which
# are published with underscores in practice. What mailwright creates is a host name;
# a selector or d= domain it reads may be either.
_HOSTNAME = _dotted("A-Za-z0-9-")
_DNS_NAME = _dotted("A-Za-z0-9_-")


def normalize(name: str) -> str:
    """Lowercase and drop one trailing dot: the key every resolver uses."""
    name = name.strip()
    if name.endswith(".") and name != ".":
        name = name[:-1]
    return name.lower()


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a DNS name, or None when it can.

    Non-ASCII labels are converted with IDNA first, so ``bücher.example`` is fine;
    the length limits of RFC 1035 §2.3.4 apply to the encoded form.
    """
    name = normalize(name)
    if not name:
        return "empty domain name"
    try:
        encoded = to_ascii(name)
    except UnicodeError as exc:
        return f"not a valid internationalized domain name ({exc})"
    if len(encoded) > MAX_NAME_LENGTH:
        return f"domain name longer than {MAX_NAME_LENGTH} octets"
    for label in encoded.split("."):
        if not label:
            return "empty label in domain name"
        if len(label) > MAX_LABEL_LENGTH:
            return f"label longer than {MAX_LABEL_LENGTH} octets"
    return None


def is_hostname(name: str) -> bool:
    """An ASCII host name: LDH labels (RFC 1123 §2.1, RFC 5321 §4.1.2), at most 253 octets."""
    return len(name) <= MAX_NAME_LENGTH and bool(_HOSTNAME.match(name))


def is_dns_name(name: str) -> bool:
    """An ASCII DNS name as a selector or d= domain may be: LDH labels in which underscores
    are tolerated (RFC 6376 §3.1, RFC 2181 §11), at most 253 octets."""
    return len(name) <= MAX_NAME_LENGTH and bool(_DNS_NAME.match(name))


def mail_domain_problem(text: str) -> str | None:
    """Why ``text`` cannot be a mail domain or host name (RFC 5321 §4.1.2), else None.

    IDN names are checked in their A-label form; a single label is refused, since
    mail for a top-level domain alone is not what anyone means.
    """
    problem = name_problem(text)
    if problem is not None:
        return problem
    labels = to_ascii(normalize(text)).split(".")
    bad = next((label for label in labels if not is_hostname(label)), None)
    if bad is not None:
        return f"label {bad!r} is not letters, digits and inner hyphens"
    if len(labels) < 2:
        return "needs at least two labels"
    return None


def to_ascii(name: str) -> str:
    """IDNA-encode a name label by label; ASCII names pass through unchanged."""
    if name.isascii():
        return name
    return ".".join(
        label.encode("idna").decode("ascii") if not label.isascii() else label
        for label in name.split(".")
    )


def reverse_name(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The ``in-addr.arpa`` / ``ip6.arpa`` name for an address (RFC 1035 §3.5, RFC 3596 §2.5).

    IPv4-mapped IPv6 addresses are mapped back to IPv4 first, since that is the
    address the PTR record is published for.
    """
    addr = ipaddress.ip_address(ip) if not isinstance(ip, ipaddress._BaseAddress) else ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return normalize(addr.reverse_pointer)


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse an IP address; IPv4-mapped IPv6 (``::ffff:192.0.2.1``) becomes IPv4.

    Raises ``ValueError`` with a readable message for anything else.
    """
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr
