"""The durable mail queue: the interface (:mod:`.store`) and the embedded store (:mod:`.sqlite`)."""

from .sqlite import SqliteQueueStore, open_store
from .store import (
    DsnRecipient,
    PendingFailure,
    QueueEntry,
    QueueError,
    QueueMeta,
    QueueStore,
    RecipientState,
    RecipientUpdate,
    is_queue_id,
    new_queue_id,
)

__all__ = [
    "DsnRecipient",
    "PendingFailure",
    "QueueEntry",
    "QueueError",
    "QueueMeta",
    "QueueStore",
    "RecipientState",
    "RecipientUpdate",
    "SqliteQueueStore",
    "is_queue_id",
    "new_queue_id",
    "open_store",
]
