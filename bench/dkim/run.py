"""DKIM benchmark: mailwright vs dkimpy vs the raw ``cryptography`` key operation, one run.

    uv run python bench/dkim/run.py [--seconds 1.5] [--rounds 3]

For a 5 KB message (multipart/alternative: a text part and an indented HTML
part, see :func:`message`) and each key type (RSA-2048, Ed25519) it measures:

- sign/s: mailwright ``sign_message`` (relaxed/relaxed, default header list) and
  dkimpy ``dkim.sign`` (relaxed/relaxed), against the raw private-key operation on
  the same key (``cryptography``; RSA PKCS#1 v1.5 over a header-sized input, Ed25519
  over a SHA-256 digest) — the upper bound any DKIM signer on this key can reach;
- verify/s: mailwright ``verify_message`` with the key record answered from memory
  (``MemoryResolver``; each verify parses the message and fetches the record) and
  dkimpy ``dkim.verify`` with a ``dnsfunc`` returning the record, against the raw
  public-key verification.

Each figure is the median of ``--rounds`` rounds; within a round the three
contenders run interleaved in 0.1 s slices, so that load from other processes
hits them alike, and each is timed on this process's CPU clock (``--clock wall``
for elapsed time). Single-threaded, one core.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import statistics
import time
from collections.abc import Callable

import dkim  # dkimpy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from mailwright.dkim import (
    SigningKey,
    dns_record_value,
    generate_key,
    private_key_pem,
    sign_message,
    verify_message,
)
from mailwright.dns import MemoryResolver

DOMAIN = "bench.example"


def message(size: int = 5000) -> bytes:
    """A typical application mail of ``size`` bytes: multipart/alternative, text and HTML.

    The text part has sentence double spaces and a "-- " signature separator; the
    HTML part is indented, so relaxed canonicalization has whitespace runs to fold.
    """
    headers = (
        b"Received: from app1.bench.example (app1.bench.example [192.0.2.21])\r\n"
        b"\tby mail.bench.example with ESMTPS id 4Xy; Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        b"From: Bench App <noreply@bench.example>\r\n"
        b"To: Customer <customer@example.net>\r\n"
        b"Subject: Your order #12345 has shipped\r\n"
        b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        b"Message-ID: <order-12345.1700000000@bench.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b1_5f3a"\r\n'
        b"\r\n"
    )
    text = (
        b"Hello Customer,\r\n\r\n"
        b"Good news: your order #12345 left our warehouse today.  It should reach you\r\n"
        b"within three working days.  You can follow the parcel at any time:\r\n\r\n"
        b"    https://bench.example/track/12345?utm_source=mail&utm_medium=receipt\r\n\r\n"
        b"Order summary\r\n"
        b"  1 x Espresso machine, stainless steel        249.00 EUR\r\n"
        b"  2 x Descaling tablets (pack of 10)            19.80 EUR\r\n"
        b"  Shipping                                        0.00 EUR\r\n\r\n"
        b"Questions?  Reply to this message or visit https://bench.example/help.\r\n\r\n"
        b"-- \r\nBench Shop, 1 Example Street, Exampletown\r\n"
    )
    html_row = (
        b'        <tr>\r\n          <td class="item">Espresso machine, stainless steel</td>\r\n'
        b'          <td class="qty">1</td>\r\n          <td class="price">249.00 EUR</td>\r\n'
        b"        </tr>\r\n"
    )
    html_head = (
        b"<!DOCTYPE html>\r\n<html>\r\n  <body>\r\n    <p>Hello Customer,</p>\r\n"
        b"    <p>Good news: your order <b>#12345</b> left our warehouse today.</p>\r\n"
        b"    <table>\r\n"
    )
    html_tail = b"    </table>\r\n  </body>\r\n</html>\r\n"
    parts_head = (
        b"--b1_5f3a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + text
        + b"\r\n--b1_5f3a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        + html_head
    )
    end = b"\r\n--b1_5f3a--\r\n"
    room = size - len(headers) - len(parts_head) - len(html_tail) - len(end)
    rows = html_row * (room // len(html_row))
    filler = room - len(rows)
    body = parts_head + rows + html_tail + b"<!--" + b"x" * max(filler - 9, 0) + b"-->\r\n" + end
    return headers + body


CLOCK = time.process_time
"""What a rate is measured against: this process's CPU time by default (``--clock cpu``):
operations per CPU-second of one core, which on a shared machine does not depend on how
much of the CPU other processes took meanwhile. ``--clock wall`` uses elapsed time."""


def rates(contenders: list[Callable[[], object]], seconds: float, rounds: int) -> list[float]:
    """Operations per second of each contender, measured interleaved.

    The machine is shared, so its load drifts: each round runs every contender for
    short slices in turn (0.1 s of wall time each) and sums its ops and its time on
    :data:`CLOCK`; the figure is the median over rounds. Coroutine functions run
    inside one event loop, as in the MTA.
    """
    loop = asyncio.new_event_loop()

    def call(fn: Callable[[], object]) -> None:
        result = fn()
        if asyncio.iscoroutine(result):
            loop.run_until_complete(result)

    for fn in contenders:
        call(fn)  # warm up: key loading, caches
    per_round: list[list[float]] = [[] for _ in contenders]
    slices = max(1, round(seconds / 0.1))
    for _ in range(rounds):
        ops = [0] * len(contenders)
        spent = [0.0] * len(contenders)
        for _ in range(slices):
            for k, fn in enumerate(contenders):
                deadline = time.perf_counter() + 0.1
                start = CLOCK()
                n = 0
                while True:
                    for _ in range(5):
                        call(fn)
                    n += 5
                    if time.perf_counter() >= deadline:
                        break
                ops[k] += n
                spent[k] += CLOCK() - start
        for k in range(len(contenders)):
            per_round[k].append(ops[k] / spent[k])
    loop.close()
    return [statistics.median(r) for r in per_round]


def dkimpy_key(key: SigningKey) -> bytes:
    if isinstance(key.private_key, rsa.RSAPrivateKey):
        return private_key_pem(key.private_key)
    raw = key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw)


def bench_key(key: SigningKey, msg: bytes, seconds: float, rounds: int) -> list[tuple[str, ...]]:
    record = dns_record_value(key.private_key)
    resolver = MemoryResolver().add(f"{key.selector}._domainkey.{DOMAIN}", "TXT", record)
    resolver.queries = _NoList()  # do not accumulate a query log over 100k verifies
    pem = dkimpy_key(key)
    signed = sign_message(msg, [key]) + msg
    dkimpy_signed = (
        dkim.sign(
            msg,
            key.selector.encode(),
            DOMAIN.encode(),
            pem,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=key.algorithm.encode(),
        )
        + msg
    )
    assert dkim.verify(signed, dnsfunc=lambda _n, timeout=5: record.encode())
    assert asyncio.run(verify_message(dkimpy_signed, resolver))[0].ok

    header_input = msg[:600]  # what a DKIM signer feeds the key: ~ the signed header fields
    private = key.private_key
    public = private.public_key()
    if isinstance(private, rsa.RSAPrivateKey):
        assert isinstance(public, rsa.RSAPublicKey)
        pad, sha = padding.PKCS1v15(), hashes.SHA256()
        raw_sig = private.sign(header_input, pad, sha)

        def raw_sign() -> object:
            return private.sign(header_input, pad, sha)

        def raw_verify() -> object:
            public.verify(raw_sig, header_input, pad, sha)  # type: ignore[union-attr]
            return None
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        digest = hashlib.sha256(header_input).digest()
        raw_sig = private.sign(digest)

        def raw_sign() -> object:
            return private.sign(hashlib.sha256(header_input).digest())

        def raw_verify() -> object:
            public.verify(raw_sig, hashlib.sha256(header_input).digest())  # type: ignore[union-attr]
            return None

    mw_sign, py_sign, lim_sign = rates(
        [
            lambda: sign_message(msg, [key]),
            lambda: dkim.sign(
                msg,
                key.selector.encode(),
                DOMAIN.encode(),
                pem,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=key.algorithm.encode(),
            ),
            raw_sign,
        ],
        seconds,
        rounds,
    )
    mw_verify, py_verify, lim_verify = rates(
        [
            lambda: verify_message(signed, resolver),
            lambda: dkim.verify(signed, dnsfunc=lambda _n, timeout=5: record.encode()),
            raw_verify,
        ],
        seconds,
        rounds,
    )
    name = "RSA-2048" if isinstance(private, rsa.RSAPrivateKey) else "Ed25519"
    return [
        _row("sign", name, mw_sign, py_sign, lim_sign),
        _row("verify", name, mw_verify, py_verify, lim_verify),
    ]


def bench_both(keys: list[SigningKey], msg: bytes, seconds: float, rounds: int) -> tuple[str, ...]:
    """RSA-2048 + Ed25519 on one message, as ``mailwright init`` configures the MTA.

    mailwright canonicalizes and hashes once for both; dkimpy signs twice; the limit
    is one RSA plus one Ed25519 key operation.
    """
    rsa_key, ed_key = keys
    assert isinstance(rsa_key.private_key, rsa.RSAPrivateKey)
    assert isinstance(ed_key.private_key, ed25519.Ed25519PrivateKey)
    rsa_private, ed_private = rsa_key.private_key, ed_key.private_key
    pems = [(k, dkimpy_key(k)) for k in keys]
    header_input = msg[:600]
    pad, sha = padding.PKCS1v15(), hashes.SHA256()

    def dkimpy_both() -> object:
        return [
            dkim.sign(
                msg,
                k.selector.encode(),
                DOMAIN.encode(),
                pem,
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=k.algorithm.encode(),
            )
            for k, pem in pems
        ]

    def raw_both() -> object:
        rsa_private.sign(header_input, pad, sha)
        return ed_private.sign(hashlib.sha256(header_input).digest())

    mw, py, lim = rates([lambda: sign_message(msg, keys), dkimpy_both, raw_both], seconds, rounds)
    return _row("sign", "RSA-2048 + Ed25519", mw, py, lim)


class _NoList(list[tuple[str, str]]):
    def append(self, item: tuple[str, str]) -> None:
        pass


def _row(op: str, name: str, mw: float, py: float, lim: float) -> tuple[str, ...]:
    return (
        f"{op} {name}",
        f"{mw:,.0f}",
        f"{py:,.0f}",
        f"{lim:,.0f}",
        f"{mw / py:.1f}x",
        f"{100 * mw / lim:.0f} %",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one timed round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument(
        "--clock", choices=["cpu", "wall"], default="cpu", help="per CPU-second or per second"
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    msg = message()
    keys = [
        SigningKey.from_key(DOMAIN, "rsa2048", generate_key("rsa", 2048)),
        SigningKey.from_key(DOMAIN, "ed1", generate_key("ed25519")),
    ]
    rows = []
    for key in keys:
        rows.extend(bench_key(key, msg, args.seconds, args.rounds))
    rows.append(bench_both(keys, msg, args.seconds, args.rounds))
    header = ("operation (5 KB message)", "mailwright/s", "dkimpy/s", "raw limit/s",
              "vs dkimpy", "of limit")  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(
        f"message: {len(msg)} bytes; {args.rounds} rounds of {args.seconds} s, median; "
        f"rates per {'CPU-' if args.clock == 'cpu' else ''}second, one core"
    )
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


if __name__ == "__main__":
    main()
