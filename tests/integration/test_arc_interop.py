"""ARC interop with dkimpy's independent implementation, keys served by the test NSD.

Both directions and mixed chains: dkimpy validates what mailwright seals, mailwright
validates what dkimpy seals, and a chain sealed alternately by both passes at either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import dkim
import pytest

from mailwright import authres
from mailwright.arc import ArcStatus, seal_message, verify_chain
from mailwright.dkim import SigningKey, generate_key, private_key_pem, txt_strings
from mailwright.dkim.keys import dns_record_value
from mailwright.testing.nsd import NsdServer

pytestmark = pytest.mark.integration

ORIGIN = "arc.example"
MESSAGE = (
    b"From: Alice <alice@origin.example>\r\n"
    b"To: list@arc.example\r\n"
    b"Subject: ARC   interop\r\n"
    b"  folded\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <arc-1@origin.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello,  list \t\r\n"
    b"\r\n\r\n"
)


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {
        name: SigningKey.from_key(ORIGIN, name, generate_key("rsa", 2048))
        for name in ("ours1", "ours2", "theirs1", "theirs2")
    }


@pytest.fixture
def world(dns_world: NsdServer, keys: dict[str, SigningKey]) -> NsdServer:
    lines = []
    for key in keys.values():
        strings = " ".join(f'"{s}"' for s in txt_strings(dns_record_value(key.private_key)))
        lines.append(f"{key.selector}._domainkey TXT {strings}")
    dns_world.set_zone(ORIGIN, "\n".join(lines) + "\n")
    return dns_world


def _dnsfunc(world: NsdServer) -> Callable[..., bytes]:
    def lookup(name: bytes | str, timeout: float = 5) -> bytes:
        qname = name.decode() if isinstance(name, bytes) else name
        result = asyncio.run(world.resolver().txt(qname.rstrip(".")))
        return result.records[0].encode() if result.ok else b""

    return lookup


def _received(message: bytes, authserv_id: str, arc: str) -> bytes:
    """An intermediary's inbound verdict, as mailwright.inbound writes it."""
    info = authres.arc_result(arc, "", oldest_pass=0, remote_ip="192.0.2.1")
    results = authres.build(
        authserv_id,
        spf=authres.ResInfo(
            "spf", "pass", None, (authres.Property("smtp", "mailfrom", "o.example"),)
        ),
        extra=[info],
    )
    return results.field().encode() + b"\r\n" + message


def _ours(message: bytes, key: SigningKey, authserv_id: str) -> bytes:
    return seal_message(message, key, authserv_id) + message


def _theirs(message: bytes, key: SigningKey, authserv_id: str) -> bytes:
    fields = dkim.arc_sign(
        message,
        key.selector.encode(),
        key.domain.encode(),
        private_key_pem(key.private_key),
        authserv_id.encode(),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    assert fields, "dkimpy added no ARC Set"
    return b"".join(fields) + message


def test_dkimpy_validates_mailwright_seals(world: NsdServer, keys: dict[str, SigningKey]) -> None:
    one = _ours(_received(MESSAGE, "mx1.arc.example", "none"), keys["ours1"], "mx1.arc.example")
    cv, results, reason = dkim.arc_verify(one, dnsfunc=_dnsfunc(world))
    assert (cv, reason) == (dkim.CV_Pass, "success")
    two = _ours(_received(one, "mx2.arc.example", "pass"), keys["ours2"], "mx2.arc.example")
    assert b"cv=pass" in two
    cv, results, reason = dkim.arc_verify(two, dnsfunc=_dnsfunc(world))
    assert (cv, reason) == (dkim.CV_Pass, "success")
    assert [r["instance"] for r in results] == [2, 1]
    cv, _, reason = dkim.arc_verify(two.replace(b"Hello,", b"Hullo,"), dnsfunc=_dnsfunc(world))
    assert cv == dkim.CV_Fail


async def test_mailwright_validates_dkimpy_seals(
    world: NsdServer, keys: dict[str, SigningKey]
) -> None:
    one = _theirs(_received(MESSAGE, "mx1.arc.example", "none"), keys["theirs1"], "mx1.arc.example")
    result = await verify_chain(one, world.resolver())
    assert (result.status, result.reason, result.oldest_pass) == (
        ArcStatus.PASS,
        "1 ARC Set verified",
        0,
    )
    two = _theirs(_received(one, "mx2.arc.example", "pass"), keys["theirs2"], "mx2.arc.example")
    result = await verify_chain(two, world.resolver())
    assert (result.status, result.instances) == (ArcStatus.PASS, 2)
    broken = await verify_chain(two.replace(b"Hello,", b"Hullo,"), world.resolver())
    assert broken.status is ArcStatus.FAIL


async def test_mixed_chain_passes_at_both(world: NsdServer, keys: dict[str, SigningKey]) -> None:
    chain = _theirs(
        _received(MESSAGE, "mx1.arc.example", "none"), keys["theirs1"], "mx1.arc.example"
    )
    first = await verify_chain(chain, world.resolver())
    chain = _ours(
        _received(chain, "mx2.arc.example", str(first.status)), keys["ours1"], "mx2.arc.example"
    )
    cv, _, reason = await asyncio.to_thread(dkim.arc_verify, chain, dnsfunc=_dnsfunc(world))
    assert (cv, reason) == (dkim.CV_Pass, "success")
    chain = _theirs(_received(chain, "mx3.arc.example", "pass"), keys["theirs2"], "mx3.arc.example")
    result = await verify_chain(chain, world.resolver())
    assert (result.status, result.instances) == (ArcStatus.PASS, 3)
    assert result.sealers == (ORIGIN, ORIGIN, ORIGIN)
