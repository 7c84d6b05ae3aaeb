"""The power driver: reads every configured source (GPIO, sysfs, VE.Direct) and merges one PowerSnapshot.

Shore presence is one fact seen by several sensors, so it comes from the first source that knows
it: the GPIO opto, then a sysfs Mains/USB supply, then a VE.Direct charger's state. The battery
is different: a UPS HAT's own cell and the bus's house battery are not the same battery, so the
battery comes wholly from VE.Direct when one is configured, else from sysfs, and is never mixed.
One failing source leaves the others visible (``ok=True`` with the failure in ``reason``); only
when every configured source fails is the snapshot ``ok=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from drivers.base import Driver, DriverError
from drivers.power.gpio import SysfsValueLine, mains_present
from drivers.power.sysfs import SysfsPowerReading, read_power_supplies
from drivers.power.vedirect import VeDirectPort, VeDirectReading
from drivers.snapshots import PowerSnapshot

T = TypeVar("T")


def describe_endpoint(
    sysfs: str | None, vedirect: str | None, gpio: str | None, gpio_active_low: bool
) -> str:
    """One string naming every source, e.g. ``gpio=/sys/.../value (active low); sysfs=/sys/...``."""
    parts = []
    if gpio:
        parts.append(f"gpio={gpio} ({'active low' if gpio_active_low else 'active high'})")
    if sysfs:
        parts.append(f"sysfs={sysfs}")
    if vedirect:
        parts.append(f"vedirect={vedirect}")
    return "; ".join(parts)


class PowerDriver(Driver[PowerSnapshot]):
    """Shore power and house battery from any combination of GPIO, sysfs and VE.Direct."""

    kind = "power"

    def __init__(
        self,
        *,
        sysfs: str | None = None,
        vedirect: str | None = None,
        gpio: str | None = None,
        gpio_active_low: bool = True,
        timeout_s: float = 3.0,
    ) -> None:
        if not (sysfs or vedirect or gpio):
            raise ValueError("PowerDriver needs at least one of sysfs, vedirect, gpio")
        super().__init__(describe_endpoint(sysfs, vedirect, gpio, gpio_active_low))
        self._sysfs_root = Path(sysfs) if sysfs else None
        self._line = SysfsValueLine(gpio) if gpio else None
        self._active_low = gpio_active_low
        self._vedirect = VeDirectPort(vedirect) if vedirect else None
        self._timeout_s = timeout_s

    def _read(self) -> PowerSnapshot:
        failures: list[DriverError] = []
        line, root, port = self._line, self._sysfs_root, self._vedirect
        # The fast file reads first; VE.Direct may wait up to timeout_s for its next block.
        gpio = _attempt(lambda: mains_present(line, active_low=self._active_low), failures) if line else None
        sysfs = _attempt(lambda: read_power_supplies(root), failures) if root else None
        ved = _attempt(lambda: port.read(self._timeout_s), failures) if port else None
        configured = sum(source is not None for source in (line, root, port))
        reason = "; ".join(str(failure) for failure in failures) or None
        if len(failures) == configured:
            raise type(failures[0])(reason)
        return merge_sources(
            gpio=gpio, sysfs=sysfs, vedirect=ved, vedirect_configured=port is not None, reason=reason
        )

    def _failed(self, reason: str) -> PowerSnapshot:
        return PowerSnapshot(ok=False, reason=reason)

    def _after_failure(self) -> None:
        self.close()

    def close(self) -> None:
        if self._vedirect is not None:
            self._vedirect.close()


def _attempt(read: Callable[[], T], failures: list[DriverError]) -> T | None:
    """Run one source's read; its DriverError is collected instead of hiding the other sources."""
    try:
        return read()
    except DriverError as exc:
        failures.append(exc)
        return None


def merge_sources(
    *,
    gpio: bool | None,
    sysfs: SysfsPowerReading | None,
    vedirect: VeDirectReading | None,
    vedirect_configured: bool,
    reason: str | None = None,
) -> PowerSnapshot:
    """One snapshot from whichever sources answered (``None`` = not configured or failed)."""
    shore, shore_source = _shore(gpio, sysfs, vedirect)
    battery = vedirect if vedirect_configured else sysfs
    return PowerSnapshot(
        ok=True,
        reason=reason,
        shore_connected=shore,
        shore_source=shore_source,
        mains_voltage_v=sysfs.mains_voltage_v if sysfs else None,
        battery_v=battery.battery_v if battery else None,
        battery_current_a=battery.battery_current_a if battery else None,
        battery_soc_pct=battery.battery_soc_pct if battery else None,
        charging_state=battery.charging_state if battery else None,
    )


def _shore(
    gpio: bool | None, sysfs: SysfsPowerReading | None, vedirect: VeDirectReading | None
) -> tuple[bool | None, str | None]:
    if gpio is not None:
        return gpio, "gpio"
    if sysfs is not None and sysfs.shore_connected is not None:
        return sysfs.shore_connected, "sysfs"
    if vedirect is not None and vedirect.input_present is not None:
        return vedirect.input_present, "vedirect"
    return None, None
