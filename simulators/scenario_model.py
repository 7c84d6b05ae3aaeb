"""The data of a simulated service day: frozen dataclasses with absolute epoch times.

:mod:`simulators.scenario` builds them from a scenario file; :mod:`simulators.itinerary` turns
them into a timeline. Units are in the field names, as everywhere in busagent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

from agent.config.loader import ConfigError
from agent.core.catalog import Site

RATS = ("LTE", "UMTS", "GSM", "NR5G-SA", "NR5G-NSA")
PRINTER_STATES = ("idle", "processing", "stopped")
#: Legs at most this long have no red light: a village street, not a crossing of town.
RED_LIGHT_MIN_LEG_M = 1000.0


class ScenarioError(ConfigError):
    """A scenario file is invalid; ``errors`` holds one ``file:key: problem`` line each."""


@dataclasses.dataclass(frozen=True)
class Signal:
    """What the modem measures: operator (MCC+MNC), access technology and LTE levels."""

    operator: str
    rat: str
    rsrp_dbm: float
    rsrq_db: float
    sinr_db: float


@dataclasses.dataclass(frozen=True)
class Link:
    """What the network really delivers (the same fields as ``simulators.netsvc.link.LinkProfile``)."""

    down_mbps: float
    up_mbps: float
    rtt_ms: float
    loss: float = 0.0


DRIVING_SIGNAL = Signal("20801", "LTE", -95.0, -11.0, 8.0)
DRIVING_LINK = Link(20.0, 5.0, 40.0, 0.0)


@dataclasses.dataclass(frozen=True)
class PrinterChange:
    """From ``at`` on, the printer is in ``state`` (IPP printer-state) with these reasons."""

    at: float
    state: str
    reasons: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ScenarioStop:
    """One planned stop: where, when the service opens and ends, and what the bus finds there."""

    name: str
    lat: float
    lon: float
    arrive: float  # the latest arrival the plan allows (epoch s); the bus may get there earlier
    depart: float  # when the bus leaves (epoch s)
    shore_power: bool  # False: the socket is missing or dead
    signal: Signal
    link: Link
    printer: tuple[PrinterChange, ...]
    radius_m: float


@dataclasses.dataclass(frozen=True)
class Outage:
    """The central broker is unreachable from ``start`` (included) to ``end`` (excluded)."""

    start: float
    end: float


@dataclasses.dataclass(frozen=True)
class Vehicle:
    """The bus, where and when its day starts, and how it drives."""

    id: str
    start: float
    depot_lat: float
    depot_lon: float
    speed_kmh: float
    red_light_s: float
    end_margin_s: float
    utc_offset_s: float


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A whole service day, validated; ``sites`` is the stop catalog the agent gets."""

    source: str
    vehicle: Vehicle
    stops: tuple[ScenarioStop, ...]
    outages: tuple[Outage, ...]
    driving_signal: Signal
    driving_link: Link
    sites: tuple[Site, ...]
    catalog_path: Path | None  # the planners' file, when [vehicle] catalog names one

    def local(self, t: float) -> dt.datetime:
        """An epoch time as the scenario's local date and time (its offset)."""
        zone = dt.timezone(dt.timedelta(seconds=self.vehicle.utc_offset_s))
        return dt.datetime.fromtimestamp(t, zone)


def leg_duration_s(distance_m: float, speed_kmh: float, red_light_s: float) -> float:
    """How long the bus needs for a straight leg, with its red light when the leg is long enough."""
    halt = red_light_s if distance_m > RED_LIGHT_MIN_LEG_M else 0.0
    return distance_m / (speed_kmh / 3.6) + halt


def catalog_toml(sites: Iterable[Site]) -> str:
    """The sites as a catalog file in the agent's TOML format (``[[sites]]``)."""
    parts = []
    for site in sites:
        lines = [
            "[[sites]]",
            f"id = {json.dumps(site.id)}",
            f"name = {json.dumps(site.name, ensure_ascii=False)}",
        ]
        lines += [f"lat = {site.lat!r}", f"lon = {site.lon!r}", f"radius_m = {site.radius_m!r}"]
        for key in ("commune", "notes"):
            value = getattr(site, key)
            if value is not None:
                lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
