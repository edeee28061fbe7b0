"""The server's side of ``sendmail``: pick messages up from the maildrop and queue them.

Each worker scans ``DATA_DIR/maildrop/`` at start and then every second (no inotify:
a scan of an empty directory costs one ``listdir``). A file is locked while it is
handled, so two workers never queue it twice, and removed only after the queue has
committed it. Its name is the queue ID it gets; if the server crashed between the
commit and the removal, the next scan finds that ID queued and only removes the file.

Before queueing, what Postfix's cleanup does for local mail (:func:`cleanup`): the
envelope sender defaults to the submitting user (the file's owner), addresses are
qualified with our domain (:mod:`mailwright.sendmail.qualify`), system users go to root or
postmaster, aliases are expanded, and a ``From:`` is added or qualified so that the
message can be signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import pwd
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..local import LocalDirectory
from ..log import EventLogger, angle
from ..queue import QueueError, QueueStore, is_queue_id
from ..smtp import intake
from . import maildrop
from .qualify import (
    SYSTEM_UID_LIMIT,
    LocalNames,
    add_from,
    qualify,
    rewrite_addresses,
    route_recipient,
)

SCAN_INTERVAL = 1.0
NOBODY_UID = 65534
"""Debian's ``nobody``: a system account above the dynamic range."""
STALE_CHECK_INTERVAL = 600.0
ENVELOPE_ALLOWANCE = maildrop.MAX_ENVELOPE


@dataclass(frozen=True)
class LocalSubmission:
    """A message from a local user, ready for the intake."""

    sender: str
    recipients: tuple[str, ...]
    message: bytes
    user: str
    uid: int
    eight_bit: bool


def cleanup(
    drop: maildrop.Drop, user: str, uid: int, names: LocalNames, directory: LocalDirectory
) -> LocalSubmission:
    """Envelope and From of a maildrop file made fit to leave the machine (pure)."""
    sender = qualify(user if drop.sender is None else drop.sender, names)
    recipients: dict[str, None] = {}
    for recipient in drop.recipients:
        address = route_recipient(recipient, names, directory)
        # Aliases are expanded here, as Postfix's cleanup applies virtual_alias_maps before
        # queueing: root's mail goes straight to the administrator's real mailbox. A local
        # address nobody has stays, and the agent bounces it to the sender.
        targets = directory.resolve(address) if directory.is_local(address) else None
        recipients.update(dict.fromkeys(targets or (address,)))
    message = rewrite_addresses(drop.message, names)
    message = add_from(message, sender or qualify(user, names), drop.full_name)
    return LocalSubmission(sender, tuple(recipients), message, user, uid, drop.eight_bit)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a UID without a passwd entry (a container, a deleted account)
        return f"uid{uid}"


def local_names(config: Config) -> LocalNames:
    """The machine's names and system accounts (the passwd database, no DNS)."""
    host = socket.gethostname()
    system_users = [
        p.pw_name for p in pwd.getpwall() if p.pw_uid < SYSTEM_UID_LIMIT or p.pw_uid == NOBODY_UID
    ]
    return LocalNames.build(
        config.domains, config.hostname, (host, host.split(".")[0]), system_users
    )


Commit = Callable[[intake.Accepted], Awaitable[str]]
"""Put what the intake accepted on stable storage (the SMTP server's ``commit``, which
also logs the signing); raises QueueError if it could not."""


class Pickup:
    """The maildrop scanner of one worker."""

    def __init__(
        self,
        data_dir: Path,
        context: Callable[[], tuple[Config, LocalDirectory]],
        store: QueueStore,
        policy: Callable[[], intake.IntakePolicy],
        commit: Commit,
        logger: EventLogger,
        interval: float = SCAN_INTERVAL,
    ) -> None:
        self.path = maildrop.directory(data_dir)
        self.data_dir = data_dir
        self.context = context
        """The running config and local addresses (SIGHUP replaces them)."""
        self.store = store
        self.policy = policy
        """The running intake policy (SIGHUP replaces keys and hostname)."""
        self.commit = commit
        self.logger = logger
        self.interval = interval
        self._names: tuple[int, LocalNames] | None = None

    async def run(self) -> None:
        try:
            await asyncio.to_thread(maildrop.ensure_directory, self.data_dir)
        except OSError as exc:
            self.logger.event("error", what="maildrop", reason=f"{self.path}: {exc.strerror}")
        last_stale_check = 0.0
        while True:
            if time.monotonic() - last_stale_check > STALE_CHECK_INTERVAL:
                last_stale_check = time.monotonic()
                with contextlib.suppress(OSError):
                    for name in await asyncio.to_thread(maildrop.remove_stale, self.path):
                        self.logger.event("error", what="maildrop", reason=f"removed stale {name}")
            try:
                await self.scan()
            except Exception as exc:  # a bad moment (disk, permissions) must not end the loop
                self.logger.event("error", what="maildrop", reason=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)

    def _local_names(self, config: Config) -> LocalNames:
        if self._names is None or self._names[0] != id(config):
            self._names = (id(config), local_names(config))
        return self._names[1]

    async def scan(self) -> int:
        """Queue everything waiting now; returns how many were queued."""
        queued = 0
        for drop_id in await asyncio.to_thread(maildrop.pending, self.path):
            if await self._one(drop_id):
                queued += 1
        return queued

    async def _one(self, drop_id: str) -> bool:
        config, directory = self.context()
        limit = config.message_size_limit + ENVELOPE_ALLOWANCE
        try:
            claimed = await asyncio.to_thread(maildrop.claim, self.path, drop_id, limit)
        except maildrop.MaildropError as exc:
            self.logger.event("error", what="maildrop", reason=str(exc))
            return False
        if claimed is None:
            return False
        try:
            return await self._queue(claimed, config, directory)
        finally:
            claimed.close()

    async def _queue(
        self, claimed: maildrop.Claimed, config: Config, directory: LocalDirectory
    ) -> bool:
        try:
            if not is_queue_id(claimed.drop_id):  # the name becomes the queue ID
                raise maildrop.MaildropError("the file name is not a queue ID")
            drop = maildrop.decode(claimed.data)
        except maildrop.MaildropError as exc:
            self.logger.event("error", what="maildrop", reason=f"{claimed.path}: {exc}")
            await asyncio.to_thread(claimed.set_aside)
            return False
        if await self.store.get(claimed.drop_id) is not None:
            await asyncio.to_thread(claimed.done)  # queued before a crash; the file stayed
            return False
        submission = await asyncio.to_thread(  # passwd lookups read files
            lambda: cleanup(
                drop, user_name(claimed.uid), claimed.uid, self._local_names(config), directory
            )
        )
        user = submission.user
        result = intake.local(
            submission.sender,
            submission.recipients,
            submission.message,
            self.policy(),
            queue_id=claimed.drop_id,
            user=user,
            uid=claimed.uid,
        )
        if isinstance(result, intake.Refused):
            self.logger.event(
                "rejected",
                claimed.drop_id,
                stage="maildrop",
                from_=angle(submission.sender),
                user=user,
                reply=result.reply.text,
            )
            await asyncio.to_thread(claimed.set_aside)
            return False
        try:
            queue_id = await self.commit(result)
        except (QueueError, OSError) as exc:
            self.logger.event("error", claimed.drop_id, what="maildrop-enqueue", reason=str(exc))
            return False  # left in place: the next scan tries again
        await asyncio.to_thread(claimed.done)
        self.logger.event(
            "pickup",
            queue_id,
            from_=angle(submission.sender),
            nrcpt=len(submission.recipients),
            user=user,
            uid=claimed.uid,
        )
        return True
