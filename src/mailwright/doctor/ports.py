"""Ports on this host, and the hostname's SMTP service: banner, EHLO, STARTTLS, certificate.

The port checks connect to 127.0.0.1 (the checks are meant to run on the mail
host itself, like ``nmap localhost``). The TLS check talks SMTP to the
hostname's address as a sending MTA would (RFC 5321 §3.1, §4.1.1.1;
RFC 3207 STARTTLS), verifies the certificate for the hostname against the
system's CAs (or ``tls_ca_file``), and warns 14 days before it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from .context import Context
from .model import Finding, Status

MAX_REPLY_LINES = 100
_PORT_ROLES = {25: "inbound SMTP (the MX)", 465: "submission over TLS", 587: "submission"}


def port_check(port: int) -> Callable[[Context], Awaitable[Finding]]:
    async def check(ctx: Context) -> Finding:
        host = ctx.options.local_host
        where = f"{host}:{port}"
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), ctx.options.connect_timeout
            )
        except TimeoutError:
            return Finding.error(f"{where}: no answer within {ctx.options.connect_timeout:g} s")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if port in ctx.options.configured_ports:
                return Finding.fail(
                    f"{where}: {reason}, but the config has a listener on {port}",
                    "start the server: mailwright serve",
                )
            if port == 25 and await ctx.mx_points_here():
                return Finding.fail(
                    f"{where}: {reason}, but the domain's MX points at this host: "
                    "mail to it is not received",
                    "add an inbound listener on port 25 and run mailwright serve "
                    "(and open port 25 in the firewall)",
                )
            if port == 25:
                return Finding.warn(
                    f"{where}: {reason}: nothing here receives mail for the MX",
                    "add an inbound listener on port 25 and run mailwright serve "
                    "(or run this check on the mail host)",
                )
            return Finding.ok(f"{where}: closed ({_PORT_ROLES[port]} not configured)")
        writer.close()
        await _closed(writer)
        return Finding.ok(f"{where}: listening ({_PORT_ROLES.get(port, 'SMTP')})")

    return check


async def _closed(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()


async def _reply(reader: asyncio.StreamReader) -> tuple[int, list[str]]:
    """One SMTP reply (RFC 5321 §4.2): code and text lines; 0 for garbage."""
    lines: list[str] = []
    for _ in range(MAX_REPLY_LINES):
        try:
            raw = await reader.readline()
        except ValueError:  # a line over the stream limit (64 KiB): not SMTP
            return 0, lines
        if not raw:
            break
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            break
    # RFC 5321 §4.2: three ASCII digits; str.isdigit() alone would also take "²" (int()
    # then raises) or Arabic-Indic digits (int() reads them as a real code).
    code = lines[-1][:3] if lines else ""
    if len(code) != 3 or not code.isascii() or not code.isdigit():
        return 0, lines
    return int(code), [line[4:] for line in lines]


def _tls_context(ctx: Context) -> ssl.SSLContext:
    cafile = str(ctx.options.tls_ca_file) if ctx.options.tls_ca_file else None
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def describe_certificate(der: bytes, hostname: str, now: datetime, min_days: int) -> Finding:
    """Subject, names and expiry of the leaf; warn when it expires within ``min_days``."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    common = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    expires = cert.not_valid_after_utc
    days = (expires - now).days
    text = (
        f"certificate CN={','.join(common) or '-'} SAN={','.join(names) or '-'}, "
        f"expires {expires:%Y-%m-%d} ({days} days)"
    )
    if expires <= now:
        return Finding.fail(f"{text}: expired", f"renew the certificate for {hostname}")
    if days < min_days:
        return Finding.warn(
            f"{text}: expires within {min_days} days",
            f"renew the certificate for {hostname} (is certbot's timer running?)",
        )
    return Finding.ok(text)


async def _smtp_tls(ctx: Context, hostname: str, address: str) -> Finding:
    port = ctx.options.smtp_port
    where = f"{hostname} ({address} port {port})"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port), ctx.options.connect_timeout
        )
    except TimeoutError:
        return Finding.error(
            f"could not connect to {where}: no answer within {ctx.options.connect_timeout:g} s",
            "check that the server runs and the firewall allows port 25",
        )
    except OSError as exc:
        return Finding.error(
            f"could not connect to {where}: {exc.strerror or exc}",
            "start the server with an inbound listener on port 25, or check the firewall",
        )
    try:
        return await _conversation(ctx, hostname, where, reader, writer)
    except (OSError, EOFError) as exc:
        return Finding.error(
            f"{where} dropped the connection: {exc}", "check the server's log for the reason"
        )
    finally:
        writer.close()
        await _closed(writer)


async def _conversation(
    ctx: Context,
    hostname: str,
    where: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> Finding:
    code, banner = await _reply(reader)
    lines = [f"banner: {code} {banner[0] if banner else ''}".rstrip()]
    if code != 220:
        return Finding.fail("\n".join(lines), f"{where} does not greet with 220 (RFC 5321 §4.2)")
    client = ctx.options.hostname or "localhost"
    writer.write(f"EHLO {client}\r\n".encode())
    await writer.drain()
    code, ehlo = await _reply(reader)
    if code != 250 or not ehlo:
        return Finding.fail("\n".join([*lines, f"EHLO: {code}"]), "the server must accept EHLO")
    ehlo_name = ehlo[0].split()[0].lower().rstrip(".") if ehlo[0].split() else ""
    extensions = {e.split()[0].upper() for e in ehlo[1:] if e.split()}
    lines.append(f"EHLO name: {ehlo_name}")
    if "STARTTLS" not in extensions:
        lines.append("STARTTLS: not offered")
        return Finding.fail(
            "\n".join(lines),
            'set [tls] certificate/private_key and tls = "starttls" on the port 25 listener',
        )
    writer.write(b"STARTTLS\r\n")
    await writer.drain()
    code, text = await _reply(reader)
    if code != 220:
        lines.append(f"STARTTLS: {code} {' '.join(text)}")
        return Finding.fail(
            "\n".join(lines), "STARTTLS is offered but refused: check the server log"
        )
    try:
        await writer.start_tls(_tls_context(ctx), server_hostname=hostname)
    except ssl.SSLCertVerificationError as exc:
        lines.append(f"certificate: {exc.verify_message or exc.reason}")
        return Finding.fail(
            "\n".join(lines),
            f"install a certificate for {hostname} from a public CA (e.g. certbot certonly "
            f"-d {hostname}), chain included",
        )
    except (ssl.SSLError, OSError) as exc:
        lines.append(f"TLS handshake failed: {exc}")
        return Finding.fail("\n".join(lines), "check [tls] certificate and private_key")
    ssl_object: Any = writer.get_extra_info("ssl_object")
    lines.append(f"STARTTLS: {ssl_object.version()} {ssl_object.cipher()[0]}")
    der = ssl_object.getpeercert(binary_form=True)
    cert = describe_certificate(der, hostname, datetime.now(UTC), ctx.options.cert_min_days)
    lines.append(cert.observed)
    writer.write(b"QUIT\r\n")
    await writer.drain()
    if cert.status is not Status.OK:
        return Finding(cert.status, "\n".join(lines), cert.fix)
    if ehlo_name != hostname:
        return Finding.warn(
            "\n".join(lines),
            f'the server calls itself {ehlo_name}: set hostname = "{hostname}" in its config',
        )
    return Finding.ok("\n".join(lines))


async def check_tls(ctx: Context) -> Finding:
    """Talk SMTP to the hostname: 220 banner, EHLO, STARTTLS, a valid certificate (once
    per run: the bulk-sender row reads it too)."""
    return await ctx.once("tls", lambda: _check_tls(ctx))


async def _check_tls(ctx: Context) -> Finding:
    hostname = await ctx.helo_name()
    if hostname is None:
        return Finding.error("no hostname known", "pass --config or publish an MX")
    address = ctx.options.smtp_address
    if address is None:
        a, aaaa = await ctx.resolver.addresses(hostname)
        found = [str(r) for r in (*a.records, *aaaa.records)]
        if not found:
            return Finding.error(f"{hostname} has no address to connect to (see host-a)")
        address = found[0]
    try:
        return await asyncio.wait_for(
            _smtp_tls(ctx, hostname, address), ctx.options.connect_timeout * 3
        )
    except TimeoutError:
        return Finding.error(
            f"{hostname} ({address}): the SMTP conversation stalled",
            "check the server: it accepted the connection but did not answer in time",
        )
