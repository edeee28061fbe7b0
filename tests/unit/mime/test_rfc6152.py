"""RFC 6152 §3 / RFC 2045 §6: 8-bit data made 7-bit per MIME part."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from mailwright.rfc6152 import MAX_DEPTH, to_7bit

CRLF = b"\r\n"


def _django_like() -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Équipe Café <noreply@example.com>"
    msg["To"] = "Zoë <zoe@example.net>"
    msg["Subject"] = "Bienvenue à bord"
    msg.set_content("Merci, café — très bien.\n" * 3, cte="8bit")
    msg.add_alternative("<p>Merci, <b>café</b></p>\n", subtype="html", cte="8bit")
    msg.add_attachment(
        bytes(range(256)) * 4, maintype="application", subtype="octet-stream", filename="blob.bin"
    )
    data = msg.as_bytes()
    # an attachment labelled 8bit with raw bytes, as sloppy clients send
    return data


def _decoded_parts(data: bytes) -> list[tuple[str, bytes]]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    return [
        (part.get_content_type(), part.get_payload(decode=True) or b"")
        for part in msg.walk()
        if not part.is_multipart()
    ]


def test_seven_bit_message_is_unchanged() -> None:
    data = b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
    result = to_7bit(data)
    assert result.data is data and not result.changed and not result.headers_8bit


def test_django_like_message_becomes_7bit_with_same_content() -> None:
    data = _django_like()
    assert not data.isascii()
    result = to_7bit(data)
    assert result.changed and result.data.isascii() and not result.headers_8bit
    assert _decoded_parts(result.data) == _decoded_parts(data)


def test_headers_other_than_cte_are_kept_byte_for_byte() -> None:
    data = _django_like()
    out = to_7bit(data).data
    head_in = data.split(CRLF + CRLF, 1)[0]
    head_out = out.split(CRLF + CRLF, 1)[0]
    strip = [ln for ln in head_in.split(CRLF) if not ln.lower().startswith(b"content-transfer")]
    assert [
        ln for ln in head_out.split(CRLF) if not ln.lower().startswith(b"content-transfer")
    ] == strip


def test_mostly_text_gets_quoted_printable_binary_gets_base64() -> None:
    text = (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n"
    )
    out = to_7bit(text).data
    assert b"Content-Transfer-Encoding: quoted-printable" in out
    assert out.endswith(b"\r\n\r\ncaf=C3=A9\r\n")
    assert b"8bit" not in out
    binary = b"Content-Type: text/plain; charset=koi8-r\r\n\r\n" + bytes(range(128, 256)) * 4 + CRLF
    out = to_7bit(binary).data
    assert b"Content-Transfer-Encoding: base64" in out


def test_long_lines_get_soft_breaks_with_crlf() -> None:
    data = b"Content-Type: text/plain\r\n\r\n" + ("caf" + "é" * 3).encode() * 100 + CRLF
    out = to_7bit(data).data
    body = out.split(CRLF + CRLF, 1)[1]
    assert all(len(line) <= 76 for line in body.split(CRLF))
    assert b"=\r\n" in body and b"=\n" not in body.replace(b"=\r\n", b"")


def test_no_mime_headers_gets_declared() -> None:
    data = b"From: a@example.com\r\nSubject: x\r\n\r\ncaf\xe9\r\n"
    out = to_7bit(data).data
    assert b"MIME-Version: 1.0" in out
    assert b'Content-Type: text/plain; charset="unknown-8bit"' in out
    assert email.message_from_bytes(out).get_payload(decode=True) == b"caf\xe9\r\n"


def test_multipart_declared_8bit_becomes_7bit() -> None:
    data = (
        b'Content-Type: multipart/mixed; boundary="b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
        b"pr\xe9amble\r\n--b\r\nContent-Type: text/plain\r\n\r\n\xc3\xa9\r\n--b--\r\nepi\xe9\r\n"
    )
    out = to_7bit(data).data
    assert out.isascii()
    assert out.startswith(
        b'Content-Type: multipart/mixed; boundary="b"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
    )
    assert (
        b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n=C3=A9\r\n--b--\r\n" in out
    )


def test_message_rfc822_is_converted_inside() -> None:
    data = (
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: inner\r\nContent-Type: text/plain\r\n\r\n\xc3\xa9t\xc3\xa9\r\n--x--\r\n"
    )
    out = to_7bit(data).data
    assert out.isascii()
    assert (
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\nSubject: inner"
        in out
    )


def test_raw_8bit_headers_are_reported_not_rewritten() -> None:
    data = "Subject: café\r\n\r\nbody é\r\n".encode()
    result = to_7bit(data)
    assert result.headers_8bit and result.data.startswith("Subject: café\r\n".encode())


def test_deep_nesting_is_bounded() -> None:
    depth = MAX_DEPTH + 30
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    data = head + b"Content-Type: text/plain\r\n\r\n\xe9\r\n"
    out = to_7bit(data).data
    assert out.isascii()


def test_missing_close_delimiter_and_garbage() -> None:
    data = b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\n\xff\xfe\r\n"
    assert to_7bit(data).data.isascii()
    garbage = to_7bit(b"\xff" * 10000)  # no header/body separator: all header
    assert garbage.headers_8bit and not garbage.changed
