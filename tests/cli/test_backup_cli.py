"""``mailwright backup`` / ``restore`` without a running server: what is copied, the
checks, and every refusal as one line (the test under load is
tests/integration/test_backup_restore.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from mailwright.queue import open_store

from .helpers import CliRun, assert_one_line_error


def make_server(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A config, its data directory with a queue of 3 messages, and a DKIM key outside it."""
    data = tmp_path / "data"
    key = tmp_path / "keys" / "s1.private"
    key.parent.mkdir()
    key.write_text("not really a key\n")
    config = tmp_path / "mailwright.toml"
    config.write_text(
        f'hostname = "mail.example.com"\ndata_dir = "{data}"\n'
        f'[[dkim]]\ndomain = "example.com"\nselector = "s1"\nprivate_key = "{key}"\n'
    )

    async def fill() -> None:
        store = await open_store(data)
        for n in range(3):
            await store.enqueue("a@example.com", ["b@example.net"], b"Subject: %d\r\n\r\nx" % n)
        await store.close()

    asyncio.run(fill())
    (data / "dkim").mkdir()
    (data / "dkim" / "dev.private").write_text("dev key\n")
    (data / "mailwright.log").write_text("a log line\n")
    return config, data, key


def queue_count(data: Path) -> int:
    conn = sqlite3.connect(data / "queue.sqlite3")
    try:
        (count,) = conn.execute("SELECT count(*) FROM entries").fetchone()
        return int(count)
    finally:
        conn.close()


def test_backup_then_restore_into_a_new_data_dir(cli_run: CliRun, tmp_path: Path) -> None:
    config, _data, key = make_server(tmp_path)
    result = cli_run("--config", str(config), "backup", str(tmp_path / "b"), "--json")
    assert result.code == 0, result
    summary = json.loads(result.out)
    assert summary["databases"] == ["queue.sqlite3"]
    assert sorted(summary["external"]) == sorted([str(config), str(key)])
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    paths = {entry["path"] for entry in manifest["files"]}
    assert paths == {"data/queue.sqlite3", "data/dkim/dev.private"}  # no log, no -wal/-shm

    new = tmp_path / "new-data"
    result = cli_run("restore", str(tmp_path / "b"), "--data-dir", str(new), "--json")
    assert result.code == 0, result
    restored = json.loads(result.out)
    assert restored["data_dir"] == str(new) and restored["created"] == []
    assert queue_count(new) == 3
    assert (new / "dkim" / "dev.private").read_text() == "dev key\n"


def test_restore_puts_back_missing_files_and_keeps_changed_ones(
    cli_run: CliRun, tmp_path: Path
) -> None:
    config, _data, key = make_server(tmp_path)
    assert cli_run("--config", str(config), "backup", str(tmp_path / "b")).code == 0
    key.unlink()
    config.write_text(config.read_text() + "# edited since\n")
    result = cli_run("restore", str(tmp_path / "b"), "--data-dir", str(tmp_path / "n"), "--json")
    assert result.code == 0, result
    restored = json.loads(result.out)
    assert restored["created"] == [str(key)] and key.read_text() == "not really a key\n"
    assert restored["kept"] == [str(config)]
    assert config.read_text().endswith("# edited since\n")


def test_restore_refuses_a_non_empty_data_dir(cli_run: CliRun, tmp_path: Path) -> None:
    config, data, _ = make_server(tmp_path)
    assert cli_run("--config", str(config), "backup", str(tmp_path / "b")).code == 0
    # by default into the original data directory, which is not empty
    assert_one_line_error(cli_run("restore", str(tmp_path / "b")), f"{data} is not empty")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("")
    assert_one_line_error(
        cli_run("restore", str(tmp_path / "b"), "--data-dir", str(busy)),
        f"{busy} is not empty",
        "new, empty data directory",
    )


def test_backup_refusals(cli_run: CliRun, tmp_path: Path) -> None:
    config, data, _ = make_server(tmp_path)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    assert_one_line_error(cli_run("--config", str(config), "backup", str(full)), "is not empty")
    assert_one_line_error(
        cli_run("--config", str(config), "backup", str(data / "b")), "inside the data directory"
    )
    config.write_text(f'data_dir = "{tmp_path / "nothing"}"\n')
    assert_one_line_error(
        cli_run("--config", str(config), "backup", str(tmp_path / "c")), "no data directory"
    )


def test_restore_refuses_damaged_or_foreign_backups(cli_run: CliRun, tmp_path: Path) -> None:
    config, _, _ = make_server(tmp_path)
    assert cli_run("--config", str(config), "backup", str(tmp_path / "b")).code == 0
    target = str(tmp_path / "n")
    assert_one_line_error(
        cli_run("restore", str(tmp_path), "--data-dir", target), "not a mailwright backup"
    )
    database = tmp_path / "b" / "data" / "queue.sqlite3"
    database.write_bytes(database.read_bytes()[:-10] + b"0123456789")
    assert_one_line_error(
        cli_run("restore", str(tmp_path / "b"), "--data-dir", target), "checksum mismatch"
    )
    assert not Path(target).exists()  # nothing written
    manifest = tmp_path / "b" / "manifest.json"
    manifest.write_text('{"format": 99}')
    assert_one_line_error(
        cli_run("restore", str(tmp_path / "b"), "--data-dir", target), "unknown backup format 99"
    )
    manifest.write_text("{not json")
    assert_one_line_error(cli_run("restore", str(tmp_path / "b"), "--data-dir", target), "damaged")
    manifest.write_text(json.dumps({"format": 1, "files": [{"path": "../x"}], "external": []}))
    assert_one_line_error(
        cli_run("restore", str(tmp_path / "b"), "--data-dir", target), "not a path in the backup"
    )


def test_unwritable_targets_are_one_line_errors(cli_run: CliRun, tmp_path: Path) -> None:
    config, _, _ = make_server(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line_error(
        cli_run("--config", str(config), "backup", str(blocker / "sub")), "cannot create"
    )
    assert cli_run("--config", str(config), "backup", str(tmp_path / "b")).code == 0
    assert_one_line_error(
        cli_run("restore", str(tmp_path / "b"), "--data-dir", str(blocker / "sub")),
        "cannot create",
    )
