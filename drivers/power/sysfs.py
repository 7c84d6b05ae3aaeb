"""Read shore power and the battery from a Linux power_supply class tree (``/sys/class/power_supply``).

Supplies are found by their ``type`` file, never by name: a Pi UPS HAT may call its mains input
``ups-mains`` or ``usb``, which is exactly why psutil cannot see it (docs/protocols.md 5.2). Any
attribute may be absent or unreadable, because kernel drivers only expose what they support; the
reading is then partial, never an error.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from drivers.base import DeviceUnavailable
from drivers.errors import os_reason

MAINS_TYPES = ("Mains", "USB")
BATTERY_TYPES = ("Battery", "UPS")  # in order of preference
STATUS_WORDS = {
    "Charging": "charging",
    "Discharging": "discharging",
    "Not charging": "not-charging",
    "Full": "full",
    "Unknown": None,
}


@dataclasses.dataclass(frozen=True)
class SysfsPowerReading:
    """What the power_supply tree says; ``None`` where no supply exposes it."""

    shore_connected: bool | None = None
    mains_supplies: tuple[str, ...] = ()
    mains_voltage_v: float | None = None
    battery: str | None = None
    battery_v: float | None = None
    battery_current_a: float | None = None
    battery_soc_pct: float | None = None
    charging_state: str | None = None


@dataclasses.dataclass(frozen=True)
class _Supply:
    name: str
    type: str
    path: Path

    def text(self, attribute: str) -> str | None:
        try:
            return (self.path / attribute).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            # ENOENT for unsupported attributes, but also ENODEV/EINVAL/ENODATA from drivers
            # whose hardware is asleep or absent: all of them mean "not known right now".
            return None

    def integer(self, attribute: str) -> int | None:
        text = self.text(attribute)
        try:
            return None if text is None else int(text)
        except ValueError:
            return None

    def micro(self, attribute: str) -> float | None:
        """A µV / µA attribute in V / A."""
        value = self.integer(attribute)
        return None if value is None else value / 1_000_000


def read_power_supplies(root: str | Path) -> SysfsPowerReading:
    """Read every supply under ``root``; raise DeviceUnavailable when there is nothing to read."""
    root = Path(root)
    try:
        is_dir = root.is_dir()
    except OSError as exc:
        # is_dir() only swallows "missing" errors; EACCES or ENAMETOOLONG still raise, and must
        # fail this source alone, not the whole power reading.
        raise DeviceUnavailable(f"cannot read power_supply directory {root}: {os_reason(exc)}") from exc
    if not is_dir:
        raise DeviceUnavailable(f"power_supply directory {root} does not exist")
    supplies = _supplies(root)
    mains = [s for s in supplies if s.type in MAINS_TYPES]
    battery = _house_battery(supplies)
    if not mains and battery is None:
        seen = ", ".join(f"{s.name} ({s.type})" for s in supplies) or "nothing"
        raise DeviceUnavailable(f"no Mains, USB, Battery or UPS supply under {root} (found {seen})")
    shore, mains_voltage = _mains_state(mains)
    return dataclasses.replace(
        _battery_reading(battery),
        shore_connected=shore,
        mains_supplies=tuple(s.name for s in mains),
        mains_voltage_v=mains_voltage,
    )


def _supplies(root: Path) -> list[_Supply]:
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise DeviceUnavailable(f"cannot list power_supply directory {root}: {os_reason(exc)}") from exc
    found = []
    for entry in entries:
        supply_type = _Supply(entry.name, "", entry).text("type")
        if supply_type:
            found.append(_Supply(entry.name, supply_type, entry))
    return found


def _house_battery(supplies: list[_Supply]) -> _Supply | None:
    for wanted in BATTERY_TYPES:
        for supply in supplies:
            # scope=Device marks a peripheral's battery (wireless mouse, UPS-less HID); present=0
            # is an empty battery slot. Neither is the battery that powers the box.
            if supply.type == wanted and supply.text("scope") != "Device" and supply.integer("present") != 0:
                return supply
    return None


def _mains_state(mains: list[_Supply]) -> tuple[bool | None, float | None]:
    """Whether any mains/USB input is live, and the voltage the live one reports."""
    online = {s.name: s.integer("online") for s in mains}
    known = [value for value in online.values() if value is not None]
    # online: 0 offline, 1 online (fixed), 2 online (programmable). Any live input is shore power.
    shore = any(value >= 1 for value in known) if known else None
    live_first = sorted(mains, key=lambda s: not online[s.name])
    voltages = [v for v in (s.micro("voltage_now") for s in live_first) if v is not None]
    return shore, round(voltages[0], 3) if voltages else None


def _battery_reading(battery: _Supply | None) -> SysfsPowerReading:
    if battery is None:
        return SysfsPowerReading()
    status = battery.text("status")
    state = STATUS_WORDS.get(status, status.lower().replace(" ", "-")) if status else None
    current = battery.micro("current_now")
    if current is not None and current > 0 and state == "discharging":
        # The ABI says negative while discharging, but ACPI and several fuel gauges report
        # the magnitude only; the status file is the reliable direction.
        current = -current
    volts = battery.micro("voltage_now")
    return SysfsPowerReading(
        battery=battery.name,
        battery_v=None if volts is None else round(volts, 3),
        battery_current_a=None if current is None else round(current, 3),
        battery_soc_pct=_soc(battery),
        charging_state=state,
    )


def _soc(battery: _Supply) -> float | None:
    capacity = battery.integer("capacity")
    if capacity is not None:
        return float(max(0, min(100, capacity)))
    # Without capacity, the fuel gauge's own counters give the same figure (as psutil does).
    for now, full in (("energy_now", "energy_full"), ("charge_now", "charge_full")):
        numerator, denominator = battery.integer(now), battery.integer(full)
        if numerator is not None and denominator:
            return round(max(0.0, min(100.0, 100 * numerator / denominator)), 1)
    return None
