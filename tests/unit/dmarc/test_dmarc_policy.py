"""Identifier alignment (RFC 9989 §4.4, §4.10.2) and policy evaluation (§5.3)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mailwright.dkim.verifier import DkimResult, DkimStatus
from mailwright.dmarc.alignment import Aligned, check_alignment, organizational_domain, same_domain
from mailwright.dmarc.discovery import discover_policy
from mailwright.dmarc.policy import MAX_DKIM_RESULTS, DmarcStatus, evaluate
from mailwright.dmarc.record import AlignmentMode, Policy
from mailwright.dns import MemoryResolver, Outcome


def world(*records: tuple[str, str]) -> MemoryResolver:
    resolver = MemoryResolver()
    for domain, text in records:
        resolver.add(f"_dmarc.{domain}", "TXT", text)
    return resolver


# --- alignment ---------------------------------------------------------------


def test_strict_alignment_is_case_insensitive_identity() -> None:
    assert same_domain("Example.COM.", "example.com")
    assert not same_domain("mail.example.com", "example.com")


@pytest.mark.parametrize(
    ("author", "identifier", "mode", "expected"),
    [
        # RFC 9989 Appendix B.1 examples (example.com publishes a record).
        ("example.com", "example.com", AlignmentMode.STRICT, Aligned.YES),
        ("example.com", "child.example.com", AlignmentMode.RELAXED, Aligned.YES),
        ("example.com", "child.example.com", AlignmentMode.STRICT, Aligned.NO),
        ("child.example.com", "example.net", AlignmentMode.RELAXED, Aligned.NO),
        ("child.example.com", "example.com", AlignmentMode.RELAXED, Aligned.YES),
        # Siblings share the Organizational Domain (§4.4 table, first row).
        ("news.example.com", "foo.example.com", AlignmentMode.RELAXED, Aligned.YES),
    ],
)
async def test_alignment_examples(
    author: str, identifier: str, mode: AlignmentMode, expected: Aligned
) -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    found = await discover_policy(author, resolver)
    aligned, note = await check_alignment(
        author, found.organizational_domain, identifier, mode, resolver
    )
    assert aligned is expected, note


async def test_third_party_identifier_needs_no_dns() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    before = len(resolver.queries)
    aligned, note = await check_alignment(
        "example.com", "example.com", "esp.example.net", AlignmentMode.RELAXED, resolver
    )
    assert aligned is Aligned.NO
    assert len(resolver.queries) == before
    assert note and "outside" in note


async def test_psd_n_subdomain_is_its_own_organization() -> None:
    # §11.8: a psd=n record separates mail.example.com from example.com.
    resolver = world(
        ("example.com", "v=DMARC1; p=reject"), ("mail.example.com", "v=DMARC1; p=none; psd=n")
    )
    aligned, _ = await check_alignment(
        "example.com", "example.com", "mail.example.com", AlignmentMode.RELAXED, resolver
    )
    assert aligned is Aligned.NO


async def test_b41_dkim_subdomain_record_still_aligns() -> None:
    # Appendix B.4.1: signing.example.com has a record, but example.com has fewer labels.
    resolver = world(
        ("example.com", "v=DMARC1; p=reject"), ("signing.example.com", "v=DMARC1; p=none")
    )
    found = await organizational_domain("signing.example.com", resolver)
    assert found.organizational_domain == "example.com"


async def test_alignment_unknown_when_identifier_walk_fails() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    resolver.fail("_dmarc.mail.example.com", "TXT", Outcome.TIMEOUT)
    aligned, note = await check_alignment(
        "example.com", "example.com", "mail.example.com", AlignmentMode.RELAXED, resolver
    )
    assert aligned is Aligned.UNKNOWN
    assert note and "_dmarc.mail.example.com" in note


async def test_alignment_unknown_without_author_org_domain() -> None:
    aligned, _ = await check_alignment(
        "example.com", None, "mail.example.com", AlignmentMode.RELAXED, MemoryResolver()
    )
    assert aligned is Aligned.UNKNOWN


# --- evaluation ----------------------------------------------------------------


async def test_no_record_is_none() -> None:
    result = await evaluate("example.org", ("example.org", "pass"), [], MemoryResolver())
    assert result.result is DmarcStatus.NONE
    assert result.disposition is Policy.NONE


async def test_dkim_aligned_pass() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    result = await evaluate(
        "example.com", ("bounces.esp.example.net", "pass"), [("example.com", "pass")], resolver
    )
    assert result.result is DmarcStatus.PASS
    assert result.dkim_aligned and not result.spf_aligned
    assert result.aligned_by == ("dkim:example.com",)
    assert result.disposition is Policy.NONE


async def test_spf_relaxed_pass_b31() -> None:
    # Appendix B.3.1: SPF mail.example.com, DKIM example.com, p=reject; aspf=r.
    resolver = world(("example.com", "v=DMARC1; p=reject; aspf=r"))
    result = await evaluate(
        "example.com", ("mail.example.com", "pass"), [("example.com", "pass")], resolver
    )
    assert result.result is DmarcStatus.PASS
    assert result.spf_aligned and result.dkim_aligned


async def test_strict_spf_fails_for_subdomain() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject; aspf=s"))
    result = await evaluate("example.com", ("mail.example.com", "pass"), [], resolver)
    assert result.result is DmarcStatus.FAIL
    assert result.disposition is Policy.REJECT
    assert result.policy_tag == "p"


async def test_failed_dkim_never_aligns() -> None:
    resolver = world(("example.com", "v=DMARC1; p=quarantine"))
    result = await evaluate("example.com", None, [("example.com", "fail")], resolver)
    assert result.result is DmarcStatus.FAIL
    assert result.disposition is Policy.QUARANTINE
    assert result.identifiers[0].aligned is None
    assert "dkim example.com=fail" in result.reason


async def test_no_identifiers_at_all_fails() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    result = await evaluate("example.com", None, [], resolver)
    assert result.result is DmarcStatus.FAIL
    assert "no SPF or DKIM result" in result.reason


async def test_sp_applies_to_existing_subdomain() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject; sp=quarantine; np=none"))
    resolver.add("www.example.com", "A", "192.0.2.1")
    result = await evaluate("www.example.com", None, [], resolver)
    assert result.result is DmarcStatus.FAIL
    assert (result.requested_policy, result.policy_tag) == (Policy.QUARANTINE, "sp")


async def test_np_applies_to_nonexistent_subdomain() -> None:
    resolver = world(("example.com", "v=DMARC1; p=none; np=reject"))
    result = await evaluate("ghost.example.com", None, [], resolver)
    assert (result.requested_policy, result.policy_tag) == (Policy.REJECT, "np")
    assert result.disposition is Policy.REJECT


async def test_np_does_not_apply_to_the_domain_itself() -> None:
    resolver = world(("example.com", "v=DMARC1; p=none; np=reject"))
    result = await evaluate("example.com", None, [], resolver)
    assert (result.requested_policy, result.policy_tag) == (Policy.NONE, "p")


async def test_without_np_a_nonexistent_subdomain_gets_sp_and_no_existence_query() -> None:
    resolver = world(("example.com", "v=DMARC1; p=none; sp=quarantine"))
    result = await evaluate("ghost.example.com", None, [], resolver)
    assert (result.requested_policy, result.policy_tag) == (Policy.QUARANTINE, "sp")
    assert ("ghost.example.com", "A") not in resolver.queries


async def test_subdomain_without_sp_gets_p() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    result = await evaluate("x.example.com", None, [], resolver)
    assert (result.requested_policy, result.policy_tag) == (Policy.REJECT, "p")


async def test_existence_dns_error_is_temperror() -> None:
    resolver = world(("example.com", "v=DMARC1; p=none; np=reject"))
    resolver.fail("odd.example.com", "A", Outcome.SERVFAIL)
    result = await evaluate("odd.example.com", None, [], resolver)
    assert result.result is DmarcStatus.TEMPERROR
    assert result.disposition is Policy.NONE


@pytest.mark.parametrize(
    ("record", "disposition"),
    [
        ("v=DMARC1; p=reject; t=y", Policy.QUARANTINE),
        ("v=DMARC1; p=quarantine; t=y", Policy.NONE),
        ("v=DMARC1; p=none; t=y", Policy.NONE),
        ("v=DMARC1; p=reject; pct=0", Policy.QUARANTINE),
        ("v=DMARC1; p=reject; pct=20", Policy.REJECT),
    ],
)
async def test_testing_lowers_the_disposition_one_level(record: str, disposition: Policy) -> None:
    result = await evaluate("example.com", None, [], world(("example.com", record)))
    assert result.result is DmarcStatus.FAIL
    assert result.disposition is disposition
    assert result.testing is (record.endswith(("t=y", "pct=0")) and "p=none" not in record)


async def test_invalid_record_is_permerror() -> None:
    result = await evaluate(
        "example.com", None, [], world(("example.com", "v=DMARC1; p=reject; p=none"))
    )
    assert result.result is DmarcStatus.PERMERROR
    assert "duplicate" in result.reason


async def test_invalid_p_with_rua_fails_with_policy_none() -> None:
    resolver = world(("example.com", "v=DMARC1; p=bogus; rua=mailto:d@example.com"))
    result = await evaluate("example.com", None, [], resolver)
    assert result.result is DmarcStatus.FAIL
    assert result.disposition is Policy.NONE


async def test_discovery_dns_error_is_temperror() -> None:
    resolver = MemoryResolver().fail("_dmarc.example.com", "TXT", Outcome.TIMEOUT)
    result = await evaluate("example.com", None, [("example.com", "pass")], resolver)
    assert result.result is DmarcStatus.TEMPERROR


async def test_invalid_from_domain_is_permerror() -> None:
    result = await evaluate("bad..domain", None, [], MemoryResolver())
    assert result.result is DmarcStatus.PERMERROR


async def test_alignment_unknown_is_temperror_unless_another_identifier_aligns() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    resolver.fail("_dmarc.mail.example.com", "TXT", Outcome.TIMEOUT)
    unknown = await evaluate("example.com", ("mail.example.com", "pass"), [], resolver)
    assert unknown.result is DmarcStatus.TEMPERROR
    known = await evaluate(
        "example.com", ("mail.example.com", "pass"), [("example.com", "pass")], resolver
    )
    assert known.result is DmarcStatus.PASS


async def test_org_domain_unknown_still_passes_identical_domains() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject")).fail(
        "_dmarc.com", "TXT", Outcome.TIMEOUT
    )
    result = await evaluate("example.com", None, [("example.com", "pass")], resolver)
    assert result.result is DmarcStatus.PASS
    relaxed = await evaluate("example.com", None, [("mail.example.com", "pass")], resolver)
    assert relaxed.result is DmarcStatus.TEMPERROR


@dataclass
class HeloSpf:
    domain: str
    result: str
    identity: str


async def test_spf_of_the_helo_identity_is_not_used() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    result = await evaluate("example.com", HeloSpf("example.com", "pass", "helo"), [], resolver)
    assert result.result is DmarcStatus.FAIL
    assert "HELO" in result.reason


async def test_accepts_dkim_results_of_mailwright_dkim() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    signatures = [
        DkimResult(DkimStatus.PERMERROR, "no d=", 0),  # domain None: skipped
        DkimResult(DkimStatus.PASS, "ok", 1, "example.com", "s2026"),
    ]
    result = await evaluate("example.com", None, signatures, resolver)
    assert result.result is DmarcStatus.PASS
    assert result.identifiers[0].selector == "s2026"


async def test_dkim_results_are_bounded() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    many = [(f"d{i}.example.net", "pass") for i in range(MAX_DKIM_RESULTS + 50)]
    result = await evaluate("example.com", None, many, resolver)
    assert result.result is DmarcStatus.FAIL
    assert len(result.identifiers) == MAX_DKIM_RESULTS


async def test_b43_full_message() -> None:
    resolver = world(
        ("bank.example", "v=DMARC1; p=reject; psd=y"),
        ("giant.bank.example", "v=DMARC1; p=quarantine"),
    )
    result = await evaluate(
        "giant.bank.example",
        ("mail.giant.bank.example", "pass"),
        [("mail.mega.bank.example", "pass")],
        resolver,
    )
    assert result.result is DmarcStatus.PASS
    assert result.aligned_by == ("spf:mail.giant.bank.example",)
    assert result.organizational_domain == "giant.bank.example"


async def test_walks_share_lookups() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    await evaluate("example.com", ("a.example.com", "pass"), [("b.example.com", "fail")], resolver)
    names = [n for n, t in resolver.queries if t == "TXT"]
    assert len(names) == len(set(names)), names


async def test_given_discovery_is_reused() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    found = await discover_policy("example.com", resolver)
    count = len(resolver.queries)
    result = await evaluate(
        "example.com", None, [("example.com", "pass")], resolver, discovery=found
    )
    assert result.result is DmarcStatus.PASS
    assert len(resolver.queries) == count


async def test_result_json() -> None:
    resolver = world(("example.com", "v=DMARC1; p=reject; t=y"))
    data = (await evaluate("example.com", ("evil.example", "pass"), [], resolver)).as_json()
    assert data["result"] == "fail"
    assert data["disposition"] == "quarantine"
    assert data["requested_policy"] == "reject"
    assert data["policy_domain"] == "example.com"


async def test_receiver_must_not_reject_on_p_reject_alone() -> None:
    # RFC 9989 §7.4: without other analysis, treat p=reject as quarantine.
    resolver = world(("example.com", "v=DMARC1; p=reject"))
    result = await evaluate("example.com", None, [], resolver)
    assert result.disposition is Policy.REJECT
    assert result.receiver_action() is Policy.QUARANTINE
    assert result.receiver_action(other_evidence=True) is Policy.REJECT
    passed = await evaluate("example.com", None, [("example.com", "pass")], resolver)
    assert passed.receiver_action(other_evidence=True) is Policy.NONE


async def test_random_worlds_keep_the_invariants() -> None:
    """Random records, duplicates, psd flags and DNS failures over a small tree: evaluate
    never raises, never asks more than the walk bound, and its verdict is consistent."""
    import random

    from mailwright.dmarc.discovery import MAX_WALK_QUERIES

    rng = random.Random(7489)
    names = [
        "com",
        "example.com",
        "mail.example.com",
        "a.mail.example.com",
        "b.example.com",
        "example.net",
        "net",
        "x.y.z.w.v.u.t.s.example.com",
    ]
    texts = [
        "v=DMARC1; p=reject",
        "v=DMARC1; p=quarantine; sp=none; np=reject",
        "v=DMARC1; p=none; psd=n",
        "v=DMARC1; p=reject; psd=y",
        "v=DMARC1; p=reject; t=y; adkim=s; aspf=s",
        "v=DMARC1; p=bogus",
        "v=DMARC1; p=bogus; rua=mailto:d@example.com",
        "v=DMARC1; p=reject; p=none",
        "v=spf1 -all",
    ]
    seen: set[DmarcStatus] = set()
    for _ in range(300):
        resolver = MemoryResolver()
        for name in names:
            if rng.random() < 0.35:
                resolver.add(f"_dmarc.{name}", "TXT", rng.choice(texts))
            if rng.random() < 0.05:
                resolver.add(f"_dmarc.{name}", "TXT", rng.choice(texts))
            if rng.random() < 0.05:
                resolver.fail(f"_dmarc.{name}", "TXT", rng.choice(list(Outcome)))
            if rng.random() < 0.5:
                resolver.add(name, "A", "192.0.2.1")
        author = rng.choice(names)
        spf = (rng.choice(names), rng.choice(["pass", "fail", "softfail"]))
        dkim = [(rng.choice(names), rng.choice(["pass", "fail"])) for _ in range(rng.randint(0, 3))]
        result = await evaluate(author, spf, dkim, resolver)
        walked = {n for n, t in resolver.queries if t == "TXT"}
        assert len(walked) <= MAX_WALK_QUERIES * (2 + len(dkim))
        if result.result is DmarcStatus.PASS:
            assert result.aligned_by and result.disposition is Policy.NONE
        elif result.result is DmarcStatus.FAIL:
            assert not result.aligned_by
            assert result.requested_policy is not None
            assert result.disposition in (
                result.requested_policy,
                result.requested_policy.relaxed_one_level(),
            )
        else:
            assert result.disposition is Policy.NONE
        if result.result is DmarcStatus.NONE:
            assert result.record is None
        result.as_json()
        seen.add(result.result)
    assert seen == set(DmarcStatus)  # every outcome was exercised
