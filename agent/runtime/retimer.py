"""Keep this boot's records on true time: ask whether NTP synchronised the clock, re-time what waits.

Runs on the loop thread, before each record is stored (the thread that owns the tracker and its
timebase). GPS time reaches the timebase through the tracker; NTP through :meth:`Retimer.check_ntp`.
Whenever the timebase's offset or source changes, the unsent records of this boot are re-timed
from their monotonic times, in the outbox (wall column and the times inside payloads) and in the
sink's memory queue, and :attr:`Retimer.version` goes up: the publisher holds this boot's records
until it is above 0, and re-reads what it had staged when it moves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import structlog

from agent.core.timebase import retime_payload
from agent.core.tracker import StopTracker
from agent.outbox import Outbox
from agent.runtime.clock import Clock
from agent.runtime.sink import RecordSink

log = structlog.get_logger(__name__)

#: How often (agent clock seconds) the kernel is asked whether NTP synchronised the clock.
NTP_CHECK_S = 10.0


class Retimer:
    """``before_record(tracker)`` on the loop thread; ``version`` read by the publisher's thread."""

    def __init__(
        self,
        *,
        boot_id: str,
        outbox: Outbox,
        sink: RecordSink,
        clock: Clock,
        ntp_synchronized: Callable[[], bool],
    ) -> None:
        self.boot_id = boot_id
        self.outbox = outbox
        self.sink = sink
        self.clock = clock
        self.ntp_synchronized = ntp_synchronized
        self.version = 0
        self._applied: tuple[float, str] | None = None
        self._next_ntp_check = -math.inf

    def before_record(self, tracker: StopTracker) -> None:
        self.check_ntp(tracker)
        self.retime(tracker)

    def check_ntp(self, tracker: StopTracker) -> None:
        """Once every NTP_CHECK_S: when the kernel says NTP synchronised it, the system clock is true time."""
        now = self.clock.monotonic()
        if now < self._next_ntp_check:
            return
        self._next_ntp_check = now + NTP_CHECK_S
        if self.ntp_synchronized():
            tracker.ntp_synchronized(self.clock.monotonic(), self.clock.wall())

    def retime(self, tracker: StopTracker) -> None:
        """Re-time this boot's unsent records when the timebase moved since the last time."""
        timebase = tracker.timebase
        offset = timebase.wall_at(0.0)
        if offset is None or (offset, timebase.source) == self._applied:
            return
        source = timebase.source
        assert source != "unsynced"  # a timebase with an offset has a sync source

        def payload(body: dict[str, Any]) -> bool:
            return retime_payload(body, self.boot_id, offset, source)

        count = self.outbox.retime(self.boot_id, offset, source, payloads=payload)
        self.sink.retime(timebase.retime, payload)
        moved = None if self._applied is None else round(offset - self._applied[0], 3)
        self._applied = (offset, source)
        self.version += 1
        log.info("time.synced", source=source, records_retimed=count, moved_s=moved)
