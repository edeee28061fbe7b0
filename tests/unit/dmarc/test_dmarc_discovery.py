"""RFC 9989 §4.10 DNS Tree Walk: targets, limits, psd, policy and organizational domain."""

from __future__ import annotations

import pytest

from mailwright.dmarc.discovery import (
    MAX_WALK_QUERIES,
    DiscoveryStatus,
    Existence,
    discover_policy,
    domain_exists,
    select_organizational_domain,
    tree_walk,
    walk_targets,
)
from mailwright.dmarc.record import Classification
from mailwright.dns import MemoryResolver, Outcome


def dmarc(resolver: MemoryResolver, domain: str, text: str) -> MemoryResolver:
    return resolver.add(f"_dmarc.{domain}", "TXT", text)


def asked(resolver: MemoryResolver) -> list[str]:
    return [name for name, rdtype in resolver.queries if rdtype == "TXT"]


def test_walk_targets_short_name() -> None:
    assert walk_targets("a.mail.example.com") == [
        "a.mail.example.com",
        "mail.example.com",
        "example.com",
        "com",
    ]


def test_walk_targets_long_name_is_cut_to_seven_labels() -> None:
    # The example of RFC 9989 §4.10: eight queries for a thirteen-label name.
    targets = walk_targets("a.b.c.d.e.f.g.h.i.j.mail.example.com")
    assert targets == [
        "a.b.c.d.e.f.g.h.i.j.mail.example.com",
        "g.h.i.j.mail.example.com",
        "h.i.j.mail.example.com",
        "i.j.mail.example.com",
        "j.mail.example.com",
        "mail.example.com",
        "example.com",
        "com",
    ]


@pytest.mark.parametrize("labels", [1, 2, 7, 8, 9, 30, 120])
def test_walk_never_exceeds_eight_queries(labels: int) -> None:
    name = ".".join(f"l{i}" for i in range(labels))
    targets = walk_targets(name)
    assert len(targets) == min(labels, MAX_WALK_QUERIES)
    assert targets[0] == name
    assert targets[-1] == f"l{labels - 1}"


async def test_deep_subdomain_finds_organizational_record_b42() -> None:
    # RFC 9989 Appendix B.4.2.
    resolver = MemoryResolver()
    dmarc(resolver, "example.com", "v=DMARC1; p=reject")
    dmarc(resolver, "signing.example.com", "v=DMARC1; p=none")
    found = await discover_policy("a.b.c.d.e.f.g.h.i.j.k.example.com", resolver)
    assert found.status is DiscoveryStatus.FOUND
    assert found.record_domain == "example.com"
    assert found.record_name == "_dmarc.example.com"
    assert found.organizational_domain == "example.com"
    assert not found.at_author_domain
    assert asked(resolver) == [
        "_dmarc.a.b.c.d.e.f.g.h.i.j.k.example.com",
        "_dmarc.g.h.i.j.k.example.com",
        "_dmarc.h.i.j.k.example.com",
        "_dmarc.i.j.k.example.com",
        "_dmarc.j.k.example.com",
        "_dmarc.k.example.com",
        "_dmarc.example.com",
        "_dmarc.com",
    ]


async def test_author_record_applies_and_walk_continues_for_org_domain() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "mail.example.com", "v=DMARC1; p=quarantine")
    dmarc(resolver, "example.com", "v=DMARC1; p=reject")
    found = await discover_policy("mail.example.com", resolver)
    assert found.at_author_domain
    assert found.record is not None and found.record.p == "quarantine"
    # §4.10.2 rule 3: the record with the fewest labels is the Organizational Domain.
    assert found.organizational_domain == "example.com"


async def test_policy_is_the_organizational_domains_not_the_nearest() -> None:
    # §4.10.1 + §4.10.2: without an own record, the Organizational Domain's record
    # applies, and that is the highest one without psd tags.
    resolver = MemoryResolver()
    dmarc(resolver, "mail.example.com", "v=DMARC1; p=none")
    dmarc(resolver, "example.com", "v=DMARC1; p=reject")
    found = await discover_policy("a.mail.example.com", resolver)
    assert found.record_domain == "example.com"
    assert found.organizational_domain == "example.com"


async def test_psd_n_ends_the_walk_and_is_the_organizational_domain() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "mail.example.com", "v=DMARC1; p=none; psd=n")
    dmarc(resolver, "example.com", "v=DMARC1; p=reject")
    found = await discover_policy("a.mail.example.com", resolver, concurrent=False)
    assert found.record_domain == "mail.example.com"
    assert found.organizational_domain == "mail.example.com"
    assert found.walk.stopped_by == "psd=n"
    assert "_dmarc.example.com" not in asked(resolver)


async def test_psd_y_at_public_suffix_b43() -> None:
    # RFC 9989 Appendix B.4.3: the walk stops at psd=y; the organizational domain is
    # one label below it.
    resolver = MemoryResolver()
    dmarc(resolver, "bank.example", "v=DMARC1; p=reject; psd=y")
    dmarc(resolver, "giant.bank.example", "v=DMARC1; p=quarantine")
    found = await discover_policy("giant.bank.example", resolver, concurrent=False)
    assert found.at_author_domain
    assert found.organizational_domain == "giant.bank.example"
    assert asked(resolver) == ["_dmarc.giant.bank.example", "_dmarc.bank.example"]

    walk = await tree_walk("mail.mega.bank.example", resolver)
    assert select_organizational_domain(walk) == "mega.bank.example"


async def test_psd_record_applies_when_the_org_domain_has_none() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "bank.example", "v=DMARC1; p=reject; np=reject; psd=y")
    found = await discover_policy("x.shop.bank.example", resolver)
    assert found.status is DiscoveryStatus.FOUND
    assert found.record_domain == "bank.example"
    assert found.organizational_domain == "shop.bank.example"
    assert found.from_public_suffix


async def test_only_psd_record_at_tld_gives_second_level_org_domain() -> None:
    # §4.10.2, last example.
    resolver = MemoryResolver()
    dmarc(resolver, "com", "v=DMARC1; p=none; psd=y")
    walk = await tree_walk("a.mail.example.com", resolver)
    assert select_organizational_domain(walk) == "example.com"


async def test_psd_y_at_the_starting_name_is_its_own_org_domain() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "bank.example", "v=DMARC1; p=reject; psd=y")
    found = await discover_policy("bank.example", resolver)
    assert found.at_author_domain
    assert found.organizational_domain == "bank.example"


async def test_zone_cut_record_beyond_eight_labels_is_never_seen_5_1_8() -> None:
    # RFC 9989 §5.1.8: the psd=n record at b.c.d.e.f.g.example.com is skipped.
    resolver = MemoryResolver()
    dmarc(resolver, "b.c.d.e.f.g.example.com", "v=DMARC1; p=none; psd=n")
    dmarc(resolver, "example.com", "v=DMARC1; p=reject")
    found = await discover_policy("mail.a.b.c.d.e.f.g.example.com", resolver)
    assert found.record_domain == "example.com"
    assert "_dmarc.b.c.d.e.f.g.example.com" not in asked(resolver)


async def test_no_record_anywhere_is_none_not_error() -> None:
    resolver = MemoryResolver()
    found = await discover_policy("mail.example.org", resolver)
    assert found.status is DiscoveryStatus.NONE
    assert found.record is None
    assert found.organizational_domain == "mail.example.org"
    assert len(found.walk.lookups) == 3


async def test_multiple_records_are_all_discarded() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "example.com", "v=DMARC1; p=reject")
    dmarc(resolver, "example.com", "v=DMARC1; p=none")
    found = await discover_policy("example.com", resolver)
    assert found.status is DiscoveryStatus.NONE
    assert found.walk.lookups[0].multiple
    assert found.notes and "2 DMARC records" in found.notes[0]


async def test_multiple_at_author_falls_back_to_parent() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "mail.example.com", "v=DMARC1; p=reject")
    dmarc(resolver, "mail.example.com", "v=DMARC1; p=none")
    dmarc(resolver, "example.com", "v=DMARC1; p=quarantine")
    found = await discover_policy("mail.example.com", resolver)
    assert found.record_domain == "example.com"


async def test_non_dmarc_txt_at_dmarc_name_is_ignored() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "example.com", "v=spf1 -all")
    dmarc(resolver, "example.com", "v=DMARC1; p=reject")
    found = await discover_policy("example.com", resolver)
    assert found.record is not None and found.record.p == "reject"
    assert found.walk.lookups[0].other_texts == ("v=spf1 -all",)


async def test_invalid_record_is_found_and_stops_nothing_else() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "example.com", "v=DMARC1; p=reject; p=none")
    found = await discover_policy("example.com", resolver)
    assert found.status is DiscoveryStatus.FOUND
    assert found.record is not None
    assert found.record.classification is Classification.INVALID
    assert not found.usable


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.SERVFAIL])
async def test_dns_error_at_author_is_temperror(outcome: Outcome) -> None:
    resolver = MemoryResolver().fail("_dmarc.example.com", "TXT", outcome)
    found = await discover_policy("example.com", resolver)
    assert found.status is DiscoveryStatus.TEMPERROR
    assert found.error and "_dmarc.example.com" in found.error


async def test_dns_error_above_without_own_record_is_temperror() -> None:
    resolver = MemoryResolver().fail("_dmarc.example.com", "TXT", Outcome.TIMEOUT)
    found = await discover_policy("mail.example.com", resolver, concurrent=False)
    assert found.status is DiscoveryStatus.TEMPERROR
    assert [item.name for item in found.walk.lookups][-1] == "_dmarc.example.com"
    # One at a time, the walk stops at the failure: nothing above it is asked.
    assert asked(resolver) == ["_dmarc.mail.example.com", "_dmarc.example.com"]


async def test_dns_error_above_own_record_leaves_org_domain_unknown() -> None:
    resolver = MemoryResolver().fail("_dmarc.com", "TXT", Outcome.SERVFAIL)
    dmarc(resolver, "example.com", "v=DMARC1; p=reject")
    found = await discover_policy("example.com", resolver)
    assert found.status is DiscoveryStatus.FOUND
    assert found.organizational_domain is None
    assert found.organizational_error and "_dmarc.com" in found.organizational_error


async def test_nxdomain_and_nodata_mean_no_record() -> None:
    resolver = MemoryResolver().add("_dmarc.example.com", "A", "192.0.2.1")  # NODATA for TXT
    found = await discover_policy("example.com", resolver)
    assert found.status is DiscoveryStatus.NONE


@pytest.mark.parametrize("bad", ["a..example.com", "", "x" * 64 + ".example.com"])
async def test_invalid_domain(bad: str) -> None:
    resolver = MemoryResolver()
    found = await discover_policy(bad, resolver)
    assert found.status is DiscoveryStatus.INVALID_DOMAIN
    assert resolver.queries == []


async def test_domain_is_normalized_and_idn_converted() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "xn--bcher-kva.example", "v=DMARC1; p=reject")
    found = await discover_policy("B\u00dcCHER.example.", resolver)
    assert found.domain == "xn--bcher-kva.example"
    assert found.status is DiscoveryStatus.FOUND


async def test_domain_exists() -> None:
    resolver = MemoryResolver().add("www.example.com", "TXT", "x")
    resolver.fail("slow.example.com", "A", Outcome.TIMEOUT)
    assert (await domain_exists("www.example.com", resolver))[0] is Existence.EXISTS
    assert (await domain_exists("ghost.example.com", resolver))[0] is Existence.NXDOMAIN
    state, error = await domain_exists("slow.example.com", resolver)
    assert state is Existence.UNKNOWN and error


async def test_as_json_lists_every_query() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "example.com", "v=DMARC1; p=reject")
    data = (await discover_policy("www.example.com", resolver)).as_json()
    assert data["record_name"] == "_dmarc.example.com"
    assert data["inherited"] is True
    queries = data["queries"]
    assert isinstance(queries, list)
    assert [q["name"] for q in queries] == [
        "_dmarc.www.example.com",
        "_dmarc.example.com",
        "_dmarc.com",
    ]
    assert queries[0]["outcome"] == "nxdomain"


SCENARIOS: list[list[tuple[str, str]]] = [
    [],
    [("example.com", "v=DMARC1; p=reject")],
    [("mail.example.com", "v=DMARC1; p=none; psd=n"), ("example.com", "v=DMARC1; p=reject")],
    [("com", "v=DMARC1; p=none; psd=y")],
    [("example.com", "v=DMARC1; p=reject"), ("example.com", "v=DMARC1; p=none")],
    [("a.mail.example.com", "v=DMARC1; p=quarantine; psd=y"), ("com", "v=DMARC1; psd=y")],
    [("mail.example.com", "v=DMARC1; p=reject; p=none"), ("example.com", "v=DMARC1")],
]


@pytest.mark.parametrize("records", SCENARIOS)
@pytest.mark.parametrize("fail", [None, "_dmarc.example.com", "_dmarc.com"])
async def test_concurrent_walk_equals_sequential_walk(
    records: list[tuple[str, str]], fail: str | None
) -> None:
    results = []
    for concurrent in (False, True):
        resolver = MemoryResolver()
        for domain, text in records:
            dmarc(resolver, domain, text)
        if fail:
            resolver.fail(fail, "TXT", Outcome.SERVFAIL)
        found = await discover_policy("a.mail.example.com", resolver, concurrent=concurrent)
        assert len(resolver.queries) <= MAX_WALK_QUERIES
        results.append(found)
    sequential, concurrent_result = results
    assert concurrent_result == sequential


async def test_concurrent_walk_takes_one_round_trip() -> None:
    import time

    resolver = MemoryResolver(latency=0.1)
    dmarc(resolver, "example.com", "v=DMARC1; p=reject")
    began = time.monotonic()
    await discover_policy("a.b.c.d.example.com", resolver)
    assert time.monotonic() - began < 0.4  # six queries of 100 ms each: 0.6 s one by one


# --- §4.10.2: only valid DMARC Policy Records choose the Organizational Domain ----


@pytest.mark.parametrize(
    "broken",
    [
        "v=DMARC1; p=rejct",  # invalid p and no rua: not a valid record (§4.10.1)
        "v=DMARC1; p=reject; p=none",  # duplicate tag
    ],
)
async def test_invalid_record_at_fewer_labels_is_not_the_organizational_domain(
    broken: str,
) -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "b.example.com", "v=DMARC1; p=reject")
    dmarc(resolver, "example.com", broken)
    walk = await tree_walk("a.b.example.com", resolver)
    assert select_organizational_domain(walk) == "b.example.com"
    found = await discover_policy("a.b.example.com", resolver)
    assert found.organizational_domain == "b.example.com"
    assert found.record_domain == "b.example.com"
    assert found.record is not None and found.record.p == "reject"
    assert found.usable


async def test_psd_n_in_an_invalid_record_decides_nothing() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "mail.example.com", "v=DMARC1; p=nothing; psd=n")  # invalid p, no rua
    dmarc(resolver, "example.com", "v=DMARC1; p=none")
    walk = await tree_walk("a.mail.example.com", resolver)
    # Step 2/6 stops the walk at any single record with psd (valid or not); the
    # broken one cannot be chosen, so the start is its own Organizational Domain.
    assert walk.stopped_by == "psd=n"
    assert select_organizational_domain(walk) == "a.mail.example.com"


async def test_only_an_invalid_record_above_is_reported_not_chosen() -> None:
    resolver = MemoryResolver()
    dmarc(resolver, "example.com", "v=DMARC1; p=rejct")
    found = await discover_policy("a.example.com", resolver)
    # No valid record: the Author Domain is its own Organizational Domain (§4.10.2);
    # the broken record is still shown, and evaluation turns it into permerror.
    assert found.organizational_domain == "a.example.com"
    assert found.status is DiscoveryStatus.FOUND and not found.usable
    assert found.record_domain == "example.com"
