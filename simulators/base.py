"""What every simulator shares: an injectable clock and a recorded history of what was done to it."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class Event:
    """One thing that happened to a simulator: a test verb or a request it answered."""

    at: float
    name: str
    detail: dict[str, Any]


class History:
    """Thread-safe, append-only record, so tests can assert on what a simulator saw and did."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def record(self, name: str, **detail: Any) -> None:
        with self._lock:
            self._events.append(Event(self._clock(), name, detail))

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e.name == name)
