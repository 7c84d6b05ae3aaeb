"""File-backed power simulators: a fake power_supply class tree and a GPIO mains-detect value file.

Both serve real files that the power driver reads exactly as it reads ``/sys``. Files are replaced
atomically (write a temporary file, then rename) because real sysfs reads are atomic: a driver
must never see half of "12650000".
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from simulators.base import Clock, History, finite


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text + "\n", encoding="ascii")
    os.replace(temporary, path)


class SysfsPowerSimulator:
    """A power_supply tree: a Mains supply NOT named AC/AC0 (psutil misses it) and a Battery."""

    def __init__(
        self,
        root: Path,
        *,
        mains_name: str = "ups-mains",
        battery_name: str = "BAT0",
        clock: Clock = time.monotonic,
    ) -> None:
        self.root = root
        self.mains_name = mains_name
        self.battery_name = battery_name
        self.history = History(clock)
        self._plugged = True
        _write(root / mains_name / "type", "Mains")
        _write(root / mains_name / "online", "1")
        self._write_battery(12.65, 87.0, "Charging", 1.5)

    @property
    def mains_dir(self) -> Path:
        return self.root / self.mains_name

    @property
    def battery_dir(self) -> Path:
        return self.root / self.battery_name

    def plug(self) -> None:
        """Shore power on: the mains supply goes online and the battery starts charging."""
        self._plugged = True
        _write(self.mains_dir / "online", "1")
        self._set_status("Charging")
        self.history.record("plug")

    def unplug(self) -> None:
        """Shore power gone: mains offline, the battery discharges."""
        self._plugged = False
        _write(self.mains_dir / "online", "0")
        self._set_status("Discharging")
        self.history.record("unplug")

    def set_battery(
        self, volts: float, soc_pct: float, status: str | None = None, current_a: float | None = None
    ) -> None:
        """New battery values; ``status`` is the kernel word ("Charging", "Full", "Not charging", ...)."""
        volts, soc_pct = finite("volts", volts, 0.0), finite("soc_pct", soc_pct, 0.0, 100.0)
        current_a = None if current_a is None else finite("current_a", current_a)
        status = status or ("Charging" if self._plugged else "Discharging")
        if current_a is None:
            current_a = 1.5 if status == "Charging" else -2.0 if status == "Discharging" else 0.0
        self._write_battery(volts, soc_pct, status, current_a)
        self.history.record("set_battery", volts=volts, soc_pct=soc_pct, status=status, current_a=current_a)

    def remove_battery(self) -> None:
        """The battery supply disappears (fuel-gauge module unloaded, HAT battery unplugged)."""
        shutil.rmtree(self.battery_dir, ignore_errors=True)
        self.history.record("remove_battery")

    def add_peripheral_battery(self, name: str = "hidpp_battery_0", capacity: int = 40) -> None:
        """A wireless mouse's battery (``scope=Device``), which must not pass for the house battery."""
        for attribute, value in (("type", "Battery"), ("scope", "Device"), ("capacity", str(capacity))):
            _write(self.root / name / attribute, value)
        self.history.record("add_peripheral_battery", supply=name, capacity=capacity)

    def _set_status(self, status: str) -> None:
        if (self.battery_dir / "type").exists():
            _write(self.battery_dir / "status", status)

    def _write_battery(self, volts: float, soc_pct: float, status: str, current_a: float) -> None:
        values = {
            "type": "Battery",
            "present": "1",
            "status": status,
            "capacity": str(round(soc_pct)),
            "voltage_now": str(round(volts * 1_000_000)),  # µV
            "current_now": str(round(current_a * 1_000_000)),  # µA
        }
        for attribute, value in values.items():
            _write(self.battery_dir / attribute, value)


class GpioLineSimulator:
    """A legacy sysfs GPIO ``value`` file driven like the opto of a mains-detect module."""

    def __init__(
        self, path: Path, active_low: bool = True, *, present: bool = True, clock: Clock = time.monotonic
    ) -> None:
        self.path = path
        self.active_low = active_low
        self.history = History(clock)
        self._present = present
        self._write()

    def set_mains(self, present: bool) -> None:
        self._present = present
        self._write()
        self.history.record("set_mains", present=present)

    def unexport(self) -> None:
        """The line disappears (GPIO not exported after a reboot): the value file is gone."""
        self.path.unlink(missing_ok=True)
        self.history.record("unexport")

    def export(self) -> None:
        self._write()
        self.history.record("export")

    def _write(self) -> None:
        # The opto pulls the line low while mains is present, so active-low means present -> "0".
        level = self._present != self.active_low
        _write(self.path, "1" if level else "0")
