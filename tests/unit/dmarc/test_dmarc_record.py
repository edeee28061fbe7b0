"""DMARC record rules of RFC 9989 §4.7/§4.8 beyond the shared corpus."""

from __future__ import annotations

import pytest

from mailwright.dmarc.record import (
    MAX_RECORD_LENGTH,
    MAX_URIS,
    AlignmentMode,
    Classification,
    Policy,
    ProblemKind,
    PsdFlag,
    looks_like_dmarc,
    parse_record,
    parse_report_uri,
)


def kinds(text: str) -> set[str]:
    return {f"{p.kind}:{p.tag}" for p in parse_record(text).problems}


def test_minimal_record_is_p_none_with_defaults() -> None:
    record = parse_record("v=DMARC1")
    assert record.usable
    assert record.p is None
    assert record.policy is Policy.NONE
    assert record.dkim_alignment is AlignmentMode.RELAXED
    assert record.spf_alignment is AlignmentMode.RELAXED
    assert record.psd_flag is PsdFlag.UNKNOWN
    assert record.failure_options == ("0",)
    assert not record.testing


@pytest.mark.parametrize(
    ("text", "p", "sp", "np"),
    [
        # §4.7 "sp": absent → p; "np": absent → sp, else p.
        ("v=DMARC1; p=reject", "reject", "reject", "reject"),
        ("v=DMARC1; p=reject; sp=quarantine", "reject", "quarantine", "quarantine"),
        ("v=DMARC1; p=none; np=reject", "none", "none", "reject"),
        ("v=DMARC1; p=quarantine; sp=none; np=reject", "quarantine", "none", "reject"),
    ],
)
def test_subdomain_and_nonexistent_policy_defaults(text: str, p: str, sp: str, np: str) -> None:
    record = parse_record(text)
    assert (record.policy, record.subdomain_policy, record.nonexistent_policy) == (p, sp, np)


def test_invalid_sp_with_rua_makes_the_whole_record_p_none() -> None:
    # §4.10.1: "act as if a record containing p=none was retrieved".
    record = parse_record("v=DMARC1; p=reject; sp=bogus; rua=mailto:d@example.com")
    assert record.usable
    assert record.p_fallback
    assert record.p is Policy.REJECT
    assert (record.policy, record.subdomain_policy, record.nonexistent_policy) == (
        "none",
        "none",
        "none",
    )


def test_invalid_p_with_only_invalid_rua_is_unusable() -> None:
    record = parse_record("v=DMARC1; p=bogus; rua=reports@example.com")
    assert record.classification is Classification.INVALID
    assert "no valid rua" in (record.reason or "")


@pytest.mark.parametrize(
    ("text", "testing"),
    [
        ("v=DMARC1; p=reject; t=y", True),
        ("v=DMARC1; p=reject; t=Y", True),
        ("v=DMARC1; p=reject; t=n", False),
        # Appendix A.6: pct=0 is what t=y replaced; honoured when no t tag is given.
        ("v=DMARC1; p=reject; pct=0", True),
        ("v=DMARC1; p=reject; pct=0; t=n", False),
        ("v=DMARC1; p=reject; pct=50", False),
        ("v=DMARC1; p=reject; pct=100", False),
    ],
)
def test_testing_mode(text: str, testing: bool) -> None:
    assert parse_record(text).testing is testing


def test_removed_tags_carry_their_transition_meaning() -> None:
    record = parse_record("v=DMARC1; p=reject; pct=0; rf=afrf; ri=3600")
    removed = {r.tag: r for r in record.removed}
    assert removed["pct"].replacement == "t=y"
    assert "t=y" in removed["pct"].meaning
    assert removed["rf"].replacement is None and "AFRF" in removed["rf"].meaning
    assert removed["ri"].replacement is None and "daily" in removed["ri"].meaning
    assert kinds(record.text) == {"removed:pct", "removed:rf", "removed:ri"}


def test_pct_out_of_range_is_not_read_as_zero() -> None:
    record = parse_record("v=DMARC1; p=reject; pct=abc")
    assert record.pct is None
    assert not record.testing
    assert "never valid" in record.removed[0].meaning


def test_relaxed_one_level() -> None:
    assert Policy.REJECT.relaxed_one_level() is Policy.QUARANTINE
    assert Policy.QUARANTINE.relaxed_one_level() is Policy.NONE
    assert Policy.NONE.relaxed_one_level() is Policy.NONE


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0", True),
        ("1", True),
        ("d", True),
        ("s", True),
        ("0:d:s", True),
        ("s:d:1", True),
        ("d:0:s", True),
        ("0:1", False),  # mutually exclusive (§4.7)
        ("d:d", False),  # each at most once (§4.8)
        ("0:", False),
        ("2", False),
        ("0 : d", False),
    ],
)
def test_fo_grammar(value: str, ok: bool) -> None:
    record = parse_record(f"v=DMARC1; p=none; fo={value}; ruf=mailto:f@example.com")
    assert (record.fo is not None) is ok
    if not ok:
        assert record.failure_options == ("0",)
        assert "invalid-value:fo" in kinds(record.text)


def test_tag_names_are_matched_case_insensitively() -> None:
    record = parse_record("v=DMARC1; P=reject; ADKIM=s")
    assert record.p is Policy.REJECT
    assert record.adkim is AlignmentMode.STRICT


def test_duplicate_unknown_tag_still_invalidates_the_record() -> None:
    record = parse_record("v=DMARC1; p=reject; foo=1; foo=2")
    assert record.classification is Classification.INVALID
    assert "duplicate" in (record.reason or "")


def test_duplicate_v_invalidates_the_record() -> None:
    assert parse_record("v=DMARC1; v=DMARC1; p=reject").classification is Classification.INVALID


@pytest.mark.parametrize(
    "text",
    ["v=DMARC1;; p=reject", "v=DMARC1; junk; p=reject", "v=DMARC1; p2=x; p=reject"],
)
def test_syntax_errors_in_the_remainder_are_ignored(text: str) -> None:
    record = parse_record(text)
    assert record.usable
    assert record.policy is Policy.REJECT
    assert any(p.kind is ProblemKind.SYNTAX for p in record.problems)


def test_non_printable_policy_value_is_invalid() -> None:
    record = parse_record("v=DMARC1; p=rej\x01ect")
    assert record.classification is Classification.INVALID


@pytest.mark.parametrize(
    "text",
    ["", "v=DMARC2; p=reject", "v=DMARC1x; p=reject", "DMARC1; p=reject", "v:DMARC1"],
)
def test_not_dmarc(text: str) -> None:
    assert not looks_like_dmarc(text)
    assert parse_record(text).classification is Classification.NOT_DMARC


def test_overlong_record_is_not_parsed() -> None:
    record = parse_record("v=DMARC1; p=reject; x=" + "a" * MAX_RECORD_LENGTH)
    assert record.classification is Classification.NOT_DMARC
    assert "longer than" in (record.reason or "")


@pytest.mark.parametrize(
    ("item", "host", "address"),
    [
        ("mailto:d@example.com", "example.com", "d@example.com"),
        ("mailto:d@EXAMPLE.com", "example.com", "d@EXAMPLE.com"),
        ("MAILTO:d@example.com", "example.com", "d@example.com"),
        ("mailto:d%2Bx@example.com", "example.com", "d+x@example.com"),
        ("mailto:d@example.com?subject=dmarc", "example.com", "d@example.com"),
        ("mailto:d@xn--bcher-kva.example", "xn--bcher-kva.example", "d@xn--bcher-kva.example"),
        ("https://reports.example.net/dmarc", "reports.example.net", None),
    ],
)
def test_report_uris(item: str, host: str, address: str | None) -> None:
    uri, problem = parse_report_uri(item)
    assert uri is not None, problem
    assert uri.host == host
    if address is not None:
        assert uri.address == address


@pytest.mark.parametrize(
    ("item", "why"),
    [
        ("reports@example.com", "no scheme"),
        ("mailto:", "no mailbox"),
        ("mailto:nobody", "no mailbox"),
        ("mailto:d@localhost", "not valid"),
        ("mailto:d@exa mple.com", "not a valid URI"),
        ("mailto:d@b\u00fccher.example", "not a valid URI"),
        ("mailto:d@example..com", "not valid"),
    ],
)
def test_bad_report_uris(item: str, why: str) -> None:
    uri, problem = parse_report_uri(item)
    assert uri is None
    assert why in problem


def test_size_suffix_is_split_off() -> None:
    uri, _ = parse_report_uri("mailto:d@example.com!50k")
    assert uri is not None
    assert (uri.uri, uri.size_limit) == ("mailto:d@example.com", "50k")


def test_uri_list_with_spaces_and_one_bad_entry() -> None:
    record = parse_record(
        "v=DMARC1; p=none; rua=mailto:a@example.com , bogus ,mailto:b@example.com"
    )
    assert [u.address for u in record.rua] == ["a@example.com", "b@example.com"]
    assert kinds(record.text) == {"invalid-value:rua"}


def test_uri_list_is_bounded() -> None:
    many = ",".join(f"mailto:r{i}@example.com" for i in range(MAX_URIS + 5))
    record = parse_record(f"v=DMARC1; p=none; rua={many}")
    assert len(record.rua) == MAX_URIS
    assert any("more than" in p.message for p in record.problems)


def test_as_json_shape() -> None:
    data = parse_record("v=DMARC1; p=reject; t=y; rua=mailto:d@example.com; pct=0").as_json()
    assert data["p"] == "reject"
    assert data["t"] == "y"
    effective = data["effective"]
    assert isinstance(effective, dict)
    assert effective["np"] == "reject"
    assert data["removed"] == [
        {
            "tag": "pct",
            "value": "0",
            "meaning": "pct=0 is what t=y now means (Appendix A.6): publish t=y instead",
            "replacement": "t=y",
        }
    ]


def test_random_input_never_raises() -> None:
    # DNS answers are untrusted: any string gets a classification, never an exception.
    import random

    rng = random.Random(9989)
    alphabet = "v=DMARC1;p rejectquarantinonesp,:!@%/\t\x00\xff\u00fcadkimrspftyfo0123456789"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        if rng.random() < 0.5:
            text = "v=DMARC1;" + text
        record = parse_record(text)
        assert record.classification in set(Classification)
        record.as_json()


def test_missing_semicolon_after_version_is_explained() -> None:
    record = parse_record("v=DMARC1 p=reject")
    assert record.classification is Classification.NOT_DMARC
    assert record.reason == "no ';' after v=DMARC1: the record must start with \"v=DMARC1;\""
