"""The doctor against real DNS: a complete domain served by NSD, then one fault at a time.

The world: ``example.test`` with its MX host ``mail.example.test`` at 127.0.0.25
(a loopback address, so the reverse zone is ``127.in-addr.arpa`` and nothing
leaves the machine), DKIM keys under ``mail`` (RSA-2048) and ``mail-ed``
(Ed25519), a DNSBL ``dnsbl.test`` and a DBL ``dbl.test`` we serve ourselves,
and a small SMTP responder with STARTTLS and a certificate from a test CA on
127.0.0.25, so the TLS check talks to a real TLS stack.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailwright.dkim import dns_record_value, generate_key, private_key_pem
from mailwright.doctor import DoctorOptions, Report, SelectorSpec, Status, run_checks
from mailwright.setup.records import split_zone, txt_rdata
from mailwright.testing.nsd import NsdServer
from mailwright.testing.tls import CertificateFiles, make_certificate

pytestmark = pytest.mark.integration

DOMAIN = "example.test"
HOST = "mail.example.test"
IP = "127.0.0.25"
PTR_OWNER = "25.0.0"  # in 127.in-addr.arpa
RSA = generate_key("rsa", 2048)
ED = generate_key("ed25519")
OTHER = generate_key("rsa", 2048)
PROJECT = Path(__file__).resolve().parents[2]

World = dict[str, list[str]]
"""zone origin → record lines (relative names)."""


def healthy_world() -> World:
    return {
        "test": [],
        DOMAIN: [
            "@ MX 10 mail",
            f"mail A {IP}",
            f'@ TXT "v=spf1 ip4:{IP} -all"',
            f"mail._domainkey TXT {txt_rdata(dns_record_value(RSA))}",
            f"mail-ed._domainkey TXT {txt_rdata(dns_record_value(ED))}",
            f'_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc-reports@{DOMAIN}"',
        ],
        "127.in-addr.arpa": [f"{PTR_OWNER} PTR {HOST}."],
        "dnsbl.test": [],
        "dbl.test": [],
        "reports.test": ["@ MX 10 mail"],
    }


def publish(dns: NsdServer, world: World) -> None:
    for origin, lines in world.items():
        dns.set_zone(origin, "\n".join(lines) + "\n")


def replace(world: World, origin: str, prefix: str, *new: str) -> World:
    """A copy of ``world`` with the lines of ``origin`` starting with ``prefix`` replaced."""
    changed = {k: list(v) for k, v in world.items()}
    changed[origin] = [line for line in changed[origin] if not line.startswith(prefix)]
    changed[origin].extend(new)
    return changed


# -- a tiny SMTP responder with STARTTLS ---------------------------------------------------


def make_tls(tmp: Path, hostname: str = HOST) -> CertificateFiles:
    """A test CA and a certificate for ``hostname``, valid well past the expiry warning."""
    return make_certificate(tmp, hostname, days=90, ip=None)


async def _session(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: ssl.SSLContext
) -> None:
    writer.write(f"220 {HOST} ESMTP test responder\r\n".encode())
    secure = False
    try:
        while line := await reader.readline():
            verb = line.decode().strip().split(" ")[0].upper()
            if verb == "EHLO":
                ext = "250 PIPELINING" if secure else "250-PIPELINING\r\n250 STARTTLS"
                writer.write(f"250-{HOST} hello\r\n{ext}\r\n".encode())
            elif verb == "STARTTLS" and not secure:
                writer.write(b"220 go ahead\r\n")
                await writer.drain()
                await writer.start_tls(tls)
                secure = True
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"502 not implemented\r\n")
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """(port, CA file) of a STARTTLS responder on 127.0.0.25."""
    tls = make_tls(tmp_path)
    server = await asyncio.start_server(
        lambda r, w: _session(r, w, tls.server_context()), IP, 0, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, tls.ca


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, Path]:
    rsa_file, ed_file = tmp_path / "mail.pem", tmp_path / "mail-ed.pem"
    rsa_file.write_bytes(private_key_pem(RSA))
    ed_file.write_bytes(private_key_pem(ED))
    return rsa_file, ed_file


@pytest.fixture
def doctor_options(key_files: tuple[Path, Path], smtp: tuple[int, Path]) -> DoctorOptions:
    port, ca_file = smtp
    return DoctorOptions(
        hostname=HOST,
        ips=(IP,),
        expected_ipv4=(IP,),
        selectors=(
            SelectorSpec("mail", key_files[0], DOMAIN),
            SelectorSpec("mail-ed", key_files[1], DOMAIN),
        ),
        dnsbls=("dnsbl.test",),
        dbls=("dbl.test",),
        local_host=IP,
        local_ports=(port,),
        configured_ports=frozenset({port}),
        smtp_port=port,
        tls_ca_file=ca_file,
        connect_timeout=2.0,
    )


async def check(dns: NsdServer, options: DoctorOptions, domain: str = DOMAIN) -> Report:
    return await run_checks(domain, options, dns.resolver(timeout=2.0))


def not_ok(report: Report) -> list[tuple[str, str, str]]:
    return [(c.id, str(c.status), c.observed) for c in report.checks if c.status is not Status.OK]


async def test_complete_domain_is_all_ok(
    dns_world: NsdServer, doctor_options: DoctorOptions
) -> None:
    publish(dns_world, healthy_world())
    report = await check(dns_world, doctor_options)
    assert not_ok(report) == []
    assert len(report.checks) >= 33
    tls = report.get("tls")
    assert "STARTTLS: TLSv1." in tls.observed and f"SAN={HOST}" in tls.observed
    # Each distinct query is sent once, however many checks need it (31 checks, ~12 queries);
    # the wall time against one-at-a-time lookups is measured in bench/doctor.
    assert report.dns_queries <= 15
    print(
        f"\nworld check: {report.elapsed * 1000:.1f} ms wall, {report.dns_queries} queries, "
        f"{report.dns_time * 1000:.1f} ms summed",
        file=sys.stderr,
    )


Fault = Callable[[World], World]
_ELEVEN = " ".join(f"include:s{i}.{DOMAIN}" for i in range(11))

FAULTS: list[tuple[str, Fault, str, Status, str]] = [
    (
        "missing PTR",
        lambda w: replace(w, "127.in-addr.arpa", PTR_OWNER),
        "ptr",
        Status.FAIL,
        f"ask your IP provider to set the PTR of {IP} to {HOST}",
    ),
    (
        "PTR not forward-confirmed",
        lambda w: replace(
            w, "127.in-addr.arpa", PTR_OWNER, f"{PTR_OWNER} PTR host.{DOMAIN}."
        ),  # host.example.test has no A record
        "fcrdns",
        Status.FAIL,
        f"publish: host.{DOMAIN}. IN A {IP}",
    ),
    (
        "PTR is not the HELO name",
        lambda w: replace(
            replace(w, "127.in-addr.arpa", PTR_OWNER, f"{PTR_OWNER} PTR smtp.{DOMAIN}."),
            DOMAIN,
            "smtp ",
            f"smtp A {IP}",
        ),
        "ptr-helo",
        Status.WARN,
        f"set the PTR of {IP} to {HOST}",
    ),
    (
        "MX to CNAME",
        lambda w: replace(w, DOMAIN, "@ MX", "@ MX 10 mx", "mx CNAME mail"),
        "mx-cname",
        Status.FAIL,
        f"point the MX at {HOST}",
    ),
    ("no MX", lambda w: replace(w, DOMAIN, "@ MX"), "mx", Status.FAIL, f"IN MX 10 {HOST}."),
    (
        "two SPF records",
        lambda w: replace(
            w, DOMAIN, "@ TXT", f'@ TXT "v=spf1 ip4:{IP} -all"', '@ TXT "v=spf1 -all"'
        ),
        "spf-record",
        Status.FAIL,
        "merge them into one",
    ),
    (
        "SPF over 10 lookups",
        lambda w: replace(
            w,
            DOMAIN,
            "@ TXT",
            "@ TXT " + txt_rdata(f"v=spf1 {_ELEVEN} ip4:{IP} -all"),
            *(f's{i} TXT "v=spf1 -all"' for i in range(11)),
        ),
        "spf-lookups",
        Status.FAIL,
        "receivers stop at 10",
    ),
    (
        "SPF not authorizing the IP",
        lambda w: replace(w, DOMAIN, "@ TXT", '@ TXT "v=spf1 ip4:192.0.2.1 -all"'),
        "spf-authorizes",
        Status.FAIL,
        f"add ip4:{IP} to the SPF record",
    ),
    (
        "+all",
        lambda w: replace(w, DOMAIN, "@ TXT", f'@ TXT "v=spf1 ip4:{IP} +all"'),
        "spf-all",
        Status.FAIL,
        "-all",
    ),
    (
        "DKIM record missing",
        lambda w: replace(w, DOMAIN, "mail._domainkey"),
        "dkim-record:mail",
        Status.FAIL,
        f"publish the TXT record 'mailwright records' prints for mail._domainkey.{DOMAIN}",
    ),
    (
        "DKIM key mismatch",
        lambda w: replace(
            w,
            DOMAIN,
            "mail._domainkey",
            f"mail._domainkey TXT {txt_rdata(dns_record_value(OTHER))}",
        ),
        "dkim-key-match:mail",
        Status.FAIL,
        "(the full value: mailwright records)",
    ),
    (
        "DKIM t=y",
        lambda w: replace(
            w,
            DOMAIN,
            "mail-ed._domainkey",
            f"mail-ed._domainkey TXT {txt_rdata(dns_record_value(ED, testing=True))}",
        ),
        "dkim-testing:mail-ed",
        Status.WARN,
        "remove t=y",
    ),
    (
        "DMARC missing",
        lambda w: replace(w, DOMAIN, "_dmarc"),
        "dmarc-record",
        Status.FAIL,
        "p=none",
    ),
    (
        "p=none",
        lambda w: replace(
            w, DOMAIN, "_dmarc", f'_dmarc TXT "v=DMARC1; p=none; rua=mailto:d@{DOMAIN}"'
        ),
        "dmarc-policy",
        Status.WARN,
        "p=quarantine",
    ),
    (
        "external rua unauthorized",
        lambda w: replace(
            w, DOMAIN, "_dmarc", '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:agg@reports.test"'
        ),
        "dmarc-rua",
        Status.FAIL,
        f"{DOMAIN}._report._dmarc.reports.test",
    ),
    (
        "IP listed on the test DNSBL",
        lambda w: replace(
            w, "dnsbl.test", "25.0.0.127", "25.0.0.127 A 127.0.0.2", '25.0.0.127 TXT "listed"'
        ),
        "dnsbl:dnsbl.test",
        Status.FAIL,
        "request removal",
    ),
    (
        "refused-query code",
        lambda w: replace(w, "dnsbl.test", "25.0.0.127", "25.0.0.127 A 127.255.255.254"),
        "dnsbl:dnsbl.test",
        Status.ERROR,
        "not a public one",
    ),
]


@pytest.mark.parametrize(
    ("fault", "check_id", "status", "fix"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS]
)
async def test_seeded_fault_is_caught(
    dns_world: NsdServer,
    doctor_options: DoctorOptions,
    fault: Fault,
    check_id: str,
    status: Status,
    fix: str,
) -> None:
    publish(dns_world, fault(healthy_world()))
    report = await check(dns_world, doctor_options)
    row = report.get(check_id)
    assert row.status is status, row
    assert fix in row.fix, row
    assert report.failed() is (status is Status.FAIL) or check_id != "dnsbl:dnsbl.test"


async def test_unknown_domain(dns_world: NsdServer, doctor_options: DoctorOptions) -> None:
    publish(dns_world, healthy_world())
    report = await check(dns_world, doctor_options, "nowhere.test")
    assert report.get("mx").observed == "nowhere.test does not exist (NXDOMAIN)"
    assert report.get("mx").status is Status.FAIL
    assert report.get("dmarc-record").status is Status.FAIL


async def test_resolver_timeout_is_error_rows(doctor_options: DoctorOptions) -> None:
    from mailwright.dns import DnspythonResolver

    silent = DnspythonResolver("127.0.0.1:9", timeout=0.5)  # nothing answers on port 9
    report = await run_checks(
        DOMAIN, dataclasses.replace(doctor_options, skip=frozenset({"ports"})), silent
    )
    statuses = {c.id: c.status for c in report.checks}
    assert statuses["mx"] is Status.ERROR and statuses["spf-record"] is Status.ERROR
    assert Status.FAIL not in {statuses[i] for i in ("mx", "ptr", "spf-record", "dnsbl:dnsbl.test")}
    assert report.elapsed < 5


async def test_certificate_for_another_name_fails(
    dns_world: NsdServer, doctor_options: DoctorOptions, tmp_path: Path
) -> None:
    publish(dns_world, healthy_world())
    (tmp_path / "wrong").mkdir()
    wrong = make_tls(tmp_path / "wrong", "other.test")
    server = await asyncio.start_server(lambda r, w: _session(r, w, wrong.server_context()), IP, 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        options = dataclasses.replace(doctor_options, smtp_port=port, tls_ca_file=wrong.ca)
        report = await check(dns_world, options)
    row = report.get("tls")
    assert row.status is Status.FAIL
    assert "certificate: Hostname mismatch" in row.observed
    assert f"certificate for {HOST}" in row.fix


# -- the round trip: init → publish its zone output → check ------------------------------


async def _cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "uv", "run", "--quiet", "--project", str(PROJECT), "mailwright", *args,
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "250"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _relative(lines: list[str], origin: str) -> list[str]:
    """Zone lines with absolute owners → lines for ``set_zone(origin, ...)``."""
    out = []
    for line in lines:
        owner, rest = line.split(" ", 1)
        name = owner.rstrip(".")
        assert name == origin or name.endswith("." + origin), line
        out.append(f"{name[: -len(origin)].rstrip('.') or '@'} {rest}")
    return out


async def test_init_publish_check_round_trip(
    dns_world: NsdServer, smtp: tuple[int, Path], tmp_path: Path
) -> None:
    port, ca_file = smtp
    code, out, err = await _cli(
        "init", DOMAIN, "--ip", IP, "--hostname", HOST, "--dir", str(tmp_path), cwd=tmp_path
    )
    assert code == 0, err
    config = tmp_path / "mailwright.toml"
    # Point the blocklist checks at the lists this world serves (never the public ones).
    text = config.read_text()
    text = text.replace('dnsbls = ["zen.spamhaus.org"', 'dnsbls = ["dnsbl.test"]\n# was ["zen')
    text = text.replace('dbls = ["dbl.spamhaus.org"', 'dbls = ["dbl.test"]\n# was ["dbl')
    config.write_text(text)
    code, zone, err = await _cli(
        "--config", str(config), "records", "--format", "zone", cwd=tmp_path
    )
    assert code == 0, err
    forward, reverse = split_zone(zone.splitlines())
    world = healthy_world()
    world[DOMAIN] = _relative(forward, DOMAIN)
    world["127.in-addr.arpa"] = _relative(reverse, "127.in-addr.arpa")
    publish(dns_world, world)
    code, out, err = await _cli(
        "--nameserver", dns_world.nameserver, "--config", str(config),
        "check", DOMAIN, "--json", "--smtp-port", str(port), "--ca-file", str(ca_file),
        cwd=tmp_path,
    )  # fmt: skip
    report = json.loads(out)
    rows = {c["id"]: c for c in report["checks"]}
    bad = {i: (c["status"], c["observed"]) for i, c in rows.items() if c["status"] != "ok"}
    # The MX is this host: port 25 closed on 127.0.0.1 fails (issue 17 item 8).
    port25_failed = rows["port:25"]["status"] == "fail"
    assert code == (1 if port25_failed else 0), out + err
    # init starts DMARC at p=none on purpose: that row warns with the rollout advice.
    assert bad.pop("dmarc-policy")[0] == "warn"
    assert "p=quarantine" in rows["dmarc-policy"]["fix"]
    # Whether something listens on 127.0.0.1:25 depends on the machine, not on the records.
    assert set(bad) <= {"port:25"}, bad
    for wanted in ("dkim-key-match:mail", "dkim-key-match:mail-ed", "dmarc-alignment", "tls"):
        assert rows[wanted]["status"] == "ok"
    assert report["summary"]["fail"] == int(port25_failed) and report["summary"]["error"] == 0


async def test_init_with_relay_round_trip(dns_world: NsdServer, tmp_path: Path) -> None:
    """With a known relay, SPF is the provider's include and DKIM carries DMARC alignment."""
    code, _out, err = await _cli(
        "init", DOMAIN, "--ip", IP, "--relay", "smtp://app@smtp.mailgun.org:587",
        "--dir", str(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, err
    config = tmp_path / "mailwright.toml"
    text = config.read_text()
    text = text.replace('dnsbls = ["zen.spamhaus.org"', 'dnsbls = ["dnsbl.test"]\n# was ["zen')
    text = text.replace('dbls = ["dbl.spamhaus.org"', 'dbls = ["dbl.test"]\n# was ["dbl')
    config.write_text(text)
    code, zone, err = await _cli(
        "--config", str(config), "records", "--format", "zone", cwd=tmp_path
    )
    assert code == 0, err
    assert f'{DOMAIN}. 3600 IN TXT "v=spf1 include:mailgun.org -all"' in zone
    forward, reverse = split_zone(zone.splitlines())
    world = healthy_world()
    world[DOMAIN] = _relative(forward, DOMAIN)
    world["127.in-addr.arpa"] = _relative(reverse, "127.in-addr.arpa")
    # The provider's published ranges, served by the local test server only.
    world["mailgun.org"] = ['@ TXT "v=spf1 ip4:198.51.100.0/24 -all"']
    publish(dns_world, world)
    code, out, err = await _cli(
        "--nameserver", dns_world.nameserver, "--config", str(config),
        "check", DOMAIN, "--json", "--skip", "ports", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, out + err
    rows = {c["id"]: c for c in json.loads(out)["checks"]}
    assert rows["spf-authorizes"]["status"] == "ok"
    assert "include:mailgun.org authorizes Mailgun" in rows["spf-authorizes"]["observed"]
    assert rows["ptr"]["observed"].startswith("mail leaves through the relay")
    assert rows["dmarc-alignment"]["status"] == "ok"
    assert "aligned by dkim:example.test" in rows["dmarc-alignment"]["observed"]
    bad = {i: c["status"] for i, c in rows.items() if c["status"] != "ok"}
    assert bad == {"dmarc-policy": "warn"}, bad


async def test_cli_exit_codes_and_table(
    dns_world: NsdServer, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text(
        f'hostname = "{HOST}"\ndomains = ["{DOMAIN}"]\nipv4 = ["{IP}"]\n'
        f'[[dkim]]\ndomain = "{DOMAIN}"\nselector = "mail"\nprivate_key = "{key_files[0]}"\n'
        '[check]\ndnsbls = ["dnsbl.test"]\ndbls = ["dbl.test"]\n'
    )
    base = ("--nameserver", dns_world.nameserver, "--config", str(config), "check", DOMAIN)
    publish(dns_world, replace(healthy_world(), "127.in-addr.arpa", PTR_OWNER))
    code, out, err = await _cli(*base, "--skip", "ports", cwd=tmp_path)
    assert code == 1, out + err
    assert "mailwright check example.test" in out
    assert "no PTR for 127.0.0.25 (nxdomain)" in out
    # the summary line: ptr and bulk-fcrdns fail, ptr's dependents cannot check
    assert "fail 2, error 3" in out
    publish(dns_world, healthy_world())
    code, out, err = await _cli(*base, "--skip", "ports", "--json", cwd=tmp_path)
    assert code == 0, out + err
    assert json.loads(out)["summary"]["fail"] == 0
    # A warning (p=none) passes, except with --strict.
    publish(
        dns_world,
        replace(
            healthy_world(),
            DOMAIN,
            "_dmarc",
            '_dmarc TXT "v=DMARC1; p=none; rua=mailto:d@example.test"',
        ),
    )
    code, out, _ = await _cli(*base, "--skip", "ports", "--json", cwd=tmp_path)
    assert code == 0 and json.loads(out)["summary"]["warn"] == 1
    code, _, _ = await _cli(*base, "--skip", "ports", "--json", "--strict", cwd=tmp_path)
    assert code == 1


# -- issue 17 items 7 and 8: the bulk-sender rows and check --message ------------------------

RSA_1024 = generate_key("rsa", 1024)

BULK_FAULTS: list[tuple[str, Fault, str, Status, str]] = [
    (
        "SPF not authorizing the IP",
        lambda w: replace(w, DOMAIN, "@ TXT", '@ TXT "v=spf1 ip4:192.0.2.1 -all"'),
        "bulk-spf-dkim",
        Status.FAIL,
        "require SPF and DKIM both",
    ),
    (
        "DKIM record missing",
        lambda w: replace(w, DOMAIN, "mail._domainkey"),
        "bulk-spf-dkim",
        Status.FAIL,
        "require SPF and DKIM both",
    ),
    (
        "DMARC missing",
        lambda w: replace(w, DOMAIN, "_dmarc"),
        "bulk-dmarc",
        Status.FAIL,
        "require one",
    ),
    (
        "PTR not forward-confirmed",
        lambda w: replace(w, "127.in-addr.arpa", PTR_OWNER, f"{PTR_OWNER} PTR host.{DOMAIN}."),
        "bulk-fcrdns",
        Status.FAIL,
        f"publish: host.{DOMAIN}. IN A {IP}",
    ),
    (
        "no PTR",
        lambda w: replace(w, "127.in-addr.arpa", PTR_OWNER),
        "bulk-fcrdns",
        Status.FAIL,
        "set the PTR",
    ),
    (
        "RSA-1024 key",
        lambda w: replace(
            w,
            DOMAIN,
            "mail._domainkey",
            f"mail._domainkey TXT {txt_rdata(dns_record_value(RSA_1024))}",
        ),
        "bulk-dkim-key",
        Status.WARN,
        "2048-bit key",
    ),
]


@pytest.mark.parametrize(
    ("fault", "check_id", "status", "fix"),
    [f[1:] for f in BULK_FAULTS],
    ids=[f[0] for f in BULK_FAULTS],
)
async def test_bulk_sender_fault_is_caught(
    dns_world: NsdServer,
    doctor_options: DoctorOptions,
    fault: Fault,
    check_id: str,
    status: Status,
    fix: str,
) -> None:
    publish(dns_world, fault(healthy_world()))
    report = await check(dns_world, doctor_options)
    row = report.get(check_id)
    assert row.status is status, row
    assert fix in row.fix, row


async def test_bulk_rows_all_ok_on_the_healthy_world(
    dns_world: NsdServer, doctor_options: DoctorOptions
) -> None:
    publish(dns_world, healthy_world())
    report = await check(dns_world, doctor_options)
    bulk = {c.id: c.status for c in report.checks if c.group == "bulk"}
    assert bulk == dict.fromkeys(
        ("bulk-spf-dkim", "bulk-dmarc", "bulk-fcrdns", "bulk-dkim-key", "bulk-tls"), Status.OK
    )


async def test_mx_row_follows_a_cname_in_real_dns(
    dns_world: NsdServer, doctor_options: DoctorOptions
) -> None:
    publish(dns_world, replace(healthy_world(), DOMAIN, "@ MX", "@ MX 10 mx", "mx CNAME mail"))
    report = await check(dns_world, doctor_options)
    assert report.get("mx").status is Status.OK
    assert f"alias of {HOST}" in report.get("mx").observed
    assert report.get("mx-cname").status is Status.FAIL


def message(
    *,
    sender: str = f"news@{DOMAIN}",
    extra: str = "List-Unsubscribe: <https://example.test/u?id=1>, <mailto:u@example.test>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nList-Id: <news.example.test>\r\n",
    date: bool = True,
    body: str = "Hello,\r\n\r\nthe November news.\r\n",
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    head = (
        f"From: Example News <{sender}>\r\nTo: reader@example.net\r\nSubject: November news\r\n"
        + (
            "Date: Tue, 24 Nov 2026 06:25:01 +0000\r\nMessage-ID: <n1@example.test>\r\n"
            if date
            else ""
        )
        + f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n"
        + extra
    )
    return (head + "\r\n" + body).encode()


def signed(data: bytes, *, after: bytes = b"") -> bytes:
    """``data`` signed with the world's RSA key, then ``after`` prepended (a later change)."""
    from mailwright.dkim import SigningKey, sign_message

    key = SigningKey.from_key(DOMAIN, "mail", RSA)
    return after + sign_message(data, [key]) + data


MESSAGE_FAULTS: list[tuple[str, bytes, str, Status, str]] = [
    (
        "two From fields",
        message(extra=f"From: other@{DOMAIN}\r\n"),
        "msg-format",
        Status.FAIL,
        "RFC 5322 §3.6",
    ),
    ("line over 998", message(body="x" * 1200 + "\r\n"), "msg-format", Status.FAIL, "§2.1.1"),
    (
        "no Date, no Message-ID",
        message(date=False),
        "msg-date-message-id",
        Status.WARN,
        "missing: Date, Message-ID",
    ),
    (
        "body changed after signing",
        signed(message())[:-5] + b"CHANGED\r\n",
        "msg-dkim",
        Status.FAIL,
        "body hash",
    ),
    (
        "From another domain",
        message(sender="news@elsewhere.test"),
        "msg-alignment",
        Status.FAIL,
        "DMARC for elsewhere.test",
    ),
    (
        "bulk without One-Click",
        message(
            extra="List-Id: <news.example.test>\r\nList-Unsubscribe: <https://example.test/u>\r\n"
        ),
        "msg-unsubscribe",
        Status.FAIL,
        "List-Unsubscribe=One-Click",
    ),
    (
        "bulk with a mailto-only unsubscribe",
        message(
            extra="List-Unsubscribe: <mailto:u@example.test>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        ),
        "msg-unsubscribe",
        Status.FAIL,
        "<https://...>",
    ),
    (
        "unsubscribe added after signing",
        signed(
            message(extra="List-Id: <news.example.test>\r\n"),
            after=b"List-Unsubscribe: <https://example.test/u>\r\n"
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        ),
        "msg-unsubscribe",
        Status.FAIL,
        "RFC 8058 §4",
    ),
    ("26 MB", message(body=("y" * 76 + "\r\n") * 350_000), "msg-size", Status.FAIL, "25 MB"),
    (
        "HTML only with a shortener",
        message(
            content_type="text/html", body='<p>See <a href="https://bit.ly/x1">this</a></p>\r\n'
        ),
        "msg-content",
        Status.WARN,
        "HTML without a text/plain alternative\nURL shorteners: https://bit.ly/",
    ),
]


async def test_the_healthy_message_is_all_ok(
    dns_world: NsdServer, doctor_options: DoctorOptions
) -> None:
    publish(dns_world, healthy_world())
    report = await check(dns_world, dataclasses.replace(doctor_options, message=message()))
    rows = {c.id: c for c in report.checks if c.group == "message"}
    assert len(rows) == 7
    assert {i: (c.status, c.observed) for i, c in rows.items() if c.status is not Status.OK} == {}
    assert "signed here as the server would" in rows["msg-dkim"].observed  # it was unsigned
    assert "aligned by" in rows["msg-alignment"].observed


@pytest.mark.parametrize(
    ("data", "check_id", "status", "expected"),
    [f[1:] for f in MESSAGE_FAULTS],
    ids=[f[0] for f in MESSAGE_FAULTS],
)
async def test_message_fault_is_caught(
    dns_world: NsdServer,
    doctor_options: DoctorOptions,
    data: bytes,
    check_id: str,
    status: Status,
    expected: str,
) -> None:
    publish(dns_world, healthy_world())
    report = await check(dns_world, dataclasses.replace(doctor_options, message=data))
    row = report.get(check_id)
    assert row.status is status, row
    assert expected in row.observed + "\n" + row.fix, row


async def test_cli_check_message(
    dns_world: NsdServer, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text(
        f'hostname = "{HOST}"\ndomains = ["{DOMAIN}"]\nipv4 = ["{IP}"]\n'
        f'[[dkim]]\ndomain = "{DOMAIN}"\nselector = "mail"\nprivate_key = "{key_files[0]}"\n'
        '[check]\ndnsbls = ["dnsbl.test"]\ndbls = ["dbl.test"]\n'
    )
    publish(dns_world, healthy_world())
    eml = tmp_path / "news.eml"
    eml.write_bytes(message(extra="List-Id: <news.example.test>\r\n"))
    base = ("--nameserver", dns_world.nameserver, "--config", str(config), "check", DOMAIN)
    code, out, err = await _cli(*base, "--skip", "ports", "--json", "--message", str(eml),
                                cwd=tmp_path)  # fmt: skip
    assert code == 1, out + err
    rows = {c["id"]: c for c in json.loads(out)["checks"]}
    assert rows["msg-unsubscribe"]["status"] == "fail"
    assert rows["msg-dkim"]["status"] == "ok"
    code, _, err = await _cli(*base, "--message", str(tmp_path / "missing.eml"), cwd=tmp_path)
    assert code == 2 and "--message" in err


# -- issue 17 item 9: check --state (cron) and --notify ---------------------------------------


async def _sink(received: list[bytes]) -> asyncio.Server:
    """A minimal SMTP receiver on 127.0.0.1 that keeps each message's DATA."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go\r\n")
                await writer.drain()
                data = b""
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    data += chunk
                received.append(data)
                writer.write(b"250 2.0.0 Ok: queued as SINK1\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(session, "127.0.0.1", 0)


async def test_cli_state_prints_only_changes_and_notifies(
    dns_world: NsdServer, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text(
        f'hostname = "{HOST}"\ndomains = ["{DOMAIN}"]\nipv4 = ["{IP}"]\n'
        f'[[dkim]]\ndomain = "{DOMAIN}"\nselector = "mail"\nprivate_key = "{key_files[0]}"\n'
        '[check]\ndnsbls = ["dnsbl.test"]\ndbls = ["dbl.test"]\n'
    )
    state = tmp_path / "check.json"
    received: list[bytes] = []
    server = await _sink(received)
    port = server.sockets[0].getsockname()[1]
    base = ("--nameserver", dns_world.nameserver, "--config", str(config), "check", DOMAIN,
            "--skip", "ports", "--state", str(state), "--notify", "me@example.test",
            "--notify-server", f"127.0.0.1:{port}")  # fmt: skip
    async with server:
        publish(dns_world, healthy_world())
        code, out, err = await _cli(*base, cwd=tmp_path)  # first run, all ok: nothing to say
        assert (code, out, received) == (0, "", []), err
        assert json.loads(state.read_text())["checks"]["ptr"] == {"status": "ok"}
        code, out, err = await _cli(*base, cwd=tmp_path)  # nothing changed: silent (cron)
        assert (code, out, received) == (0, "", []), err
        publish(dns_world, replace(healthy_world(), "127.in-addr.arpa", PTR_OWNER))
        code, out, err = await _cli(*base, cwd=tmp_path)
        assert code == 1, out + err
        assert "changed since the last run" in out and "ok → fail" in out
        assert "ptr" in out and "spf-record" not in out  # only the rows that changed
        assert len(received) == 1
        assert b"ptr: ok -> fail" in received[0] and b"Subject: mailwright check" in received[0]
        code, out, err = await _cli(*base, "--json", cwd=tmp_path)  # unchanged again
        assert code == 1 and json.loads(out)["changes"] == [] and len(received) == 1
    code, _, err = await _cli("check", DOMAIN, "--notify", "me@example.test", cwd=tmp_path)
    assert code == 2 and "--notify needs --state FILE" in err
