"""``mailwright records --format zone`` is a zone-file fragment BIND accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mailwright.setup.records import split_zone

pytestmark = pytest.mark.integration

SOA = (
    "@ 3600 IN SOA ns1.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n"
    "@ 3600 IN NS ns1.{origin}.\n"
)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["uv", "run", "--quiet", "mailwright", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _checkzone(tmp_path: Path, origin: str, lines: list[str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{origin}.zone"
    body = f"$ORIGIN {origin}.\n$TTL 3600\n" + SOA.format(origin=origin) + "\n".join(lines) + "\n"
    body += f"ns1.{origin}. 3600 IN A 192.0.2.53\n"
    path.write_text(body)
    return subprocess.run(
        [
            "named-checkzone",
            "-k",
            "fail",
            "-n",
            "fail",
            "-m",
            "fail",
            "-M",
            "fail",
            origin,
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_zone_output_passes_named_checkzone(tmp_path: Path) -> None:
    project = Path(__file__).resolve().parents[2]
    init = _cli(
        "init", "example.com", "--ip", "192.0.2.10", "--ipv6", "2001:db8::25",
        "--dir", str(tmp_path), cwd=project,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    out = _cli("--config", str(tmp_path / "mailwright.toml"), "records", "--format", "zone",
               cwd=project)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    # Nothing but zone-file syntax: comments or absolute-name records.
    for line in lines:
        assert line.startswith(";") or line.split()[0].endswith("."), line
    forward, reverse = split_zone(lines)
    assert len(forward) == 8  # MX, A, AAAA, SPF, 2 DKIM, DMARC, TLS-RPT
    assert len(reverse) == 2
    fwd = _checkzone(tmp_path, "example.com", forward)
    assert fwd.returncode == 0, fwd.stdout + fwd.stderr
    assert "loaded serial 1" in fwd.stdout
    rev = _checkzone(tmp_path, "arpa", reverse)
    assert rev.returncode == 0, rev.stdout + rev.stderr


def test_broken_zone_is_rejected_by_the_checker(tmp_path: Path) -> None:
    """The check above can fail: an MX whose target has no address is refused (-m fail)."""
    result = _checkzone(tmp_path, "example.com", ["example.com. 3600 IN MX 10 mail.example.com."])
    assert result.returncode != 0
