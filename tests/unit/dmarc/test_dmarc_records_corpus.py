"""The 44 record cases of ../shared/testdata/dmarc/records-checkdmarc-6.0.4.jsonl.

The file holds the opinions of the linter checkdmarc 6.0.4. The expected
outcome of each case below is decided from RFC 9989 (receiver behaviour), and
written out per case; where it differs from checkdmarc the entry says why.

Columns: classification (valid / invalid = permerror / not-dmarc = ignored),
effective p, sp, np, adkim, aspf, t (testing), fo, and the set of problem kinds
(``kind:tag``) the parser reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailwright.dmarc.record import Classification, parse_record

DATA = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "testdata"
    / "dmarc"
    / "records-checkdmarc-6.0.4.jsonl"
)


def load_cases() -> dict[str, dict[str, Any]]:
    cases = {}
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if line.strip():
            case = json.loads(line)
            cases[case["id"]] = case
    return cases


CASES = load_cases()


@dataclass(frozen=True)
class Expect:
    cls: str
    p: str = "none"
    sp: str | None = None  # None: same as p
    np: str | None = None  # None: same as sp
    adkim: str = "r"
    aspf: str = "r"
    t: bool = False
    fo: str = "0"
    problems: frozenset[str] = frozenset()
    disagree: str | None = None
    """Why this verdict differs from checkdmarc's (None: same outcome)."""


def E(cls: str, p: str = "none", *, problems: tuple[str, ...] = (), **kw: Any) -> Expect:
    return Expect(cls, p, problems=frozenset(problems), **kw)


V, INVALID, NOT = "valid", "invalid", "not-dmarc"

EXPECTED: dict[str, Expect] = {
    "rfc7489-B.2.1": E(V, "none"),
    "rfc7489-B.2.2": E(V, "none"),
    "rfc7489-B.2.3": E(V, "none"),
    # pct=25: removed, no RFC 9989 equivalent (not 0, so not testing); !10m obsolete.
    "rfc7489-B.2.4": E(V, "quarantine", problems=("removed:pct", "obsolete:rua")),
    "rfc7489-B.3.1": E(V, "reject"),
    # ABNF literals are case-insensitive (RFC 5234 §2.3): ReJect is reject.
    "mixed-case-1": E(V, "reject"),
    # equals = *WSP "=" *WSP (§4.8).
    "ws-around-eq": E(V, "reject"),
    "tabs": E(V, "reject"),
    # "v" is an ABNF literal, so case-insensitive; only the value DMARC1 is %s.
    "upper-V": E(V, "reject"),
    "bad-p": E(
        V,
        "none",
        problems=("invalid-value:p",),
        disagree="RFC 9989 §4.10.1: an invalid p with a syntactically valid rua URI MUST be "
        "processed as p=none; checkdmarc rejects the record outright",
    ),
    "rua-no-scheme": E(
        V,
        "none",
        problems=("invalid-value:rua",),
        disagree="§4.8: syntax errors in the remainder are discarded; the URI without a scheme "
        "is ignored and mailto:dmarcreports@example.com still receives reports. checkdmarc "
        "fails the whole record",
    ),
    "np": E(V, "reject", np="quarantine"),
    "psd-n": E(V, "reject"),
    "psd-y": E(V, "reject"),
    "t-y": E(V, "reject", t=True),
    # §4.10.1: an invalid np and no rua → no DMARC processing (permerror).
    "bad-np": E(INVALID, "reject", problems=("invalid-value:np",)),
    "bad-psd": E(
        V,
        "reject",
        problems=("invalid-value:psd",),
        disagree="§4.8: an invalid psd value is discarded in favour of the default u; the "
        "policy still applies. checkdmarc fails the record",
    ),
    "bad-t": E(
        V,
        "reject",
        problems=("invalid-value:t",),
        disagree="§4.8: an invalid t is discarded in favour of the default n (policy applied "
        "as written). checkdmarc fails the record",
    ),
    "pct-removed": E(V, "reject", problems=("removed:pct",)),
    "rf-removed": E(V, "reject", problems=("removed:rf",)),
    "ri-removed": E(V, "reject", problems=("removed:ri",)),
    # §4.7 "p": absent p in an otherwise valid record is p=none.
    "no-p": E(V, "none"),
    "p-not-second": E(V, "reject"),
    "p-none": E(V, "none"),
    "sp-none": E(V, "reject", sp="none"),
    "adkim-s-aspf-s": E(V, "reject", adkim="s", aspf="s"),
    "adkim-bad": E(V, "reject", problems=("invalid-value:adkim",)),
    "fo-1": E(V, "reject", fo="1"),
    "fo-d-s": E(V, "reject", fo="d:s"),
    "fo-0-1": E(V, "reject", problems=("invalid-value:fo",)),
    "fo-bad": E(
        V,
        "reject",
        problems=("invalid-value:fo",),
        disagree="§4.8: an invalid fo is discarded in favour of the default 0 (and fo only "
        "matters with ruf, §4.7); checkdmarc fails the record",
    ),
    "unknown-tag": E(V, "reject", problems=("unknown:foo",)),
    # RFC 6376 §3.2 (the tag-value syntax DMARC uses): a duplicate invalidates the list.
    "dup-tag": E(INVALID, "reject", problems=("duplicate:p",)),
    "trailing-semicolon": E(V, "reject"),
    "no-spaces": E(V, "reject"),
    "rua-size": E(V, "reject", problems=("obsolete:rua",)),
    "rua-https": E(V, "reject"),
    # §4.7 "v": the value is case-sensitive, so the record is ignored as not DMARC.
    "v-lower": E(NOT),
    "v-not-first": E(NOT),
    "v-missing": E(NOT),
    # The ABNF has no leading WSP, but §4.10 step 2 asks whether the record starts
    # with a v tag, and the DKIM tag-list syntax DMARC follows (RFC 6376 §3.2) allows
    # FWS before a tag: accepted (same as checkdmarc), and dmarc check warns.
    "leading-space": E(V, "reject"),
    "spf-at-dmarc": E(NOT),
    # p= with no value: a present but invalid p, and no rua → no DMARC processing.
    "empty-value": E(INVALID, problems=("invalid-value:p",)),
    "p-quarantine-caps": E(V, "quarantine", sp="reject"),
}


def test_every_case_has_an_expectation() -> None:
    assert len(CASES) == 44
    assert set(CASES) == set(EXPECTED)


@pytest.mark.parametrize("case_id", sorted(EXPECTED))
def test_record_case(case_id: str) -> None:
    case = CASES[case_id]
    want = EXPECTED[case_id]
    record = parse_record(case["record"])
    assert str(record.classification) == want.cls, record.reason
    kinds = {f"{p.kind}:{p.tag}" for p in record.problems}
    assert kinds == set(want.problems)
    if want.cls == NOT:
        assert not record.is_dmarc
        return
    if want.cls == INVALID:
        assert record.reason
        return
    sp = want.sp or want.p
    assert (str(record.policy), str(record.subdomain_policy)) == (want.p, sp)
    assert str(record.nonexistent_policy) == (want.np or sp)
    assert (str(record.dkim_alignment), str(record.spf_alignment)) == (want.adkim, want.aspf)
    assert record.testing is want.t
    assert ":".join(record.failure_options) == want.fo


@pytest.mark.parametrize("case_id", sorted(EXPECTED))
def test_agreement_with_checkdmarc_is_deliberate(case_id: str) -> None:
    """Where checkdmarc parsed the record and we agree, the effective values match theirs;
    every divergence in outcome is one listed with its reason."""
    theirs = CASES[case_id]["checkdmarc"]
    want = EXPECTED[case_id]
    we_apply = want.cls == V
    they_apply = theirs["result"] == "parsed"
    if we_apply != they_apply:
        assert want.disagree, f"{case_id}: outcome differs from checkdmarc without a reason"
        return
    assert want.disagree is None
    if we_apply:
        record = parse_record(CASES[case_id]["record"])
        effective = theirs["effective"]
        assert str(record.policy) == effective["p"]
        assert str(record.subdomain_policy) == effective["sp"]
        assert str(record.dkim_alignment) == effective["adkim"]
        assert str(record.spf_alignment) == effective["aspf"]
        assert ":".join(record.failure_options) == effective["fo"]


def test_b24_reports_pct_transition_and_both_uris() -> None:
    record = parse_record(CASES["rfc7489-B.2.4"]["record"])
    assert [u.address for u in record.rua] == [
        "dmarc-feedback@example.com",
        "tld-test@thirdparty.example.net",
    ]
    assert record.rua[1].size_limit == "10m"
    assert record.rua[1].uri == "mailto:tld-test@thirdparty.example.net"
    (pct,) = record.removed
    assert (pct.tag, pct.value, pct.replacement) == ("pct", "25", "t=y")
    assert "no RFC 9989 equivalent" in pct.meaning


def test_rua_https_keeps_scheme_and_host() -> None:
    record = parse_record(CASES["rua-https"]["record"])
    (uri,) = record.rua
    assert (uri.scheme, uri.host, uri.is_mailto) == ("https", "example.com", False)


def test_leading_space_is_flagged() -> None:
    assert parse_record(CASES["leading-space"]["record"]).leading_whitespace
    assert not parse_record(CASES["p-none"]["record"]).leading_whitespace


def test_classification_enum_values() -> None:
    assert {str(c) for c in Classification} == {V, INVALID, NOT}
