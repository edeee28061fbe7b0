"""``mailwright dkim`` commands run as a user would, against the real NSD fixture."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mailwright.dkim import load_private_key, parse_key_record, txt_strings
from mailwright.dkim.keys import public_keys_match
from mailwright.testing.nsd import NsdServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "testdata" / "dkim"
DOMAIN = "cli.example"
MESSAGE = (
    b"From: App <app@cli.example>\n"
    b"To: user@example.net\n"
    b"Subject: Your receipt\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0000\n"
    b"Message-ID: <r-1@cli.example>\n"
    b"\n"
    b"Thanks for your order.\n"
)


def mw(
    *args: str, input: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["uv", "run", "--quiet", "--project", str(REPO), "mailwright", *args],
        input=input,
        capture_output=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def genkey(tmp_path: Path, selector: str, *extra: str) -> Path:
    proc = mw("dkim", "genkey", "-d", DOMAIN, "-s", selector, "--directory", str(tmp_path), *extra)
    assert proc.returncode == 0, proc.stderr
    return tmp_path / f"{selector}.private"


def publish(world: NsdServer, tmp_path: Path, *selectors: str) -> None:
    """Serve the SELECTOR.txt files genkey wrote, as a zone file would carry them."""
    lines = []
    for selector in selectors:
        text = (tmp_path / f"{selector}.txt").read_text()
        rr = text.split(";  -----")[0] if ";  -----" in text else text.split(")  ;")[0] + ")"
        lines.append(rr.replace("\t", " "))
    world.set_zone(DOMAIN, "\n".join(lines) + "\n")


def test_genkey_files(tmp_path: Path) -> None:
    private = genkey(tmp_path, "s2026")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    txt = (tmp_path / "s2026.txt").read_text()
    assert txt.startswith('s2026._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k=rsa; "')
    assert txt.endswith(f"; ----- DKIM key s2026 for {DOMAIN}\n")
    strings = [s for s in txt.split('"')[1::2]]
    assert all(len(s) <= 255 for s in strings)
    record = parse_key_record("".join(strings))
    assert record.bits == 2048 and not record.testing
    assert record.public_key is not None
    assert public_keys_match(load_private_key(private.read_bytes()), record.public_key)
    # never overwritten without --force
    before = private.read_bytes()
    proc = mw("dkim", "genkey", "-d", DOMAIN, "-s", "s2026", "--directory", str(tmp_path))
    assert proc.returncode == 2
    assert b"already exists" in proc.stderr
    assert private.read_bytes() == before
    genkey(tmp_path, "s2026", "--force", "--algorithm", "ed25519", "--testing")
    assert private.read_bytes() != before
    record = parse_key_record("".join((tmp_path / "s2026.txt").read_text().split('"')[1::2]))
    assert (record.key_type, record.testing) == ("ed25519", True)


def test_genkey_sizes(tmp_path: Path) -> None:
    proc = mw(
        "dkim", "genkey", "-d", DOMAIN, "-s", "weak", "--bits", "512", "--directory", str(tmp_path)
    )
    assert proc.returncode == 2
    assert b"RFC 8301" in proc.stderr
    assert not (tmp_path / "weak.private").exists()
    proc = mw(
        "dkim",
        "genkey",
        "-d",
        DOMAIN,
        "-s",
        "k1024",
        "--bits",
        "1024",
        "--directory",
        str(tmp_path),
    )
    assert proc.returncode == 0
    assert b"warning:" in proc.stderr


def _testkey(world: NsdServer, selector: str, key: Path) -> tuple[int, dict[str, Any]]:
    proc = mw("--nameserver", world.nameserver, "dkim", "testkey", "-d", DOMAIN, "-s", selector,
              "-k", str(key), "--json")  # fmt: skip
    return proc.returncode, json.loads(proc.stdout)


def _statuses(data: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["status"] for c in data["checks"]}


def test_testkey(dns_world: NsdServer, tmp_path: Path) -> None:
    good = genkey(tmp_path, "good")
    testing = genkey(tmp_path, "trial", "--testing", "--algorithm", "ed25519")
    other = genkey(tmp_path / "elsewhere", "good")  # same selector, different key
    publish(dns_world, tmp_path, "good", "trial")

    rc, data = _testkey(dns_world, "good", good)
    assert rc == 0
    assert data["result"] == "ok"
    assert data["name"] == f"good._domainkey.{DOMAIN}"
    assert (data["key_type"], data["key_bits"], data["testing"]) == ("rsa", 2048, False)
    assert _statuses(data) == {"record": "ok", "syntax": "ok", "match": "ok", "size": "ok"}

    rc, data = _testkey(dns_world, "good", other)
    assert rc == 1
    assert data["result"] == "fail"
    assert _statuses(data)["match"] == "fail"

    rc, data = _testkey(dns_world, "trial", testing)
    assert rc == 0
    assert data["testing"] is True
    assert _statuses(data) == {
        "record": "ok", "syntax": "ok", "match": "ok", "size": "ok", "testing": "warn"
    }  # fmt: skip

    rc, data = _testkey(dns_world, "missing", good)
    assert rc == 1
    assert data["record"] is None
    assert data["checks"] == [
        {
            "check": "record",
            "status": "fail",
            "detail": f"no TXT record at missing._domainkey.{DOMAIN} (nxdomain)",
        }
    ]
    # the human form says the same and exits the same way
    proc = mw("--nameserver", dns_world.nameserver, "dkim", "testkey", "-d", DOMAIN, "-s", "good",
              "-k", str(other))  # fmt: skip
    assert proc.returncode == 1
    assert b"does not match" in proc.stdout


def test_sign_and_verify(dns_world: NsdServer, tmp_path: Path) -> None:
    rsa = genkey(tmp_path, "rsa1")
    ed = genkey(tmp_path, "ed1", "--algorithm", "ed25519")
    publish(dns_world, tmp_path, "rsa1", "ed1")
    once = mw("dkim", "sign", "-d", DOMAIN, "-s", "rsa1", "-k", str(rsa), input=MESSAGE)
    assert once.returncode == 0, once.stderr
    assert once.stdout.endswith(MESSAGE)  # the message passes through byte for byte
    assert b"\r" not in once.stdout  # an LF message gets an LF signature field
    twice = mw("dkim", "sign", "-d", DOMAIN, "-s", "ed1", "-k", str(ed), "-c", "simple/simple",
               input=once.stdout)  # fmt: skip
    assert twice.returncode == 0, twice.stderr
    proc = mw("--nameserver", dns_world.nameserver, "dkim", "verify", "--json", input=twice.stdout)
    assert proc.returncode == 0, proc.stdout
    data = json.loads(proc.stdout)
    assert data["result"] == "pass"
    assert [(s["index"], s["result"], s["selector"], s["algorithm"], s["canonicalization"])
            for s in data["signatures"]] == [
        (0, "pass", "ed1", "ed25519-sha256", "simple/simple"),
        (1, "pass", "rsa1", "rsa-sha256", "relaxed/relaxed"),
    ]  # fmt: skip
    assert set(data["signatures"][0]) == {
        "index", "result", "reason", "domain", "selector", "algorithm", "identity",
        "canonicalization", "key_bits", "body_hash_ok", "testing", "timestamp", "expiration",
        "signed_headers", "header_b",
    }  # fmt: skip
    # human output: one line per signature
    proc = mw("--nameserver", dns_world.nameserver, "dkim", "verify", input=twice.stdout)
    assert proc.returncode == 0
    assert proc.stdout.decode().splitlines() == [
        f"pass d={DOMAIN} s=ed1 a=ed25519-sha256 256 bits: signature verified",
        f"pass d={DOMAIN} s=rsa1 a=rsa-sha256 2048 bits: signature verified",
    ]
    # tampering: exit 1, body hash reported apart
    proc = mw("--nameserver", dns_world.nameserver, "dkim", "verify", "--json",
              input=twice.stdout.replace(b"Thanks", b"Thank"))  # fmt: skip
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["result"] == "fail"
    assert [s["body_hash_ok"] for s in data["signatures"]] == [False, False]
    # unsigned: exit 1, result none
    proc = mw("--nameserver", dns_world.nameserver, "dkim", "verify", "--json", input=MESSAGE)
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == {"result": "none", "signatures": []}


def test_sign_refusals(tmp_path: Path) -> None:
    key = genkey(tmp_path, "k")
    proc = mw(
        "dkim", "sign", "-d", DOMAIN, "-s", "k", "-k", str(key), input=b"To: x@example.net\n\nhi\n"
    )
    assert proc.returncode == 2
    assert b"no From" in proc.stderr
    proc = mw("dkim", "sign", "-d", DOMAIN, "-s", "k", "-k", str(key), "--algorithm",
              "ed25519-sha256", input=MESSAGE)  # fmt: skip
    assert proc.returncode == 2
    proc = mw("dkim", "sign", "-d", DOMAIN, "-s", "k", "-k", str(tmp_path / "nope"), input=MESSAGE)
    assert proc.returncode == 2


def test_verify_rfc8463_example_through_nsd(dns_world: NsdServer) -> None:
    records = [line.split(" ", 1) for line in (DATA / "rfc8463/dns.txt").read_text().splitlines()]
    zone = []
    for name, value in records:
        strings = " ".join(f'"{s}"' for s in txt_strings(value))
        zone.append(f"{name.removesuffix('.football.example.com')} TXT {strings}")
    dns_world.set_zone("football.example.com", "\n".join(zone) + "\n")
    proc = mw("--nameserver", dns_world.nameserver, "dkim", "verify", "--json",
              input=(DATA / "rfc8463/signed.eml").read_bytes())  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    data = json.loads(proc.stdout)
    assert [(s["result"], s["algorithm"], s["key_bits"]) for s in data["signatures"]] == [
        ("pass", "ed25519-sha256", 256),
        ("pass", "rsa-sha256", 1024),
    ]


def test_verify_prints_hostile_values_literally(dns_world: NsdServer, tmp_path: Path) -> None:
    """Tag values come from the message: rich markup in them is printed, not interpreted."""
    key = genkey(tmp_path, "k")
    signed = mw("dkim", "sign", "-d", DOMAIN, "-s", "k", "-k", str(key), input=MESSAGE).stdout
    hostile = signed.replace(f"d={DOMAIN};".encode(), b"d=[/][bold red]x[/bold red];", 1)
    proc = mw("--nameserver", dns_world.nameserver, "dkim", "verify", input=hostile)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.decode().strip() == (
        "permerror d=[/][bold s=k a=rsa-sha256: "  # what could be read of d= before the space
        "d='[/][bold red]x[/bold red]' is not a domain name"
    )


def test_genkey_matches_opendkim_genkey_layout(tmp_path: Path) -> None:
    """Our SELECTOR.txt has the layout opendkim-genkey writes; each reads the other's files."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    theirs.mkdir()
    genkey(ours, "sel", "--testing")
    subprocess.run(
        ["opendkim-genkey", "-D", str(theirs), "-d", DOMAIN, "-s", "sel", "-h", "sha256", "-t"],
        check=True,
        timeout=60,
    )
    layout = re.compile(
        r'sel\._domainkey\tIN\tTXT\t\( "v=DKIM1; h=sha256; k=rsa; t=y; "'
        r'(\n\t  "p=[A-Za-z0-9+/=]{1,253}")(\n\t  "[A-Za-z0-9+/=]{1,255}")* \)  '
        rf"; ----- DKIM key sel for {re.escape(DOMAIN)}\n"
    )
    for directory in (ours, theirs):
        text = (directory / "sel.txt").read_text()
        assert layout.fullmatch(text), text
        record = parse_key_record("".join(text.split('"')[1::2]))
        assert record.public_key is not None and record.testing
        private = load_private_key((directory / "sel.private").read_bytes())
        assert public_keys_match(private, record.public_key)


def test_verify_now_option_with_expiring_signature(dns_world: NsdServer) -> None:
    """stalwart-mail-auth 005 has x=1667930064: it passes at its time, fails today."""
    dns, _, message = (DATA / "stalwart-mail-auth/005.txt").read_bytes().partition(b"\n\n")
    name, _, value = dns.decode().strip().partition(" ")
    strings = " ".join(f'"{s}"' for s in txt_strings(value))
    dns_world.set_zone("topicbox.com", f"{name.removesuffix('.topicbox.com')} TXT {strings}\n")
    args = ["--nameserver", dns_world.nameserver, "dkim", "verify", "--json"]
    then = mw(*args, "--now", "1667843664", input=message)
    assert then.returncode == 0, then.stdout
    assert json.loads(then.stdout)["signatures"][0]["expiration"] == 1667930064
    today = mw(*args, input=message)
    assert today.returncode == 1
    [sig] = json.loads(today.stdout)["signatures"]
    assert (sig["result"], sig["reason"]) == ("fail", "signature expired at x=1667930064")
