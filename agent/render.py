"""One-line, plain-words summaries of device snapshots for technicians.

Works on the JSON form of snapshots (what drivers.snapshots.to_dict returns and what the daemon
will serve), so the same words appear in `agentctl probe` and `agentctl status`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from drivers.printer.reasons import describe_reasons

Snap = Mapping[str, Any]

FIX_WORDS = {0: "no data", 1: "no fix", 2: "2D fix", 3: "3D fix"}


def _num(value: Any, fmt: str, unit: str = "") -> str | None:
    if value is None:
        return None
    return f"{value:{fmt}}{unit}"


def _join(parts: list[str | None]) -> str:
    return ", ".join(p for p in parts if p)


def gps_line(s: Snap) -> str:
    mode = int(s.get("fix_mode") or 0)
    parts: list[str | None] = [FIX_WORDS.get(mode, f"mode {mode}")]
    if s.get("lat_deg") is not None and s.get("lon_deg") is not None:
        parts.append(f"{s['lat_deg']:.5f}, {s['lon_deg']:.5f}")
    if s.get("speed_mps") is not None:
        parts.append(f"{s['speed_mps'] * 3.6:.1f} km/h")
    if s.get("satellites_used") is not None:
        seen = s.get("satellites_seen")
        parts.append(f"{s['satellites_used']}/{seen if seen is not None else '?'} satellites")
    parts.append(_num(s.get("hdop"), ".1f") and f"hdop {s['hdop']:.1f}")
    return _join(parts)


def modem_line(s: Snap) -> str:
    operator = s.get("operator_name") or s.get("operator_code")
    if s.get("operator_name") and s.get("operator_code"):
        operator = f"{s['operator_name']} ({s['operator_code']})"
    parts: list[str | None] = [
        s.get("rat"),
        operator,
        _num(s.get("rsrp_dbm"), ".0f", " dBm RSRP"),
        _num(s.get("rsrq_db"), ".1f", " dB RSRQ"),
        _num(s.get("sinr_db"), ".1f", " dB SINR"),
        f"signal {s.get('quality', 'none')}",
        f"registration {s.get('registration', 'unknown')}",
        _num(s.get("band"), "d") and f"band {s['band']}",
        _num(s.get("cell_id"), "X") and f"cell {s['cell_id']:X}",
    ]
    return _join(parts)


def power_line(s: Snap) -> str:
    shore = s.get("shore_connected")
    if shore is None:
        shore_word = "shore power unknown"
    else:
        shore_word = "shore power connected" if shore else "shore power NOT connected"
    if s.get("shore_source"):
        shore_word += f" ({s['shore_source']})"
    parts: list[str | None] = [
        shore_word,
        _num(s.get("mains_voltage_v"), ".0f", " V mains"),
        _num(s.get("battery_v"), ".2f", " V battery"),
        _num(s.get("battery_soc_pct"), ".0f", " %"),
        s.get("charging_state"),
    ]
    return _join(parts)


def printer_line(s: Snap) -> str:
    words = describe_reasons(s.get("reasons") or [])
    parts: list[str | None] = [s.get("state") or "state unknown"]
    parts.append(", ".join(words) if words else None)
    if s.get("accepting_jobs") is False:
        parts.append("not accepting jobs")
    for marker in s.get("markers") or []:
        if marker.get("level_pct") is not None:
            parts.append(f"{marker['name']} {marker['level_pct']} %")
    return _join(parts)


def system_line(s: Snap) -> str:
    mib = 1024 * 1024
    parts: list[str | None] = [
        _num(s.get("load_1m"), ".2f") and f"load {s['load_1m']:.2f}",
        _num(s.get("cpu_temp_c"), ".0f", " °C"),
    ]
    if s.get("mem_available_bytes") is not None and s.get("mem_total_bytes"):
        parts.append(f"memory {s['mem_available_bytes'] // mib}/{s['mem_total_bytes'] // mib} MiB free")
    if s.get("disk_free_bytes") is not None:
        parts.append(f"disk {s['disk_free_bytes'] / 1024**3:.1f} GiB free on {s.get('disk_path')}")
    if s.get("uptime_s") is not None:
        parts.append(f"up {format_duration(s['uptime_s'])}")
    return _join(parts)


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds % 60:02d}s"


LINES: dict[str, Callable[[Snap], str]] = {
    "gps": gps_line,
    "modem": modem_line,
    "power": power_line,
    "printer": printer_line,
    "system": system_line,
}


def device_line(device: str, snap: Snap) -> str:
    """The summary for one device; a failed read shows its reason."""
    if not snap.get("ok", False):
        return f"FAILED: {snap.get('reason') or 'unknown reason'}"
    render = LINES.get(device)
    line = render(snap) if render is not None else ""
    if snap.get("reason"):  # partial success (e.g. one power source of two failed)
        line = _join([line, f"warning: {snap['reason']}"])
    return line
