"""Host-name and DNS-name syntax (mailwright.dns.names): the one rule for names."""

from __future__ import annotations

import pytest

from mailwright.dns.names import is_dns_name, is_hostname, mail_domain_problem


@pytest.mark.parametrize(
    ("name", "hostname", "dns_name"),
    [
        ("example.com", True, True),
        ("Mail.Example.COM", True, True),
        ("3com.example", True, True),  # RFC 1123 §2.1: a label may start with a digit
        ("a-b.example", True, True),
        ("x", True, True),
        ("a" * 63 + ".example", True, True),
        ("a" * 64 + ".example", False, False),  # RFC 1035 §2.3.4: labels ≤ 63 octets
        (".".join(["a" * 63] * 4), False, False),  # names ≤ 253 octets
        ("-a.example", False, False),
        ("a-.example", False, False),
        ("a..example", False, False),
        ("", False, False),
        ("example.com.", False, False),
        ("a b.example", False, False),
        ("example.com\n", False, False),
        # Underscores: never in a host name (RFC 5321 §4.1.2), tolerated in other DNS
        # names such as selectors (RFC 6376 §3.1 in practice, RFC 2181 §11).
        ("s_1", False, True),
        ("_dmarc.example.com", False, True),
        ("sel_", False, True),
        ("bücher.example", False, False),  # only the A-label form is checked
    ],
)
def test_name_syntax(name: str, hostname: bool, dns_name: bool) -> None:
    assert is_hostname(name) is hostname
    assert is_dns_name(name) is dns_name


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("example.com", None),
        ("Bücher.example", None),
        ("example.com.", None),
        ("localhost", "needs at least two labels"),
        ("bad_name.example", "label 'bad_name' is not letters, digits and inner hyphens"),
        ("-x.example", "label '-x' is not letters, digits and inner hyphens"),
        ("a..example", "empty label in domain name"),
        ("", "empty domain name"),
    ],
)
def test_mail_domain_problem(text: str, problem: str | None) -> None:
    """RFC 5321 §4.1.2 Domain, applied to the A-label form."""
    assert mail_domain_problem(text) == problem
