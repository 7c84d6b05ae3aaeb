"""The timeline of a simulated service day: where the bus is and what it finds there, at any instant.

Built from a validated :class:`~simulators.scenario.Scenario`, pure (no clock, no I/O): every
question takes ``t``, absolute epoch seconds. The bus leaves the depot at the start, drives a
straight line at the scenario's speed to each stop (halting at a red light halfway along any
leg over 1 km), arrives as early as it can and stays parked until the stop's ``depart``; after
the last stop it drives back to the depot, and the day ends ``end_margin_s`` after it is there
(or after the last broker outage, if that ends later).
Speed changes are instant. Before the start and after the return the bus stands at the depot.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from typing import NamedTuple

from agent.core.geo import haversine_m
from simulators.scenario import (
    RED_LIGHT_MIN_LEG_M,
    Link,
    Outage,
    Scenario,
    ScenarioStop,
    Signal,
    leg_duration_s,
)

DEPOT = "depot"


class Fix(NamedTuple):
    """Where the bus really is: degrees, metres per second over ground, course in degrees true."""

    lat: float
    lon: float
    speed_mps: float
    track_deg: float


@dataclasses.dataclass(frozen=True)
class PrinterState:
    """The printer's IPP state and reasons at one instant."""

    state: str
    reasons: tuple[str, ...]


IDLE = PrinterState("idle", ())


@dataclasses.dataclass(frozen=True)
class Leg:
    """One straight drive, from the depot or a stop to the next stop or back to the depot."""

    origin: str  # a stop name, or "depot"
    destination: str
    start_lat: float
    start_lon: float
    end_lat: float
    end_lon: float
    distance_m: float
    speed_mps: float
    track_deg: float
    start: float  # leaves
    end: float  # arrives
    halt: tuple[float, float] | None  # the red light: (from, to), halfway along

    def at(self, t: float) -> Fix:
        """The bus on this leg at ``t`` (clamped to the leg's two ends)."""
        driven_s = max(0.0, min(t, self.end) - self.start)
        moving = self.start <= t < self.end
        if self.halt is not None:
            halt_from, halt_to = self.halt
            driven_s -= max(0.0, min(t, halt_to) - halt_from)
            moving = moving and not halt_from <= t < halt_to
        share = 1.0 if self.distance_m == 0 else min(1.0, self.speed_mps * driven_s / self.distance_m)
        lat = self.start_lat + share * (self.end_lat - self.start_lat)
        lon = self.start_lon + share * (self.end_lon - self.start_lon)
        return Fix(lat, lon, self.speed_mps if moving else 0.0, self.track_deg)


@dataclasses.dataclass(frozen=True)
class ExpectedStop:
    """A stop the agent should report: the bus is parked there from ``arrival`` to ``departure``."""

    index: int
    name: str
    lat: float
    lon: float
    arrival: float  # when the bus really gets there (the plan's ``arrive`` or earlier)
    departure: float
    planned_arrival: float
    shore_power: bool


class Itinerary:
    """Answers "where is the bus, and what does it find there" for any instant of one scenario."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        vehicle = scenario.vehicle
        self.start = vehicle.start
        self.legs = _legs(scenario)
        # The day lasts until the bus is back at the depot and any broker outage is over, so that
        # everything recorded can still be delivered before it ends.
        last_outage = max((outage.end for outage in scenario.outages), default=self.legs[-1].end)
        self.end = max(self.legs[-1].end, last_outage) + vehicle.end_margin_s
        self.expected_stops = tuple(
            ExpectedStop(i, s.name, s.lat, s.lon, leg.end, s.depart, s.arrive, s.shore_power)
            for i, (s, leg) in enumerate(zip(scenario.stops, self.legs, strict=False))
        )
        self._starts = [leg.start for leg in self.legs]
        self._printer = sorted(
            (change.at, PrinterState(change.state, change.reasons))
            for stop in scenario.stops
            for change in stop.printer
        )

    @property
    def halts(self) -> tuple[tuple[float, float], ...]:
        """Every red light of the day, (from, to): halts the agent must NOT report as stops."""
        return tuple(leg.halt for leg in self.legs if leg.halt is not None)

    def position(self, t: float) -> Fix:
        """Where the bus is at ``t``, its speed and course."""
        leg_index = self._leg_index(t)
        if leg_index is None:
            depot = self.legs[0]
            return Fix(depot.start_lat, depot.start_lon, 0.0, 0.0)
        return self.legs[leg_index].at(t)

    def stop_index_at(self, t: float) -> int | None:
        """The index of the stop where the bus is parked at ``t``; None while driving or at the depot."""
        leg_index = self._leg_index(t)
        if leg_index is None or leg_index >= len(self.scenario.stops) or t < self.legs[leg_index].end:
            return None
        return leg_index

    def stop_at(self, t: float) -> ScenarioStop | None:
        index = self.stop_index_at(t)
        return None if index is None else self.scenario.stops[index]

    def shore_at(self, t: float) -> bool:
        """Shore power is live only while parked at a stop whose socket works."""
        stop = self.stop_at(t)
        return stop is not None and stop.shore_power

    def signal_at(self, t: float) -> Signal:
        """The radio at ``t``: the stop's while parked there, the driving default anywhere else."""
        stop = self.stop_at(t)
        return self.scenario.driving_signal if stop is None else stop.signal

    def link_at(self, t: float) -> Link:
        """What the network delivers at ``t``: the stop's while parked there, else the driving default."""
        stop = self.stop_at(t)
        return self.scenario.driving_link if stop is None else stop.link

    def printer_state_at(self, t: float) -> PrinterState:
        """The printer's state: idle until the first change, then the latest change at or before ``t``."""
        index = bisect.bisect_right([at for at, _ in self._printer], t)
        return IDLE if index == 0 else self._printer[index - 1][1]

    def outage_at(self, t: float) -> Outage | None:
        """The broker outage under way at ``t`` (start included, end excluded), if any."""
        return next((o for o in self.scenario.outages if o.start <= t < o.end), None)

    @property
    def change_times(self) -> tuple[float, ...]:
        """Every instant where something changes (motion, stop, printer, outage, end), in order."""
        times = {self.end}
        for leg in self.legs:
            times.update((leg.start, leg.end, *(leg.halt or ())))
        times.update(at for at, _ in self._printer)
        for outage in self.scenario.outages:
            times.update((outage.start, outage.end))
        return tuple(sorted(times))

    def next_change(self, t: float) -> float | None:
        """The first change strictly after ``t``; None when nothing changes any more."""
        times = self.change_times
        index = bisect.bisect_right(times, t)
        return times[index] if index < len(times) else None

    def _leg_index(self, t: float) -> int | None:
        """The leg begun last at ``t`` (driving it, or parked at its end); None before the start."""
        index = bisect.bisect_right(self._starts, t) - 1
        return None if index < 0 else index


def _legs(scenario: Scenario) -> tuple[Leg, ...]:
    """Depot -> each stop -> depot, timed from the start; ValueError if a stop cannot be reached."""
    vehicle = scenario.vehicle
    places = [(DEPOT, vehicle.depot_lat, vehicle.depot_lon)]
    places += [(stop.name, stop.lat, stop.lon) for stop in scenario.stops]
    places.append((DEPOT, vehicle.depot_lat, vehicle.depot_lon))
    leaves = [vehicle.start] + [stop.depart for stop in scenario.stops]
    legs = []
    track = 0.0
    for i, left in enumerate(leaves):
        leg = _leg(
            places[i],
            places[i + 1],
            left=left,
            speed_kmh=vehicle.speed_kmh,
            red_light_s=vehicle.red_light_s,
            track=track,
        )
        if i < len(scenario.stops) and leg.end > scenario.stops[i].depart:
            raise ValueError(f"stop {i} ({places[i + 1][0]}) cannot be reached before it ends")
        legs.append(leg)
        track = leg.track_deg
    return tuple(legs)


def _leg(
    origin: tuple[str, float, float],
    destination: tuple[str, float, float],
    *,
    left: float,
    speed_kmh: float,
    red_light_s: float,
    track: float,
) -> Leg:
    (from_name, lat0, lon0), (to_name, lat1, lon1) = origin, destination
    distance = haversine_m(lat0, lon0, lat1, lon1)
    speed = speed_kmh / 3.6
    halt = None
    if distance > RED_LIGHT_MIN_LEG_M and red_light_s > 0:
        halt_from = left + distance / 2 / speed
        halt = (halt_from, halt_from + red_light_s)
    if distance > 0:  # a leg of no length keeps the course the bus had
        north = lat1 - lat0
        east = (lon1 - lon0) * math.cos(math.radians((lat0 + lat1) / 2))
        track = math.degrees(math.atan2(east, north)) % 360.0
    end = left + leg_duration_s(distance, speed_kmh, red_light_s)
    return Leg(from_name, to_name, lat0, lon0, lat1, lon1, distance, speed, track, left, end, halt)
