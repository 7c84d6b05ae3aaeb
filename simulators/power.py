"""Shore power for a simulated bus: the GPIO opto, the power_supply tree and the VE.Direct device together.

:class:`ShorePowerSim` keeps the three coherent, as the real wiring does: plugging the shore lead
in sets the mains-detect line, brings the sysfs Mains supply online and starts the charger (or
turns the shunt current positive). The individual simulators live in :mod:`simulators.power_sysfs`
and :mod:`simulators.power_vedirect` and are re-exported here.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from simulators.base import Clock, History, finite
from simulators.power_sysfs import GpioLineSimulator, SysfsPowerSimulator
from simulators.power_vedirect import Device, VeDirectSimulator
from simulators.pty import PtyPort

__all__ = ["GpioLineSimulator", "ShorePowerSim", "SysfsPowerSimulator", "VeDirectSimulator"]

CHARGING_A, DISCHARGING_A = 5.0, -3.0
BULK, OFF = 3, 0


class ShorePowerSim:
    """Every shore-power source of one bus under ``workdir``; VE.Direct only when a pty is given."""

    def __init__(
        self,
        workdir: Path,
        vedirect_port: PtyPort | None = None,
        *,
        vedirect_device: Device = "smartshunt",
        interval_s: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.history = History(clock)
        self.sysfs = SysfsPowerSimulator(workdir / "power_supply", clock=clock)
        self.gpio = GpioLineSimulator(workdir / "gpio17" / "value", clock=clock)
        self.vedirect = (
            VeDirectSimulator(vedirect_port, device=vedirect_device, clock=clock, interval_s=interval_s)
            if vedirect_port is not None
            else None
        )
        self._plugged = True
        self._volts, self._soc_pct = 13.2, 87.0
        # Start coherent: plugged in, charging, both battery views agreeing.
        self.sysfs.set_battery(self._volts, self._soc_pct, current_a=CHARGING_A)
        if self.vedirect is not None:
            self.vedirect.set_charger(BULK, True)
            self.vedirect.set_battery(self._volts, CHARGING_A, self._soc_pct)

    @property
    def sysfs_root(self) -> Path:
        return self.sysfs.root

    @property
    def gpio_path(self) -> Path:
        return self.gpio.path

    def plug(self) -> None:
        """Shore lead in and the socket live."""
        self._set_plugged(True)
        self.history.record("plug")

    def unplug(self) -> None:
        """Shore lead out, or the socket at this stop is dead."""
        self._set_plugged(False)
        self.history.record("unplug")

    def set_battery(self, volts: float, soc_pct: float, current_a: float | None = None) -> None:
        """House battery state; the current defaults to charging when plugged, discharging when not.

        ValueError, with nothing changed, unless every number is finite and the charge is 0-100 %."""
        volts, soc_pct = finite("volts", volts, 0.0), finite("soc_pct", soc_pct, 0.0, 100.0)
        current = finite("current_a", current_a) if current_a is not None else self._current()
        self._volts, self._soc_pct = volts, soc_pct
        self.sysfs.set_battery(volts, soc_pct, current_a=current)
        if self.vedirect is not None:
            self.vedirect.set_battery(volts, current, soc_pct)
        self.history.record("set_battery", volts=volts, soc_pct=soc_pct, current_a=current)

    def start(self) -> ShorePowerSim:
        if self.vedirect is not None:
            self.vedirect.start()
        return self

    def stop(self) -> None:
        if self.vedirect is not None:
            self.vedirect.stop()

    def __enter__(self) -> ShorePowerSim:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _current(self) -> float:
        return CHARGING_A if self._plugged else DISCHARGING_A

    def _set_plugged(self, plugged: bool) -> None:
        self._plugged = plugged
        self.gpio.set_mains(plugged)
        if plugged:
            self.sysfs.plug()
        else:
            self.sysfs.unplug()
        if self.vedirect is not None:
            self.vedirect.set_charger(BULK if plugged else OFF, plugged)
            self.vedirect.set_battery(self._volts, self._current(), self._soc_pct)
