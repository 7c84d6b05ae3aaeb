"""Probe scheduling: when the connectivity suite runs, and whether its throughput test fits the data budget.

Pure decisions: the runtime feeds stop events and asks :meth:`ProbeScheduler.due` each tick, then
reports :meth:`~ProbeScheduler.started` and :meth:`~ProbeScheduler.finished`. The calendar day
(for the daily budget) is passed in as a string such as ``"2026-03-02"``: the core never reads a
clock, and the runtime decides which time zone a "day" is in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

from agent.core.stops import Arrived, Departed, DepartureForeseen

Reason = Literal["arrival", "interval", "before-departure", "first-movement", "manual"]

#: Days of data usage kept (a week covers any "yesterday" question without growing forever).
_KEEP_DAYS = 7


@dataclasses.dataclass(frozen=True)
class ProbeParams:
    """When suites run and what they may spend; each default says why it has that value."""

    # After the bus stops the modem re-registers and staff set up; a minute later the link is what
    # the public will get.
    settle_s: float = 60.0
    # Two suites an hour show a link that degrades over a half-day stop, within the data budget.
    interval_s: float = 1800.0
    # A suite this fresh already describes the stop as the bus left it: no first-movement suite.
    recent_suite_s: float = 600.0
    # 200 MB a day: a few throughput tests a day on a typical 10-50 GB/month fleet SIM plan.
    daily_budget_bytes: int = 200_000_000
    # Cost of one suite with throughput before one has been measured: ~10 s down at 20 Mbit/s and
    # ~10 s up at 4 Mbit/s. The latest measured suite replaces it when larger.
    throughput_estimate_bytes: int = 30_000_000


@dataclasses.dataclass(frozen=True)
class ProbeRequest:
    """A suite to run now; ``throughput_skipped`` says why throughput is left out, when it is."""

    reason: Reason
    day: str
    throughput: bool
    throughput_skipped: str | None = None
    site_id: str | None = None


class ProbeScheduler:
    """Decides when the probe suite is due; never two suites at once."""

    def __init__(self, params: ProbeParams | None = None) -> None:
        self.params = params or ProbeParams()
        self._parked = False
        self._arrived_at: float | None = None  # when the arrival was *processed* (settle starts there)
        self._site_id: str | None = None
        self._stop_last_start: float | None = None  # last suite start at the current stop
        self._foreseen = False
        self._before_departure_done = False
        self._first_movement = False
        self._running: ProbeRequest | None = None
        self._used: dict[str, int] = {}
        self._throughput_cost = self.params.throughput_estimate_bytes

    @property
    def running(self) -> ProbeRequest | None:
        return self._running

    def on_events(self, now: float, events: Iterable[object]) -> None:
        """Take the stop detector's events (others are ignored)."""
        for event in events:
            if isinstance(event, Arrived):
                self._on_arrived(now, event)
            elif isinstance(event, DepartureForeseen) and self._parked:
                self._foreseen = True
            elif isinstance(event, Departed):
                self._on_departed(now)

    def due(self, now: float, day: str) -> ProbeRequest | None:
        """The suite to start now, or None (always None while one runs)."""
        reason = self._due_reason(now)
        return None if reason is None else self._request(reason, day)

    def next_due(self, now: float) -> float | None:
        """When a suite will next be due without new events (``now`` if due now); None if never."""
        if self._running is not None:
            return None
        if self._parked:
            if self._foreseen and not self._before_departure_done:
                return now
            if self._stop_last_start is None:
                assert self._arrived_at is not None  # set with _parked
                return max(now, self._arrived_at + self.params.settle_s)
            return max(now, self._stop_last_start + self.params.interval_s)
        return now if self._first_movement else None

    def manual(self, now: float, day: str) -> ProbeRequest | None:
        """A suite asked for by hand (``agentctl test``); None while another runs."""
        return None if self._running is not None else self._request("manual", day)

    def started(self, now: float, request: ProbeRequest) -> None:
        """The runtime started ``request``; raises RuntimeError if a suite is already running."""
        if self._running is not None:
            raise RuntimeError(f"a {self._running.reason} probe suite is already running")
        self._running = request
        if self._parked:
            self._stop_last_start = now
            self._before_departure_done |= request.reason == "before-departure"
        else:
            self._first_movement = False  # any suite after departure measures the departure

    def finished(self, now: float, bytes_used: int) -> None:
        """The running suite ended having used ``bytes_used`` (charged to the day it started)."""
        request = self._running
        if request is None:
            raise RuntimeError("no probe suite is running")
        if bytes_used < 0:
            raise ValueError(f"bytes_used must not be negative, got {bytes_used}")
        self._running = None
        self._used[request.day] = self._used.get(request.day, 0) + bytes_used
        if request.throughput:
            # The latest real cost (never below the configured guess: a test that failed early costs
            # nothing), capped at the budget so that a link too fast for it still gets one test a day.
            floor = self.params.throughput_estimate_bytes
            self._throughput_cost = min(max(floor, bytes_used), self.params.daily_budget_bytes)
        for old in sorted(self._used)[:-_KEEP_DAYS]:
            del self._used[old]

    def used(self, day: str) -> int:
        """Bytes the probes used on ``day``."""
        return self._used.get(day, 0)

    def usage(self) -> dict[str, int]:
        """Bytes used per day, for the runtime to save across restarts (a reboot must not reset it)."""
        return dict(self._used)

    def restore_usage(self, usage: dict[str, int]) -> None:
        """Take back what :meth:`usage` returned before a restart."""
        for day, used in usage.items():
            self._used[day] = max(self._used.get(day, 0), int(used))

    # -- internals ---------------------------------------------------------------------------------

    def _on_arrived(self, now: float, event: Arrived) -> None:
        self._parked = True
        self._arrived_at = now
        self._site_id = event.site.id if event.site is not None else None
        self._stop_last_start = None
        self._foreseen = False
        self._before_departure_done = False
        self._first_movement = False  # the arrival suite at the new stop supersedes it

    def _on_departed(self, now: float) -> None:
        if not self._parked:
            return
        last = self._stop_last_start
        fresh = last is not None and now - last < self.params.recent_suite_s
        self._first_movement = not (self._before_departure_done or fresh or self._running is not None)
        self._parked = False
        self._foreseen = False

    def _due_reason(self, now: float) -> Reason | None:
        when = self.next_due(now)
        if when is None or when > now:
            return None
        if not self._parked:
            return "first-movement"
        if self._foreseen and not self._before_departure_done:
            return "before-departure"
        return "arrival" if self._stop_last_start is None else "interval"

    def _request(self, reason: Reason, day: str) -> ProbeRequest:
        used = self.used(day)
        budget = self.params.daily_budget_bytes
        cost = self._throughput_cost
        # The stop a suite describes: the current one, or the one just left for a first-movement suite.
        site_id = self._site_id if self._parked or self._first_movement else None
        if used + cost <= budget:
            return ProbeRequest(reason, day, True, None, site_id)
        why = f"daily data budget exhausted (used {used} of {budget} bytes"
        if used < budget:
            why += f"; a throughput test needs about {cost}"
        return ProbeRequest(reason, day, False, why + ")", site_id)
