"""DKIM key rotation without a moment of unverifiable mail.

A rotation moves one ``[[dkim]]`` key to a new selector in four phases, persisted in
``DATA_DIR/dkim-rotation.json`` so that each run of ``mailwright dkim rotate`` (by hand,
from cron or from ``serve``) takes it as far as it can go and a crash loses nothing:

1. ``published``: a new key is generated under a new selector (same algorithm) and its
   record published (a signed dynamic update, or printed for publishing by hand);
2. ``switched``: only once every authoritative server serves the new record and a test
   message signed with the new key verifies against it (what ``testkey`` checks), the
   config's ``[[dkim]]`` entry is rewritten to the new selector and key: from the next
   reload on, the server signs with it.  Until then it signs with the old key, so no
   message is ever signed with a key receivers cannot see;
3. after the overlap (default 7 days: mail signed with the old key is still in transit,
   in queues, in forwarders), the old record is removed: ``done``.

Blocking DNS I/O (dnspython): callers off the event loop run it in a thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Config, DkimKeyConfig, load_config
from ..dkim import SigningKey, generate_key, private_key_pem, sign_message, verify_message
from ..dkim.keys import (
    KeyRecordError,
    dns_record_value,
    load_private_key,
    parse_key_record,
    public_keys_match,
)
from ..dns import DnspythonResolver
from ..errors import UsageError
from .apply import (
    Change,
    TsigKey,
    UpdateError,
    apply_changes,
    authoritative_servers,
    plan_changes,
    query_rrset,
    read_tsig_key,
    wait_until_served,
)
from .apply import parse_server as _parse_server
from .records import DnsRecord, txt_rdata

STATE_FILE = "dkim-rotation.json"
DEFAULT_OVERLAP = 7 * 86400
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, what: str = "duration") -> int:
    """``7d``, ``12h``, ``180d``, ``2w``, ``0s`` → seconds."""
    m = _DURATION.match(text.lower())
    if m is None:
        raise UsageError(f"{what} {text!r} is not a duration", "write e.g. 7d, 12h or 180d")
    return int(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class Rotation:
    domain: str
    old_selector: str
    old_key: str
    new_selector: str
    new_key: str
    algorithm: str
    phase: str
    """``published``, ``switched`` or ``done``."""
    started: float
    overlap: int = DEFAULT_OVERLAP
    switched_at: float | None = None
    done_at: float | None = None

    @property
    def key(self) -> str:
        return f"{self.domain}/{self.old_selector}"

    @property
    def new_name(self) -> str:
        return f"{self.new_selector}._domainkey.{self.domain}"

    @property
    def old_name(self) -> str:
        return f"{self.old_selector}._domainkey.{self.domain}"

    def remove_after(self) -> float | None:
        return None if self.switched_at is None else self.switched_at + self.overlap


def load_rotations(data_dir: Path) -> dict[str, Rotation]:
    path = data_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{path}: unreadable rotation state: {exc}", "move the file away"
        ) from None
    return {k: Rotation(**v) for k, v in data.items()}


def save_rotations(data_dir: Path, rotations: dict[str, Rotation]) -> None:
    """Atomically (a temporary file renamed over the state)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=data_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({k: asdict(v) for k, v in rotations.items()}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, data_dir / STATE_FILE)


def new_selector_name(old: str, now: float, taken: set[str]) -> str:
    """``mail`` → ``mail202612`` (year and month), ``mail202606`` → ``mail202612``; a
    letter suffix when that is taken too."""
    stem = re.sub(r"\d{6}[a-z]?$", "", old) or old
    base = f"{stem}{datetime.fromtimestamp(now, UTC):%Y%m}"
    name = base
    for suffix in "bcdefghijklmnopqrstuvwxyz":
        if name not in taken and name != old:
            return name
        name = base + suffix
    raise UsageError(f"no free selector name near {base}", "pass --new-selector")


def start(config: Config, entry: DkimKeyConfig, new_selector: str | None, overlap: int,
          now: float | None = None) -> Rotation:  # fmt: skip
    """Phase 1: a new key of the same algorithm, written next to the old one (0600)."""
    now = time.time() if now is None else now
    taken = {k.selector for k in config.dkim if k.domain == entry.domain}
    selector = new_selector or new_selector_name(entry.selector, now, taken)
    if selector in taken:
        raise UsageError(f"selector {selector!r} is already in the config", "choose another")
    key = generate_key(entry.algorithm)
    suffix = "rsa" if entry.algorithm == "rsa" else "ed25519"
    path = entry.private_key.parent / f"{entry.domain}.{selector}.{suffix}.pem"
    if path.exists():
        raise UsageError(f"{path} exists", "pass another --new-selector, or move the file")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_key_pem(key))
    return Rotation(
        entry.domain,
        entry.selector,
        str(entry.private_key),
        selector,
        str(path),
        entry.algorithm,
        "published",
        now,
        overlap,
    )


def new_record(rotation: Rotation) -> DnsRecord:
    key = load_private_key(Path(rotation.new_key).read_bytes())
    return DnsRecord(
        "dkim",
        rotation.new_name,
        "TXT",
        dns_record_value(key),
        f"{rotation.algorithm} key, selector {rotation.new_selector} (rotation)",
    )


def visible(
    rotation: Rotation, servers: list[tuple[str, int]], timeout: float
) -> dict[tuple[str, int], bool]:
    """Whether each authoritative server serves the new record (waits up to ``timeout``)."""
    record = new_record(rotation)
    change = Change("add", record.name, "TXT", (), (txt_rdata(record.value),))
    return wait_until_served([change], servers, timeout)


def testkey(rotation: Rotation, server: tuple[str, int]) -> str | None:
    """None when ``server`` serves a record matching the new private key and a message
    signed with it verifies there; else why not (``mailwright dkim testkey``'s checks)."""
    private = load_private_key(Path(rotation.new_key).read_bytes())
    texts = [
        b"".join(rd.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
        for rd in query_rrset(rotation.new_name, "TXT", server)
    ]
    if len(texts) != 1:
        return f"{len(texts)} TXT records at {rotation.new_name}"
    try:
        record = parse_key_record(texts[0])
    except KeyRecordError as exc:
        return f"the record does not parse: {exc}"
    if record.public_key is None or not public_keys_match(record.public_key, private):
        return "the published key is not the new private key's public half"
    message = (
        f"From: postmaster@{rotation.domain}\r\nTo: check@example.invalid\r\n"
        "Subject: mailwright dkim rotate\r\n\r\nkey check\r\n"
    ).encode()
    signing = SigningKey.from_key(rotation.domain, rotation.new_selector, private)
    signed = sign_message(message, [signing]) + message
    resolver = DnspythonResolver(f"{server[0]}:{server[1]}", timeout=5.0)
    results = asyncio.run(verify_message(signed, resolver))
    if not results or not results[0].ok:
        return f"a test signature does not verify: {results[0].reason if results else 'none'}"
    return None


_BLOCK = re.compile(r"(?ms)^\[\[dkim\]\][^\[]*")


def rewrite_config(text: str, rotation: Rotation, config_dir: Path) -> str:
    """The config text with the rotated ``[[dkim]]`` entry on the new selector and key
    (the rest of the file, comments included, untouched)."""
    for m in _BLOCK.finditer(text):
        block = m.group(0)
        if not re.search(rf'(?m)^selector\s*=\s*"{re.escape(rotation.old_selector)}"', block):
            continue
        if not re.search(rf'(?m)^domain\s*=\s*"{re.escape(rotation.domain)}"', block):
            continue
        new_key = Path(rotation.new_key)
        with_key = (
            str(new_key.relative_to(config_dir))
            if new_key.is_relative_to(config_dir)
            else str(new_key)
        )
        changed = re.sub(
            r'(?m)^selector\s*=\s*"[^"]*"', f'selector = "{rotation.new_selector}"', block
        )
        changed = re.sub(r'(?m)^private_key\s*=\s*"[^"]*"', f'private_key = "{with_key}"', changed)
        changed = changed.replace(
            f"published at {rotation.old_selector}._domainkey.",
            f"published at {rotation.new_selector}._domainkey.",
        )
        return text[: m.start()] + changed + text[m.end() :]
    raise UsageError(
        f"no [[dkim]] entry for {rotation.domain} selector {rotation.old_selector} in the config",
        "the rotation was started with another config: pass --config",
    )


def write_config(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


def describe(rotation: Rotation, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    remove_after = rotation.remove_after()
    return {
        "domain": rotation.domain,
        "old_selector": rotation.old_selector,
        "new_selector": rotation.new_selector,
        "phase": rotation.phase,
        "new_record": rotation.new_name,
        "switched_at": rotation.switched_at,
        "old_record_removed_after": remove_after,
        "seconds_left": max(0, int(remove_after - now)) if remove_after else None,
    }


def advance(
    rotation: Rotation,
    config: Config,
    primary: tuple[str, int] | None,
    key: TsigKey | None,
    authoritative: list[tuple[str, int]],
    wait: float,
    events: list[str],
    resolve: Callable[[str], list[str]] | None = None,
) -> int:
    """Take ``rotation`` as far as it can go now; events are appended to ``events``.
    1 when the new record is not visible everywhere yet (signing unchanged), else 0."""
    zone = rotation.domain
    if rotation.phase == "published":
        record = new_record(rotation)
        if primary is not None and key is not None:
            plan = plan_changes(zone, [record], primary)
            apply_changes(plan, primary, key)
            if plan.changes:
                events.append(f"published {record.name} TXT by dynamic update")
        else:
            events.append(f"publish by hand: {record.zone_line()}")
        servers = list(authoritative) or (
            authoritative_servers(zone, primary, resolve=resolve) if primary is not None else []
        )
        seen = visible(rotation, servers, wait)
        missing = [f"{h}:{p}" for (h, p), ok in seen.items() if not ok]
        if missing:
            events.append(
                f"not visible yet at {', '.join(missing)}: signing stays with "
                f"{rotation.old_selector}; run again later"
            )
            return 1
        for server in servers:
            problem = testkey(rotation, server)
            if problem is not None:
                events.append(f"testkey at {server[0]}:{server[1]}: {problem}; not switching")
                return 1
        assert config.path is not None
        path = Path(config.path)
        write_config(path, rewrite_config(path.read_text(encoding="utf-8"), rotation, path.parent))
        rotation.phase = "switched"
        rotation.switched_at = time.time()
        events.append(
            f"visible at every authoritative server and verified: {path} now signs with "
            f"{rotation.new_selector} (reload the server: kill -HUP, or systemctl reload)"
        )
    if rotation.phase == "switched":
        remove_after = rotation.remove_after() or 0
        if time.time() < remove_after:
            events.append(
                f"old record {rotation.old_name} stays published until "
                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(remove_after))}"
            )
            return 0
        if primary is not None and key is not None:
            plan = plan_changes(zone, [], primary, remove=[(rotation.old_name, "TXT")])
            apply_changes(plan, primary, key)
            events.append(f"removed {rotation.old_name} TXT by dynamic update")
        else:
            events.append(f"remove by hand: {rotation.old_name} TXT (the overlap is over)")
        rotation.phase = "done"
        rotation.done_at = time.time()
    return 0


def due(config: Config, rotations: dict[str, Rotation], now: float) -> list[DkimKeyConfig]:
    """Keys older than ``[dkim_rotation] every`` (by their file's age) with no rotation
    under way."""
    every = config.dkim_rotation.every
    if every is None:
        return []
    busy = {(r.domain, r.new_selector) for r in rotations.values() if r.phase != "done"}
    busy |= {(r.domain, r.old_selector) for r in rotations.values() if r.phase == "published"}
    result = []
    for entry in config.dkim:
        if (entry.domain, entry.selector) in busy:
            continue
        try:
            age = now - entry.private_key.stat().st_mtime
        except OSError:
            continue
        if age >= every:
            result.append(entry)
    return result


def scheduled_step(config: Config, wait: float = 60.0) -> tuple[list[str], bool]:
    """One run of the schedule (``serve``, hourly): start the rotations that are due and
    move every rotation under way on.  Returns the events and whether the config was
    switched to a new key (the server must reload).  A lock file keeps the workers of a
    multi-process server from doing it twice at once."""
    import fcntl

    settings = config.dkim_rotation
    config.data_dir.mkdir(parents=True, exist_ok=True)
    events: list[str] = []
    switched = False
    with open(config.data_dir / "dkim-rotation.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return [], False  # another worker is at it
        rotations = load_rotations(config.data_dir)
        now = time.time()
        for entry in due(config, rotations, now):
            rotation = start(config, entry, None, settings.overlap, now)
            rotations[rotation.key] = rotation
            events.append(f"{rotation.key}: new key for selector {rotation.new_selector}")
        save_rotations(config.data_dir, rotations)
        primary = _parse_server(settings.server) if settings.server else None
        key = None
        if settings.tsig_key is not None:
            key = read_tsig_key(
                settings.tsig_key.read_text(encoding="utf-8"), str(settings.tsig_key)
            )
        servers = [_parse_server(a) for a in settings.authoritative]
        for rotation in rotations.values():
            if rotation.phase == "done":
                continue
            if primary is None and not servers:
                events.append(f"{rotation.key}: no [dkim_rotation] server or authoritative")
                continue
            before = rotation.phase
            notes: list[str] = []
            try:
                advance(rotation, config, primary, key, servers, wait, notes)
            except (UpdateError, OSError) as exc:
                notes.append(f"error: {exc}")
            events.extend(f"{rotation.key}: {n}" for n in notes)
            switched = switched or (before == "published" and rotation.phase != "published")
            if switched and config.path is not None:
                config = load_config(str(config.path))  # the next key sees the new file
        save_rotations(config.data_dir, rotations)
    return events, switched


SCHEDULE_INTERVAL = 3600.0
"""``serve`` looks at the rotations once an hour (and once a minute after starting)."""


async def rotate_on_schedule(
    current_config: Callable[[], Config],
    log: Callable[..., object],
    reload: Callable[[], None],
    first_delay: float = 60.0,
) -> None:
    """``serve``'s side of ``[dkim_rotation] every``: :func:`scheduled_step` in a worker
    thread, hourly; a switch to a new key makes the server reload (it then signs with
    the key that every authoritative server already serves)."""
    delay = first_delay
    while True:
        await asyncio.sleep(delay)
        delay = SCHEDULE_INTERVAL
        try:
            events, switched = await asyncio.to_thread(scheduled_step, current_config())
        except Exception as exc:  # rotation must never stop the server
            log("error", what="dkim-rotation", reason=str(exc))
            continue
        for event in events:
            log("config", what="dkim-rotation", reason=event)
        if switched:
            reload()
