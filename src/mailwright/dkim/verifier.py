"""Verification (RFC 6376 §6, RFC 8463, RFC 8301): one result per DKIM-Signature.

Results use the RFC 8601 §2.7.1 vocabulary:

- ``pass``: the signature verified (the reason notes an ``l=`` that leaves the end of
  the body unsigned, RFC 6376 §8.2);
- ``fail``: it did not (body hash mismatch, signature mismatch, expired, l= beyond the body);
- ``permerror``: the signature or key record is unusable (syntax, missing tags, no key,
  revoked key, i= outside d=, h= without From or with over 1000 names, key type or
  hash not allowed, service type);
- ``temperror``: the key lookup failed temporarily (SERVFAIL, timeout);
- ``policy``: it verifies but is not acceptable: rsa-sha1 or an RSA key under 1024 bits
  (RFC 8301), or a message without exactly one From (RFC 5322 §3.6); a signature that
  does not verify is ``fail`` whatever its algorithm;
- ``neutral``: not evaluated (more DKIM-Signature fields than ``max_signatures``).

The work is bounded: at most ``max_signatures`` signatures are evaluated, key lookups
are shared per (selector, domain) and made concurrently, and the body is canonicalized
once per canonicalization and hashed once per (canonicalization, hash, length).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from ..dns import DnsResult, Outcome, Resolver
from ..dns.names import is_dns_name
from ..errors import MailwrightError
from .body import BodyDigests, DigestKey
from .canonicalization import (
    Canonicalization,
    canonicalize_body,
    canonicalize_header,
    canonicalize_headers,
    parse_canonicalization,
)
from .keys import MIN_RSA_BITS, KeyRecord, KeyRecordError, parse_key_record
from .message import ParsedMessage, split_message
from .signer import select_headers
from .tags import TagSyntaxError, parse_tag_list, shown

__all__ = [
    "DEFAULT_MAX_SIGNATURES",
    "DkimResult",
    "DkimStatus",
    "Signature",
    "SignatureError",
    "fetch_key",
    "header_hash_input",
    "parse_signature",
    "signature_verifies",
    "verify_message",
]

DEFAULT_MAX_SIGNATURES = 10
MAX_SIGNED_FIELDS = 1000
"""More names in one h= than any real signer uses (oversigning included)."""
_B64_WS = re.compile(r"[ \t\r\n]+")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")
_DIGITS = re.compile(r"[0-9]{1,20}\Z")
_PKCS1 = padding.PKCS1v15()


class DkimStatus(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NEUTRAL = "neutral"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"
    POLICY = "policy"


@dataclass(frozen=True, slots=True)
class DkimResult:
    """The outcome of one DKIM-Signature field, with what it claimed."""

    status: DkimStatus
    reason: str
    index: int
    """Position of the field among the message's DKIM-Signature fields, 0 = topmost."""
    domain: str | None = None
    selector: str | None = None
    algorithm: str | None = None
    identity: str | None = None
    """i= (or "@" + d= when absent)."""
    canonicalization: str | None = None
    key_bits: int | None = None
    body_hash_ok: bool | None = None
    """False: the body changed; True with status fail: the signed header fields changed."""
    testing: bool = False
    """The key record has t=y: the domain is testing DKIM."""
    timestamp: int | None = None
    expiration: int | None = None
    signed_headers: tuple[str, ...] = ()
    header_b: str | None = None
    """The first 8 characters of b=, for Authentication-Results header.b (RFC 6008)."""

    @property
    def ok(self) -> bool:
        return self.status is DkimStatus.PASS

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "result": str(self.status),
            "reason": self.reason,
            "domain": self.domain,
            "selector": self.selector,
            "algorithm": self.algorithm,
            "identity": self.identity,
            "canonicalization": self.canonicalization,
            "key_bits": self.key_bits,
            "body_hash_ok": self.body_hash_ok,
            "testing": self.testing,
            "timestamp": self.timestamp,
            "expiration": self.expiration,
            "signed_headers": list(self.signed_headers),
            "header_b": self.header_b,
        }


class SignatureError(MailwrightError):
    """A signature (or its key) that cannot be evaluated, with the result to report."""

    def __init__(self, status: DkimStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Signature:
    """A syntactically valid DKIM-Signature field (RFC 6376 §3.5)."""

    index: int
    raw: bytes
    b_span: tuple[int, int]
    algorithm: str
    hash_name: str
    key_type: str
    header_c: Canonicalization
    body_c: Canonicalization
    domain: str
    selector: str
    identity: str
    signed: tuple[str, ...]
    signature: bytes
    body_hash: bytes
    length: int | None
    timestamp: int | None
    expiration: int | None


_ALGORITHMS = {
    "rsa-sha256": ("rsa", "sha256"),
    "ed25519-sha256": ("ed25519", "sha256"),
    "rsa-sha1": ("rsa", "sha1"),
}


def _b64(value: str, tag: str) -> bytes:
    text = _B64_WS.sub("", value)
    if not text or not _B64.match(text) or len(text) % 4:
        raise SignatureError(DkimStatus.PERMERROR, f"{tag}= is not valid base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(DkimStatus.PERMERROR, f"{tag}= is not valid base64") from None


def parse_signature(index: int, raw: bytes) -> Signature:
    """Validate one DKIM-Signature field (RFC 6376 §6.1.1); raise SignatureError."""
    colon = raw.find(b":")
    start = colon + 1
    value = raw[start:-2].decode("latin-1")  # 1 char per byte, so spans map onto ``raw``
    try:
        tags = parse_tag_list(value)
    except TagSyntaxError as exc:
        raise SignatureError(DkimStatus.PERMERROR, f"signature syntax: {exc}") from None
    for required in ("v", "a", "b", "bh", "d", "h", "s"):
        if required not in tags:
            raise SignatureError(
                DkimStatus.PERMERROR, f"signature lacks the required {required}= tag"
            )
    if tags["v"] != "1":
        raise SignatureError(
            DkimStatus.PERMERROR, f"unsupported signature version v={shown(tags['v'], 10)}"
        )
    algorithm = tags["a"].lower()
    if algorithm not in _ALGORITHMS:
        raise SignatureError(
            DkimStatus.PERMERROR, f"unsupported algorithm a={shown(algorithm, 30)}"
        )
    key_type, hash_name = _ALGORITHMS[algorithm]
    try:
        header_c, body_c = parse_canonicalization(tags.get("c"))
    except ValueError:
        raise SignatureError(
            DkimStatus.PERMERROR, f"unsupported c={shown(tags['c'], 30)}"
        ) from None
    domain = tags["d"].lower().rstrip(".")
    if not is_dns_name(domain):
        raise SignatureError(
            DkimStatus.PERMERROR, f"d='{shown(tags['d'], 60)}' is not a domain name"
        )
    selector = tags["s"].lower()
    if not is_dns_name(selector):
        raise SignatureError(
            DkimStatus.PERMERROR, f"s='{shown(tags['s'], 60)}' is not a valid selector"
        )
    if tags["h"].count(":") >= MAX_SIGNED_FIELDS:
        # Not an RFC limit: a bound on the work one signature can ask for.
        raise SignatureError(
            DkimStatus.PERMERROR, f"h= names more than {MAX_SIGNED_FIELDS} header fields"
        )
    signed = tuple(n.strip(" \t\r\n").lower() for n in tags["h"].split(":"))
    if not all(signed):
        raise SignatureError(DkimStatus.PERMERROR, "h= has an empty header field name")
    if "from" not in signed:
        # RFC 6376 §6.1.1: a signature that does not cover From is unacceptable.
        raise SignatureError(DkimStatus.PERMERROR, "h= does not include From")
    identity = tags.get("i") or f"@{domain}"
    local, at, idomain = identity.rpartition("@")
    idomain = idomain.lower().rstrip(".")
    if not at:
        raise SignatureError(DkimStatus.PERMERROR, f"i='{shown(identity, 60)}' has no @")
    if idomain != domain and not idomain.endswith("." + domain):
        # RFC 6376 §6.1.1: i= must be d= or a subdomain of it.
        raise SignatureError(
            DkimStatus.PERMERROR, f"i= domain {shown(idomain, 60)} is not within d={domain}"
        )
    q = tags.get("q")
    if q is not None and "dns/txt" not in [m.strip() for m in q.split(":")]:
        raise SignatureError(DkimStatus.PERMERROR, f"unsupported query method q={shown(q, 30)}")
    numbers: dict[str, int | None] = {}
    for tag in ("l", "t", "x"):
        text = tags.get(tag)
        if text is None:
            numbers[tag] = None
        elif not _DIGITS.match(text):
            raise SignatureError(DkimStatus.PERMERROR, f"{tag}= is not a number")
        else:
            numbers[tag] = int(text)
    t, x = numbers["t"], numbers["x"]
    if t is not None and x is not None and x < t:
        raise SignatureError(DkimStatus.PERMERROR, "x= is before t= (RFC 6376 §3.5)")
    signature = _b64(tags["b"], "b")
    body_hash = _b64(tags["bh"], "bh")
    b_start, b_end = tags.spans["b"]
    return Signature(
        index=index,
        raw=raw,
        b_span=(start + b_start, start + b_end),
        algorithm=algorithm,
        hash_name=hash_name,
        key_type=key_type,
        header_c=header_c,
        body_c=body_c,
        domain=domain,
        selector=selector,
        identity=f"{local}@{idomain}",
        signed=signed,
        signature=signature,
        body_hash=body_hash,
        length=numbers["l"],
        timestamp=t,
        expiration=x,
    )


# Parsed key records, by record text: parsing DER costs more than the lookup from memory.
# Bounded LRU; the lock keeps it consistent if verifications run in several threads.
_KEY_CACHE: OrderedDict[str, KeyRecord | str] = OrderedDict()
_KEY_CACHE_SIZE = 512
_KEY_CACHE_LOCK = threading.Lock()


def _parse_record_cached(text: str) -> KeyRecord | str:
    with _KEY_CACHE_LOCK:
        hit = _KEY_CACHE.get(text)
        if hit is not None:
            _KEY_CACHE.move_to_end(text)
            return hit
    result: KeyRecord | str
    try:
        result = parse_key_record(text)
    except KeyRecordError as exc:
        result = str(exc)
    with _KEY_CACHE_LOCK:
        _KEY_CACHE[text] = result
        if len(_KEY_CACHE) > _KEY_CACHE_SIZE:
            _KEY_CACHE.popitem(last=False)
    return result


async def fetch_key(resolver: Resolver, selector: str, domain: str) -> KeyRecord | SignatureError:
    """RFC 6376 §6.1.2: look up and parse ``selector._domainkey.domain``."""
    name = f"{selector}._domainkey.{domain}"
    try:
        answer: DnsResult[str] = await resolver.txt(name)
    except Exception as exc:  # a resolver must not raise; if one does, treat it as temporary
        return SignatureError(DkimStatus.TEMPERROR, f"key lookup for {name} failed: {exc}")
    if answer.is_error:
        return SignatureError(DkimStatus.TEMPERROR, f"key lookup for {name}: {answer.outcome}")
    if answer.outcome is not Outcome.ANSWER:
        return SignatureError(DkimStatus.PERMERROR, f"no key record at {name} ({answer.outcome})")
    problems: list[str] = []
    for text in answer.records[:8]:
        parsed = _parse_record_cached(text)
        if isinstance(parsed, KeyRecord):
            return parsed
        problems.append(parsed)
    return SignatureError(DkimStatus.PERMERROR, f"bad key record at {name}: {'; '.join(problems)}")


def wanted_digests(message: bytes, max_signatures: int = DEFAULT_MAX_SIGNATURES) -> set[DigestKey]:
    """The body digests the DKIM signatures of ``message`` (its header section is
    enough) need: what :func:`~.body.digest_body` makes for a spooled message."""
    wanted: set[DigestKey] = set()
    fields = [f.raw for f in split_message(message).headers if f.key == "dkim-signature"]
    for index, raw in enumerate(fields[:max_signatures]):
        try:
            sig = parse_signature(index, raw)
        except SignatureError:
            continue
        wanted.add((sig.body_c, sig.hash_name, sig.length))
    return wanted


async def verify_message(
    message: bytes,
    resolver: Resolver,
    *,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
    now: float | None = None,
    body: BodyDigests | None = None,
) -> list[DkimResult]:
    """Verify every DKIM-Signature of ``message``; an unsigned message gives ``[]``.

    ``body``: the body's digests made a piece at a time (a spooled message, whose header
    section alone is then ``message``). Never raises for anything in the message or the
    DNS answers.
    """
    when = time.time() if now is None else now
    parsed = split_message(message)
    fields = [f.raw for f in parsed.headers if f.key == "dkim-signature"]
    results: list[DkimResult | None] = [None] * len(fields)
    signatures: list[Signature] = []
    for index, raw in enumerate(fields):
        if index >= max_signatures:
            results[index] = DkimResult(
                DkimStatus.NEUTRAL,
                f"not evaluated: more than {max_signatures} DKIM-Signature fields",
                index,
            )
            continue
        try:
            signatures.append(parse_signature(index, raw))
        except SignatureError as exc:
            results[index] = _partial_result(index, raw, exc)
    names = list(dict.fromkeys((s.selector, s.domain) for s in signatures))
    if len(names) == 1:  # the common case: no task creation for a single lookup
        records = {names[0]: await fetch_key(resolver, *names[0])}
    else:
        fetched = await asyncio.gather(*(fetch_key(resolver, s, d) for s, d in names))
        records = dict(zip(names, fetched, strict=True))
    body_hashes: dict[tuple[str, str, int | None], bytes] = {}
    bodies: dict[str, bytes] = {}
    for sig in signatures:
        results[sig.index] = _check(
            parsed, sig, records[(sig.selector, sig.domain)], body_hashes, when, bodies, body
        )
    return [r for r in results if r is not None]


def header_hash_input(parsed: ParsedMessage, sig: Signature) -> bytes:
    """What the signature signs (RFC 6376 §3.7): the selected fields, canonicalized, then
    this DKIM-Signature field with the b= value blanked and without its final CRLF."""
    b_start, b_end = sig.b_span
    own = sig.raw[:b_start] + sig.raw[b_end:]
    data = canonicalize_headers(select_headers(parsed, sig.signed), sig.header_c)
    return data + canonicalize_header(own, sig.header_c)[:-2]


def signature_verifies(record: KeyRecord, hash_name: str, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies with the record's key (RFC 6376 §3.3,
    RFC 8463 §3: Ed25519 over the SHA-256 digest). Raises ValueError for an unusable
    signature (e.g. longer than the modulus). Shared with ARC (RFC 8617 §5.2)."""
    public = record.public_key
    try:
        if isinstance(public, rsa.RSAPublicKey):
            algorithm = hashes.SHA256() if hash_name == "sha256" else hashes.SHA1()
            public.verify(signature, data, _PKCS1, algorithm)
        elif isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, hashlib.sha256(data).digest())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _partial_result(index: int, raw: bytes, exc: SignatureError) -> DkimResult:
    """A result for a field that did not parse, with whatever d=/s=/a= could be read."""
    info: dict[str, str] = {}
    for tag in ("d", "s", "a"):
        m = re.search(
            rb"(?:^|;)[ \t\r\n]*" + tag.encode() + rb"[ \t\r\n]*=[ \t\r\n]*([^;\s]*)",
            raw[raw.find(b":") + 1 :],
        )
        if m:
            info[tag] = shown(m.group(1).decode("latin-1"), 255)
    return DkimResult(exc.status, exc.reason, index, info.get("d"), info.get("s"), info.get("a"))


def _check(
    parsed: ParsedMessage,
    sig: Signature,
    record: KeyRecord | SignatureError,
    body_hashes: dict[tuple[str, str, int | None], bytes],
    now: float,
    bodies: dict[str, bytes] | None = None,
    body: BodyDigests | None = None,
) -> DkimResult:
    def result(status: DkimStatus, reason: str, **extra: Any) -> DkimResult:
        testing = isinstance(record, KeyRecord) and record.testing
        if testing:
            reason += " (key in testing mode, t=y)"
        return DkimResult(
            status,
            reason,
            sig.index,
            sig.domain,
            sig.selector,
            sig.algorithm,
            sig.identity,
            f"{sig.header_c}/{sig.body_c}",
            record.bits if isinstance(record, KeyRecord) else None,
            testing=testing,
            timestamp=sig.timestamp,
            expiration=sig.expiration,
            signed_headers=sig.signed,
            header_b=base64.b64encode(sig.signature).decode("ascii")[:8],
            **extra,
        )

    if isinstance(record, SignatureError):
        return result(record.status, record.reason)
    if record.revoked:
        return result(DkimStatus.PERMERROR, "key revoked (empty p= in the key record)")
    if record.key_type != sig.key_type:
        return result(
            DkimStatus.PERMERROR, f"key type k={record.key_type} does not match a={sig.algorithm}"
        )
    if record.hashes is not None and sig.hash_name not in record.hashes:
        return result(DkimStatus.PERMERROR, f"key record h= does not allow {sig.hash_name}")
    if "*" not in record.services and "email" not in record.services:
        return result(
            DkimStatus.PERMERROR, f"key record s={':'.join(record.services)} excludes email"
        )
    if record.strict and sig.identity.rpartition("@")[2] != sig.domain:
        return result(
            DkimStatus.PERMERROR, "key record t=s requires i= to use exactly the d= domain"
        )
    # RFC 8301: verified anyway (so that the reason can say whether it would pass),
    # but never reported as pass.
    unacceptable = None
    bits = record.bits or 0
    if sig.algorithm == "rsa-sha1":
        unacceptable = "rsa-sha1 signatures are not acceptable (RFC 8301 §3.1)"
    elif record.key_type == "rsa" and bits < MIN_RSA_BITS:
        unacceptable = f"RSA key of {bits} bits is too small (RFC 8301 §3.2)"
    if sig.expiration is not None and sig.expiration < now:
        return result(DkimStatus.FAIL, f"signature expired at x={sig.expiration}")

    cache_key = (sig.body_c, sig.hash_name, sig.length)
    if body is not None:  # hashed a piece at a time (wanted_digests asked for this key)
        canonical_length = body.lengths.get(sig.body_c, 0)
        body_hashes.setdefault(cache_key, body.digests.get(cache_key, b""))
        canonical = b""
    else:
        if bodies is None:
            bodies = {}
        canonical = bodies.get(sig.body_c) or b""
        if sig.body_c not in bodies:
            canonical = bodies[sig.body_c] = canonicalize_body(parsed.body, sig.body_c)
        canonical_length = len(canonical)
    if sig.length is not None and sig.length > canonical_length:
        # RFC 6376 §3.5 l=: a count beyond the body cannot have been signed as is.
        return result(
            DkimStatus.FAIL, f"l={sig.length} is longer than the body", body_hash_ok=False
        )
    digest = body_hashes.get(cache_key)
    if digest is None:
        signed_body = canonical if sig.length is None else canonical[: sig.length]
        digest = body_hashes[cache_key] = hashlib.new(sig.hash_name, signed_body).digest()
    partial = sig.length is not None and sig.length < canonical_length
    body_ok = digest == sig.body_hash

    data = header_hash_input(parsed, sig)
    try:
        signature_ok = signature_verifies(record, sig.hash_name, sig.signature, data)
    except ValueError as exc:  # e.g. a signature longer than the modulus
        return result(DkimStatus.FAIL, f"signature unusable: {exc}", body_hash_ok=body_ok)
    if not body_ok:
        return result(
            DkimStatus.FAIL, "body hash mismatch (the body was altered)", body_hash_ok=False
        )
    if not signature_ok:
        return result(
            DkimStatus.FAIL,
            "signature mismatch (signed header fields altered, or the wrong key)",
            body_hash_ok=True,
        )
    if unacceptable is not None:
        return result(
            DkimStatus.POLICY, unacceptable + "; the signature itself verifies", body_hash_ok=True
        )
    froms = parsed.count("from")
    if froms != 1:
        return result(
            DkimStatus.POLICY,
            f"signature verifies but the message has {froms} From fields (RFC 5322 §3.6: one)",
            body_hash_ok=True,
        )
    if partial:
        # RFC 6376 §8.2: content appended after the signed length is not covered.
        return result(
            DkimStatus.PASS,
            f"signature verified, but l= covers only {sig.length} of {canonical_length} "
            "body bytes (the rest is unsigned)",
            body_hash_ok=True,
        )
    return result(DkimStatus.PASS, "signature verified", body_hash_ok=True)
