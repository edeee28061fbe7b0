"""The runner: concurrency, the CLI layer, ports, blocklist codes, generic PTR names."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailwright.cli.main import cli, main
from mailwright.dns import MemoryResolver
from mailwright.doctor import DoctorOptions, Status, run_checks
from mailwright.doctor.blocklists import classify, query_name
from mailwright.doctor.context import Context, SharedResolver
from mailwright.doctor.ports import port_check
from mailwright.doctor.rdns import generic_reason
from mailwright.testing.ports import free_port
from mailwright.testing.tls import make_certificate

from .world import DOMAIN, options, records


async def test_wall_time_is_the_longest_chain_not_the_sum(tmp_path: Path) -> None:
    latency = 0.1
    r = MemoryResolver(latency=latency)
    for name, rdtype, value in records():
        r.add(name, rdtype, value)
    report = await run_checks(DOMAIN, options(tmp_path), r)
    assert all(c.status is Status.OK for c in report.checks), report
    # The longest chains are two lookups deep (TXT → type SPF in the linter, _dmarc.DOMAIN →
    # _dmarc.TLD in the tree walk); one after another the 11+ queries would take over 1 s.
    sequential = report.dns_queries * latency
    assert report.dns_queries >= 10
    assert report.dns_time >= sequential * 0.9
    assert report.elapsed < sequential * 0.5
    assert report.elapsed < 3 * latency + 0.15  # two round trips and a little CPU


async def test_shared_resolver_sends_each_query_once() -> None:
    inner = MemoryResolver(latency=0.01).add("example.com", "MX", (10, "mail.example.com"))
    shared = SharedResolver(inner)
    results = await asyncio.gather(*(shared.mx("example.com") for _ in range(5)))
    assert len({id(r) for r in results}) == 1
    assert inner.queries == [("example.com", "MX")]
    assert shared.queries == 1


@pytest.mark.parametrize(
    ("answer", "zone", "kind"),
    [
        (["127.0.0.2"], "zen.spamhaus.org", "listed"),
        (["127.0.0.4", "127.0.0.10"], "zen.spamhaus.org", "listed"),
        (["127.255.255.254"], "zen.spamhaus.org", "refused"),
        (["127.255.255.255"], "zen.spamhaus.org", "refused"),
        (["127.255.255.252"], "dbl.spamhaus.org", "refused"),
        (["127.0.1.255"], "dbl.spamhaus.org", "refused"),
        (["127.0.1.2"], "dbl.spamhaus.org", "listed"),
        (["127.0.0.1"], "multi.surbl.org", "refused"),
        (["127.0.0.1"], "some.list.example", "refused"),
        (["198.51.100.7"], "bl.spamcop.net", "refused"),
        (["127.255.255.1"], "unknown.example", "refused"),
    ],
)
def test_blocklist_answer_codes(answer: list[str], zone: str, kind: str) -> None:
    assert classify(answer, zone)[0] == kind


def test_blocklist_query_names() -> None:
    assert query_name("192.0.2.10", "zen.spamhaus.org") == "10.2.0.192.zen.spamhaus.org"
    assert query_name("2001:db8::1", "l.example").startswith("1.0.0.0.0.0.0.0")
    assert query_name("2001:db8::1", "l.example").endswith(".8.b.d.0.1.0.0.2.l.example")


@pytest.mark.parametrize(
    ("name", "generic"),
    [
        ("mail.example.com", False),
        ("mx1.example.net", False),
        ("static.10.2.0.192.clients.your-server.de", True),
        ("192-0-2-10.dsl.example.net", True),
        ("c0000210.example.net", True),
        ("host10-2-0-192.example.net", True),
        ("dynamic-pool.example.net", True),
        ("ec2-192-0-2-10.compute-1.amazonaws.com", True),
        ("cpe-1234567.cable.example.net", True),
    ],
)
def test_generic_ptr_names(name: str, generic: bool) -> None:
    assert (generic_reason(name, "192.0.2.10") is not None) is generic


async def test_port_listening_ok_and_configured_but_closed_fails() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ctx = Context(DOMAIN, DoctorOptions(), SharedResolver(MemoryResolver()))
    async with server:
        assert (await port_check(port)(ctx)).status is Status.OK
    closed = free_port()
    ctx.options = DoctorOptions(configured_ports=frozenset({closed}))
    finding = await port_check(closed)(ctx)
    assert finding.status is Status.FAIL and "mailwright serve" in finding.fix


def test_cli_bad_ip_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "example.com", "--ip", "not-an-ip"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "error: --ip 'not-an-ip' is not an IP address (write e.g. 192.0.2.10 or 2001:db8::25)"
    )


def test_cli_bad_domain_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "exa mple..com", "--ip", "192.0.2.1"])
    assert info.value.code == 2
    assert "is not a domain" in capsys.readouterr().err


def test_cli_config_missing_keys_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text('hostname = "mail.example.com"\n[[dkim]]\ndomain = "example.com"\n')
    with pytest.raises(SystemExit) as info:
        main(["check", "example.com", "--config", str(config)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "dkim[0].selector: is required" in err and len(err.strip().splitlines()) == 1


def test_cli_json_against_a_dead_resolver_is_error_rows_exit_1() -> None:
    """Nothing answers on 127.0.0.1:9: every DNS row is 'could not check', none fails;
    the run checked nothing, so it exits 1 (cron monitoring must notice)."""
    result = CliRunner().invoke(
        cli,
        ["--nameserver", "127.0.0.1:9", "--dns-timeout", "0.3", "check", "example.com",
         "--ip", "192.0.2.10", "--skip", "ports", "--json"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    statuses = {c["id"]: c["status"] for c in data["checks"]}
    assert statuses["mx"] == "error" and statuses["ptr"] == "error"
    assert "fail" not in statuses.values()
    strict = CliRunner().invoke(
        cli,
        ["--nameserver", "127.0.0.1:9", "--dns-timeout", "0.3", "check", "example.com",
         "--ip", "192.0.2.10", "--skip", "ports", "--json", "--strict"],
    )  # fmt: skip
    assert strict.exit_code == 1


@pytest.mark.parametrize(
    ("days", "status"), [(60, Status.OK), (13.5, Status.WARN), (-1, Status.FAIL)]
)
def test_certificate_expiry(days: float, status: Status, tmp_path: Path) -> None:
    import datetime as dt

    from mailwright.doctor.ports import describe_certificate

    der = make_certificate(tmp_path, "mail.example.com", days=days).certificate_der()
    finding = describe_certificate(der, "mail.example.com", dt.datetime.now(dt.UTC), 14)
    assert finding.status is status
    assert "SAN=mail.example.com" in finding.observed


def test_options_from_config_use_its_keys_ips_and_lists(tmp_path: Path) -> None:
    from mailwright.config import Config, DkimKeyConfig

    config = Config(
        path=tmp_path / "mailwright.toml",
        hostname="mail.example.com",
        domains=(DOMAIN,),
        ipv4=("192.0.2.10",),
        dkim=(
            DkimKeyConfig(DOMAIN, "mail", tmp_path / "a.pem"),
            DkimKeyConfig("other.example", "x", tmp_path / "b.pem"),
        ),
    )
    o = DoctorOptions.from_config(config, DOMAIN)
    assert o.hostname == "mail.example.com" and o.ips == ("192.0.2.10",)
    assert [(s.selector, s.private_key) for s in o.selectors] == [("mail", tmp_path / "a.pem")]
    picked = DoctorOptions.from_config(config, DOMAIN, ("198.51.100.1",), ("mail", "extra"))
    assert picked.ips == ("198.51.100.1",)
    assert [(s.selector, s.private_key) for s in picked.selectors] == [
        ("mail", tmp_path / "a.pem"),
        ("extra", None),
    ]


async def _serve(script: bytes) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(script)
        await writer.drain()
        await reader.read(100)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize(
    ("script", "status", "observed"),
    [
        (b"554 go away\r\n", Status.FAIL, "banner: 554 go away"),
        (b"x" * 70000 + b"\r\n", Status.FAIL, "banner: 0"),
        (b"220 mail.example.com\r\n", Status.FAIL, "EHLO: 0"),
        (
            b"220 mail.example.com\r\n250-mail.example.com\r\n250 SIZE 1000\r\n",
            Status.FAIL,
            "STARTTLS: not offered",
        ),
    ],
)
async def test_tls_check_against_broken_servers(
    script: bytes, status: Status, observed: str
) -> None:
    from mailwright.doctor.ports import check_tls

    server = await _serve(script)
    async with server:
        port = server.sockets[0].getsockname()[1]
        options = DoctorOptions(
            hostname="mail.example.com", smtp_port=port, smtp_address="127.0.0.1",
            connect_timeout=1.0,
        )  # fmt: skip
        finding = await check_tls(Context(DOMAIN, options, SharedResolver(MemoryResolver())))
    assert finding.status is status, finding
    assert observed in finding.observed


async def test_tls_check_nothing_listening_is_could_not_check() -> None:
    from mailwright.doctor.ports import check_tls

    options = DoctorOptions(hostname="mail.example.com", smtp_port=free_port(),
                            smtp_address="127.0.0.1")  # fmt: skip
    finding = await check_tls(Context(DOMAIN, options, SharedResolver(MemoryResolver())))
    assert finding.status is Status.ERROR and "could not connect" in finding.observed


def test_options_for_a_domain_the_config_does_not_serve(tmp_path: Path) -> None:
    from mailwright.config import Config, DkimKeyConfig

    config = Config(
        path=tmp_path / "mailwright.toml",
        hostname="mail.example.com",
        domains=(DOMAIN,),
        ipv4=("192.0.2.10",),
        dkim=(DkimKeyConfig(DOMAIN, "mail", tmp_path / "a.pem"),),
        check=dataclasses.replace(Config().check, dnsbls=("dnsbl.test",)),
    )
    o = DoctorOptions.from_config(config, "other.example")
    assert (o.hostname, o.ips, o.expected_ipv4, o.selectors) == (None, (), (), ())
    assert o.dnsbls == ("dnsbl.test",)
