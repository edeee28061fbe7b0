"""``mailwright dkim rotate`` end to end against Knot DNS (issue 17 item 12): the new key is
published by dynamic update; signing switches only when the primary and a secondary both
serve it and a test signature verifies; the old key stays for the overlap, then goes.
No message is ever signed with a key that is not visible."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwright.cli.main import main
from mailwright.config import load_config
from mailwright.dkim import load_signing_key, sign_message, verify_message
from mailwright.dns import DnspythonResolver
from mailwright.setup.apply import query_rrset
from mailwright.testing.knot import KnotServer

pytestmark = pytest.mark.integration

DOMAIN = "example.test"
HOST = f"mail.{DOMAIN}"
IP = "127.0.0.25"


@pytest.fixture
def knot() -> Iterator[tuple[KnotServer, KnotServer]]:
    with KnotServer({DOMAIN: ""}) as primary, KnotServer(primary=primary) as secondary:
        yield primary, secondary


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    out, err = capsys.readouterr()
    return code, out, err


def signs_and_verifies_everywhere(config_path: Path, servers: list[KnotServer]) -> str:
    """Sign as the server would with the config's RSA key; verify at every server."""
    config = load_config(str(config_path))
    entry = next(k for k in config.dkim if k.algorithm == "rsa")
    key = load_signing_key(entry.private_key, entry.domain, entry.selector)
    message = f"From: app@{DOMAIN}\r\nTo: x@example.net\r\nSubject: hi\r\n\r\nhello\r\n".encode()
    signed = sign_message(message, [key]) + message
    for server in servers:
        results = asyncio.run(verify_message(signed, DnspythonResolver(server.nameserver)))
        assert results[0].ok, (server.nameserver, results[0].reason)
    return entry.selector


def test_rotation_end_to_end(
    knot: tuple[KnotServer, KnotServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primary, secondary = knot
    code, _, err = run(["init", DOMAIN, "--ip", IP, "--hostname", HOST, "--dir", str(tmp_path)],
                       capsys)  # fmt: skip
    assert code == 0, err
    config = tmp_path / "mailwright.toml"
    key = tmp_path / "update.key"
    key.write_text(primary.key_file_text())
    both = ["--authoritative", primary.nameserver, "--authoritative", secondary.nameserver]
    update = ["--server", primary.nameserver, "--tsig-key", str(key)]
    code, out, err = run(["--config", str(config), "records", "apply", *update, *both, "--yes"],
                         capsys)  # fmt: skip
    assert code == 0, out + err
    assert signs_and_verifies_everywhere(config, [primary, secondary]) == "mail"

    # A secondary that never answers: the new key is published but not visible there, so
    # signing must stay with the old key.
    dead = ["--authoritative", primary.nameserver, "--authoritative", "127.0.0.1:9"]
    base = ["--config", str(config), "dkim", "rotate", "--selector", "mail", "--json"]
    code, out, err = run([*base, *update, *dead, "--wait", "1", "--new-selector", "mail2"],
                         capsys)  # fmt: skip
    assert code == 1, out + err
    state = json.loads(out)
    assert state["phase"] == "published" and state["new_selector"] == "mail2"
    assert any("not visible yet at 127.0.0.1:9" in e for e in state["events"])
    assert 'selector = "mail"' in config.read_text()  # not switched
    assert signs_and_verifies_everywhere(config, [primary, secondary]) == "mail"

    # Both real servers: visible at both (the secondary after its refresh), testkey passes,
    # the config switches; the old record stays for the overlap.
    code, out, err = run([*base, *update, *both, "--wait", "30", "--overlap", "0s"], capsys)
    assert code == 0, out + err
    state = json.loads(out)
    assert state["phase"] == "switched" or state["phase"] == "done"
    assert 'selector = "mail2"' in config.read_text()
    assert "example.test.mail2.rsa.pem" in config.read_text()
    assert signs_and_verifies_everywhere(config, [primary, secondary]) == "mail2"
    if state["phase"] == "switched":  # the overlap (0 s) ends at the next run
        code, out, err = run([*base, *update, *both], capsys)
        assert code == 0, out + err
        assert json.loads(out)["phase"] == "done"
    assert query_rrset(f"mail._domainkey.{DOMAIN}", "TXT", primary.address) == []
    assert query_rrset(f"mail2._domainkey.{DOMAIN}", "TXT", primary.address) != []
    # the Ed25519 key was not touched
    assert 'selector = "mail-ed"' in config.read_text()


def test_overlap_keeps_the_old_record(
    knot: tuple[KnotServer, KnotServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primary, _ = knot
    run(["init", DOMAIN, "--ip", IP, "--hostname", HOST, "--dir", str(tmp_path)], capsys)
    config = tmp_path / "mailwright.toml"
    key = tmp_path / "update.key"
    key.write_text(primary.key_file_text())
    update = ["--server", primary.nameserver, "--tsig-key", str(key)]
    auth = ["--authoritative", primary.nameserver]
    run(["--config", str(config), "records", "apply", *update, *auth, "--yes"], capsys)
    base = ["--config", str(config), "dkim", "rotate", "--selector", "mail-ed", *update, *auth]
    code, out, err = run([*base, "--json"], capsys)  # default overlap: 7 days
    assert code == 0, out + err
    state = json.loads(out)
    assert state["phase"] == "switched" and state["seconds_left"] > 6 * 86400
    assert query_rrset(f"mail-ed._domainkey.{DOMAIN}", "TXT", primary.address) != []
    new = state["new_selector"]
    assert new.startswith("mail-ed2") and f'selector = "{new}"' in config.read_text()
    code, out, _ = run([*base], capsys)  # again: still within the overlap
    assert code == 0 and "stays published until" in out


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["init", DOMAIN, "--ip", IP, "--hostname", HOST, "--dir", str(tmp_path)], capsys)
    config = ["--config", str(tmp_path / "mailwright.toml"), "dkim", "rotate"]
    code, _, err = run([*config, "--authoritative", "127.0.0.1:9"], capsys)
    assert code == 2 and "--domain and --selector" in err  # two keys: which one?
    code, _, err = run([*config, "--selector", "mail"], capsys)
    assert code == 2 and "--authoritative" in err
    code, _, err = run([*config, "--selector", "mail", "--server", "127.0.0.1:9"], capsys)
    assert code == 2 and "go together" in err


# -- [dkim_rotation] every: serve's schedule ----------------------------------------------------


def test_scheduled_rotation_of_due_keys(
    knot: tuple[KnotServer, KnotServer], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import time

    from mailwright.setup.rotation import scheduled_step

    primary, secondary = knot
    run(["init", DOMAIN, "--ip", IP, "--hostname", HOST, "--dir", str(tmp_path)], capsys)
    config_path = tmp_path / "mailwright.toml"
    key = tmp_path / "update.key"
    key.write_text(primary.key_file_text())
    update = ["--server", primary.nameserver, "--tsig-key", str(key)]
    auth = ["--authoritative", primary.nameserver]
    run(["--config", str(config_path), "records", "apply", *update, *auth, "--yes"], capsys)
    # init wrote the [dkim_rotation] table with its defaults: fill it in
    text = config_path.read_text()
    assert text.count("\n[dkim_rotation]\n") == 1 and "\nauthoritative = []\n" in text
    text = text.replace(
        "\n[dkim_rotation]\n",
        f'\n[dkim_rotation]\nevery = "180d"\nserver = "{primary.nameserver}"\ntsig_key = "{key}"\n',
    ).replace(
        "\nauthoritative = []\n",
        f'\nauthoritative = ["{primary.nameserver}", "{secondary.nameserver}"]\n',
    )
    config_path.write_text(text)
    config = load_config(str(config_path))
    assert config.dkim_rotation.every == 180 * 86400
    events, switched = scheduled_step(config)
    assert (events, switched) == ([], False)  # the keys are new: nothing is due
    old = time.time() - 181 * 86400
    for entry in config.dkim:
        os.utime(entry.private_key, (old, old))
    events, switched = scheduled_step(load_config(str(config_path)), wait=30)
    assert switched, events
    text = config_path.read_text()
    assert 'selector = "mail"\n' not in text and 'selector = "mail-ed"\n' not in text
    assert signs_and_verifies_everywhere(config_path, [primary, secondary]).startswith("mail2")
    events, switched = scheduled_step(load_config(str(config_path)), wait=30)
    assert not switched and all("stays published until" in e for e in events), events


async def test_serve_schedule_reloads_after_a_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from mailwright.config import Config
    from mailwright.setup import rotation

    monkeypatch.setattr(rotation, "scheduled_step", lambda config: (["k: switched"], True))
    logged: list[tuple[str, dict[str, object]]] = []
    reloaded = asyncio.Event()
    task = asyncio.create_task(
        rotation.rotate_on_schedule(
            Config, lambda event, **kw: logged.append((event, kw)), reloaded.set, first_delay=0
        )
    )
    await asyncio.wait_for(reloaded.wait(), 5)
    task.cancel()
    assert logged == [("config", {"what": "dkim-rotation", "reason": "k: switched"})]


def test_rotation_config_errors(tmp_path: Path) -> None:
    from mailwright.config import ConfigError

    path = tmp_path / "c.toml"
    path.write_text('[dkim_rotation]\nevery = "1h"\n')
    with pytest.raises(ConfigError, match="more than once a day"):
        load_config(str(path))
    path.write_text('[dkim_rotation]\nevery = "soon"\n')
    with pytest.raises(ConfigError, match="not a duration"):
        load_config(str(path))
