"""``mailwright init``: the config it writes, the keys, refusing to overwrite."""

from __future__ import annotations

import base64
import dataclasses
import re
import stat
import typing
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwright.cli.main import cli, main
from mailwright.config import Config, load_config
from mailwright.errors import UsageError, UserError
from mailwright.setup import InitOptions, init_domain, render_config
from mailwright.setup.records import build_records


def _init(tmp_path: Path, **kw: typing.Any) -> typing.Any:
    options = {"domain": "example.com", "ips": ("192.0.2.10",), "directory": tmp_path, **kw}
    return init_domain(InitOptions(**options))


def _settings(cls: type, prefix: str = "") -> list[tuple[str, str]]:
    """(table, key) for every field of the Config dataclasses, nested ones included."""
    out: list[tuple[str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "path":
            continue
        hint = hints[f.name]
        inner = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
        if dataclasses.is_dataclass(hint):
            out.extend(_settings(typing.cast(type, hint), f"{prefix}{f.name}."))
        elif inner:  # tuple[DkimKeyConfig, ...] or RelayConfig | None
            out.extend(_settings(typing.cast(type, inner[0]), f"{prefix}{f.name}."))
        else:
            out.append((prefix.rstrip("."), f.name))
    return out


@pytest.mark.parametrize("acme", [False, True])
def test_generated_config_loads_and_names_every_setting(tmp_path: Path, acme: bool) -> None:
    result = _init(tmp_path, relay="smtp://app@smtp.mailgun.org:587", acme=acme)
    text = result.config_path.read_text()
    config = load_config(result.config_path)
    assert config.hostname == "mail.example.com"
    assert config.domains == ("example.com",)
    assert config.ipv4 == ("192.0.2.10",)
    assert config.delivery.mode == "relay"
    # Each setting appears as "key = value", set or commented out, in its table.
    tables = {"": text.split("\n[", 1)[0]}
    for match in re.finditer(r"^#? ?\[\[?([a-z_.]+)\]\]?$", text, re.M):
        start = match.end()
        nxt = re.search(r"^#? ?\[", text[start:], re.M)
        body = text[start : start + nxt.start()] if nxt else text[start:]
        tables[match.group(1)] = tables.get(match.group(1), "") + body
    missing = []
    for table, key in _settings(Config):
        if table == "aliases" or key == "aliases":
            assert "[aliases]" in text
            continue
        if not re.search(rf"^(# )?{key} = ", tables.get(table, ""), re.M):
            missing.append(f"{table}.{key}" if table else key)
    assert missing == []


def test_every_setting_has_a_comment_line_above_it(tmp_path: Path) -> None:
    lines = _init(tmp_path).config_path.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            assert lines[i - 1].startswith("# "), line


def test_render_load_round_trip(tmp_path: Path) -> None:
    config = load_config(_init(tmp_path, ips=("192.0.2.10", "2001:db8::25")).config_path)
    again = tmp_path / "again.toml"
    again.write_text(render_config(config, tmp_path))
    reloaded = load_config(again)
    assert dataclasses.replace(reloaded, path=None) == dataclasses.replace(config, path=None)


def test_keys_are_rsa_2048_and_ed25519_owner_only(tmp_path: Path) -> None:
    result = _init(tmp_path, selector="s1")
    rsa_key, ed_key = result.config.dkim
    assert (rsa_key.selector, rsa_key.algorithm) == ("s1", "rsa")
    assert (ed_key.selector, ed_key.algorithm) == ("s1-ed", "ed25519")
    loaded_rsa = serialization.load_pem_private_key(rsa_key.private_key.read_bytes(), None)
    assert isinstance(loaded_rsa, rsa.RSAPrivateKey) and loaded_rsa.key_size == 2048
    loaded_ed = serialization.load_pem_private_key(ed_key.private_key.read_bytes(), None)
    assert isinstance(loaded_ed, ed25519.Ed25519PrivateKey)
    for path in result.key_paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The published Ed25519 value is the raw 32-octet key (RFC 8463 §4.2).
    ed_record = next(r for r in result.plan.records if r.name == "s1-ed._domainkey.example.com")
    p = ed_record.value.split("p=")[1]
    assert base64.b64decode(p) == loaded_ed.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def test_refuses_to_overwrite_config(tmp_path: Path) -> None:
    _init(tmp_path)
    before = (tmp_path / "mailwright.toml").read_text()
    with pytest.raises(UserError, match=r"mailwright.toml already exists \(use --force"):
        _init(tmp_path, ips=("192.0.2.99",))
    assert (tmp_path / "mailwright.toml").read_text() == before


def test_refuses_to_overwrite_a_key_even_without_config(tmp_path: Path) -> None:
    first = _init(tmp_path)
    (tmp_path / "mailwright.toml").unlink()
    key_bytes = first.key_paths[0].read_bytes()
    with pytest.raises(UserError, match=r"example.com.mail.rsa.pem already exists"):
        _init(tmp_path)
    assert first.key_paths[0].read_bytes() == key_bytes
    assert not (tmp_path / "mailwright.toml").exists()


def test_force_overwrites_with_new_keys(tmp_path: Path) -> None:
    first = _init(tmp_path)
    old = first.key_paths[0].read_bytes()
    second = _init(tmp_path, ips=("192.0.2.11",), force=True)
    assert second.config.ipv4 == ("192.0.2.11",)
    assert second.key_paths[0].read_bytes() != old


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ips": ("192.0.2.300",)}, "--ip '192.0.2.300' is not an IP address"),
        ({"domain": "localhost"}, "domain 'localhost': needs at least two labels"),
        ({"domain": "a..b"}, "domain 'a..b': empty label"),
        ({"hostname": "x" * 64 + ".example.com"}, "label longer than 63"),
        ({"selector": "bad_sel"}, "--selector 'bad_sel' is not a DNS label"),
        ({"relay": "http://x"}, "--relay 'http://x' is not an smtp:// or smtps:// URL"),
    ],
)
def test_bad_options_are_usage_errors(
    tmp_path: Path, options: dict[str, typing.Any], message: str
) -> None:
    with pytest.raises(UsageError) as info:
        _init(tmp_path, **options)
    assert message in str(info.value)
    assert not (tmp_path / "mailwright.toml").exists()


def test_cli_init_then_refusal_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["init", "example.com", "--ip", "192.0.2.10", "--dir", str(tmp_path)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "example.com. 3600 IN MX 10 mail.example.com." in first.output
    assert "10.2.0.192.in-addr.arpa. 3600 IN PTR mail.example.com." in first.output
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path}/mailwright.toml already exists (use --force to overwrite it)"


def test_records_match_init(tmp_path: Path) -> None:
    result = _init(tmp_path)
    assert build_records(load_config(result.config_path)) == result.plan


def test_init_sets_up_verp_and_its_records_authorize_the_bounce_domain(tmp_path: Path) -> None:
    # The return path bounces+TOKEN@example.com is on the From domain itself: the SPF
    # record init prints for example.com is the one receivers check for it.
    from mailwright.local import LocalDirectory
    from mailwright.spf.record import parse_record

    result = _init(tmp_path)
    config = load_config(result.config_path)
    assert config.bounces.verp and config.bounces.local_part == "bounces"
    [spf] = [r for r in result.plan.records if r.group == "spf"]
    assert spf.name.rstrip(".") in ("example.com", "@")
    assert "ip4:192.0.2.10" in spf.value and parse_record(spf.value) is not None
    directory = LocalDirectory.from_config(config)
    assert directory.exists("bounces+0abc-1-2-xyz@example.com")  # RCPT accepted


def test_init_acme_writes_acme_an_http_listener_and_no_certificate_files(tmp_path: Path) -> None:
    result = _init(tmp_path, inbound=True, acme=True)
    text = result.config_path.read_text()
    tls = load_config(result.config_path).tls
    assert (tls.acme, tls.acme_contact) == (True, "postmaster@example.com")
    assert (tls.certificate, tls.private_key) == (None, None)
    assert "\nacme = true\n" in text and '\nacme_contact = "postmaster@example.com"\n' in text
    assert '# certificate = "/etc/letsencrypt/live/mail.example.com/fullchain.pem"' in text
    assert not (tmp_path / "tls").exists()
    listeners = {(li.role, li.address, li.port, li.tls) for li in result.config.listeners}
    assert ("http", "0.0.0.0", 80, "none") in listeners  # RFC 8555 §8.3: HTTP-01 on port 80
    assert ("inbound", "0.0.0.0", 25, "starttls") in listeners


def test_init_acme_config_passes_the_check_before_any_certificate(tmp_path: Path) -> None:
    from mailwright.server import check_config

    result = _init(tmp_path, inbound=True, acme=True, data_dir=tmp_path / "data")
    config = dataclasses.replace(result.config, allow_root=True)  # the tests run as root
    _, findings = check_config(config, False)
    tls = [f for f in findings if f.check == "tls"]
    assert [(f.status, f.detail) for f in tls] == [
        (
            "ok",
            "acme: mail.example.com from https://acme-v02.api.letsencrypt.org/directory; "
            "none issued yet: TLS serves a self-signed certificate until the log says "
            "certificate-issued",
        )
    ]


def test_init_acme_names_every_setting_and_round_trips(tmp_path: Path) -> None:
    result = _init(tmp_path, acme=True, acme_contact="ops@example.net")
    config = load_config(result.config_path)
    assert config.tls.acme_contact == "ops@example.net"
    text = result.config_path.read_text()
    for key in ("acme_names", "acme_directory", "acme_ca_file", "certificate", "private_key"):
        assert re.search(rf"^(# )?{key} = ", text, re.M), key
    again = tmp_path / "again.toml"
    again.write_text(render_config(config, tmp_path))
    assert dataclasses.replace(load_config(again), path=None) == dataclasses.replace(
        config, path=None
    )


def test_cli_init_acme_contact_implies_acme_and_a_bad_one_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["init", "example.com", "--ip", "192.0.2.10", "--dir", str(tmp_path)]
    done = CliRunner().invoke(cli, [*args, "--acme-contact", "ops@example.net"])
    assert done.exit_code == 0, done.output
    tls = load_config(tmp_path / "mailwright.toml").tls
    assert (tls.acme, tls.acme_contact) == (True, "ops@example.net")
    with pytest.raises(SystemExit) as info:
        main([*args, "--force", "--acme-contact", "ops example.net"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --acme-contact 'ops example.net' is not an address (write e.g. you@example.com)"
    )
