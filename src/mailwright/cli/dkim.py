"""``mailwright dkim``: generate keys, sign, verify, and check a published key."""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path
from typing import Any

import click
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from rich.markup import escape
from rich.table import Table

from ..dkim import (
    DkimSignError,
    KeyRecord,
    KeyRecordError,
    SigningKey,
    dns_record_value,
    generate_key,
    key_size_warning,
    load_signing_key,
    parse_key_record,
    sign_message,
    verify_message,
    write_key_files,
)
from ..dkim.keys import MIN_RSA_BITS, key_bits, load_private_key, public_keys_match
from ..dkim.message import split_message
from ..dkim.tags import TagSyntaxError, parse_tag_list
from ..dns import MemoryResolver, Resolver
from ..errors import UsageError, UserError
from .context import (
    app,
    console,
    emit_json,
    err_console,
    require_domain,
    require_selector,
    run,
    styled,
)


@click.group(
    epilog="\b\nExamples:\n"
    "  mailwright dkim genkey -d example.com -s mail2026\n"
    "  mailwright dkim sign -d example.com -s mail2026 -k mail2026.private < msg.eml\n"
    "  mailwright dkim verify --json < signed.eml\n"
    "  mailwright dkim testkey -d example.com -s mail2026 -k mail2026.private"
)
def dkim() -> None:
    """DKIM keys, signing and verification (RFC 6376, Ed25519 per RFC 8463)."""


@dkim.command(
    epilog="\b\nExamples:\n"
    "  mailwright dkim genkey -d example.com -s mail2026\n"
    "  mailwright dkim genkey -d example.com -s ed2026 --algorithm ed25519 --directory keys\n"
    "  mailwright dkim genkey -d example.com -s test --testing --force"
)
@click.option("-d", "--domain", required=True, help="Signing domain (d=).")
@click.option(
    "-s",
    "--selector",
    required=True,
    help="Selector (s=): the record is SELECTOR._domainkey.DOMAIN.",
)
@click.option(
    "--algorithm", type=click.Choice(["rsa", "ed25519"]), default="rsa", show_default=True
)
@click.option(
    "--bits", type=int, default=2048, show_default=True, help="RSA key size (1024 minimum)."
)
@click.option(
    "--testing", is_flag=True, help="Publish with t=y (receivers treat failures as unsigned)."
)
@click.option(
    "--directory",
    "-D",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to write the files.",
)
@click.option("--force", is_flag=True, help="Replace existing SELECTOR.private / SELECTOR.txt.")
def genkey(
    domain: str,
    selector: str,
    algorithm: str,
    bits: int,
    testing: bool,
    directory: str,
    force: bool,
) -> None:
    """Write SELECTOR.private (PEM, mode 0600) and SELECTOR.txt (the DNS record, zone-file form)."""
    # Before any file is written: a record for a name no resolver can ask for is useless.
    require_domain(domain, "--domain")
    require_selector(selector, "--selector")
    if algorithm == "rsa" and bits < MIN_RSA_BITS:
        raise UsageError(
            f"--bits {bits} is too small", f"RFC 8301 §3.2 requires at least {MIN_RSA_BITS}"
        )
    if algorithm == "rsa" and (warning := key_size_warning(bits)):
        err_console.print(f"[bold yellow]warning:[/] {warning}", soft_wrap=True)
    try:
        key = generate_key(algorithm, bits)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    private_path, txt_path = write_key_files(directory, selector, domain, key, testing, force)
    console.print(f"wrote {private_path} (private key, mode 0600)", markup=False)
    console.print(f"wrote {txt_path} (publish this TXT record):", markup=False)
    console.print(txt_path.read_text(), markup=False, end="", soft_wrap=True)


@dkim.command(
    epilog="\b\nExamples:\n"
    "  mailwright dkim sign -d example.com -s mail2026 -k mail2026.private < msg.eml > signed.eml\n"
    "  mailwright dkim sign -d example.com -s ed2026 -k ed2026.private -c simple/simple < msg.eml"
)
@click.option("-d", "--domain", required=True, help="Signing domain (d=).")
@click.option("-s", "--selector", required=True, help="Selector (s=).")
@click.option(
    "-k",
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Private key file (PEM).",
)
@click.option(
    "--algorithm",
    type=click.Choice(["rsa-sha256", "ed25519-sha256"]),
    help="Check the key is of this type (default: whatever the key is).",
)
@click.option(
    "-c",
    "--canonicalization",
    default="relaxed/relaxed",
    show_default=True,
    help="HEADER/BODY: simple or relaxed.",
)
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    help="Sign this field (repeatable; replaces the default list).",
)
@click.option("--timestamp", type=int, help="t= value (default: now).")
def sign(
    domain: str,
    selector: str,
    key_path: str,
    algorithm: str | None,
    canonicalization: str,
    headers: tuple[str, ...],
    timestamp: int | None,
) -> None:
    """Read a message on stdin, write it with a DKIM-Signature prepended to stdout.

    The message bytes are passed through unchanged; the new field uses the
    message's line ending (LF or CRLF).
    """
    key = _signing_key(key_path, domain, selector)
    if algorithm is not None and key.algorithm != algorithm:
        raise UsageError(f"{key_path} is an {key.algorithm} key, not {algorithm}")
    header_c, _, body_c = canonicalization.partition("/")
    message = sys.stdin.buffer.read()
    try:
        field = sign_message(
            message,
            [key],
            headers=list(headers) or None,
            canonicalization=(header_c, body_c or "simple"),
            timestamp=timestamp,
        )
    except DkimSignError as exc:
        raise UserError(f"cannot sign: {exc}") from None
    first_nl = message.find(b"\n")
    if first_nl >= 0 and (first_nl == 0 or message[first_nl - 1] != 0x0D):
        field = field.replace(b"\r\n", b"\n")
    sys.stdout.buffer.write(field + message)
    sys.stdout.buffer.flush()


def _key_record_text(path: str) -> str:
    """The key record a key file stands for: a private key, a public key (PEM), or the
    record itself (``v=DKIM1; k=rsa; p=...``, as ``dkim genkey`` writes it)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"--key-file {path}: {exc.strerror}", "name a readable key file") from None
    try:
        return dns_record_value(load_private_key(data))
    except ValueError:
        pass
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        public = None
    if isinstance(public, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return dns_record_value(public)
    text = data.decode("ascii", "replace")
    # A zone-file line: the quoted character-strings joined (RFC 6376 §3.6.2.2).
    quoted = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
    record = "".join(quoted) if quoted else text.strip()
    try:
        parse_key_record(record)
    except KeyRecordError as exc:
        raise UsageError(
            f"--key-file {path}: not a DKIM key ({exc})",
            "give the private key, a public key PEM or the record 'dkim genkey' wrote",
        ) from None
    return record


def _offline_resolver(path: str, message: bytes) -> Resolver:
    """A resolver that answers every signature's key query with the key from ``path``."""
    record = _key_record_text(path)
    resolver = MemoryResolver()
    for field in split_message(message).headers:
        if field.key != "dkim-signature":
            continue
        try:
            tags = parse_tag_list(field.raw.decode("latin-1").split(":", 1)[1])
        except TagSyntaxError:
            continue  # the verifier reports it
        selector, domain = tags.get("s"), tags.get("d")
        if selector and domain:
            with contextlib.suppress(ValueError):
                resolver.add(f"{selector}._domainkey.{domain}", "TXT", record)
    return resolver


def _signing_key(path: str, domain: str, selector: str) -> SigningKey:
    if not Path(path).is_file():
        raise UsageError(f"key file {path} does not exist")
    try:
        return load_signing_key(path, domain, selector)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot use key {path}: {exc}") from None


@dkim.command(
    epilog="\b\nExamples:\n"
    "  mailwright dkim verify < signed.eml\n"
    "  mailwright --nameserver 127.0.0.1:5353 dkim verify --json < signed.eml\n"
    "  mailwright dkim verify --key-file mailwright-data/dkim/dev-rsa.private < msg.eml\n"
    "\b\nExit status: 0 when the message has at least one signature and all pass,\n"
    "1 otherwise (unsigned, or any signature not passing)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--now", type=float, metavar="UNIXTIME", help="Verify as of this time (for x=).")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    help="Verify offline against this key (private or public PEM, or the DNS record text) "
    "instead of looking up SELECTOR._domainkey.DOMAIN.",
)
def verify(as_json: bool, now: float | None, key_file: str | None) -> None:
    """Verify every DKIM-Signature of the message on stdin, one line per signature."""
    message = sys.stdin.buffer.read()
    resolver = app().resolver if key_file is None else _offline_resolver(key_file, message)
    results = run(verify_message(message, resolver, now=now))
    ok = bool(results) and all(r.ok for r in results)
    if as_json:
        emit_json(
            {
                "result": "pass" if ok else ("none" if not results else "fail"),
                "signatures": [r.to_json() for r in results],
            }
        )
    elif not results:
        console.print(f"{styled('none')}: the message has no DKIM-Signature")
    else:
        for r in results:
            bits = f" {r.key_bits} bits" if r.key_bits else ""
            console.print(
                f"{styled(str(r.status))} "
                + escape(f"d={r.domain} s={r.selector} a={r.algorithm}{bits}: {r.reason}"),
                soft_wrap=True,
            )
    raise SystemExit(0 if ok else 1)


@dkim.command(
    epilog="\b\nExamples:\n"
    "  mailwright dkim testkey -d example.com -s mail2026 -k mail2026.private\n"
    "  mailwright --nameserver 127.0.0.1:5353 dkim testkey -d example.com -s s1 \\\n"
    "      -k s1.private --json\n"
    "\b\nExit status: 0 when the record matches the key (warnings allowed), 1 otherwise."
)
@click.option("-d", "--domain", required=True, help="Signing domain.")
@click.option("-s", "--selector", required=True, help="Selector.")
@click.option(
    "-k",
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Private key file (PEM).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def testkey(domain: str, selector: str, key_path: str, as_json: bool) -> None:
    """Check that SELECTOR._domainkey.DOMAIN is published, parses and matches the private key."""
    if not Path(key_path).is_file():
        raise UsageError(f"key file {key_path} does not exist")
    try:
        private = load_private_key(Path(key_path).read_bytes())
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot read key {key_path}: {exc}") from None
    name = f"{selector}._domainkey.{domain.rstrip('.')}"
    answer = run(app().resolver.txt(name))
    checks: list[dict[str, str]] = []

    def check(what: str, status: str, detail: str) -> None:
        checks.append({"check": what, "status": status, "detail": detail})

    record: KeyRecord | None = None
    if not answer.ok:
        check(
            "record",
            "fail",
            f"no TXT record at {name} ({answer.outcome})"
            if answer.is_void
            else f"lookup of {name} failed: {answer.outcome} ({answer.error})",
        )
    else:
        dkim_records = [t for t in answer.records if "p=" in t]
        if len(answer.records) > 1:
            check(
                "record",
                "warn",
                f"{len(answer.records)} TXT records at {name}; publish exactly one",
            )
        else:
            check("record", "ok", f"TXT record found at {name}")
        text = (dkim_records or list(answer.records))[0]
        try:
            record = parse_key_record(text)
            check("syntax", "ok", "key record parses")
        except KeyRecordError as exc:
            check("syntax", "fail", str(exc))
    if record is not None:
        if record.public_key is None:
            check("match", "fail", "the key is revoked (empty p=)")
        elif public_keys_match(private, record.public_key):
            check("match", "ok", "published public key matches the private key")
        else:
            check("match", "fail", f"published public key does not match {key_path}")
        if record.public_key is not None:
            bits = key_bits(record.public_key)
            warning = key_size_warning(bits) if record.key_type == "rsa" else None
            check("size", "warn" if warning else "ok", warning or f"{record.key_type} {bits} bits")
        if record.testing:
            check(
                "testing",
                "warn",
                "t=y: receivers treat failing signatures as unsigned; drop it when done testing",
            )
    ok = all(c["status"] != "fail" for c in checks)
    data: dict[str, Any] = {
        "name": name,
        "result": "ok" if ok else "fail",
        "record": answer.records[0] if answer.ok else None,
        "key_type": record.key_type if record else None,
        "key_bits": record.bits if record else None,
        "testing": record.testing if record else False,
        "expected_record": dns_record_value(private),
        "checks": checks,
    }
    if as_json:
        emit_json(data)
    else:
        table = Table(title=escape(name), show_header=True)
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail")
        for c in checks:
            table.add_row(c["check"], styled(c["status"]), escape(c["detail"]))
        console.print(table)
        if not ok:
            console.print("publish this record:", markup=False)
            console.print(dns_record_value(private), markup=False, soft_wrap=True)
    raise SystemExit(0 if ok else 1)


def _register_rotate() -> None:
    from .dkim_rotate import rotate  # issue 17 item 12, in its own module

    dkim.add_command(rotate)


_register_rotate()
