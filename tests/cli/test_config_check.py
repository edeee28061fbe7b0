"""``mailwright config check``: what serve would refuse is refused here, with the same line."""

from __future__ import annotations

import json
from pathlib import Path

from mailwright.testing.ports import free_port
from mailwright.testing.tls import make_certificate

from .helpers import CliRun, assert_one_line_error


def _config(tmp_path: Path, extra: str = "", listeners: str | None = None) -> Path:
    keys = tmp_path / "keys"
    if not keys.exists():
        from mailwright.dkim import generate_key, write_key_files

        write_key_files(keys, "s1", "example.com", generate_key("ed25519"))
    config = tmp_path / "mailwright.toml"
    if listeners is None:
        listeners = f'[[listeners]]\nname = "sub"\nport = {free_port()}\n'
    config.write_text(
        'hostname = "mail.example.com"\ndomains = ["example.com"]\n'
        'mailboxes = ["admin@example.com"]\ndata_dir = "data"\nallow_root = true\n'
        f"{extra}\n"
        '[[dkim]]\ndomain = "example.com"\nselector = "s1"\nprivate_key = "keys/s1.private"\n'
        f"{listeners}"
    )
    return config


def test_a_good_config_passes(cli_run: CliRun, tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = cli_run("--config", str(config), "config", "check")
    assert result.code == 0, result
    assert result.out.startswith(f"ok {config}")
    assert "example.com selector s1" in result.out
    data = json.loads(cli_run("--config", str(config), "config", "check", "--json").out)
    assert data["ok"] is True and data["error"] is None
    assert {c["check"] for c in data["checks"]} >= {"listener", "dkim", "delivery", "users"}
    assert all(c["status"] in ("ok", "note", "warn") for c in data["checks"])


def test_development_mode_without_a_file(cli_run: CliRun) -> None:
    result = cli_run("config", "check")
    assert result.code == 0, result
    assert "development mode" in result.out and "made at first start" in result.out


def test_a_missing_dkim_key_is_the_one_line_error(cli_run: CliRun, tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "keys" / "s1.private").unlink()
    result = cli_run("--config", str(config), "config", "check")
    assert_one_line_error(result, "s1.private", "dkim genkey")
    as_json = cli_run("--config", str(config), "config", "check", "--json")
    assert as_json.code == 2
    data = json.loads(as_json.out)
    assert data["ok"] is False and "s1.private" in data["error"]


def test_a_key_that_is_not_the_certificates_is_refused(cli_run: CliRun, tmp_path: Path) -> None:
    one = make_certificate(tmp_path / "one", "mail.example.com")
    two = make_certificate(tmp_path / "two", "mail.example.com")
    config = _config(
        tmp_path, f'[tls]\ncertificate = "{one.certificate}"\nprivate_key = "{two.private_key}"\n'
    )
    result = cli_run("--config", str(config), "config", "check")
    assert_one_line_error(
        result, "tls:", str(one.certificate), "key must belong to the certificate"
    )


def test_a_missing_certificate_names_the_path(cli_run: CliRun, tmp_path: Path) -> None:
    config = _config(tmp_path, '[tls]\ncertificate = "nope.pem"\nprivate_key = "nope.key"\n')
    result = cli_run("--config", str(config), "config", "check")
    assert_one_line_error(result, "nope.pem", "No such file")


def test_a_certificate_about_to_expire_is_a_warning(cli_run: CliRun, tmp_path: Path) -> None:
    files = make_certificate(tmp_path / "tls", "mail.example.com")  # valid for two days
    config = _config(
        tmp_path,
        f'[tls]\ncertificate = "{files.certificate}"\nprivate_key = "{files.private_key}"\n',
    )
    data = json.loads(cli_run("--config", str(config), "config", "check", "--json").out)
    assert data["ok"] is True
    warnings = [c["detail"] for c in data["checks"] if c["status"] == "warn"]
    assert any("expires in" in w for w in warnings), data
    tls = [c["detail"] for c in data["checks"] if c["check"] == "tls" and c["status"] == "ok"]
    assert tls and "mail.example.com" in tls[0] and "valid until" in tls[0]


def test_two_listeners_on_one_port(cli_run: CliRun, tmp_path: Path) -> None:
    port = free_port()
    listeners = "".join(f'[[listeners]]\nname = "{n}"\nport = {port}\n' for n in ("a", "b"))
    result = cli_run("--config", str(_config(tmp_path, listeners=listeners)), "config", "check")
    assert_one_line_error(result, "listeners a and b both use", f"127.0.0.1:{port}")


def test_an_address_of_another_machine(cli_run: CliRun, tmp_path: Path) -> None:
    listeners = '[[listeners]]\nname = "far"\naddress = "192.0.2.77"\nport = 2525\n'
    result = cli_run("--config", str(_config(tmp_path, listeners=listeners)), "config", "check")
    assert_one_line_error(result, "192.0.2.77 is not an address of this machine")


def test_an_unreadable_relay_password(cli_run: CliRun, tmp_path: Path) -> None:
    relay = (
        '[delivery]\nmode = "relay"\n[delivery.relay]\n'
        'url = "smtp://app@smtp.example.net:587"\npassword_file = "missing-password"\n'
    )
    result = cli_run("--config", str(_config(tmp_path, relay)), "config", "check")
    assert_one_line_error(result, "password_file", "cannot read")
