"""RFC 9989 §5.3.6: a temporary DNS error in an SPF/DKIM check DMARC needs is temperror.

"If one or more DNS queries required to perform DMARC validation ... do not complete
due to temporary DNS errors, the message cannot be considered to pass or fail": an
identifier that could have aligned but whose check ended in temperror leaves the
verdict open; one that could never align (third party, strict mode) does not.
"""

from __future__ import annotations

import pytest

from mailwright.dkim.verifier import DkimResult, DkimStatus
from mailwright.dmarc.policy import DmarcStatus, evaluate
from mailwright.dmarc.record import Policy
from mailwright.dns import MemoryResolver


def world(record: str = "v=DMARC1; p=reject") -> MemoryResolver:
    resolver = MemoryResolver()
    resolver.add("_dmarc.example.org", "TXT", record)
    return resolver


@pytest.mark.parametrize(
    ("spf", "dkim"),
    [
        (("example.org", "temperror"), []),  # SPF record lookup timed out
        (("example.org", "fail"), [("example.org", "temperror")]),  # DKIM key lookup
        (("example.org", "temperror"), [("example.org", "temperror")]),  # both (the review case)
        (("bounces.example.org", "temperror"), []),  # relaxed: same Organizational Domain
        (None, [("mail.example.org", "temperror")]),
    ],
)
async def test_transient_failure_of_an_alignable_identifier_is_temperror(
    spf: tuple[str, str] | None, dkim: list[tuple[str, str]]
) -> None:
    result = await evaluate("example.org", spf, dkim, world())
    assert result.result is DmarcStatus.TEMPERROR
    assert result.disposition is Policy.NONE  # neither pass nor fail: no reject
    assert result.requested_policy is None
    assert any("temporary DNS error" in r for r in result.reasons), result.reasons


async def test_dkim_result_objects_with_temperror_status() -> None:
    sig = DkimResult(
        DkimStatus.TEMPERROR, "key lookup timed out", 0, domain="example.org", selector="sel"
    )
    result = await evaluate("example.org", ("example.org", "fail"), [sig], world())
    assert result.result is DmarcStatus.TEMPERROR
    assert result.disposition is Policy.NONE


async def test_temperror_with_unknown_domain_is_temperror() -> None:
    # A signature whose d= could not be read (domain None) may have been the aligned one.
    sig = DkimResult(DkimStatus.TEMPERROR, "key lookup timed out", 0, domain=None)
    result = await evaluate("example.org", ("evil.example", "fail"), [sig], world())
    assert result.result is DmarcStatus.TEMPERROR


@pytest.mark.parametrize(
    ("record", "spf", "dkim"),
    [
        # A third party's temperror could never have aligned with example.org.
        (
            "v=DMARC1; p=reject",
            ("esp.example.net", "temperror"),
            [("esp.example.net", "temperror")],
        ),
        # Strict alignment: a subdomain could not have aligned either.
        ("v=DMARC1; p=reject; aspf=s; adkim=s", ("bounces.example.org", "temperror"), []),
    ],
)
async def test_transient_failure_of_an_identifier_that_cannot_align_still_fails(
    record: str, spf: tuple[str, str], dkim: list[tuple[str, str]]
) -> None:
    result = await evaluate("example.org", spf, dkim, world(record))
    assert result.result is DmarcStatus.FAIL
    assert result.disposition is Policy.REJECT


async def test_an_aligned_pass_wins_over_a_temperror() -> None:
    # §5.3.5: one aligned pass is enough; the other identifier's DNS trouble is moot.
    result = await evaluate(
        "example.org", ("example.org", "temperror"), [("example.org", "pass")], world()
    )
    assert result.result is DmarcStatus.PASS
