"""What a queue store keeps besides the queue: the event log, the suppression list and
the webhook cursors (the application's loop, issue 10).

Both stores implement :class:`EventStore` — SQLite (one node) and PostgreSQL (every node
sees the same log and list) — so :class:`~mailwright.queue.tracking.Tracking`, the
webhook sender and the CLI never know which one they talk to. Writes join the store's
group commit.

Order: an event's ``seq`` is its position in the log. Readers (webhooks, ``mailwright
events --follow``) keep a cursor on it and read ``seq > cursor``, so a store must never
make an event visible *after* one with a higher ``seq``: SQLite has one writer at a time;
PostgreSQL takes a sequence number under a lock held until the commit (see
:mod:`mailwright.queue.postgres`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..spool import MessageData
from .events import Event
from .idempotency import Claim, Stored
from .store import QueueMeta, RecipientUpdate
from .suppressions import Suppression, SuppressionPolicy, SuppressionReason


@dataclass
class WebhookCursor:
    """How far a webhook got in the event log (durable: retries survive restarts)."""

    seq: int
    batch_end: int | None = None
    """Events (seq, batch_end] are being sent: the same batch on every retry."""
    attempts: int = 0
    first_try: float | None = None
    next_try: float | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class NewMessage:
    """One message of :meth:`EventStore.enqueue_all_with_events` (no recipients: only
    its events are recorded, under ``queue_id``)."""

    sender: str
    recipients: Sequence[str]
    data: bytes
    meta: QueueMeta
    queue_id: str
    events_for: Callable[[str], list[Event]]


class EventStore(ABC):
    """The event log, the suppression list and webhook cursors of a queue store."""

    checks_suppressions_at_enqueue = False
    """True: :meth:`enqueue_with_events` honours ``refuse_suppressed``."""

    # -- events ---------------------------------------------------------------------------

    @abstractmethod
    async def record_events(
        self,
        events: Sequence[Event],
        policy: SuppressionPolicy,
        *,
        claim: Claim | None = None,
        queue_id: str = "",
        durable: bool = True,
    ) -> list[Suppression]:
        """Append ``events`` and apply the suppression rules they trigger, atomically;
        the suppressions added. With ``claim``: its answer for ``queue_id`` is remembered
        in the same transaction (:class:`~.idempotency.Replay` if the key is taken).
        ``durable=False``: the store may commit without a flush of its own (the delivery
        agent's outcome events, written just before the queue records the same outcome
        the same way: a power failure forgets both, and the message is delivered and
        reported again, never lost)."""

    @abstractmethod
    async def record_outcome(
        self,
        queue_id: str,
        updates: Sequence[RecipientUpdate],
        events: Sequence[Event],
        policy: SuppressionPolicy,
        *,
        worker: str | None = None,
        now: float | None = None,
    ) -> list[Suppression]:
        """A delivery attempt's end in one write: its outcome ``events`` with the
        suppressions they trigger (:meth:`record_events`) and its results in the queue
        (``record_results``, releasing ``worker``'s lease). Without a flush of its own,
        like both (``durable=False``). All or nothing: when it fails, the caller records
        the results alone."""

    @abstractmethod
    async def enqueue_with_events(
        self,
        sender: str,
        recipients: Sequence[str],
        data: MessageData,
        *,
        meta: QueueMeta,
        queue_id: str,
        events_for: Callable[[str], list[Event]],
        claim: Claim | None = None,
        refuse_suppressed: Sequence[str] = (),
    ) -> str:
        """Queue a message and append ``events_for(stored_queue_id)`` in one transaction
        (the log never shows a delivery before its queueing, nor misses the queueing of a
        stored message). With ``claim``: an Idempotency-Key's answer, remembered in the
        same transaction; :class:`~.idempotency.Replay` (nothing stored) if the key is
        taken. ``refuse_suppressed`` (only where :attr:`checks_suppressions_at_enqueue`):
        :class:`~.suppressions.RecipientsSuppressed` (nothing stored) if the suppression
        list holds any of these addresses — checked in the transaction, which saves a
        round trip per message on the reply path."""

    @abstractmethod
    async def enqueue_all_with_events(self, messages: Sequence[NewMessage]) -> list[str]:
        """Queue several messages and their events in one transaction: all or none (a
        list post split per member: a failed write leaves no copy to duplicate on the
        sender's retry). The stored queue IDs, in order; the agent is woken after."""

    @abstractmethod
    async def find_idempotency(self, api_key: str, key: str, now: float) -> Stored | None:
        """The live answer remembered for an Idempotency-Key, if any."""

    @abstractmethod
    async def read_events(
        self,
        *,
        after: int = 0,
        since: float | None = None,
        limit: int = 1000,
        types: Sequence[str] | None = None,
        queue_id: str | None = None,
        recipient: str | None = None,
        tag: str | None = None,
        until: float | None = None,
    ) -> list[Event]:
        """Events with ``seq > after`` (and ``timestamp >= since``, ``< until``, of a
        recipient, carrying a tag), oldest first."""

    @abstractmethod
    async def latest_events(self, limit: int, types: Sequence[str] | None = None) -> list[Event]:
        """The newest ``limit`` events (of ``types``), oldest first."""

    @abstractmethod
    async def last_event_seq(self) -> int: ...

    @abstractmethod
    async def prune_events(self, before: float, keep_after_seq: int) -> int:
        """Delete events older than ``before`` with ``seq <= keep_after_seq``."""

    @abstractmethod
    async def prune_soft_bounces(self, before: float) -> int:
        """Delete soft bounces counted before ``before`` (outside the counting window)."""

    @abstractmethod
    async def queued_event(self, queue_id: str, rcpt_index: int) -> Event | None:
        """The ``queued`` event of recipient number ``rcpt_index`` of a message (how a
        VERP token is matched)."""

    @abstractmethod
    async def queued_event_for(self, message_id: str, recipient: str) -> Event | None:
        """A ``queued`` event with this Message-ID for this recipient (case-insensitive)."""

    # -- suppressions ---------------------------------------------------------------------

    @abstractmethod
    async def check_suppressions(
        self, addresses: Iterable[str], *, now: float
    ) -> dict[str, Suppression]:
        """The live suppressions among ``addresses``, keyed by the address as given."""

    @abstractmethod
    async def add_suppression(
        self,
        address: str,
        reason: SuppressionReason,
        *,
        now: float,
        detail: str = "",
        expires_at: float | None = None,
    ) -> Suppression: ...

    @abstractmethod
    async def remove_suppression(self, address: str) -> bool:
        """Forget the entry (and the soft bounces counted); False: there was none."""

    @abstractmethod
    async def list_suppressions(
        self, *, now: float, include_expired: bool = False
    ) -> list[Suppression]: ...

    # -- webhook cursors ------------------------------------------------------------------

    @abstractmethod
    async def load_webhook_cursor(self, name: str) -> WebhookCursor:
        """The cursor of webhook ``name``; a new webhook starts at the end of the log."""

    @abstractmethod
    async def save_webhook_cursor(self, name: str, cursor: WebhookCursor) -> None: ...

    @abstractmethod
    async def min_webhook_seq(self, urls: Sequence[str]) -> int:
        """The last event every webhook in ``urls`` has been given (the log's end when
        none); cursors of webhooks no longer configured hold nothing back."""

    @abstractmethod
    async def take_webhook_turn(
        self, name: str, holder: str, seconds: float, *, now: float
    ) -> bool:
        """May ``holder`` send webhook ``name`` for the next ``seconds``? One sender per
        webhook across every node sharing the store (others would post each batch again)."""

    # -- secrets shared by the nodes ---------------------------------------------------------

    @abstractmethod
    async def shared_secret(self, name: str, proposed: bytes) -> bytes:
        """The secret ``name`` every node of the store uses: the first ``proposed`` one
        kept (e.g. the VERP key, so that a bounce reaching any node verifies against the
        token another node made). A one-node store returns ``proposed``."""
