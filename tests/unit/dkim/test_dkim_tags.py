"""Tag=value lists, RFC 6376 §3.2."""

from __future__ import annotations

import pytest

from mailwright.dkim.tags import TagSyntaxError, parse_tag_list


def test_basic_whitespace_and_spans() -> None:
    text = " v=1;\r\n a = rsa-sha256 ; b= AB\r\n CD ;h=from : to;"
    tags = parse_tag_list(text)
    assert tags.names() == ["v", "a", "b", "h"]
    assert tags["a"] == "rsa-sha256"
    assert tags["b"] == "AB\r\n CD"  # internal whitespace kept, edges dropped
    assert tags["h"] == "from : to"
    start, end = tags.spans["b"]
    assert text[start:end] == " AB\r\n CD "


def test_empty_value_is_not_absent() -> None:
    tags = parse_tag_list("p=; k=rsa")
    assert tags["p"] == ""
    assert "p" in tags
    assert "t" not in tags


def test_duplicate_tags_invalidate_the_list() -> None:
    with pytest.raises(TagSyntaxError, match="duplicate tag a="):
        parse_tag_list("a=1; b=2; a=1")


@pytest.mark.parametrize("text", ["1a=x", "a b=x", "=x", "novalue", "a-b=1"])
def test_malformed(text: str) -> None:
    with pytest.raises(TagSyntaxError):
        parse_tag_list(text)


def test_empty_specs_are_skipped() -> None:
    assert parse_tag_list("a=1;; ;b=2;").names() == ["a", "b"]
    assert parse_tag_list("").names() == []
