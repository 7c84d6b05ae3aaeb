"""Checks across the fields of a scenario: time order, reachability, printer and outage times, catalog.

They run on :class:`Stay` drafts whose parts are None where the field itself was invalid, so a
file with a bad value in one stop still gets its other problems reported in the same run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from agent.core.catalog import Catalog, CatalogError, Site, parse_catalog, slug
from agent.core.geo import haversine_m
from simulators.scenario_fields import Fields, clock_text, duration_text
from simulators.scenario_model import RED_LIGHT_MIN_LEG_M, PrinterChange, leg_duration_s


class Stay(NamedTuple):
    """What the cross-checks need of a stop, each part None when it was itself invalid."""

    path: str
    name: str | None
    lat: float | None
    lon: float | None
    arrive: float | None  # seconds since local midnight, as every time here
    depart: float | None
    radius_m: float | None
    printer: tuple[tuple[float | None, PrinterChange | None], ...]


class Drive(NamedTuple):
    """What the checks need of the vehicle: start (seconds since local midnight), depot, driving."""

    start_s: float | None
    depot_lat: float | None
    depot_lon: float | None
    speed_kmh: float | None
    red_light_s: float | None


#: Where the bus leaves from for the next stop: a name for messages, a position, a day time.
Origin = tuple[str, float | None, float | None, float | None]


class Checks:
    """Cross-field rules of one scenario, reporting through its :class:`Fields`."""

    def __init__(self, fields: Fields) -> None:
        self.f = fields

    def times(
        self, drive: Drive, stays: list[Stay], outages: list[tuple[float | None, float | None]]
    ) -> None:
        """Every stop after the previous one and reachable, its printer changes inside its stay;
        every outage after the start and not ending before it begins."""
        start_s = drive.start_s
        origin: Origin = ("the depot", drive.depot_lat, drive.depot_lon, start_s)
        for i, stay in enumerate(stays):
            if stay.arrive is not None and stay.depart is not None and stay.depart <= stay.arrive:
                self.f.error(
                    f"{stay.path}.depart",
                    f'"{clock_text(stay.depart)}" must be after arrive "{clock_text(stay.arrive)}"',
                )
            self.reach(drive, origin, stay, first=i == 0)
            self.printer(stay)
            origin = (f"stops[{i}]", stay.lat, stay.lon, stay.depart)
        for i, (lo, hi) in enumerate(outages):
            if lo is not None and start_s is not None and lo < start_s:
                self.f.error(
                    f"outages[{i}].from", f'"{clock_text(lo)}" is before the start ({clock_text(start_s)})'
                )
            if lo is not None and hi is not None and hi <= lo:
                self.f.error(f"outages[{i}].to", f'"{clock_text(hi)}" must be after from "{clock_text(lo)}"')

    def reach(self, drive: Drive, origin: Origin, stay: Stay, *, first: bool) -> None:
        """The stop comes after the previous departure, and the bus can drive there in time."""
        where, lat, lon, left = origin
        if left is None or stay.arrive is None:
            return
        arrive = clock_text(stay.arrive)
        if stay.arrive < left:
            before = f"the start ({clock_text(left)})" if first else f'{where}.depart "{clock_text(left)}"'
            self.f.error(f"{stay.path}.arrive", f'"{arrive}" is before {before}: stops must be in time order')
            return
        speed, red_light = drive.speed_kmh, drive.red_light_s
        if speed is None or red_light is None or lat is None or lon is None:
            return
        if stay.lat is None or stay.lon is None:
            return
        distance = haversine_m(lat, lon, stay.lat, stay.lon)
        need = leg_duration_s(distance, speed, red_light)
        if left + need > stay.arrive + 1e-6:
            has_light = distance > RED_LIGHT_MIN_LEG_M and red_light > 0
            light = f" with a {red_light:g} s red light" if has_light else ""
            self.f.error(
                f"{stay.path}.arrive",
                f'"{arrive}" cannot be reached: the {distance / 1000:.1f} km from {where}'
                f" (left at {clock_text(left)}) take {duration_text(need)} at {speed:g} km/h{light};"
                f" the earliest arrival is {clock_text(math.ceil(left + need))}",
            )

    def printer(self, stay: Stay) -> None:
        """Printer changes happen while the bus is at the stop, one after the other."""
        previous: tuple[int, float] | None = None
        for j, (at, _) in enumerate(stay.printer):
            if at is None:
                continue
            where = f"{stay.path}.printer[{j}].at"
            if stay.arrive is not None and stay.depart is not None and not stay.arrive <= at < stay.depart:
                span = f"{clock_text(stay.arrive)} to {clock_text(stay.depart)}"
                self.f.error(where, f'"{clock_text(at)}" is outside the stay at this stop ({span})')
                continue  # compare the next change with the last good one, not with this mistake
            if previous is not None and at <= previous[1]:
                before = f'printer[{previous[0]}].at "{clock_text(previous[1])}"'
                self.f.error(where, f'"{clock_text(at)}" must be after {before}')
            previous = (j, at)

    # --- the stop catalog ---

    def catalog(
        self, named: str | None, base_dir: Path, stays: list[Stay]
    ) -> tuple[Path | None, tuple[Site, ...]]:
        """The planners' catalog file named by the scenario, checked against the stops, or sites built
        from the stops when it names none."""
        if named is None:
            return None, self.sites_from_stops(stays)
        path = (base_dir / named).resolve()
        try:
            catalog = parse_catalog(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            self.f.error("vehicle.catalog", f'cannot read "{named}" ({path}): {exc.strerror or exc}')
            return path, ()
        except CatalogError as exc:
            self.f.errors.extend(exc.errors)
            return path, ()
        for stay in stays:
            self.named(catalog, named, stay)
        return path, catalog.sites

    def named(self, catalog: Catalog, file: str, stay: Stay) -> None:
        """The catalog's site at this stop carries the stop's name: the agent reports that name."""
        if stay.name is None or stay.lat is None or stay.lon is None:
            return
        site = catalog.match(stay.lat, stay.lon)
        if site is None or not site.planned:
            nearest = min(catalog.sites, key=lambda s: haversine_m(stay.lat, stay.lon, s.lat, s.lon))  # type: ignore[arg-type]
            far = haversine_m(stay.lat, stay.lon, nearest.lat, nearest.lon)
            self.f.error(
                f"{stay.path}.name",
                f'no site of {file} holds this stop (nearest: "{nearest.name}", {far:.0f} m away)',
            )
        elif site.name != stay.name:
            self.f.error(
                f"{stay.path}.name", f'"{stay.name}" is not the name {file} gives this place: "{site.name}"'
            )

    def sites_from_stops(self, stays: Iterable[Stay]) -> tuple[Site, ...]:
        """One site per stop name, its id made from the name, as a planner's catalog would have it."""
        sites: dict[str, tuple[str, Site]] = {}
        ids: dict[str, str] = {}
        for stay in stays:
            if stay.name is None or stay.lat is None or stay.lon is None or stay.radius_m is None:
                continue
            site_id = slug(stay.name)
            if stay.name in sites:
                first_path, first = sites[stay.name]
                if haversine_m(stay.lat, stay.lon, first.lat, first.lon) > first.radius_m:
                    self.f.error(
                        f"{stay.path}.lat",
                        f'"{stay.name}" is also {first_path}, more than {first.radius_m:g} m away',
                    )
            elif not site_id:
                self.f.error(
                    f"{stay.path}.name", f'"{stay.name}" gives no usable site id (use letters or digits)'
                )
            elif site_id in ids:
                self.f.error(
                    f"{stay.path}.name",
                    f'"{stay.name}" gives the same site id as "{ids[site_id]}" ({site_id})',
                )
            else:
                ids[site_id] = stay.name
                sites[stay.name] = (stay.path, Site(site_id, stay.name, stay.lat, stay.lon, stay.radius_m))
        return tuple(site for _, site in sites.values())
