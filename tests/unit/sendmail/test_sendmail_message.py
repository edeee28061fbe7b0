"""What sendmail makes of the bytes a program pipes in (prepare_message, end_of_input)."""

from __future__ import annotations

import pytest

from mailwright.sendmail.command import (
    EX_DATAERR,
    EX_USAGE,
    SendmailError,
    end_of_input,
    prepare_message,
)

LIMIT = 10_240_000


def prepare(raw: bytes, *recipients: str, extract: bool = False, limit: int = LIMIT) -> bytes:
    return prepare_message(raw, recipients=recipients, extract=extract, size_limit=limit).data


def refused(
    raw: bytes, *recipients: str, extract: bool = False, limit: int = LIMIT
) -> SendmailError:
    with pytest.raises(SendmailError) as info:
        prepare_message(raw, recipients=recipients, extract=extract, size_limit=limit)
    return info.value


def test_lf_message_becomes_crlf() -> None:
    assert prepare(b"Subject: x\n\nhello\n", "root") == b"Subject: x\r\n\r\nhello\r\n"


def test_mixed_line_ends_each_become_crlf() -> None:
    raw = b"Subject: x\r\n\nline1\rline2\r\nline3\n"
    assert prepare(raw, "root") == b"Subject: x\r\n\r\nline1\r\nline2\r\nline3\r\n"


def test_no_header_at_all_is_all_body() -> None:
    assert prepare(b"just text\nmore\n", "root") == b"\r\njust text\r\nmore\r\n"


def test_no_blank_line_after_the_header() -> None:
    assert prepare(b"Subject: x\nTo: root", "root") == b"Subject: x\r\nTo: root\r\n\r\n"


def test_header_ends_at_the_first_line_that_is_not_a_field() -> None:
    raw = b"Subject: x\n folded\nthis is body\n"
    assert prepare(raw, "root") == b"Subject: x\r\n folded\r\n\r\nthis is body\r\n"


def test_empty_input_is_an_empty_message() -> None:
    assert prepare(b"", "root") == b"\r\n"


def test_mbox_from_line_is_dropped() -> None:
    raw = b"From root Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n"
    assert prepare(raw, "root") == b"Subject: x\r\n\r\nbody\r\n"


def test_nul_is_refused() -> None:
    error = refused(b"Subject: x\n\nbad\0byte\n", "root")
    assert error.exit_code == EX_DATAERR
    assert error.message == "the message contains a NUL byte (octet 15)"


def test_long_lines_are_broken_with_crlf_space() -> None:
    long_line = b"x" * 2500
    data = prepare(b"Subject: x\n\n" + long_line + b"\n", "root")
    body = data.split(b"\r\n\r\n", 1)[1]
    lines = body.split(b"\r\n")[:-1]
    assert [len(line) for line in lines] == [998, 998, 506]
    assert lines[1].startswith(b" ") and lines[2].startswith(b" ")
    assert b"".join(line.lstrip(b" ") for line in lines) == long_line


def test_a_998_octet_line_is_kept() -> None:
    line = b"y" * 998
    assert prepare(b"\n" + line + b"\n", "root") == b"\r\n" + line + b"\r\n"


def test_over_the_size_limit() -> None:
    error = refused(b"Subject: x\n\n" + b"z" * 2000 + b"\n", "root", limit=1024)
    assert error.exit_code == EX_DATAERR
    assert error.message == (
        "the message is over the size limit of 1024 octets; nothing was queued"
    )


def test_extract_recipients_and_remove_bcc() -> None:
    raw = (
        b"From: cron@example.com\n"
        b"To: Alice <alice@example.net>, bob@example.org\n"
        b"Cc: carol@example.net\n"
        b"Bcc: secret@example.net,\n"
        b"  other-secret@example.net\n"
        b"Subject: report\n\nbody\n"
    )
    prepared = prepare_message(
        raw, recipients=["extra@example.net"], extract=True, size_limit=LIMIT
    )
    assert prepared.recipients == (
        "extra@example.net",
        "alice@example.net",
        "bob@example.org",
        "carol@example.net",
        "secret@example.net",
        "other-secret@example.net",
    )
    assert b"secret" not in prepared.data
    assert prepared.data.startswith(b"From: cron@example.com\r\nTo: Alice <alice@example.net>")
    assert b"\r\nSubject: report\r\n\r\nbody\r\n" in prepared.data


def test_extract_with_unqualified_names_and_groups() -> None:
    raw = b"To: root\nCc: undisclosed-recipients:;\n\nx\n"
    assert prepare_message(raw, extract=True, size_limit=LIMIT).recipients == ("root",)


def test_duplicates_are_one_recipient() -> None:
    raw = b"To: a@example.net\nCc: a@example.net\n\nx\n"
    assert prepare_message(
        raw, recipients=["a@example.net"], extract=True, size_limit=LIMIT
    ).recipients == ("a@example.net",)


def test_no_recipients_anywhere() -> None:
    assert refused(b"Subject: x\n\n", extract=True).exit_code == EX_USAGE
    assert refused(b"no header\n").message == "no recipients"


def test_bad_recipient_argument() -> None:
    error = refused(b"x\n", "bad address@x y")
    assert error.exit_code == EX_USAGE


def test_eight_bit_is_noticed() -> None:
    prepared = prepare_message("Subject: é\n\nü\n".encode(), recipients=["root"], size_limit=LIMIT)
    assert prepared.eight_bit


def test_ten_thousand_recipients() -> None:
    many = [f"user{i}@example.net" for i in range(10_000)]
    assert len(prepare_message(b"x\n", recipients=many, size_limit=LIMIT).recipients) == 10_000


@pytest.mark.parametrize(
    ("data", "ignore_dots", "end"),
    [
        (b"a\n.\nb\n", False, 2),
        (b".\n", False, 0),
        (b"a\r\n.\r\nb", False, 3),
        (b"a\n.\n", True, None),
        (b"a\n..\n", False, None),
        (b"a\n.", False, 2),
    ],
)
def test_a_lone_dot_ends_input_without_i(data: bytes, ignore_dots: bool, end: int | None) -> None:
    assert end_of_input(data, ignore_dots) == end
