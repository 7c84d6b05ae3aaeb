"""Typed, frozen snapshots of every device, with units in field names.

These are plain data: no I/O, no driver imports, so the core, the outbox and ``agentctl`` can use
them without pulling in pyserial or HTTP code. They are serialised to JSON once, with
:func:`to_dict`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from drivers.base import Snapshot

FixMode = Literal[0, 1, 2, 3]
Quality = Literal["excellent", "good", "fair", "poor", "none"]
Registration = Literal[
    "not-registered", "home", "searching", "denied", "unknown", "roaming", "emergency-only"
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class GpsSnapshot(Snapshot):
    """One position report. ``fix_mode``: 0 unknown, 1 no fix, 2 2D, 3 3D (gpsd TPV ``mode``)."""

    source: str = "gpsd"
    fix_mode: FixMode = 0
    lat_deg: float | None = None
    lon_deg: float | None = None
    speed_mps: float | None = None
    track_deg: float | None = None
    altitude_m: float | None = None
    satellites_used: int | None = None
    satellites_seen: int | None = None
    hdop: float | None = None
    gps_time_utc: str | None = None  # ISO 8601, e.g. "2026-03-02T08:00:00.000Z"

    @property
    def has_fix(self) -> bool:
        return self.ok and self.fix_mode >= 2 and self.lat_deg is not None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModemSnapshot(Snapshot):
    """Radio state of the 4G modem or router; ``quality`` is graded by drivers.modem.quality."""

    source: str = "at"
    model: str | None = None
    registration: Registration = "unknown"
    operator_code: str | None = None  # MCC+MNC, e.g. "20801"
    operator_name: str | None = None
    rat: str | None = None  # "LTE", "UMTS", "GSM", "NR5G-SA", ...
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None
    rssi_dbm: float | None = None
    cell_id: int | None = None
    tac: int | None = None
    pci: int | None = None
    band: int | None = None
    earfcn: int | None = None
    quality: Quality = "none"
    imei: str | None = None
    iccid: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PowerSnapshot(Snapshot):
    """Shore power and house battery. ``None`` everywhere means "not measured by this box"."""

    shore_connected: bool | None = None
    shore_source: str | None = None  # "gpio", "sysfs" or "vedirect": who said so
    mains_voltage_v: float | None = None
    battery_v: float | None = None
    battery_current_a: float | None = None
    battery_soc_pct: float | None = None
    charging_state: str | None = None  # "charging", "discharging", "full", "float", ...


@dataclasses.dataclass(frozen=True)
class PrinterMarker:
    """One consumable (toner, ink); ``level_pct`` is None when the printer does not say."""

    name: str
    color: str | None = None
    type: str | None = None
    level_pct: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrinterSnapshot(Snapshot):
    """IPP printer state: ``state`` is idle/printing/stopped; ``reasons`` are IPP keywords."""

    state: str | None = None
    reasons: tuple[str, ...] = ()
    accepting_jobs: bool | None = None
    message: str | None = None
    make_and_model: str | None = None
    markers: tuple[PrinterMarker, ...] = ()


@dataclasses.dataclass(frozen=True)
class NetInterfaceCounters:
    """Bytes through one network interface since boot (for data-usage accounting)."""

    name: str
    bytes_sent: int
    bytes_recv: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class SystemSnapshot(Snapshot):
    """Health of the box itself."""

    load_1m: float | None = None
    load_5m: float | None = None
    load_15m: float | None = None
    cpu_temp_c: float | None = None
    mem_total_bytes: int | None = None
    mem_available_bytes: int | None = None
    disk_path: str | None = None
    disk_total_bytes: int | None = None
    disk_free_bytes: int | None = None
    uptime_s: float | None = None
    net: tuple[NetInterfaceCounters, ...] = ()


def to_dict(snap: Snapshot) -> dict[str, Any]:
    """The JSON-ready form of a snapshot (tuples become lists)."""
    return dataclasses.asdict(snap)
