"""``mailwright records apply`` against Knot DNS (issue 17 item 11): a plan first, then an
RFC 2136 update signed with TSIG, then a wait until the primary and a secondary (a second
knotd transferring the zone, a real lag) serve it; idempotent; only our names change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwright.cli.main import main
from mailwright.setup.apply import query_rrset
from mailwright.testing.knot import KnotServer
from mailwright.testing.nsd import NsdServer
from mailwright.testing.ports import free_address

pytestmark = pytest.mark.integration

DOMAIN = "example.test"
HOST = f"mail.{DOMAIN}"
IP = "127.0.0.25"
START = (
    "@ MX 10 mx.elsewhere.test.\n"
    '@ TXT "google-site-verification=abc123"\n'
    '@ TXT "v=spf1 -all"\n'
    "www A 127.0.0.80\n"
)


@pytest.fixture
def knot() -> Iterator[tuple[KnotServer, KnotServer]]:
    with KnotServer({DOMAIN: START}) as primary, KnotServer(primary=primary) as secondary:
        yield primary, secondary


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, err = run(
        ["init", DOMAIN, "--ip", IP, "--hostname", HOST, "--dir", str(tmp_path)], capsys
    )
    assert code == 0, err
    return tmp_path / "mailwright.toml"


def txt(server: KnotServer, name: str) -> set[str]:
    return {
        b"".join(rd.strings).decode()  # type: ignore[attr-defined]
        for rd in query_rrset(name, "TXT", server.address)
    }


def test_plan_apply_wait_idempotent(
    knot: tuple[KnotServer, KnotServer],
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    primary, secondary = knot
    key = tmp_path / "update.key"
    key.write_text(primary.key_file_text())
    base = ["--config", str(config), "records", "apply", "--server", primary.nameserver,
            "--tsig-key", str(key)]  # fmt: skip

    code, out, err = run([*base, "--json"], capsys)  # the plan only
    assert code == 0, err
    plan = json.loads(out)
    changes = {(c["name"], c["type"]): c for c in plan["zones"][0]["changes"]}
    assert changes[(DOMAIN, "MX")]["action"] == "change"
    assert changes[(DOMAIN, "MX")]["before"] == ["10 mx.elsewhere.test."]
    assert changes[(DOMAIN, "TXT")]["before"] == ['"v=spf1 -all"']  # only the SPF value is ours
    assert changes[(f"_dmarc.{DOMAIN}", "TXT")]["action"] == "add"
    assert changes[(HOST, "A")]["after"] == [IP]
    assert (f"mail._domainkey.{DOMAIN}", "TXT") in changes
    assert any(line.endswith(f"PTR {HOST}.") for line in plan["by_hand"])  # the IP owner's
    assert plan["applied"] is False
    assert txt(primary, DOMAIN) == {"google-site-verification=abc123", "v=spf1 -all"}  # untouched

    servers = ["--authoritative", primary.nameserver, "--authoritative", secondary.nameserver]
    code, out, err = run([*base, "--yes", "--json", *servers, "--wait", "30"], capsys)
    assert code == 0, out + err
    result = json.loads(out)
    assert result["applied"] is True and result["error"] is None
    assert result["served"] == {primary.nameserver: True, secondary.nameserver: True}
    for server in (primary, secondary):
        assert txt(server, DOMAIN) == {"google-site-verification=abc123", f"v=spf1 ip4:{IP} -all"}
        assert txt(server, f"_dmarc.{DOMAIN}") == {
            f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{DOMAIN}"
        }
        assert [r.to_text() for r in query_rrset(DOMAIN, "MX", server.address)] == [f"10 {HOST}."]
        assert [r.to_text() for r in query_rrset(f"www.{DOMAIN}", "A", server.address)] == [
            "127.0.0.80"  # not ours: kept
        ]

    code, out, err = run(base, capsys)  # again: nothing to do
    assert code == 0, err
    assert "DNS is up to date" in out


def test_wrong_tsig_key_is_refused(
    knot: tuple[KnotServer, KnotServer],
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    primary, _ = knot
    key = tmp_path / "wrong.key"
    key.write_text(
        "hmac-sha256:mailwright-update:" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    )
    code, _, err = run(["--config", str(config), "records", "apply", "--server",
                        primary.nameserver, "--tsig-key", str(key), "--yes"], capsys)  # fmt: skip
    assert code == 1
    assert "TSIG" in err or "refused" in err
    assert txt(primary, DOMAIN) == {"google-site-verification=abc123", "v=spf1 -all"}


def test_a_key_file_without_a_key_is_a_usage_error(
    knot: tuple[KnotServer, KnotServer],
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    primary, _ = knot
    key = tmp_path / "empty.key"
    key.write_text("nothing here\n")
    code, _, err = run(["--config", str(config), "records", "apply", "--server",
                        primary.nameserver, "--tsig-key", str(key)], capsys)  # fmt: skip
    assert code == 2 and "no TSIG key found" in err


def test_authoritative_servers_from_the_ns_records() -> None:
    from mailwright.setup.apply import authoritative_servers

    with KnotServer({DOMAIN: "@ NS ns.other.test.\n"}) as primary:
        asked: list[str] = []

        def resolve(name: str) -> list[str]:
            asked.append(name)
            return ["127.0.0.9"]

        found = authoritative_servers(DOMAIN, primary.address, port=5353, resolve=resolve)
    # the primary; ns.example.test from the zone's own A record; ns.other.test resolved
    assert found[0] == primary.address
    assert sorted(found[1:]) == [("127.0.0.1", 5353), ("127.0.0.9", 5353)]
    assert asked == ["ns.other.test"]


def test_without_server_the_primary_is_the_zones_soa_mname_on_port_53(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RFC 2136 §4, as nsupdate does it: the SOA MNAME (ns.example.test), its address
    through the configured resolver, port 53. Knot listens on port 53 of a spare loopback
    address, which is also the zone's ns A; it is the resolver here too (authoritative)."""
    with KnotServer({DOMAIN: START}, host=free_address(53), port=53) as primary:
        key = tmp_path / "update.key"
        key.write_text(primary.key_file_text())
        base = ["--config", str(config), "--nameserver", primary.nameserver, "records",
                "apply", "--tsig-key", str(key)]  # fmt: skip
        code, out, err = run([*base, "--json"], capsys)
        assert code == 0, err
        zone = json.loads(out)["zones"][0]
        assert (zone["zone"], zone["primary"], zone["mname"]) == (
            DOMAIN,
            f"{primary.host}:53",
            f"ns.{DOMAIN}",
        )
        assert zone["changes"]

        code, out, err = run([*base, "--yes", "--json", "--wait", "30"], capsys)
        assert code == 0, out + err
        result = json.loads(out)
        assert result["applied"] is True and result["error"] is None
        assert result["served"] == {f"{primary.host}:53": True}  # the NS is the primary
        assert txt(primary, DOMAIN) == {"google-site-verification=abc123", f"v=spf1 ip4:{IP} -all"}

        code, out, err = run(base, capsys)
        assert code == 0, err
        assert "DNS is up to date" in out


def test_without_server_a_primary_that_cannot_be_found_is_one_line_exit_1(
    dns_world: NsdServer, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NSD's SOA names ns.mailwright.test, a name nothing serves: no address for it
    dns_world.set_zone(DOMAIN, "@ MX 10 mx.elsewhere.test.\n")
    key = tmp_path / "update.key"
    key.write_text("hmac-sha256:mailwright-update:QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
    base = ["--config", str(config), "--nameserver", dns_world.nameserver, "records", "apply",
            "--tsig-key", str(key)]  # fmt: skip
    code, out, err = run(base, capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"error: zone {DOMAIN}: its primary ns.mailwright.test (the SOA MNAME) has no address ("
    ), err
    assert f"pass --server HOST[:PORT], the primary of {DOMAIN}" in err

    code, out, err = run([*base, "--zone", "nowhere.test"], capsys)  # NSD has no such zone
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: zone nowhere.test: no SOA record to find its primary ("), err
    assert "pass --server HOST[:PORT], the primary of nowhere.test" in err
