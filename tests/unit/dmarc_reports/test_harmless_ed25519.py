"""Issue 17 item 10: an Ed25519 signature a receiver did not verify, next to a passing
RSA signature of the same domain, is "not verified by this receiver (harmless)"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailwright.cli.dmarc_reports import signature_notes
from mailwright.cli.main import main

REPORT = """<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>receiver.example</org_name><email>r@receiver.example</email>
    <report_id>r-1</report_id><date_range><begin>1795000000</begin><end>1795086400</end></date_range>
  </report_metadata>
  <policy_published><domain>example.com</domain><p>reject</p></policy_published>
  <record>
    <row><source_ip>192.0.2.10</source_ip><count>40</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results>
      <dkim><domain>example.com</domain><selector>mail</selector><result>pass</result></dkim>
      <dkim><domain>example.com</domain><selector>mail-ed</selector><result>permerror</result></dkim>
      <spf><domain>example.com</domain><result>pass</result></spf>
    </auth_results>
  </record>
  <record>
    <row><source_ip>198.51.100.7</source_ip><count>3</count>
      <policy_evaluated><disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results>
      <dkim><domain>example.com</domain><selector>mail</selector><result>fail</result></dkim>
      <spf><domain>example.com</domain><result>fail</result></spf>
    </auth_results>
  </record>
</feedback>
"""


def test_signature_notes_pure() -> None:
    rows = [
        (
            "192.0.2.10",
            40,
            json.dumps([["example.com", "mail", "pass"], ["EXAMPLE.com", "mail-ed", "none"]]),
        ),
        ("192.0.2.10", 2, json.dumps([["example.com", "mail", "pass"]])),
        (
            "198.51.100.7",
            3,
            json.dumps([["example.com", "mail", "fail"], ["example.com", "mail-ed", "fail"]]),
        ),
        (
            "203.0.113.1",
            1,
            json.dumps([["other.example", "s", "pass"], ["example.com", "mail-ed", "fail"]]),
        ),
        ("203.0.113.2", 1, "not json"),
    ]
    notes = signature_notes(rows, {("example.com", "mail-ed")})
    assert set(notes) == {"192.0.2.10"}  # no passing signature of the same domain elsewhere
    assert notes["192.0.2.10"].harmless == 40
    assert notes["192.0.2.10"].algorithms == {"ed25519"}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None)
    return capsys.readouterr().out


def test_reports_show_unverified_ed25519_as_harmless(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mail.pem").write_text("unused")
    (tmp_path / "mail-ed.pem").write_text("unused")
    config = tmp_path / "mailwright.toml"
    config.write_text(
        'domains = ["example.com"]\ndata_dir = "data"\n'
        '[[dkim]]\ndomain = "example.com"\nselector = "mail"\nprivate_key = "mail.pem"\n'
        '[[dkim]]\ndomain = "example.com"\nselector = "mail-ed"\nprivate_key = "mail-ed.pem"\n'
        'algorithm = "ed25519"\n'
    )
    report = tmp_path / "report.xml"
    report.write_text(REPORT)
    run(["--config", str(config), "dmarc", "import", str(report)], capsys)
    data = json.loads(
        run(["--config", str(config), "dmarc", "reports", "--json", "--no-resolve"], capsys)
    )
    by_ip = {s["source_ip"]: s for s in data["sources"]}
    assert by_ip["192.0.2.10"]["dkim_unverified_harmless"] == 40
    assert by_ip["192.0.2.10"]["dkim_unverified_algorithms"] == ["ed25519"]
    assert by_ip["198.51.100.7"]["dkim_unverified_harmless"] == 0
    out = run(["--config", str(config), "dmarc", "reports", "--no-resolve"], capsys)
    assert "Ed25519 signature not verified by this receiver (harmless)" in " ".join(out.split())
