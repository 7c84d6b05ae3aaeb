"""Time without a real-time clock: stamp records with boot id, monotonic and wall time, re-time them later.

A Raspberry Pi boots at 1970 or at a stale fake-hwclock value. Records are stamped with the
monotonic clock (always right for durations) and the best wall time known; once GPS or NTP
gives the true time, records of this boot get ``wall = mono + offset``.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any, Literal

TimeSource = Literal["gps", "ntp", "unsynced"]
SyncSource = Literal["gps", "ntp"]

#: 2024-01-01T00:00:00Z. busagent did not run before; an earlier clock is a Pi without RTC (1970)
#: or a fake-hwclock saved by an old image.
MIN_PLAUSIBLE_WALL = 1_704_067_200.0
#: 2100-01-01T00:00:00Z. GPS week-rollover bugs and corrupt sentences also give dates far ahead.
MAX_PLAUSIBLE_WALL = 4_102_444_800.0


def plausible_wall(wall: float) -> bool:
    """Could ``wall`` (Unix seconds) be the true time at all?"""
    return math.isfinite(wall) and MIN_PLAUSIBLE_WALL <= wall < MAX_PLAUSIBLE_WALL


def system_clock_trusted(system_wall: float, kernel_synced: bool) -> bool:
    """Is the system clock right? Only when the kernel says NTP synchronised it and it is plausible.

    Plausible alone is not enough: a fake-hwclock restored at boot is a year that looks right but
    lags by however long the box was off (an hour, a week).
    """
    return kernel_synced and plausible_wall(system_wall)


def parse_gps_time(text: str | None) -> float | None:
    """Unix seconds from a receiver's ISO 8601 UTC time ("2026-03-02T08:00:00.000Z"); None if unusable."""
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)  # receivers speak UTC
    wall = moment.timestamp()
    return wall if plausible_wall(wall) else None


@dataclasses.dataclass(frozen=True)
class TimeStamp:
    """When a record was made: ``mono`` always; ``wall`` as good as ``source`` says."""

    boot_id: str
    mono: float
    wall: float
    source: TimeSource

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Timebase:
    """The offset between this boot's monotonic clock and true time, once known."""

    def __init__(self, boot_id: str) -> None:
        self.boot_id = boot_id
        self._offset: float | None = None
        self._source: TimeSource = "unsynced"

    @property
    def synced(self) -> bool:
        return self._offset is not None

    @property
    def source(self) -> TimeSource:
        return self._source

    def wall_at(self, mono: float) -> float | None:
        """The true wall time at ``mono``, or None before any sync."""
        return None if self._offset is None else mono + self._offset

    def stamp(self, mono: float, system_wall: float) -> TimeStamp:
        """Stamp a record made at ``mono``; before any sync the system clock is kept but marked unsynced."""
        if self._offset is None:
            return TimeStamp(self.boot_id, mono, system_wall, "unsynced")
        return TimeStamp(self.boot_id, mono, mono + self._offset, self._source)

    def sync(self, mono: float, true_wall: float, source: SyncSource) -> bool:
        """True time ``true_wall`` was observed at ``mono``; False (and ignored) when implausible.

        The latest sync wins: GPS and NTP agree to well under a second, and a later one has less
        accumulated drift between the monotonic clock and true time.
        """
        if not (math.isfinite(mono) and plausible_wall(true_wall)):
            return False
        self._offset = true_wall - mono
        self._source = source
        return True

    def retime(self, stamp: TimeStamp) -> TimeStamp:
        """``stamp`` re-timed from its monotonic time; unchanged before a sync or from another boot.

        Another boot's monotonic clock started from a different zero, so no offset of ours applies.
        """
        if self._offset is None or stamp.boot_id != self.boot_id:
            return stamp
        return dataclasses.replace(stamp, wall=stamp.mono + self._offset, source=self._source)
