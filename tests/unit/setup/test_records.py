"""The records ``init``/``records`` print: SPF per relay, TXT splitting, zone form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailwright.cli.main import main
from mailwright.config import Config, DeliveryConfig, RelayConfig
from mailwright.setup.providers import find_provider
from mailwright.setup.records import (
    DnsRecord,
    build_records,
    dmarc_value,
    render_json,
    render_zone,
    spf_value,
    split_zone,
    txt_rdata,
)


def _relay(url: str) -> Config:
    return Config(
        hostname="mail.example.com",
        domains=("example.com",),
        ipv4=("192.0.2.10",),
        delivery=DeliveryConfig(mode="relay", relay=RelayConfig(url)),
    )


@pytest.mark.parametrize(
    ("url", "include"),
    [
        ("smtp://u@smtp.mailgun.org:587", "include:mailgun.org"),
        ("smtp://u@smtp.eu.mailgun.org:587", "include:mailgun.org"),
        ("smtps://u@email-smtp.eu-west-1.amazonaws.com:465", "include:amazonses.com"),
        ("smtp://apikey@smtp.sendgrid.net:587", "include:sendgrid.net"),
        ("smtp://t@smtp.postmarkapp.com:587", "include:spf.mtasv.net"),
        ("smtp://u@smtp-relay.brevo.com:587", "include:spf.brevo.com"),
    ],
)
def test_known_relay_spf_is_the_provider_include(url: str, include: str) -> None:
    value, _notes = spf_value(_relay(url))
    assert value == f"v=spf1 {include} -all"


def test_unknown_relay_keeps_ips_and_says_what_to_ask() -> None:
    value, notes = spf_value(_relay("smtp://u@smtp.corp-mail.example:587"))
    assert value == "v=spf1 ip4:192.0.2.10 -all"
    assert any("ask the operator of smtp.corp-mail.example" in n for n in notes)


def test_lookalike_host_is_not_a_provider() -> None:
    assert find_provider("smtp://u@evilmailgun.org:587") is None


def test_direct_spf_lists_every_ip_and_ends_dash_all() -> None:
    config = Config(domains=("example.com",), ipv4=("192.0.2.10",), ipv6=("2001:db8::25",))
    assert spf_value(config)[0] == "v=spf1 ip4:192.0.2.10 ip6:2001:db8::25 -all"


def test_no_ip_falls_back_to_mx_with_a_note() -> None:
    value, notes = spf_value(Config(domains=("example.com",)))
    assert value == "v=spf1 mx -all"
    assert notes


def test_dmarc_starts_at_none_with_rua_of_the_domain() -> None:
    assert dmarc_value("example.com") == ("v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com")


def test_txt_split_at_255_octets_and_escaped() -> None:
    value = "a" * 300
    assert txt_rdata(value) == f'"{"a" * 255}" "{"a" * 45}"'
    assert txt_rdata('say "hi" \\') == '"say \\"hi\\" \\\\"'
    assert txt_rdata("") == '""'


def test_zone_lines_are_absolute() -> None:
    record = DnsRecord("mx", "example.com", "MX", "10 mail.example.com.")
    assert record.zone_line() == "example.com. 3600 IN MX 10 mail.example.com."


def test_ptr_records_per_ip_for_ip_provider() -> None:
    config = Config(
        hostname="mail.example.com",
        domains=("example.com",),
        ipv4=("192.0.2.10",),
        ipv6=("2001:db8::25",),
    )
    plan = build_records(config)
    ptrs = [r for r in plan.records if r.rdtype == "PTR"]
    assert [r.name for r in ptrs] == [
        "10.2.0.192.in-addr.arpa",
        "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
    ]
    assert {r.publish for r in ptrs} == {"ip-provider"}
    forward, reverse = split_zone(render_zone(plan).splitlines())
    assert len(reverse) == 2 and all("PTR" in line for line in reverse)
    assert not any("PTR" in line for line in forward)
    data = json.loads(render_json(plan))
    assert {r["type"] for r in data["records"]} == {"MX", "A", "AAAA", "TXT", "PTR"}


def test_records_without_config_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWRIGHT_CONFIG", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["records"])
    assert info.value.code == 2
    assert "no config file found" in capsys.readouterr().err


def test_records_with_missing_key_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text(
        'hostname = "mail.example.com"\ndomains = ["example.com"]\n'
        '[[dkim]]\ndomain = "example.com"\nselector = "s"\nprivate_key = "nope.pem"\n'
    )
    with pytest.raises(SystemExit) as info:
        main(["records", "--config", str(config)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "nope.pem not found" in err and len(err.strip().splitlines()) == 1


def test_config_without_domains_says_so() -> None:
    plan = build_records(Config(hostname="mail.example.com", ipv4=("192.0.2.10",)))
    assert [r.rdtype for r in plan.records] == ["A", "PTR"]
    assert any("No domains in the config" in n for n in plan.notes)
