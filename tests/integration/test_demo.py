"""``mailwright demo``: the offline demo runs its commands against NSD and leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailwright.dns import DnspythonResolver, MXRecord

pytestmark = pytest.mark.integration

MAILWRIGHT = str(Path(sys.executable).with_name("mailwright"))
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("MAILWRIGHT_")},
    "COLUMNS": "200",  # no wrapping: the output is matched line by line
}


def _nsd_processes_in(directory: str) -> list[int]:
    """Live processes whose command line mentions ``directory`` (NSD runs with -c DIR/nsd.conf)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if directory in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _directory(output: str) -> str:
    match = re.search(r"directory (/\S+?)\)", output)
    assert match, output
    return match.group(1)


def _wait_gone(directory: str) -> list[int]:
    deadline = time.monotonic() + 5
    while (left := _nsd_processes_in(directory)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_demo_runs_and_stops_nsd() -> None:
    proc = subprocess.run(
        [MAILWRIGHT, "demo"], capture_output=True, text=True, env=ENV, timeout=120, check=False
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.search(r"NSD serves 5 zones on 127\.0\.0\.1:\d+", out)
    # The dns steps ran against the world through the CLI.
    assert "$ mailwright --nameserver 127.0.0.1:" in out
    assert "example.com. 300 IN MX 10 mail.example.com." in out
    assert "10.2.0.192.in-addr.arpa. 300 IN PTR mail.example.com." in out
    # spf check: the mail server and the provider's include pass, a stranger fails.
    assert "SPF pass for app@example.com from 192.0.2.10" in out
    assert "SPF pass for app@example.com from 198.51.100.7" in out
    assert "SPF fail for app@example.com from 203.0.113.99" in out
    # spf lint finds both misconfigurations, and the 11th lookup is a permerror.
    assert "too-many-lookups" in out
    assert "multiple-records" in out
    assert "SPF permerror for app@example.org from 203.0.113.9" in out
    assert "demo summary" in out
    summary = out.split("demo summary", 1)[1]
    assert re.search(r"dns example\.com MX\s+│\s+0 │\s+0 │ ok", summary)
    assert re.search(r"spf lint example\.org\s+│\s+1 │\s+1 │ ok", summary)
    assert summary.count("│ ok │") == 9
    assert "fail" not in out.split("demo summary", 1)[1]
    assert out.rstrip().endswith("NSD stopped.")
    directory = _directory(out)
    assert not Path(directory).exists()
    assert _nsd_processes_in(directory) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_demo_keep_serves_until_interrupted(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [MAILWRIGHT, "demo", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            lines.append(line)
            if "The DNS world stays up" in line or time.monotonic() > deadline:
                break
        output = "".join(lines)
        assert "The DNS world stays up" in output, output
        directory = _directory(output)
        assert _nsd_processes_in(directory), "NSD runs while the demo waits"
        nameserver = re.search(r"--nameserver (127\.0\.0\.1:\d+)", output)
        assert nameserver
        # The world is there to be queried, as the demo says.
        mx = await DnspythonResolver(nameserver.group(1), timeout=2).mx("example.com")
        assert mx.records == (MXRecord(10, "mail.example.com"),)
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "NSD stopped." not in rest  # interrupted: no success line ...
    assert _wait_gone(directory) == []  # ... but NSD is gone
    assert not Path(directory).exists()


def test_demo_help_has_examples() -> None:
    proc = subprocess.run(
        [MAILWRIGHT, "demo", "--help"], capture_output=True, text=True, env=ENV, check=False
    )
    assert proc.returncode == 0
    assert "mailwright demo --keep" in proc.stdout
