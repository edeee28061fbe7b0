"""The suite's own conventions: every integration file is marked as such."""

from __future__ import annotations

from pathlib import Path

INTEGRATION = Path(__file__).parents[1] / "integration"


def test_every_integration_file_carries_the_marker() -> None:
    files = sorted(INTEGRATION.glob("test_*.py"))
    assert files
    unmarked = [
        f.name for f in files if "pytestmark = pytest.mark.integration" not in f.read_text()
    ]
    assert unmarked == []
