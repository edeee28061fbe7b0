"""The config file: every mistake is a ConfigError naming the file, the key and the fix."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from mailwright.config import (
    DEFAULT_MESSAGE_SIZE_LIMIT,
    Config,
    find_config,
    load_config,
)
from mailwright.errors import ConfigError, UserError


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "mailwright.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _error(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "mailwright.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert error.path == str(path)
    assert str(error).startswith(f"{path}: ")
    assert "\n" not in str(error)  # one line on the terminal
    return error


# -- a good file ---------------------------------------------------------------------------


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert config.path == tmp_path / "mailwright.toml"
    assert config.hostname == "localhost"
    assert config.domains == ()
    assert config.dns.nameserver is None
    assert config.dns.timeout == 5.0
    assert config.message_size_limit == DEFAULT_MESSAGE_SIZE_LIMIT
    assert config.delivery.mode == "local"
    assert [(lst.address, lst.port) for lst in config.listeners] == [("127.0.0.1", 2525)]
    assert config.data_dir == tmp_path / "mailwright-data"


def test_full_file(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
hostname = "Mail.Example.COM."
domains = ["example.com", "example.org"]
ipv4 = ["192.0.2.10"]
ipv6 = ["2001:db8::25"]
trusted_networks = ["10.0.0.0/8", "192.0.2.1"]
message_size_limit = 20000000
workers = 2

[dns]
nameserver = "127.0.0.1:5353"
timeout = 2

[[dkim]]
domain = "example.com"
selector = "s1"
private_key = "keys/s1.pem"
algorithm = "ed25519"

[[listeners]]
name = "inbound"
address = "::"
port = 25
role = "inbound"

[delivery]
mode = "relay"
[delivery.relay]
url = "smtp://app@smtp.example.net:587"
password_env = "RELAY_PASSWORD"
[delivery.retry]
first_retry = 60

[aliases]
"postmaster@example.com" = "admin@example.com"
"@example.org" = ["a@example.com", "b@example.com"]

[inbound]
dmarc_enforcement = "report-only"

[log]
file = "/var/log/mailwright.log"
""",
    )
    assert config.hostname == "mail.example.com"
    assert config.domains == ("example.com", "example.org")
    assert config.trusted_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.1/32"),
    )
    assert config.dns.nameserver == "127.0.0.1:5353"
    assert config.dns.timeout == 2.0 and isinstance(config.dns.timeout, float)
    assert config.dkim[0].algorithm == "ed25519"
    assert config.dkim[0].private_key == tmp_path / "keys/s1.pem"
    assert config.listeners[0].role == "inbound"
    assert config.delivery.relay is not None
    assert config.delivery.retry.first_retry == 60
    assert config.aliases["@example.org"] == ("a@example.com", "b@example.com")
    assert config.log.file == Path("/var/log/mailwright.log")


# -- paths ---------------------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    config = load_config(_write(tmp_path / "etc", 'data_dir = "data"\n[log]\nfile = "mw.log"\n'))
    assert config.data_dir == tmp_path / "etc" / "data"
    assert config.log.file == tmp_path / "etc" / "mw.log"


def test_relative_paths_stay_put_when_the_config_path_is_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loaded as "mailwright.toml" from the current directory, the paths must still point
    # there after a later chdir (the server may change directory).
    _write(tmp_path, 'data_dir = "data"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config("mailwright.toml")
    assert config.data_dir.is_absolute()
    assert config.data_dir == tmp_path / "data"


def test_absolute_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = _load(tmp_path, 'data_dir = "/srv/mw"\n[log]\nfile = "~/mw.log"\n')
    assert config.data_dir == Path("/srv/mw")
    assert config.log.file == tmp_path / "home" / "mw.log"


def _write(directory: Path, text: str) -> Path:
    path = directory / "mailwright.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- finding the file ----------------------------------------------------------------------


def test_find_config_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWRIGHT_CONFIG", raising=False)
    assert find_config(None) is None
    _write(tmp_path, "")
    assert find_config(None) == Path("mailwright.toml")
    monkeypatch.setenv("MAILWRIGHT_CONFIG", "/etc/mailwright/mailwright.toml")
    assert find_config(None) == Path("/etc/mailwright/mailwright.toml")
    assert find_config("other.toml") == Path("other.toml")


# -- file-level problems -------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml")
    assert caught.value.key is None
    assert caught.value.problem == "file not found"
    assert caught.value.hint is not None and "mailwright init" in caught.value.hint


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert "cannot read" in caught.value.problem
    assert caught.value.hint


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    error = _error(tmp_path, 'hostname = "a"\ndomains = [1,,]\nworkers = 1\n')
    assert error.key is None
    assert "TOML syntax error" in error.problem
    assert "line 2" in error.problem
    assert error.hint


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "mailwright.toml"
    path.write_bytes(b'hostname = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problem == "not UTF-8 text"
    assert caught.value.hint == "save the file as UTF-8"


# -- every value error names file, key and fix ---------------------------------------------

CASES = [
    # (file text, key, fragment of the problem, fragment of the hint)
    ("hostnme = 'x.example'", "hostnme", "unknown setting", "did you mean 'hostname'?"),
    ("[dns]\nnameservr = '127.0.0.1'", "dns.nameservr", "unknown setting", "'nameserver'"),
    ("[dsn]\ntimeout = 1", "dsn", "unknown setting", "'dns'"),
    ("frobnicate = 1", "frobnicate", "unknown setting", "remove it"),
    ("hostname = 5", "hostname", "must be a string, not int", "quotes"),
    ("hostname = 'a..b'", "hostname", "empty label", "domain name"),
    ("workers = 1.5", "workers", "must be an integer, not float", "whole number"),
    ("workers = true", "workers", "must be an integer, not bool", "whole number"),
    ("workers = -1", "workers", "-1 is below the minimum 0", "at least 0"),
    ("message_size_limit = 10", "message_size_limit", "below the minimum 1024", "at least 1024"),
    ("[dns]\ntimeout = '5'", "dns.timeout", "must be a number, not str", "2.5"),
    ("[dns]\ntimeout = 0", "dns.timeout", "below the minimum 0.1", "at least 0.1"),
    ("[dns]\ntimeout = inf", "dns.timeout", "must be a finite number", "2.5"),
    ("[dns]\ntimeout = nan", "dns.timeout", "must be a finite number", "2.5"),
    ("[dns]\nnameserver = 'ns.example.com'", "dns.nameserver", "not an IP address", "127.0.0.1"),
    ("[dns]\nnameserver = '127.0.0.1:0'", "dns.nameserver", "port must be", "5353"),
    ("[dns]\nnameserver = '127.0.0.1:²'", "dns.nameserver", "port must be", "5353"),
    ('data_dir = "a\\u0000b"', "data_dir", "contains a NUL byte", "plain file path"),
    ("[log]\nfile = '~nosuchuser_mw/x'", "log.file", "cannot expand '~'", "absolute path"),
    (
        "[[dkim]]\ndomain = 'example.com'\nselector = 's'\nprivate_key = '~nosuchuser_mw/k'",
        "dkim[0].private_key",
        "cannot expand '~'",
        "absolute path",
    ),
    ("[dns]\nnameserver = 53", "dns.nameserver", "must be a string, not int", "quotes"),
    ("dns = 'x'", "dns", "must be a table", "[dns]"),
    ("domains = 'example.com'", "domains", "must be a list of strings", '["'),
    ("domains = [1]", "domains", "must be a list of strings", '["'),
    ("ipv4 = ['::1']", "ipv4", "'::1' is not an IPv4 address", "192.0.2.10"),
    ("ipv6 = ['192.0.2.1']", "ipv6", "is not an IPv6 address", "2001:db8::"),
    ("ipv4 = ['300.1.1.1']", "ipv4", "is not an IP address", "192.0.2.10"),
    ("trusted_networks = ['10.0.0.0/33']", "trusted_networks", "is not a network", "10.0.0.0/8"),
    ("listeners = 5", "listeners", "must be an array of tables", "[[listeners]]"),
    ("listeners = [1]", "listeners[0]", "must be a table", "[[listeners]]"),
    ("[[listeners]]\nport = 0", "listeners[0].port", "below the minimum 1", "at least 1"),
    ("[[listeners]]\nport = 70000", "listeners[0].port", "above the maximum 65535", "at most"),
    ("[[listeners]]\naddress = 'localhost'", "listeners[0].address", "not an IP", "192.0.2"),
    ("[[listeners]]\nrole = 'outbound'", "listeners[0].role", "not one of", "submission"),
    ("[[listeners]]\ntls = 'starttls'", "listeners[0].tls", "needs a certificate", "[tls]"),
    ("[[dkim]]\ndomain = 'example.com'", "dkim[0].selector", "is required", "selector ="),
    ("[[dkim]]\nselector = 's'\nprivate_key = 'k'", "dkim[0].domain", "is required", "domain ="),
    ("[[dkim]]\ndomain = 'example.com'\nselector = 's'", "dkim[0].private_key", "is required", ""),
    (
        "[[dkim]]\ndomain = 'example.com'\nselector = 's'\nprivate_key = 'k'\nalgorithm = 'dsa'",
        "dkim[0].algorithm",
        "not one of rsa, ed25519",
        "rsa",
    ),
    ("[tls]\ncertificate = 'c.pem'", "tls.private_key", "missing", "private_key ="),
    ("[tls]\nprivate_key = 'k.pem'", "tls.certificate", "missing", "certificate ="),
    ("[delivery]\nmode = 'relay'", "delivery.mode", "needs [delivery.relay] url", "relay URL"),
    ("[delivery.relay]\nurl = 'http://x'", "delivery.relay.url", "not an smtp://", "smtp://"),
    ("[delivery.relay]\npassword_env = 'X'", "delivery.relay.url", "is required", "url ="),
    ("[delivery.retry]\nfirst_retry = 0", "delivery.retry.first_retry", "below", "at least 1"),
    ("[aliases]\n'a@example.com' = 5", "aliases.a@example.com", "address or a list", "="),
    ("[inbound]\nsend_aggregate_reports = 'yes'", "inbound.send_aggregate_reports", "true", "true"),
    ("[[users]]\nname = 'app'", "users[0].password_hash", "is required", "password_hash ="),
]


@pytest.mark.parametrize(("text", "key", "problem", "hint"), CASES)
def test_errors_name_file_key_and_fix(
    tmp_path: Path, text: str, key: str, problem: str, hint: str
) -> None:
    error = _error(tmp_path, text)
    assert error.key == key
    assert problem in error.problem
    assert error.hint, f"no fix suggested for {key}: {error.problem}"
    assert hint in error.hint
    assert isinstance(error, UserError)


# -- the application's loop: [bounces], [suppression], [events], [[webhooks]] ---------------


def test_loop_settings(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        "strict_8bitmime = true\nrequire_dkim = true\n"
        '[bounces]\nverp = false\nlocal_part = "Returns"\ntoken_max_age_days = 10\n'
        "[suppression]\nsoft_bounce_limit = 3\nsoft_bounce_days = 2\n"
        "[events]\nretention_days = 7\n"
        '[[webhooks]]\nurl = "https://app.example/hook"\nsecret = "whsec_0123456789abcdef"\n'
        'events = ["bounced", "complained"]\ntimeout = 5\n',
    )
    assert config.strict_8bitmime and config.require_dkim
    assert (config.bounces.verp, config.bounces.local_part) == (False, "returns")
    assert config.suppression.soft_bounce_limit == 3 and config.events.retention_days == 7
    [hook] = config.webhooks
    assert hook.events == ("bounced", "complained") and hook.timeout == 5.0


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('[[webhooks]]\nurl = "ftp://x"\nsecret = "0123456789abcdef"\n', "url", "http(s) URL"),
        ('[[webhooks]]\nurl = "https://x"\nsecret = "short"\n', "secret", "shorter than 16"),
        (
            '[[webhooks]]\nurl = "https://x"\nsecret = "0123456789abcdef"\nevents = ["sent"]\n',
            "events",
            "not an event type",
        ),
        ('[[webhooks]]\nsecret = "0123456789abcdef"\n', "url", "is required"),
        ('[bounces]\nlocal_part = "a b"\n', "local_part", "not a plain local part"),
        ("[suppression]\nsoft_bounce_limit = 0\n", "soft_bounce_limit", "below the minimum"),
    ],
)
def test_bad_loop_settings_name_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    error = _error(tmp_path, text)
    assert error.key is not None and error.key.endswith(key) and words in error.problem
