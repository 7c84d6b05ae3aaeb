"""The durable outbox: records wait in SQLite until the collector acknowledges them end to end."""

from agent.outbox.records import (
    OutboxError,
    OutboxFull,
    OutboxStats,
    Priority,
    Record,
    State,
    StreamStats,
)
from agent.outbox.schema import Synchronous
from agent.outbox.store import Outbox

__all__ = [
    "Outbox",
    "OutboxError",
    "OutboxFull",
    "OutboxStats",
    "Priority",
    "Record",
    "State",
    "StreamStats",
    "Synchronous",
]
