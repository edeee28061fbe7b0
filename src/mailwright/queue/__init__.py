"""The durable mail queue: the interface (:mod:`.store`), the embedded store (:mod:`.sqlite`),
the shared one (:mod:`.postgres`, imported only when configured: :mod:`.configured`)."""

from .configured import open_store
from .sqlite import SqliteQueueStore
from .store import (
    DsnRecipient,
    Handoff,
    PendingFailure,
    QueueEntry,
    QueueError,
    QueueMeta,
    QueueStore,
    RecipientState,
    RecipientUpdate,
    SchemaMismatch,
    is_queue_id,
    new_queue_id,
)

__all__ = [
    "DsnRecipient",
    "Handoff",
    "PendingFailure",
    "QueueEntry",
    "QueueError",
    "QueueMeta",
    "QueueStore",
    "RecipientState",
    "RecipientUpdate",
    "SchemaMismatch",
    "SqliteQueueStore",
    "is_queue_id",
    "new_queue_id",
    "open_store",
]
