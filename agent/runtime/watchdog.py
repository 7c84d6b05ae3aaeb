"""The systemd watchdog: ping WATCHDOG=1 only while every worker thread keeps making progress.

A ping from a timer thread alone proves nothing (the timer would keep pinging while the GPS poller
is wedged in a driver bug). So each worker reports progress here, and the pinger sends WATCHDOG=1
only while no worker has been silent longer than its own limit; otherwise it says which worker
is stuck in STATUS and lets systemd's WatchdogSec restart the service.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import structlog

from agent.runtime.sdnotify import Notifier

log = structlog.get_logger(__name__)


@dataclasses.dataclass
class _Worker:
    limit_s: float
    last_s: float
    busy: bool = True


class Health:
    """Progress of every worker, on the real monotonic clock (systemd's watchdog runs in real time)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()

    def register(self, name: str, limit_s: float) -> None:
        """``name`` counts as stuck once it reports no progress for ``limit_s`` seconds."""
        if limit_s <= 0:
            raise ValueError(f"limit_s must be positive, got {limit_s}")
        with self._lock:
            self._workers[name] = _Worker(limit_s, self._clock())

    def unregister(self, name: str) -> None:
        with self._lock:
            self._workers.pop(name, None)

    def beat(self, name: str) -> None:
        """``name`` made progress now."""
        worker = self._workers.get(name)
        if worker is not None:
            worker.last_s = self._clock()

    def idle(self, name: str, idle: bool) -> None:
        """An idle worker (e.g. the probe worker between suites) cannot be stuck."""
        worker = self._workers.get(name)
        if worker is not None:
            worker.busy = not idle
            worker.last_s = self._clock()

    def report(self) -> dict[str, dict[str, float | bool]]:
        """Per worker: seconds since its last progress, and whether that is past its limit."""
        now = self._clock()
        with self._lock:
            workers = dict(self._workers)
        return {
            name: {
                "progress_age_s": round(now - w.last_s, 3),
                "stalled": w.busy and now - w.last_s > w.limit_s,
            }
            for name, w in sorted(workers.items())
        }

    def stalled(self) -> list[str]:
        return [name for name, entry in self.report().items() if entry["stalled"]]


class WatchdogPinger(threading.Thread):
    """Pings systemd every ``period_s`` while :class:`Health` says no worker is stuck."""

    def __init__(
        self, health: Health, notifier: Notifier, period_s: float, stopping: threading.Event
    ) -> None:
        super().__init__(name="watchdog", daemon=True)
        self.health = health
        self.notifier = notifier
        self.period_s = period_s
        self.stopping = stopping
        self._complained: tuple[str, ...] = ()

    def run(self) -> None:
        while not self.stopping.wait(self.period_s):
            self.check()

    def check(self) -> bool:
        """One round: ping if healthy; True when it pinged."""
        stuck = tuple(self.health.stalled())
        if not stuck:
            if self._complained:
                log.info("watchdog.recovered", workers=list(self._complained))
                self.notifier.status("running")
                self._complained = ()
            return self.notifier.watchdog()
        if stuck != self._complained:
            # Said once per change: the journal shows which worker systemd is about to restart us for.
            log.error("watchdog.worker_stuck", workers=list(stuck))
            self.notifier.status(f"stuck: {', '.join(stuck)}; withholding watchdog pings")
            self._complained = stuck
        return False
