import pytest

from mailwright.dns import parse_rdtype
from mailwright.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("mx", "MX"), (" TXT ", "TXT"), ("aaaa", "AAAA"), ("TYPE65", "HTTPS"), ("type999", "TYPE999")],
)
def test_accepted(text: str, expected: str) -> None:
    assert parse_rdtype(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BOGUS", "unknown DNS record type 'BOGUS'"),
        ("", "unknown DNS record type ''"),
        ("ANY", "record type 'ANY' is not a lookup type"),
        ("axfr", "record type 'axfr' is not a lookup type"),
        ("OPT", "record type 'OPT' is not a lookup type"),
    ],
)
def test_rejected(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_rdtype(text)
    assert caught.value.message == message
    assert caught.value.hint is not None and "MX" in caught.value.hint
