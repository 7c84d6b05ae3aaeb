"""A simulated service day read from a scenario TOML file (design.md, "Scenario files").

``load_scenario(path)`` returns a frozen :class:`Scenario` with every time as absolute epoch
seconds, or raises :class:`ScenarioError` listing every problem as ``file:key: what is wrong``.

Keys beyond the design's format, all optional:

- ``[vehicle] red_light_s`` (default 60): a halt of that many seconds in the middle of every leg
  longer than 1 km (a traffic light: shorter than the agent's dwell, so NOT a stop); 0 = none.
- ``[vehicle] end_margin_s`` (default 120): the day ends this long after the bus is back at the depot.
- ``[vehicle] catalog = "file.toml"`` (relative to the scenario file): the planners' stop catalog
  (agent format). Every stop must lie in one of its sites, under the same name. Without it the
  catalog is built from the stops: one site per stop name, id from the name.
- ``[[stops]] radius_m`` (default 100): the radius of the site built from this stop.
- ``[[stops]] shore_power`` may be left out: it then means true (a working socket is the normal
  case); ``false`` means the socket is missing or dead.
- ``[[stops]] signal`` and ``link`` may be left out: the stop then has the driving default.
- ``[driving] signal`` and ``link``: what the radio and the network deliver while the bus is not
  parked at a stop (on the road, at the depot). Default: Orange LTE at -95 dBm, 20/5 Mbit/s, 40 ms.

``start`` is ISO 8601 with its offset (a string or a TOML offset date-time). ``arrive``, ``depart``,
``at``, ``from`` and ``to`` are local times "HH:MM" or "HH:MM:SS" (or TOML local times) on the
start's date, at the start's offset. Printer states are IPP's: idle, processing, stopped; a
signal's ``rat`` defaults to LTE and a link's ``loss`` to 0. simulators/scenarios/README.md lists
every key with its range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Any

from agent.core.catalog import DEFAULT_RADIUS_M, MAX_RADIUS_M
from simulators.scenario_checks import Checks, Drive, Stay
from simulators.scenario_fields import Fields
from simulators.scenario_model import (
    DRIVING_LINK,
    DRIVING_SIGNAL,
    PRINTER_STATES,
    RATS,
    RED_LIGHT_MIN_LEG_M,
    Link,
    Outage,
    PrinterChange,
    Scenario,
    ScenarioError,
    ScenarioStop,
    Signal,
    Vehicle,
    catalog_toml,
    leg_duration_s,
)

__all__ = [
    "DRIVING_LINK",
    "DRIVING_SIGNAL",
    "PRINTER_STATES",
    "RATS",
    "RED_LIGHT_MIN_LEG_M",
    "Link",
    "Outage",
    "PrinterChange",
    "Scenario",
    "ScenarioError",
    "ScenarioStop",
    "Signal",
    "Vehicle",
    "catalog_toml",
    "leg_duration_s",
    "load_scenario",
    "parse_scenario",
]

_VEHICLE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # as the agent's vehicle_id
_OPERATOR_RE = re.compile(r"\d{5,6}")  # MCC + MNC
_REASON_RE = re.compile(r"[a-z0-9][a-z0-9-]*")  # IPP printer-state-reasons keywords
_TOP_KEYS = ("vehicle", "stops", "outages", "driving")
_VEHICLE_KEYS = ("id", "start", "depot", "speed_kmh", "red_light_s", "end_margin_s", "catalog")
_STOP_KEYS = (
    "name",
    "lat",
    "lon",
    "arrive",
    "depart",
    "shore_power",
    "signal",
    "link",
    "printer",
    "radius_m",
)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; an unreadable file is reported like an invalid one."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str = "scenario.toml", base_dir: Path | None = None) -> Scenario:
    """Parse scenario TOML text; a catalog file is looked up in ``base_dir`` (default: ``source``'s)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([f"{source}: not valid TOML: {exc}"]) from None
    return _Parser(source, Path(source).parent if base_dir is None else base_dir).scenario(data)


class _Parser:
    """One scenario document: fields first, then the checks across fields, then the catalog."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.f = Fields(source)
        self.base_dir = base_dir

    def scenario(self, data: dict[str, Any]) -> Scenario:
        f = self.f
        f.table(data, "", _TOP_KEYS)
        vehicle, midnight, drive, catalog_name = self.vehicle(data)
        driving = f.table(data.get("driving", {}), "driving", ("signal", "link")) or {}
        driving_signal = self.signal(driving.get("signal"), "driving.signal", DRIVING_SIGNAL)
        driving_link = self.link(driving.get("link"), "driving.link", DRIVING_LINK)
        raw_stops = f.tables(data.get("stops"), "stops")
        if data.get("stops") in (None, []):
            f.error("stops", "no stops: a day needs one or more [[stops]]")
        stays = [self.stay(raw, f"stops[{i}]") for i, raw in enumerate(raw_stops)]
        stops = [
            self.stop(raw, stay, driving_signal, driving_link)
            for raw, stay in zip(raw_stops, stays, strict=True)
        ]
        raw_outages = f.tables(data.get("outages"), "outages")
        outages = [self.outage(raw, f"outages[{i}]") for i, raw in enumerate(raw_outages)]
        checks = Checks(f)
        checks.times(drive, stays, outages)
        catalog_path, sites = checks.catalog(catalog_name, self.base_dir, stays)
        if f.errors or vehicle is None or midnight is None or driving_signal is None or driving_link is None:
            raise ScenarioError(f.errors or [f"{f.source}: invalid scenario"])
        return Scenario(
            f.source,
            vehicle,
            tuple(_at_epoch(stop, midnight) for stop in stops if stop is not None),
            tuple(
                Outage(midnight + lo, midnight + hi)
                for lo, hi in outages
                if lo is not None and hi is not None
            ),
            driving_signal,
            driving_link,
            sites,
            catalog_path,
        )

    # --- tables ---

    def vehicle(self, data: dict[str, Any]) -> tuple[Vehicle | None, float | None, Drive, str | None]:
        """The vehicle, the epoch of its start day's local midnight, what the checks need of it (each
        part None when invalid) and the catalog file it names."""
        f = self.f
        if "vehicle" not in data:
            f.error("vehicle", "missing (this table is required)")
            return None, None, Drive(None, None, None, None, None), None
        raw = f.table(data["vehicle"], "vehicle", _VEHICLE_KEYS) or {}
        vehicle_id = f.text(raw, "id", "vehicle")
        if vehicle_id is not None and not _VEHICLE_RE.fullmatch(vehicle_id):
            f.error(
                "vehicle.id", f"{vehicle_id!r} is not a valid vehicle id (letters, digits, '-', '_', '.')"
            )
            vehicle_id = None
        start = f.start(raw, "start", "vehicle")
        depot = self.point(raw, "depot", "vehicle")
        speed = f.number(raw, "speed_kmh", "vehicle", lo=0.0, hi=130.0, lo_open=True)
        red_light = f.number(raw, "red_light_s", "vehicle", lo=0.0, hi=600.0, default=60.0)
        margin = f.number(raw, "end_margin_s", "vehicle", lo=0.0, hi=3600.0, default=120.0)
        catalog_name = f.text(raw, "catalog", "vehicle", default=None)
        start_s = None if start is None else _day_seconds(start)
        depot_lat, depot_lon = depot or (None, None)
        drive = Drive(start_s, depot_lat, depot_lon, speed, red_light)
        if vehicle_id is None or start is None or depot is None or speed is None:
            return None, None, drive, catalog_name
        if red_light is None or margin is None:
            return None, None, drive, catalog_name
        offset_s = start.utcoffset() or dt.timedelta(0)  # Fields.start refused a time without offset
        vehicle = Vehicle(
            vehicle_id, start.timestamp(), *depot, speed, red_light, margin, offset_s.total_seconds()
        )
        return vehicle, start.timestamp() - _day_seconds(start), drive, catalog_name

    def point(self, raw: dict[str, Any], key: str, path: str) -> tuple[float, float] | None:
        if key not in raw:
            self.f.error(f"{path}.{key}", "missing (this key is required)")
            return None
        where = f"{path}.{key}"
        table = self.f.table(raw[key], where, ("lat", "lon"))
        if table is None:
            return None
        lat = self.f.number(table, "lat", where, lo=-90.0, hi=90.0)
        lon = self.f.number(table, "lon", where, lo=-180.0, hi=180.0)
        return None if lat is None or lon is None else (lat, lon)

    def signal(self, raw: Any, path: str, default: Signal | None) -> Signal | None:
        if raw is None:
            return default
        f = self.f
        table = f.table(raw, path, ("operator", "rat", "rsrp", "rsrq", "sinr"))
        if table is None:
            return None
        operator = f.text(table, "operator", path)
        if operator is not None and not _OPERATOR_RE.fullmatch(operator):
            f.error(f"{path}.operator", f'"{operator}" is not an operator code (5 or 6 digits, like "20801")')
            operator = None
        rat = f.choice(table, "rat", path, RATS, default="LTE")
        rsrp = f.number(table, "rsrp", path, lo=-140.0, hi=-44.0)
        rsrq = f.number(table, "rsrq", path, lo=-20.0, hi=-3.0)
        sinr = f.number(table, "sinr", path, lo=-20.0, hi=40.0)
        if operator is None or rat is None or rsrp is None or rsrq is None or sinr is None:
            return None
        return Signal(operator, rat, rsrp, rsrq, sinr)

    def link(self, raw: Any, path: str, default: Link | None) -> Link | None:
        if raw is None:
            return default
        f = self.f
        table = f.table(raw, path, ("down_mbps", "up_mbps", "rtt_ms", "loss"))
        if table is None:
            return None
        down = f.number(table, "down_mbps", path, lo=0.0, hi=10_000.0, lo_open=True)
        up = f.number(table, "up_mbps", path, lo=0.0, hi=10_000.0, lo_open=True)
        rtt = f.number(table, "rtt_ms", path, lo=0.0, hi=60_000.0)
        loss = f.number(table, "loss", path, lo=0.0, hi=1.0, default=0.0)
        if down is None or up is None or rtt is None or loss is None:
            return None
        return Link(down, up, rtt, loss)

    def stay(self, raw: Any, path: str) -> Stay:
        f = self.f
        table = f.table(raw, path, _STOP_KEYS)
        if table is None:
            return Stay(path, None, None, None, None, None, None, ())
        changes = f.tables(table.get("printer"), f"{path}.printer")
        return Stay(
            path,
            f.text(table, "name", path),
            f.number(table, "lat", path, lo=-90.0, hi=90.0),
            f.number(table, "lon", path, lo=-180.0, hi=180.0),
            f.day_time(table, "arrive", path),
            f.day_time(table, "depart", path),
            f.number(table, "radius_m", path, lo=1.0, hi=MAX_RADIUS_M, default=DEFAULT_RADIUS_M),
            tuple(self.printer_change(c, f"{path}.printer[{j}]") for j, c in enumerate(changes)),
        )

    def stop(self, raw: Any, stay: Stay, signal: Signal | None, link: Link | None) -> ScenarioStop | None:
        """The stop in day seconds (made absolute at the end), or None when any part is invalid."""
        if not isinstance(raw, dict):
            return None
        f, path = self.f, stay.path
        shore = f.flag(raw, "shore_power", path, default=True)
        stop_signal = self.signal(raw.get("signal"), f"{path}.signal", signal)
        stop_link = self.link(raw.get("link"), f"{path}.link", link)
        changes = tuple(change for _, change in stay.printer if change is not None)
        if (
            stay.name is None
            or stay.lat is None
            or stay.lon is None
            or stay.arrive is None
            or stay.depart is None
            or stay.radius_m is None
            or shore is None
            or stop_signal is None
            or stop_link is None
            or len(changes) < len(stay.printer)
        ):
            return None
        return ScenarioStop(
            stay.name,
            stay.lat,
            stay.lon,
            stay.arrive,
            stay.depart,
            shore,
            stop_signal,
            stop_link,
            changes,
            stay.radius_m,
        )

    def printer_change(self, raw: Any, path: str) -> tuple[float | None, PrinterChange | None]:
        f = self.f
        table = f.table(raw, path, ("at", "state", "reasons"))
        if table is None:
            return None, None
        at = f.day_time(table, "at", path)
        state = f.choice(table, "state", path, PRINTER_STATES)
        reasons = table.get("reasons", [])
        good = isinstance(reasons, list) and all(
            isinstance(r, str) and _REASON_RE.fullmatch(r) for r in reasons
        )
        if not good:
            f.error(
                f"{path}.reasons", f'must be a list of IPP keywords like ["media-empty"], got {reasons!r}'
            )
        if at is None or state is None or not good:
            return at, None
        return at, PrinterChange(at, state, tuple(reasons))

    def outage(self, raw: Any, path: str) -> tuple[float | None, float | None]:
        table = self.f.table(raw, path, ("from", "to"))
        if table is None:
            return None, None
        return self.f.day_time(table, "from", path), self.f.day_time(table, "to", path)


def _day_seconds(moment: dt.datetime) -> float:
    return moment.hour * 3600.0 + moment.minute * 60.0 + moment.second + moment.microsecond / 1e6


def _at_epoch(stop: ScenarioStop, midnight: float) -> ScenarioStop:
    """A stop whose times were seconds since local midnight, with absolute epoch times."""
    changes = tuple(dataclasses.replace(c, at=midnight + c.at) for c in stop.printer)
    return dataclasses.replace(
        stop, arrive=midnight + stop.arrive, depart=midnight + stop.depart, printer=changes
    )
