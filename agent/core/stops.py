"""Stop detection: a state machine turning GPS fixes and shore power into arrival and departure events.

``moving`` -> ``halted`` when a slow fix comes; ``halted`` -> ``parked`` (Arrived) when the halt has
stayed put for the dwell time or shore power is plugged in; ``parked`` -> ``moving`` (Departed)
when the bus has clearly moved on. Pure: the caller passes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import deque
from collections.abc import Iterable
from typing import Literal, NamedTuple

from agent.core.catalog import Catalog, Site
from agent.core.geo import haversine_m, valid_position
from drivers.snapshots import GpsSnapshot, PowerSnapshot

State = Literal["moving", "halted", "parked"]
ConfirmedBy = Literal["dwell", "shore"]
ForeseenWhy = Literal["shore-unplugged", "engine-started"]


@dataclasses.dataclass(frozen=True)
class StopParams:
    """Thresholds of the detector; each default says why it has that value."""

    # Walking pace (1.8 km/h): a standing bus reads 0-0.3 m/s of GPS speed noise, a rolling one more.
    halt_speed_mps: float = 0.5
    # A halt must stay within this of where it began: above the spread of a median of jittery fixes,
    # below what a jam crawls in the dwell time. A crawl with under-reported speed drifts out of it.
    anchor_radius_m: float = 40.0
    # Positions are compared as medians over this window (the halt's first and the latest fixes):
    # 30 m of random jitter averages out, a steady crawl does not.
    window_s: float = 30.0
    # Red lights (30-120 s), roundabouts, level crossings (up to ~4 min) stay under; 10 min is a stop.
    dwell_s: float = 300.0
    # One speed spike during a halt is noise; this long above halt_speed_mps means the bus rolls again.
    moving_confirm_s: float = 3.0
    # 9 km/h: above GPS speed noise at standstill, reached by a bus within seconds of pulling away.
    depart_speed_mps: float = 2.5
    # Hysteresis with anchor_radius_m: a fast fix only counts as leaving when it is also this far
    # from the stop, beyond the 30 m wander of a parked bus's fix.
    depart_min_distance_m: float = 50.0
    # Latest fixes (median) this far away mean the bus is gone even without speed, e.g. GPS back
    # after a loss somewhere else; farther than repositioning on the same square.
    depart_radius_m: float = 150.0
    # Departure evidence must last this long and span depart_min_fixes: spikes and outliers do not.
    depart_sustain_s: float = 10.0
    depart_min_fixes: int = 3
    # Evidence interrupted by a longer fix gap starts over: nobody saw what happened in between.
    max_fix_gap_s: float = 5.0
    # A shore reading older than this is unknown: a silent sensor must not pin the bus forever.
    shore_stale_s: float = 120.0
    # A stop confirmed by shore power with no position takes the median of this many fixes later.
    locate_fixes: int = 5


@dataclasses.dataclass(frozen=True)
class Arrived:
    """The bus stopped; ``at`` is back-dated to the start of the halt."""

    at: float
    lat: float | None
    lon: float | None
    site: Site | None
    confirmed_by: ConfirmedBy


@dataclasses.dataclass(frozen=True)
class DepartureForeseen:
    """The bus is about to leave (shore cable unplugged, engine started): time for a last probe."""

    at: float
    why: ForeseenWhy


@dataclasses.dataclass(frozen=True)
class Departed:
    """The bus left the stop; ``at`` is when the movement first became evident."""

    at: float
    arrived_at: float
    lat: float | None
    lon: float | None
    site: Site | None


StopEvent = Arrived | DepartureForeseen | Departed


@dataclasses.dataclass(frozen=True)
class Stop:
    """The stop the bus is at now."""

    arrived_at: float
    lat: float | None
    lon: float | None
    site: Site | None
    confirmed_by: ConfirmedBy


class _Fix(NamedTuple):
    t: float
    lat: float
    lon: float
    speed: float | None  # None when the receiver gives none (or nonsense)


def shore_of(power: PowerSnapshot | None) -> bool | None:
    """Shore state from a power snapshot: None when unread, failed or not measured by this box."""
    if power is None or not power.ok:
        return None
    return power.shore_connected


class StopDetector:
    """Feed :meth:`update` every tick; it returns the stop events that tick caused."""

    def __init__(self, params: StopParams | None = None, catalog: Catalog | None = None) -> None:
        self.params = params or StopParams()
        self.catalog = catalog if catalog is not None else Catalog()
        self._state: State = "moving"
        self._stop: Stop | None = None
        self._halt: list[_Fix] = []  # slow fixes of the current halt
        self._anchor: tuple[float, float] | None = None  # median of the halt's first window, once full
        self._fast_since: float | None = None  # halted: start of unconfirmed fast readings
        self._recent: deque[_Fix] = deque()  # every fix of the last window_s
        self._last_fix: _Fix | None = None
        self._evidence: list[_Fix] = []  # parked: current streak of departure evidence
        self._shore: bool | None = None
        self._shore_at = -math.inf
        self._engine: bool | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def stop(self) -> Stop | None:
        return self._stop

    def shore_plugged(self, now: float) -> bool:
        """True while the latest shore reading says plugged and is not stale."""
        return self._shore is True and now - self._shore_at <= self.params.shore_stale_s

    def update(
        self, now: float, gps: GpsSnapshot | None, shore: bool | None, *, engine: bool | None = None
    ) -> list[StopEvent]:
        """One tick: ``gps`` None or without fix and ``shore``/``engine`` None mean "no news"."""
        was_plugged = self.shore_plugged(now)
        if shore is not None:
            self._shore, self._shore_at = shore, now
        plugged = self.shore_plugged(now)
        fix = _fix_of(now, gps)
        if fix is not None:
            self._remember(fix)
        events: list[StopEvent] = []
        if self._state == "parked":
            events += self._foresee(now, unplugged=was_plugged and shore is False, engine=engine)
            if fix is not None and self._stop is not None and self._stop.lat is None:
                self._locate(self._stop)
            if plugged:
                self._evidence.clear()  # the shore cable is in: whatever the GPS says, the bus is here
            elif fix is not None:
                events += self._parked_fix(fix)
        else:
            if fix is not None:
                events += self._unparked_fix(fix)
            if plugged and not any(isinstance(event, Arrived) for event in events):
                events.append(self._arrive(self._halt[0].t if self._halt else now, "shore"))
        if engine is not None:
            self._engine = engine
        return events

    # -- moving / halted ---------------------------------------------------------------------------

    def _unparked_fix(self, fix: _Fix) -> list[StopEvent]:
        params = self.params
        if fix.speed is not None and fix.speed >= params.halt_speed_mps:
            if self._state == "halted":
                self._fast_since = fix.t if self._fast_since is None else self._fast_since
                if fix.t - self._fast_since >= params.moving_confirm_s:
                    self._end_halt()
            return []
        self._fast_since = None
        if self._state == "moving" or self._drifted(fix):
            self._start_halt(fix)
            return []
        self._halt.append(fix)
        if fix.t - self._halt[0].t >= params.dwell_s:
            return [self._arrive(self._halt[0].t, "dwell")]
        return []

    def _start_halt(self, fix: _Fix) -> None:
        self._state = "halted"
        self._halt = [fix]
        self._anchor = None
        self._fast_since = None

    def _end_halt(self) -> None:
        self._state = "moving"
        self._halt = []
        self._anchor = None
        self._fast_since = None

    def _drifted(self, fix: _Fix) -> bool:
        """Has the halt crept away from where it began (median of its first window vs of the latest)?"""
        start = self._halt[0].t
        anchor = self._anchor
        if anchor is None:
            anchor = _median(f for f in self._halt if f.t <= start + self.params.window_s)
            if fix.t > start + self.params.window_s:
                self._anchor = anchor  # the first window is complete: it no longer changes
        latest = _median(f for f in self._recent if f.t >= start)
        return haversine_m(*anchor, *latest) > self.params.anchor_radius_m

    def _arrive(self, at: float, confirmed_by: ConfirmedBy) -> Arrived:
        position: tuple[float, float] | None = None
        if self._halt:
            position = _median(self._halt)
        elif self._last_fix is not None:
            position = (self._last_fix.lat, self._last_fix.lon)
        lat, lon = position if position is not None else (None, None)
        site = self.catalog.match(*position) if position is not None else None
        self._stop = Stop(at, lat, lon, site, confirmed_by)
        self._end_halt()
        self._state = "parked"
        self._evidence = []
        return Arrived(at, lat, lon, site, confirmed_by)

    # -- parked ------------------------------------------------------------------------------------

    def _foresee(self, now: float, *, unplugged: bool, engine: bool | None) -> list[StopEvent]:
        events: list[StopEvent] = []
        if unplugged:
            events.append(DepartureForeseen(now, "shore-unplugged"))
        if engine is True and self._engine is False:
            events.append(DepartureForeseen(now, "engine-started"))
        return events

    def _parked_fix(self, fix: _Fix) -> list[StopEvent]:
        stop = self._stop
        assert stop is not None  # parked always has a stop
        if not self._is_evidence(fix, stop):
            self._evidence.clear()
            return []
        if self._evidence and fix.t - self._evidence[-1].t > self.params.max_fix_gap_s:
            self._evidence.clear()
        self._evidence.append(fix)
        first = self._evidence[0]
        if (
            len(self._evidence) >= self.params.depart_min_fixes
            and fix.t - first.t >= self.params.depart_sustain_s
        ):
            return [self._depart(first.t, stop)]
        return []

    def _locate(self, stop: Stop) -> None:
        """Give a stop confirmed without any position the median of the fixes seen since, once enough."""
        if len(self._recent) >= self.params.locate_fixes:
            lat, lon = _median(self._recent)
            self._stop = dataclasses.replace(stop, lat=lat, lon=lon, site=self.catalog.match(lat, lon))

    def _is_evidence(self, fix: _Fix, stop: Stop) -> bool:
        params = self.params
        fast = fix.speed is not None and fix.speed >= params.depart_speed_mps
        if stop.lat is None or stop.lon is None:
            return fast
        if fast and haversine_m(fix.lat, fix.lon, stop.lat, stop.lon) > params.depart_min_distance_m:
            return True
        if len(self._recent) < params.depart_min_fixes:
            return False
        return haversine_m(*_median(self._recent), stop.lat, stop.lon) > params.depart_radius_m

    def _depart(self, at: float, stop: Stop) -> Departed:
        self._state = "moving"
        self._stop = None
        self._evidence = []
        return Departed(at, stop.arrived_at, stop.lat, stop.lon, stop.site)

    # -- fixes -------------------------------------------------------------------------------------

    def _remember(self, fix: _Fix) -> None:
        self._last_fix = fix
        self._recent.append(fix)
        while self._recent and self._recent[0].t < fix.t - self.params.window_s:
            self._recent.popleft()


def _fix_of(now: float, gps: GpsSnapshot | None) -> _Fix | None:
    """A usable fix, or None: no snapshot, no fix, or a position no receiver can be at."""
    if gps is None or not gps.has_fix or gps.lat_deg is None or gps.lon_deg is None:
        return None
    if not valid_position(gps.lat_deg, gps.lon_deg):
        return None
    speed = gps.speed_mps
    if speed is not None and not (math.isfinite(speed) and speed >= 0):
        speed = None  # a negative or NaN speed says nothing about motion
    return _Fix(now, gps.lat_deg, gps.lon_deg, speed)


def _median(fixes: Iterable[_Fix]) -> tuple[float, float]:
    """Component-wise median position: robust to the odd wild fix, unlike the mean."""
    items = list(fixes)
    return statistics.median(f.lat for f in items), statistics.median(f.lon for f in items)
