"""API keys: made once, stored as a hash, found in constant time; the config and the
``passwd --api-key`` command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailwright.apikeys import ApiKeys, BadKeyHash, hash_key, new_key, parse_key_hash
from mailwright.config import parse_config
from mailwright.errors import ConfigError


def test_key_is_random_and_hash_verifies() -> None:
    one, two = new_key(), new_key()
    assert one != two and one.startswith("mwk_") and len(one) == 4 + 43
    keys = ApiKeys([("app", hash_key(one), ["send"])])
    found = keys.find(one)
    assert found is not None and found.name == "app" and found.allows("send")
    assert not found.allows("read")
    assert keys.find(two) is None
    assert keys.find("") is None


def test_admin_allows_every_scope() -> None:
    key = new_key()
    found = ApiKeys([("ops", hash_key(key), ["admin"])]).find(key)
    assert found is not None and all(found.allows(s) for s in ("send", "read", "metrics"))


@pytest.mark.parametrize("bad", ["", "$scrypt$x", "$sha256$!!", "$sha256$AAAA"])
def test_bad_hash_refused(bad: str) -> None:
    with pytest.raises(BadKeyHash):
        parse_key_hash(bad)


def test_config_api_keys() -> None:
    key = new_key()
    config = parse_config(
        {"api_keys": [{"name": "app", "hash": hash_key(key), "scopes": ["send", "read"]}]}
    )
    assert config.api_keys[0].scopes == ("send", "read")
    with pytest.raises(ConfigError, match=re.escape("api_keys[0].scopes")):
        parse_config({"api_keys": [{"name": "a", "hash": hash_key(key), "scopes": ["root"]}]})
    with pytest.raises(ConfigError, match=re.escape("api_keys[0].hash")):
        parse_config({"api_keys": [{"name": "a", "hash": "plain", "scopes": ["send"]}]})
    with pytest.raises(ConfigError, match=re.escape("http.password_hash")):
        parse_config({"http": {"password_hash": "plain"}})


def test_passwd_api_key_prints_key_once_and_block(tmp_path: Path) -> None:
    mailwright = Path(sys.executable).parent / "mailwright"
    out = subprocess.run(
        [mailwright, "passwd", "--api-key", "shop", "--scope", "send", "--scope", "read"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    key, _, block = out.partition("\n\n")
    assert key.startswith("mwk_")
    config = tmp_path / "m.toml"
    config.write_text(block)
    from mailwright.config import load_config

    loaded = load_config(config).api_keys[0]
    assert loaded.name == "shop" and loaded.scopes == ("send", "read")
    assert ApiKeys([(loaded.name, loaded.hash, loaded.scopes)]).find(key.strip()) is not None
    assert key.strip() not in block
    bad = subprocess.run([mailwright, "passwd", "--api-key"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--api-key needs a name" in bad.stderr
