"""The DNS layer against a real authoritative server (NSD): every outcome the mail rules use."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwright.dns import DnspythonResolver, MXRecord, Outcome, Resolver, StubResolver
from mailwright.testing import NsdServer

pytestmark = pytest.mark.integration

EXAMPLE_COM = """
@ MX 10 mail
@ MX 20 backup.example.net.
mail A 192.0.2.10
mail AAAA 2001:db8::25
dual A 192.0.2.11
dual A 192.0.2.12
nullmx MX 0 .
@ TXT "v=spf1 " "ip4:192.0.2.10" " -all"
@ TXT "google-site-verification=abc"
glued TXT "v=spf1" "-all"
long TXT "{long1}" "{long2}"
latin TXT "caf\\233"
alias CNAME hop1
hop1 CNAME hop2
hop2 A 192.0.2.20
away CNAME www.example.net.
dangling CNAME nothing.example.net.
mailonly CNAME mail
loop1 CNAME loop2
loop2 CNAME loop1
xn--bcher-kva A 192.0.2.30
""".format(long1="a" * 200, long2="b" * 200)

EXAMPLE_NET = "www A 192.0.2.40\nbackup A 192.0.2.41"


@pytest.fixture
def world(dns_world: NsdServer) -> NsdServer:
    dns_world.set_zone("example.com", EXAMPLE_COM)
    dns_world.set_zone("example.net", EXAMPLE_NET)
    dns_world.set_zone("2.0.192.in-addr.arpa", "10 PTR mail.example.com.\n11 PTR Dual.Example.COM.")
    dns_world.set_zone(
        "8.b.d.0.1.0.0.2.ip6.arpa",
        "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 PTR mail.example.com.",
    )
    return dns_world


@pytest.fixture(params=["stub", "dnspython"])
def resolver(world: NsdServer, request: pytest.FixtureRequest) -> Resolver:
    """Every test runs against our own transport and against dnspython's, the reference."""
    if request.param == "stub":
        return StubResolver(world.nameserver, timeout=2.0)
    return world.resolver(timeout=2.0)


ResolverClass = type[StubResolver] | type[DnspythonResolver]


@pytest.fixture(params=[StubResolver, DnspythonResolver])
def resolver_class(request: pytest.FixtureRequest) -> ResolverClass:
    cls: ResolverClass = request.param
    return cls


async def test_a_and_aaaa(resolver: Resolver) -> None:
    a = await resolver.a("mail.example.com")
    assert (a.outcome, a.records) == (Outcome.ANSWER, ("192.0.2.10",))
    assert a.text == ("mail.example.com. 300 IN A 192.0.2.10",)
    assert a.error is None
    aaaa = await resolver.aaaa("mail.example.com")
    assert aaaa.records == ("2001:db8::25",)  # compressed form, as ipaddress prints it
    assert sorted((await resolver.a("dual.example.com")).records) == ["192.0.2.11", "192.0.2.12"]
    a4, a6 = await resolver.addresses("mail.example.com")
    assert (a4.records, a6.records) == (("192.0.2.10",), ("2001:db8::25",))


async def test_names_are_case_insensitive_and_trailing_dot_is_optional(
    resolver: Resolver,
) -> None:
    result = await resolver.a("MAIL.Example.COM.")
    assert result.records == ("192.0.2.10",)
    assert result.name == "mail.example.com"


async def test_mx_sorted_by_nothing_but_parsed(resolver: Resolver) -> None:
    mx = await resolver.mx("example.com")
    assert sorted(mx.records, key=lambda m: m.preference) == [
        MXRecord(10, "mail.example.com"),
        MXRecord(20, "backup.example.net"),
    ]


async def test_null_mx(resolver: Resolver) -> None:
    # RFC 7505 §3: "MX 0 ." says the domain accepts no mail.
    mx = await resolver.mx("nullmx.example.com")
    assert mx.records == (MXRecord(0, ""),)
    assert mx.records[0].is_null
    assert mx.text == ("nullmx.example.com. 300 IN MX 0 .",)


async def test_txt_strings_joined_without_spaces(resolver: Resolver) -> None:
    # RFC 7208 §3.3: the character-strings of one TXT record are concatenated as is.
    txt = await resolver.txt("example.com")
    assert sorted(txt.records) == ["google-site-verification=abc", "v=spf1 ip4:192.0.2.10 -all"]
    assert (await resolver.txt("glued.example.com")).records == ("v=spf1-all",)


async def test_txt_longer_than_255_bytes(resolver: Resolver) -> None:
    txt = await resolver.txt("long.example.com")
    assert txt.records == ("a" * 200 + "b" * 200,)


async def test_non_utf8_txt_is_decoded_with_replacement(resolver: Resolver) -> None:
    # Untrusted DNS data must give a defined value, never an exception.
    assert (await resolver.txt("latin.example.com")).records == ("caf\ufffd",)


async def test_answer_larger_than_udp_payload_falls_back_to_tcp(
    dns_world: NsdServer, resolver_class: ResolverClass
) -> None:
    # 20 records of 250 bytes: far over the 1232-byte EDNS buffer, so NSD sets TC=1.
    body = "\n".join(f'@ TXT "{i:02d}{"k" * 248}"' for i in range(20))
    dns_world.set_zone("big.example", body)
    txt = await resolver_class(dns_world.nameserver, timeout=2.0).txt("big.example")
    assert txt.outcome is Outcome.ANSWER
    assert sorted(txt.records) == [f"{i:02d}{'k' * 248}" for i in range(20)]


async def test_ptr_ipv4_and_ipv6(resolver: Resolver) -> None:
    assert (await resolver.reverse("192.0.2.10")).records == ("mail.example.com",)
    # Names are lowercased and lose the trailing dot.
    assert (await resolver.reverse("192.0.2.11")).records == ("dual.example.com",)
    assert (await resolver.reverse("2001:db8::25")).records == ("mail.example.com",)
    # IPv4-mapped IPv6 is looked up under in-addr.arpa.
    assert (await resolver.reverse("::ffff:192.0.2.10")).records == ("mail.example.com",)
    assert (await resolver.ptr("10.2.0.192.in-addr.arpa")).records == ("mail.example.com",)
    assert (await resolver.reverse("192.0.2.99")).outcome is Outcome.NXDOMAIN


async def test_cname_chain_is_reported(resolver: Resolver) -> None:
    result = await resolver.a("alias.example.com")
    assert result.records == ("192.0.2.20",)
    assert result.cnames == ("hop1.example.com", "hop2.example.com")
    assert result.text == (
        "alias.example.com. 300 IN CNAME hop1.example.com.",
        "hop1.example.com. 300 IN CNAME hop2.example.com.",
        "hop2.example.com. 300 IN A 192.0.2.20",
    )
    # Asking for the CNAME itself gives the first link and no chain.
    cname = await resolver.cname("alias.example.com")
    assert (cname.records, cname.cnames) == (("hop1.example.com",), ())


async def test_cname_into_another_zone(resolver: Resolver) -> None:
    result = await resolver.a("away.example.com")
    assert (result.records, result.cnames) == (("192.0.2.40",), ("www.example.net",))


async def test_cname_to_a_missing_name_is_nxdomain_with_the_chain(
    resolver: Resolver,
) -> None:
    # RFC 2308 §2.1: the RCODE describes the end of the chain.
    result = await resolver.a("dangling.example.com")
    assert result.outcome is Outcome.NXDOMAIN
    assert result.cnames == ("nothing.example.net",)
    assert result.error is not None and "nothing.example.net" in result.error


async def test_cname_to_a_name_without_the_type_is_nodata(resolver: Resolver) -> None:
    result = await resolver.mx("mailonly.example.com")
    assert result.outcome is Outcome.NODATA
    assert result.cnames == ("mail.example.com",)
    assert result.is_void


async def test_cname_loop_is_a_server_failure(resolver: Resolver) -> None:
    result = await resolver.a("loop1.example.com")
    assert result.outcome is Outcome.SERVFAIL
    assert result.is_error


async def test_nxdomain_versus_nodata(resolver: Resolver) -> None:
    nx = await resolver.a("nowhere.example.com")
    assert nx.outcome is Outcome.NXDOMAIN
    assert nx.is_void and not nx.is_error and not nx.ok
    assert nx.records == () and nx.error is not None
    nodata = await resolver.aaaa("dual.example.com")
    assert nodata.outcome is Outcome.NODATA
    assert nodata.is_void and not nodata.is_error
    # An empty non-terminal exists (RFC 8020): NODATA, not NXDOMAIN.
    assert (await resolver.a("2.0.192.in-addr.arpa")).outcome is Outcome.NODATA


async def test_refused_is_servfail(resolver: Resolver) -> None:
    # NSD answers REFUSED for names outside its zones; for SPF/DKIM/DMARC that is a
    # temporary server failure, like SERVFAIL.
    result = await resolver.a("example.org")
    assert result.outcome is Outcome.SERVFAIL
    assert result.is_error
    assert result.error is not None and "REFUSED" in result.error


async def test_idna_name(resolver: Resolver) -> None:
    result = await resolver.a("bücher.example.com")
    assert result.records == ("192.0.2.30",)


@pytest.mark.parametrize(
    "name", ["a" * 64 + ".example.com", "a..example.com", ".".join(["abcdefgh"] * 29)]
)
async def test_invalid_names_are_not_sent(resolver: Resolver, name: str) -> None:
    result = await resolver.a(name)
    assert result.outcome is Outcome.INVALID_NAME
    assert result.error


async def test_unknown_record_type_is_a_defined_result(resolver: Resolver) -> None:
    result = await resolver.query("example.com", "NOTATYPE")
    assert result.outcome is Outcome.SERVFAIL
    assert result.error == "unknown record type NOTATYPE"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A UDP and TCP port on loopback where something is bound but never answers."""
    for _ in range(50):  # the UDP port's number may be taken for TCP: another one
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        ):
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            tcp.listen(1)
            yield port
            return
    raise AssertionError("no port free for both UDP and TCP")


async def test_timeout_returns_within_the_bound(
    silent_port: int, resolver_class: ResolverClass
) -> None:
    resolver = resolver_class(f"127.0.0.1:{silent_port}", timeout=0.4)
    began = time.monotonic()
    result = await resolver.txt("example.com")
    elapsed = time.monotonic() - began
    assert result.outcome is Outcome.TIMEOUT
    assert result.is_error
    assert result.error == "no answer within 0.4 s"
    # dnspython alone overshoots by its back-off sleep; the layer bounds it (with slack
    # for a loaded CI machine).
    assert 0.35 <= elapsed < 0.9


async def test_timeout_when_nothing_listens(resolver_class: ResolverClass) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    began = time.monotonic()
    result = await resolver_class(f"127.0.0.1:{port}", timeout=0.3).a("example.com")
    assert result.is_error
    assert time.monotonic() - began < 0.5


async def test_timeouts_run_concurrently(silent_port: int, resolver_class: ResolverClass) -> None:
    resolver = resolver_class(f"127.0.0.1:{silent_port}", timeout=0.5)
    began = time.monotonic()
    results = await asyncio.gather(*(resolver.a(f"h{i}.example.com") for i in range(40)))
    # Sequentially this would take 20 s.
    assert time.monotonic() - began < 3.0
    assert {r.outcome for r in results} == {Outcome.TIMEOUT}


async def test_many_concurrent_lookups(resolver: Resolver) -> None:
    names = ["mail.example.com", "nowhere.example.com", "dual.example.com", "example.org"]
    results = await asyncio.gather(*(resolver.a(names[i % 4]) for i in range(400)))
    outcomes = [r.outcome for r in results]
    assert outcomes == [
        [Outcome.ANSWER, Outcome.NXDOMAIN, Outcome.ANSWER, Outcome.SERVFAIL][i % 4]
        for i in range(400)
    ]


# -- the CLI: mailwright dns, and the three ways to name the server ------------------------

MAILWRIGHT = str(Path(sys.executable).with_name("mailwright"))


def _cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWRIGHT_")}
    full_env.update(env or {})
    return subprocess.run(
        [MAILWRIGHT, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_cli_dns_with_nameserver_option(world: NsdServer) -> None:
    proc = _cli("--nameserver", world.nameserver, "dns", "example.com", "MX")
    assert proc.returncode == 0, proc.stderr
    assert "example.com MX: answer" in proc.stdout
    assert "example.com. 300 IN MX 10 mail.example.com." in proc.stdout


def test_cli_dns_json(world: NsdServer) -> None:
    proc = _cli("--nameserver", world.nameserver, "dns", "alias.example.com", "a", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data == {
        "name": "alias.example.com",
        "type": "A",
        "outcome": "answer",
        "records": ["192.0.2.20"],
        "cnames": ["hop1.example.com", "hop2.example.com"],
        "answer": [
            "alias.example.com. 300 IN CNAME hop1.example.com.",
            "hop1.example.com. 300 IN CNAME hop2.example.com.",
            "hop2.example.com. 300 IN A 192.0.2.20",
        ],
        "error": None,
    }
    mx = json.loads(
        _cli("--nameserver", world.nameserver, "dns", "nullmx.example.com", "MX", "--json").stdout
    )
    assert mx["records"] == [{"preference": 0, "exchange": ""}]


def test_cli_dns_ptr_of_an_address(world: NsdServer) -> None:
    proc = _cli("--nameserver", world.nameserver, "dns", "2001:db8::25", "PTR", "--json")
    data = json.loads(proc.stdout)
    assert (
        data["name"] == "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    )
    assert data["records"] == ["mail.example.com"]


def test_cli_dns_failure_exit_codes(world: NsdServer) -> None:
    nx = _cli("--nameserver", world.nameserver, "dns", "nowhere.example.com")
    assert nx.returncode == 1
    assert "nxdomain" in nx.stdout
    refused = _cli("--nameserver", world.nameserver, "dns", "example.org", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["outcome"] == "servfail"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--nameserver", "localhost:53", "dns", "example.com"], "not an IP address"),
        (["--nameserver", "127.0.0.1:70000", "dns", "example.com"], "port must be 1-65535"),
        (["--nameserver", "127.0.0.1:5353", "dns", "example.com", "BOGUS"], "unknown DNS record"),
        (["--nameserver", "127.0.0.1:5353", "dns", "example.com", "ANY"], "not a lookup type"),
    ],
)
def test_cli_usage_errors_are_one_line_exit_2(args: list[str], fragment: str) -> None:
    proc = _cli(*args)
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_cli_timeout_option(silent_port: int) -> None:
    began = time.monotonic()
    proc = _cli(
        "--nameserver", f"127.0.0.1:{silent_port}", "--dns-timeout", "0.3", "dns", "example.com"
    )
    assert proc.returncode == 1
    assert "timeout" in proc.stdout and "no answer within 0.3 s" in proc.stdout
    assert time.monotonic() - began < 10


def test_nameserver_from_environment(world: NsdServer) -> None:
    proc = _cli("dns", "mail.example.com", env={"MAILWRIGHT_NAMESERVER": world.nameserver})
    assert proc.returncode == 0, proc.stderr
    assert "192.0.2.10" in proc.stdout


def test_nameserver_from_config_file(world: NsdServer, tmp_path: Path) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text(f'[dns]\nnameserver = "{world.nameserver}"\ntimeout = 1.5\n')
    proc = _cli("--config", str(config), "dns", "mail.example.com")
    assert proc.returncode == 0, proc.stderr
    assert "192.0.2.10" in proc.stdout
    # Also found as ./mailwright.toml and through $MAILWRIGHT_CONFIG.
    assert _cli("dns", "mail.example.com", cwd=tmp_path).returncode == 0
    other = tmp_path / "elsewhere"
    other.mkdir()
    env = {"MAILWRIGHT_CONFIG": str(config)}
    assert _cli("dns", "mail.example.com", env=env, cwd=other).returncode == 0


def test_precedence_option_then_environment_then_config(
    world: NsdServer, silent_port: int, tmp_path: Path
) -> None:
    silent = f"127.0.0.1:{silent_port}"
    config = tmp_path / "mailwright.toml"
    config.write_text(f'[dns]\nnameserver = "{silent}"\ntimeout = 0.3\n')
    env = {"MAILWRIGHT_NAMESERVER": world.nameserver}
    # The environment beats the config file ...
    assert _cli("--config", str(config), "dns", "mail.example.com", env=env).returncode == 0
    # ... and the option beats the environment.
    env_silent = {"MAILWRIGHT_NAMESERVER": silent}
    proc = _cli(
        "--config",
        str(config),
        "--nameserver",
        world.nameserver,
        "dns",
        "mail.example.com",
        env=env_silent,
    )
    assert proc.returncode == 0, proc.stdout
    # With only the config file, its (silent) server and timeout are used.
    began = time.monotonic()
    proc = _cli("--config", str(config), "dns", "mail.example.com")
    assert proc.returncode == 1
    assert "no answer within 0.3 s" in proc.stdout
    assert time.monotonic() - began < 10


def test_bad_nameserver_in_config_names_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text('[dns]\nnameserver = "dns.example.com"\n')
    proc = _cli("--config", str(config), "dns", "example.com")
    assert proc.returncode == 2
    assert f"{config}: dns.nameserver:" in proc.stderr
    assert "not an IP address" in proc.stderr


def test_bad_nameserver_in_environment_is_a_usage_error() -> None:
    proc = _cli("dns", "example.com", env={"MAILWRIGHT_NAMESERVER": "nameserver.example"})
    assert proc.returncode == 2
    assert "not an IP address" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["[/]", "[bold]x[/bold].example.com"])
def test_cli_name_is_printed_as_text_not_markup(world: NsdServer, name: str) -> None:
    # Rich markup in a name must neither crash the output nor style it.
    proc = _cli("--nameserver", world.nameserver, "dns", name)
    assert proc.returncode == 1, proc.stderr
    assert "internal error" not in proc.stderr
    assert f"{name} A: nxdomain" in proc.stdout or f"{name} A: servfail" in proc.stdout


async def test_nxdomain_error_escapes_control_characters(resolver: Resolver) -> None:
    result = await resolver.a("a\x00b.example.com")
    assert result.outcome is Outcome.NXDOMAIN
    assert result.error == "no such domain: a\\000b.example.com (NXDOMAIN)"


def test_error_message_with_markup_characters_is_one_line_exit_2(tmp_path: Path) -> None:
    # Error texts quote user input (here a file name); rich must print it, not parse it.
    proc = _cli("--config", str(tmp_path / "[/]x.toml"), "dns", "example.com")
    assert proc.returncode == 2, proc.stderr
    assert f"error: {tmp_path}/[/]x.toml: file not found" in proc.stderr
    assert "Traceback" not in proc.stderr
