import pytest

from mailwright.dns import parse_nameserver
from mailwright.errors import UsageError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
    ],
)
def test_accepted_forms(spec: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "localhost",
        "127.0.0.1:0",
        "127.0.0.1:99999",
        "[::1",
        "1.2.3.4:x",
        "127.0.0.1:²",  # str.isdigit() is true for it, int() is not
        "127.0.0.1:\u0665\u0663",  # Arabic-Indic digits: int() would read 53
        "[::1]:",
        "127.0.0.1:",
        "[::1]x",
    ],
)
def test_rejected_forms(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_nameserver(spec)
