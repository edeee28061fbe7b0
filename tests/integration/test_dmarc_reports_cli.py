"""``mailwright dmarc import`` and ``dmarc reports`` on the shared real-world samples."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mailwright.dns import reverse_name
from mailwright.testing.nsd import NsdServer

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "dmarc" / "aggregate"


def _mailwright(
    config: Path, *args: str, nameserver: str | None = None
) -> subprocess.CompletedProcess[str]:
    ns = ["--nameserver", nameserver] if nameserver else []
    return subprocess.run(
        ["uv", "run", "--frozen", "mailwright", "--config", str(config), *ns, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_then_summarise_with_reverse_names(tmp_path: Path, dns_world: NsdServer) -> None:
    config = tmp_path / "mailwright.toml"
    config.write_text('domains = ["stalw.art"]\ndata_dir = "data"\n')
    mails = sorted((DATA / "stalwart-mail-auth").glob("10[0-4].eml"))
    foreign = DATA / "parsedmarc" / "rfc9990-sample.xml"  # about example.com: not ours
    broken = DATA / "parsedmarc" / "invalid_xml.xml"
    result = _mailwright(config, "dmarc", "import", *map(str, mails), str(foreign), str(broken))
    assert result.returncode == 1, result.stderr  # something was refused
    assert result.stdout.strip() == "stored 5, already known 0, refused 2"
    assert "not one of our domains" in result.stderr
    assert "malformed XML" in result.stderr
    again = _mailwright(config, "dmarc", "import", str(mails[0]))
    assert again.stdout.strip() == "stored 0, already known 1, refused 0"

    expected = [json.loads((p.with_suffix(".json")).read_text()) for p in mails]
    ips = {rec["row"]["source_ip"] for e in expected for rec in e["record"]}
    first_ip = expected[0]["record"][0]["row"]["source_ip"]
    zone = "ip6.arpa" if ":" in first_ip else "in-addr.arpa"
    dns_world.set_zone(zone, f"{reverse_name(first_ip)}. PTR mail.stalw.art.")
    summary = _mailwright(config, "dmarc", "reports", "--json", nameserver=dns_world.nameserver)
    assert summary.returncode == 0, summary.stderr
    data = json.loads(summary.stdout)
    assert data["reports"] == 5
    assert {s["source_ip"] for s in data["sources"]} == ips
    assert data["messages"] == sum(rec["row"]["count"] for e in expected for rec in e["record"])
    named = next(s for s in data["sources"] if s["source_ip"] == first_ip)
    assert named["reverse_name"] == "mail.stalw.art"
    human = _mailwright(config, "dmarc", "reports", "--no-resolve")
    assert human.returncode == 0
    assert "5 reports" in human.stdout
