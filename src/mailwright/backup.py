"""``mailwright backup`` / ``restore``: a consistent copy of a running server's state.

Every SQLite database in the data directory (the queue, DMARC stores, whatever a later
feature adds — found by the file header, not the name) is copied with SQLite's online
backup API: one read transaction, so the copy is a snapshot that includes every message
the server had answered ``250`` for, while the workers keep writing. The other files
(DKIM and ACME keys, certificates, Maildirs) are copied as they are; the config file and
the files it names outside the data directory (keys, certificates, password files) go
to ``external/``. ``manifest.json`` lists every file with its SHA-256, checked before a
restore writes anything.

Restore fills a *new* data directory (it refuses a non-empty one) through a staging
directory renamed into place, and puts back external files that are missing; an
existing one is kept and reported, never overwritten.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config
from .errors import UserError
from .files import sync_directory
from .queue.sqlite import DB_NAME as QUEUE_DB
from .queue.sqlite import release_all_leases

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MAGIC = b"SQLite format 3\x00"
SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".tmp", ".log")
"""SQLite's side files (their content is in the backup-API copy), temporary files, logs."""
SKIPPED_NAMES = frozenset({"lock"})
_WRITABLE = "choose a directory you can write to, on a disk with room"


@dataclass
class BackupResult:
    directory: Path
    databases: list[str] = field(default_factory=list)
    files: int = 0
    external: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "databases": self.databases,
            "files": self.files,
            "external": self.external,
            "bytes": self.bytes,
        }


@dataclass
class RestoreResult:
    data_dir: Path
    files: int = 0
    databases: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """External files that exist with other content: left alone."""

    def to_json(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "files": self.files,
            "databases": self.databases,
            "created": self.created,
            "kept": self.kept,
        }


# -- backup --------------------------------------------------------------------------------------


def backup(config: Config, target: Path) -> BackupResult:
    """Copy the state of ``config``'s server into ``target`` (new or empty)."""
    source = config.data_dir
    if not source.is_dir():
        raise UserError(
            f"{source}: no data directory to back up",
            "point --config at the server's config (data_dir)",
        )
    _require_empty(target, "back up into a new or empty directory")
    if _inside(target, source):
        raise UserError(
            f"{target} is inside the data directory {source}", "back up to another directory"
        )
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(target, 0o700)  # it holds private keys
    except OSError as exc:
        raise UserError(f"{target}: cannot create: {exc.strerror}", _WRITABLE) from None
    result = BackupResult(target)
    entries: list[dict[str, Any]] = []
    for path in sorted(_walk(source)):
        relative = path.relative_to(source)
        destination = target / "data" / relative
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            if _is_sqlite(path):
                _backup_sqlite(path, destination)
                kind = "sqlite"
                result.databases.append(str(relative))
            else:
                shutil.copy2(path, destination)
                kind = "file"
        except FileNotFoundError:
            continue  # moved while we walked (a Maildir message from new/ to cur/)
        except sqlite3.Error as exc:
            raise UserError(
                f"{path}: cannot back up: {exc}", "check the file, then retry"
            ) from None
        except OSError as exc:
            raise UserError(
                f"{exc.filename or path}: {exc.strerror}",
                "run backup as the server's user (or root), with room on the target",
            ) from None
        entries.append(_entry(destination, target, kind))
        result.files += 1
    external: list[dict[str, Any]] = []
    for index, original in enumerate(_external_files(config)):
        destination = target / "external" / f"{index}-{original.name}"
        destination.parent.mkdir(exist_ok=True, mode=0o700)
        try:
            shutil.copy2(original, destination)
        except OSError as exc:
            raise UserError(
                f"{original}: cannot read: {exc.strerror}", "fix the path in the config"
            ) from None
        record = _entry(destination, target, "external")
        record["original"] = str(original)
        external.append(record)
        result.external.append(str(original))
    manifest = {
        "format": FORMAT,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "hostname": config.hostname,
        "data_dir": str(source),
        "config": str(config.path.absolute()) if config.path else None,
        "files": entries,
        "external": external,
    }
    result.bytes = sum(e["size"] for e in entries + external)
    _write_synced(target / MANIFEST, json.dumps(manifest, indent=2).encode())
    _fsync_tree(target)
    return result


def _backup_sqlite(path: Path, destination: Path) -> None:
    source = sqlite3.connect(path, timeout=30)
    try:
        source.execute("PRAGMA query_only = 1")
        copy = sqlite3.connect(destination)
        try:
            source.backup(copy)  # all pages in one step: one read transaction, a snapshot
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            copy.close()
    finally:
        source.close()


def _external_files(config: Config) -> list[Path]:
    """The config file and the files it names outside the data directory."""
    candidates: list[Path | None] = [config.path]
    candidates += [key.private_key for key in config.dkim]
    candidates += [config.tls.certificate, config.tls.private_key, config.tls.acme_ca_file]
    relay = config.delivery.relay
    if relay is not None:
        candidates += [relay.password_file, relay.ca_file]
    seen: dict[Path, None] = {}
    for path in candidates:
        if path is not None and not _inside(path, config.data_dir):
            seen[path.absolute()] = None
    return list(seen)


# -- restore -------------------------------------------------------------------------------------


def restore(backup_dir: Path, data_dir: Path | None = None) -> RestoreResult:
    """Restore ``backup_dir`` into ``data_dir`` (default: where it was backed up from)."""
    manifest = read_manifest(backup_dir)
    target = (data_dir or Path(manifest["data_dir"])).absolute()
    _require_empty(target, "restore into a new, empty data directory (or pass --data-dir)")
    for entry in manifest["files"] + manifest["external"]:
        _verify(backup_dir, entry)
    result = RestoreResult(target)
    staging = target.with_name(f".{target.name}.restoring-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True, mode=0o700)
    except OSError as exc:
        raise UserError(f"{staging}: cannot create: {exc.strerror}", _WRITABLE) from None
    try:
        for entry in manifest["files"]:
            relative = Path(entry["path"]).relative_to("data")
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(backup_dir / entry["path"], destination)
            if entry["kind"] == "sqlite":
                _check_sqlite(destination, relative)
                if relative == Path(QUEUE_DB):
                    release_all_leases(destination)
                result.databases.append(str(relative))
            result.files += 1
        _fsync_tree(staging)
        if target.exists():
            target.rmdir()  # empty, checked above; rename() needs it gone or empty
        os.rename(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{exc.filename or target}: {exc.strerror}", _WRITABLE) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    sync_directory(target.parent)
    for entry in manifest["external"]:
        original = Path(entry["original"])
        if original.exists():
            if _sha256(original) != entry["sha256"]:
                result.kept.append(str(original))
            continue
        original.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(backup_dir / entry["path"], original)
        result.created.append(str(original))
    return result


def read_manifest(backup_dir: Path) -> dict[str, Any]:
    path = backup_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"{backup_dir}: not a mailwright backup (no {MANIFEST})",
            "name a directory made by 'mailwright backup'",
        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable: {exc}", "the backup is damaged") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or found != FORMAT:
        raise UserError(
            f"{path}: unknown backup format {found!r}",
            "restore it with the mailwright version that made it",
        )
    for key in ("files", "external"):
        if not isinstance(manifest.get(key), list):
            raise UserError(f"{path}: '{key}' is missing", "the backup is damaged")
    return manifest


def _verify(backup_dir: Path, entry: Any) -> None:
    name = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(name, str) or ".." in Path(name).parts or Path(name).is_absolute():
        raise UserError(f"{backup_dir}: manifest entry {entry!r} is not a path in the backup")
    path = backup_dir / name
    try:
        digest = _sha256(path)
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}", "the backup is incomplete") from None
    if digest != entry.get("sha256"):
        raise UserError(f"{path}: checksum mismatch", "the backup is damaged; use another one")


def _check_sqlite(path: Path, relative: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        (verdict,) = conn.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as exc:
        verdict = str(exc)
    finally:
        conn.close()
    if verdict != "ok":
        raise UserError(f"{relative}: database check failed: {verdict}", "use another backup")


# -- helpers -------------------------------------------------------------------------------------


def _require_empty(path: Path, hint: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{path} is not empty", hint)


def _inside(path: Path, directory: Path) -> bool:
    return path.absolute().is_relative_to(directory.absolute())


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "challenges" and not d.startswith(".")]
        for name in files:
            path = Path(folder) / name
            if name in SKIPPED_NAMES or name.endswith(SKIPPED_SUFFIXES):
                continue
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISREG(path.lstat().st_mode):
                    found.append(path)
    return found


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(path: Path, root: Path, kind: str) -> dict[str, Any]:
    return {
        "path": str(path.relative_to(root)),
        "kind": kind,
        "size": path.stat().st_size,
        "sha256": _sha256(path),
    }


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_tree(root: Path) -> None:
    """A backup that is reported done survives a crash right after."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(Path(folder) / name, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        sync_directory(Path(folder))
