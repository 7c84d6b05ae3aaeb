"""What every simulator shares: a clock, a history, checked verb numbers and loops that outlive a bad step."""

from __future__ import annotations

import dataclasses
import math
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


def finite(name: str, value: float, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` when it is a finite number within [low, high]; ValueError naming ``name`` otherwise.

    Verbs check their numbers before touching any state: a NaN or an infinity stored in a model
    would only fail later, inside a serving thread, where nobody sees it.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if not low <= value <= high:
        if high == math.inf:
            raise ValueError(f"{name} must be at least {low:g}, not {value:g}")
        if low == -math.inf:
            raise ValueError(f"{name} must be at most {high:g}, not {value:g}")
        raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value:g}")
    return float(value)


class ServingLoop:
    """Calls ``step`` from a daemon thread between start() and stop(), a device's heartbeat.

    ``step`` returns how long to wait before the next call. A step that raises is recorded in
    ``history`` (event ``error``, with ``where``) and the loop waits ``after_error_s`` and goes on:
    a simulator whose thread died would look, from the driver's side, like a device gone silent.
    """

    def __init__(
        self, name: str, step: Callable[[], float], history: History, *, where: str, after_error_s: float
    ) -> None:
        self.name = name
        self._step = step
        self._history = history
        self._where = where
        self._after_error_s = after_error_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None:
            thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                wait_s = self._step()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a bug in one step; recorded
                self._history.record("error", where=self._where, error=f"{type(exc).__name__}: {exc}")
                wait_s = self._after_error_s
            self._stopping.wait(wait_s)
