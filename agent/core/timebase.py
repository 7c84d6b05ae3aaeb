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


class GpsClock:
    """The offset between the monotonic clock and GPS time, bracketed by consecutive readings.

    A reading at ``mono`` shows the receiver's latest fix time ``fix_wall``; that fix is not newer
    than the read, so ``offset >= fix_wall - mono``. When the fix time changed since the previous
    reading, that fix came after the previous read: ``offset <= fix_wall - previous_mono``. Taking
    only the first bound (the fix time as "now") is up to a poll interval late; the middle of the
    bracket is within half of it (0.5 s with the default 1 s GPS poll and a 1 Hz receiver), and the
    bracket narrows as poll and fix phases wander. The receiver's output latency (NMEA sentences
    come some 0.1-0.5 s after the fix without a PPS line) is not known here and makes it early.
    """

    def __init__(self) -> None:
        self._low = -math.inf
        self._high = math.inf
        self._last: tuple[float, float] | None = None  # (mono, fix_wall) of the previous reading

    def add(self, mono: float, fix_wall: float) -> None:
        """One reading: at ``mono`` the latest fix was of time ``fix_wall``."""
        last, self._last = self._last, (mono, fix_wall)
        low = fix_wall - mono
        high = math.inf
        if last is not None and fix_wall > last[1] and mono > last[0]:
            high = fix_wall - last[0]
        elif last is not None and fix_wall < last[1]:
            self._low, self._high = -math.inf, math.inf  # the receiver's time went back: start over
        low, high = max(self._low, low), min(self._high, high)
        if low > high:
            # The bounds disagree: the monotonic clock drifted from GPS time over the hours, or the
            # receiver's time jumped. Start over from this reading.
            low, high = fix_wall - mono, math.inf
        self._low, self._high = low, high

    def offset(self) -> float | None:
        """True time minus monotonic time; None until a fix time was seen changing between two reads."""
        if not math.isfinite(self._high):
            return None
        return (self._low + self._high) / 2

    def uncertainty(self) -> float:
        """How far :meth:`offset` may be from the truth (half the bracket), receiver latency aside."""
        return (self._high - self._low) / 2


def wall_iso(wall: float) -> str:
    """Unix seconds as ISO 8601 UTC with a ``Z``, the form stop visits carry their wall times in."""
    if not math.isfinite(wall):
        return str(wall)
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).isoformat().replace("+00:00", "Z")


def retime_payload(payload: Any, boot_id: str, offset_s: float, source: TimeSource) -> bool:
    """Re-time, in place, the wall times a record's payload carries beside monotonic times.

    The convention every payload follows: ``wall`` beside ``mono`` in one object (with ``source`` or
    ``wall_source`` beside them, set to ``source`` too), and ``<name>_wall`` beside
    ``<name>_mono``. A wall is a number or an ISO 8601 string and keeps its form. An object whose
    ``boot_id`` is another boot's is left alone: its monotonic clock had another zero. Returns
    whether anything changed.
    """
    if isinstance(payload, list):
        return any([retime_payload(item, boot_id, offset_s, source) for item in payload])
    if not isinstance(payload, dict) or payload.get("boot_id", boot_id) != boot_id:
        return False
    changed = any([retime_payload(value, boot_id, offset_s, source) for value in payload.values()])
    for mono_key in [key for key in payload if key == "mono" or key.endswith("_mono")]:
        wall_key = mono_key[: -len("mono")] + "wall"
        mono, wall = payload[mono_key], payload.get(wall_key)
        if wall is None or isinstance(mono, bool) or not isinstance(mono, int | float):
            continue
        new = mono + offset_s
        payload[wall_key] = wall_iso(new) if isinstance(wall, str) else new
        changed = True
        if mono_key == "mono":  # this object is a time stamp: its source goes with its wall
            payload.update({key: source for key in ("source", "wall_source") if key in payload})
    return changed
