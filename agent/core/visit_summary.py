"""The stop-visit summary record: what a bus saw at one stop, as frozen, JSON-ready data.

Built by agent.core.visit.VisitRecorder at departure; published as-is to the collector.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Callable
from typing import Any, Literal

from agent.core.grading import Grade, SignalMedians
from agent.core.stops import ConfirmedBy, ForeseenWhy
from agent.core.timebase import TimeStamp

ShoreState = Literal["seen", "lost", "never", "unknown"]


@dataclasses.dataclass(frozen=True)
class Stat:
    samples: int
    min: float
    median: float
    max: float


@dataclasses.dataclass(frozen=True)
class ShorePower:
    """``seen``: plugged whenever known (unplugging to leave included); ``lost``: it went away while the
    bus stayed (dead socket, tripped breaker), ``off_s`` long in ``outages`` spells; ``never``: no
    plug seen; ``unknown``: no shore reading at all (this box does not measure it, or it failed)."""

    state: ShoreState
    off_s: float = 0.0
    outages: int = 0
    first_off_mono: float | None = None


@dataclasses.dataclass(frozen=True)
class SignalStats:
    operator_code: str | None
    rat: str | None
    samples: int
    rsrp_dbm: Stat | None
    rsrq_db: Stat | None
    sinr_db: Stat | None

    def medians(self) -> SignalMedians:
        rsrp, rsrq, sinr = (
            None if s is None else s.median for s in (self.rsrp_dbm, self.rsrq_db, self.sinr_db)
        )
        return SignalMedians(self.operator_code, self.rat, self.samples, rsrp, rsrq, sinr)


@dataclasses.dataclass(frozen=True)
class HttpMedians:
    url: str
    fetches: int
    failures: int
    ttfb_ms: float | None
    fetch_ms: float | None


@dataclasses.dataclass(frozen=True)
class ProbeMedians:
    """Medians over the visit's runs (each run's latency is the median of its tries)."""

    runs: int
    usable_runs: int
    rtt_ms: float | None
    loss: float | None
    dns_ms: float | None
    down_bps: float | None
    up_bps: float | None
    http: tuple[HttpMedians, ...]
    bytes_used: int


@dataclasses.dataclass(frozen=True)
class PrinterProblem:
    keyword: str  # IPP keyword without its -error/-warning/-report suffix
    first_seen_mono: float


@dataclasses.dataclass(frozen=True)
class StopVisit:
    """One stop, from arrival to departure. ``arrival``/``departure`` are stamped at the events' times."""

    site_id: str | None
    site_name: str | None
    planned: bool
    lat: float | None
    lon: float | None
    confirmed_by: ConfirmedBy
    arrival: TimeStamp
    departure: TimeStamp
    duration_s: float
    departure_foreseen: tuple[ForeseenWhy, float] | None  # (why, monotonic time) of the latest
    shore: ShorePower
    battery_min_v: float | None
    modem_readings: int
    registered_readings: int
    signal: tuple[SignalStats, ...]
    probes: ProbeMedians
    printer_problems: tuple[PrinterProblem, ...]
    printer_read_failures: int
    grade: Grade
    grade_reason: str

    def retimed(self, retime: Callable[[TimeStamp], TimeStamp]) -> StopVisit:
        """The same visit with both stamps re-timed (e.g. ``Timebase.retime`` once GPS time is known)."""
        return dataclasses.replace(self, arrival=retime(self.arrival), departure=retime(self.departure))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form: wall times as ISO 8601 UTC with their source, monotonic beside them."""
        data = dataclasses.asdict(self)
        data["arrival"] = _stamp_dict(self.arrival)
        data["departure"] = _stamp_dict(self.departure)
        if self.departure_foreseen is not None:
            why, mono = self.departure_foreseen
            data["departure_foreseen"] = {"why": why, "mono": mono, "wall": self._wall_iso(mono)}
        for problem in data["printer_problems"]:
            problem["first_seen_wall"] = self._wall_iso(problem["first_seen_mono"])
        return data

    def _wall_iso(self, mono: float) -> str:
        """Wall time of a moment of this visit, on the same footing as the arrival stamp."""
        return _iso(self.arrival.wall + (mono - self.arrival.mono))


def _stamp_dict(stamp: TimeStamp) -> dict[str, Any]:
    return {
        "boot_id": stamp.boot_id,
        "mono": stamp.mono,
        "wall": _iso(stamp.wall),
        "wall_source": stamp.source,
    }


def _iso(wall: float) -> str:
    if not math.isfinite(wall):
        return str(wall)
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).isoformat().replace("+00:00", "Z")
