"""The [delivery] settings this package reads, parsed from TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwright.config import parse_config
from mailwright.errors import ConfigError


def test_relay_settings_with_ca_file_relative_to_the_config(tmp_path: Path) -> None:
    config = parse_config(
        {
            "delivery": {
                "relay": {
                    "url": "smtps://app@smtp.example.net",
                    "password_env": "RELAY_PW",
                    "ca_file": "certs/relay-ca.pem",
                },
                "retry": {"delay_warning": 14400},
            }
        },
        tmp_path / "mailwright.toml",
    )
    relay = config.delivery.relay
    assert config.delivery.mode == "relay"  # a relay without a mode means relay mode
    assert relay is not None and relay.ca_file == tmp_path / "certs/relay-ca.pem"
    assert relay.password_env == "RELAY_PW"
    assert config.delivery.retry.delay_warning == 14400
    assert config.delivery.retry.first_retry == 300


def test_unknown_relay_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"delivery\.relay\.ca_flie.*did you mean 'ca_file'"):
        parse_config({"delivery": {"relay": {"url": "smtp://h", "ca_flie": "x"}}})
