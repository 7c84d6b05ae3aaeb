"""Clocks for the runtime: the system's, or a scaled one that runs a simulated day in minutes.

Every wait in the runtime goes through a clock, so that polling intervals, dwell times and
probe schedules follow simulated time, while the probes themselves measure in real time.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds, wall seconds, and waiting measured on this clock."""

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait ``seconds`` of this clock or until ``event`` is set; True when it was set."""
        ...

    def to_real(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of this clock take."""
        ...


class SystemClock:
    """The machine's clocks (CLOCK_MONOTONIC and the system time, which may be unsynced)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))

    def to_real(self, seconds: float) -> float:
        return seconds


class ScaledClock:
    """Simulated time running ``speedup`` times faster than real time from ``start_wall``."""

    def __init__(
        self, start_wall: float, speedup: float, start_mono: float = 1000.0, origin_real: float | None = None
    ) -> None:
        if speedup <= 0:
            raise ValueError(f"speedup must be positive, got {speedup}")
        self.speedup = speedup
        self.start_wall = start_wall
        self.start_mono = start_mono
        # CLOCK_MONOTONIC is shared by every process of the machine: two processes given the same
        # origin read the same simulated time.
        self.origin_real = time.monotonic() if origin_real is None else origin_real
        self._real0 = self.origin_real

    def restart(self, origin_real: float) -> None:
        """Simulated time is ``start_wall`` again at ``origin_real`` (a CLOCK_MONOTONIC reading)."""
        self.origin_real = self._real0 = origin_real

    def elapsed(self) -> float:
        """Simulated seconds since the clock started."""
        return (time.monotonic() - self._real0) * self.speedup

    def monotonic(self) -> float:
        return self.start_mono + self.elapsed()

    def wall(self) -> float:
        return self.start_wall + self.elapsed()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(self.to_real(max(0.0, seconds)))

    def to_real(self, seconds: float) -> float:
        return seconds / self.speedup
