"""The big providers' codes (issue 17 item 6): each reply of tests/data/explain/providers.txt
gets its cause and the provider's advice, through the classifier and ``explain --reply``."""

from __future__ import annotations

import pytest

from mailwright.causes.classify import classify, provider_advice
from mailwright.explain import Explainer

from .corpus import DATA


def _cases() -> list[tuple[int, str, str, str | None]]:
    result = []
    expect: tuple[str, str | None] | None = None
    for n, line in enumerate((DATA / "providers.txt").read_text().splitlines(), 1):
        if line.startswith("# expect: "):
            words = line[len("# expect: ") :].split(" ", 1)
            advice = words[1].removeprefix("advice=") if len(words) > 1 else None
            expect = (words[0], advice)
        elif expect is not None and not line.startswith("#"):
            result.append((n, line, expect[0], expect[1]))
            expect = None
    return result


CASES = _cases()


@pytest.mark.parametrize(
    ("lineno", "reply", "cause", "advice"), CASES, ids=[str(c[0]) for c in CASES]
)
def test_provider_reply(lineno: int, reply: str, cause: str, advice: str | None) -> None:
    verdict, _ = classify(reply)
    assert verdict.cause == cause
    got = f"{verdict.advice[0]}/{verdict.advice[1]}" if verdict.advice else None
    assert got == advice


def test_the_named_codes_are_all_in_the_corpus() -> None:
    named = {a for _, _, _, a in CASES}
    assert {
        "Gmail/5.7.26",
        "Gmail/5.7.27",
        "Gmail/X.7.28",
        "Gmail/5.7.25",
        "Gmail/4.7.0 TLS",
        "Microsoft/5.7.515",
        "Microsoft/S3140",
        "Microsoft/5.7.708",
        "Yahoo/TSS04",
        "Yahoo/553 5.7.x",
        "Apple/CS01/HM08",
        "GMX/WEB.DE/case",
        "T-Online/BL",
    } <= named


def test_advice_is_in_the_report() -> None:
    explainer = Explainer()
    for _, reply, _, _ in CASES:
        explainer.add_reply(reply)
    causes = {c["cause"]: c for c in explainer.to_json()["causes"]}
    dmarc = causes["dmarc"]
    assert {a["provider"] for a in dmarc["advice"]} == {"Gmail", "Microsoft", "Yahoo"}
    assert all(a["fix"] for a in dmarc["advice"])
    assert explainer.failed == len(CASES)


@pytest.mark.parametrize(
    "reply",
    [
        "550-5.1.1 The email account that you tried to reach does not exist. - gsmtp",
        "550 5.1.1 <bob@icloud.com>: inactive email address",
        "552 5.2.2 <bob@t-online.de> mailbox full",
    ],
)
def test_no_provider_advice_for_a_recipient_problem(reply: str) -> None:
    assert provider_advice(reply) is None
