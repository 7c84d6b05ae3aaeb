"""Health of the box itself (load, CPU temperature, memory, disk, uptime, bytes per interface) via psutil.

Interface selection: with no ``interfaces`` configured, every interface except loopback is
counted. A configured interface that does not exist right now is left out of ``net`` and the
read stays ok: ``wwan0``/``ppp0`` only exist while the 4G stick is plugged in or dialled, and the
modem driver is the one that reports the stick missing. A missing ``disk_path`` is a failure,
because then the one number we watch disks for (free space) cannot be read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import psutil

from drivers.base import DeviceUnavailable, Driver
from drivers.snapshots import NetInterfaceCounters, SystemSnapshot

#: Sensor chips that measure the CPU itself, best first: Raspberry Pi, Intel, AMD, other SoCs.
CPU_SENSORS = ("cpu_thermal", "coretemp", "k10temp", "soc_thermal", "soc", "cpu-thermal")
LOOPBACK = "lo"


class TemperatureReading(Protocol):
    """One entry of ``psutil.sensors_temperatures()`` (its ``shwtemp`` tuple)."""

    @property
    def label(self) -> str: ...

    @property
    def current(self) -> float: ...


def cpu_temperature(sensors: Mapping[str, Sequence[TemperatureReading]]) -> float | None:
    """The CPU temperature in °C, or None when no CPU sensor is present.

    Other chips (NVMe, Wi-Fi, ACPI zones) are ignored on purpose: reporting a disk's temperature
    as the CPU's would hide an overheating board.
    """
    for name in CPU_SENSORS:
        readings = sensors.get(name)
        if readings:
            # coretemp lists the package first on most boards, but be explicit when it is labelled.
            package = [r for r in readings if r.label.lower().startswith("package")]
            return float((package or list(readings))[0].current)
    return None


def select_interfaces(
    counters: Mapping[str, tuple[int, int]], wanted: Iterable[str]
) -> tuple[NetInterfaceCounters, ...]:
    """(sent, received) per interface -> the configured ones, or all but loopback when none are."""
    names = list(wanted) or sorted(name for name in counters if name != LOOPBACK)
    return tuple(
        NetInterfaceCounters(name=name, bytes_sent=counters[name][0], bytes_recv=counters[name][1])
        for name in names
        if name in counters
    )


def uptime_s() -> float:
    """Seconds since boot, from CLOCK_BOOTTIME where the OS has it.

    psutil.boot_time() is wall-clock based, and a Pi without an RTC boots in 1970 and then jumps
    when NTP or GPS sets the time; the boot-time clock never jumps.
    """
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.time() - psutil.boot_time()


class SystemDriver(Driver[SystemSnapshot]):
    """Reads the machine it runs on; ``disk_path`` is the filesystem whose free space matters."""

    kind = "system"

    def __init__(self, disk_path: str, interfaces: tuple[str, ...] = ()) -> None:
        super().__init__(disk_path)
        self.disk_path = disk_path
        self.interfaces = interfaces

    def _failed(self, reason: str) -> SystemSnapshot:
        return SystemSnapshot(ok=False, reason=reason, disk_path=self.disk_path)

    def _read(self) -> SystemSnapshot:
        disk_total, disk_free = self._disk()
        load_1m, load_5m, load_15m = psutil.getloadavg()
        memory = psutil.virtual_memory()
        return SystemSnapshot(
            load_1m=load_1m,
            load_5m=load_5m,
            load_15m=load_15m,
            cpu_temp_c=cpu_temperature(_sensors()),
            mem_total_bytes=memory.total,
            mem_available_bytes=memory.available,
            disk_path=self.disk_path,
            disk_total_bytes=disk_total,
            disk_free_bytes=disk_free,
            uptime_s=uptime_s(),
            net=select_interfaces(_net_counters(), self.interfaces),
        )

    def _disk(self) -> tuple[int, int]:
        try:
            usage = psutil.disk_usage(self.disk_path)
        except FileNotFoundError as exc:
            raise DeviceUnavailable(f"disk path {self.disk_path} does not exist") from exc
        except OSError as exc:
            raise DeviceUnavailable(f"cannot read disk usage of {self.disk_path}: {exc.strerror}") from exc
        return usage.total, usage.free


def _sensors() -> Mapping[str, Sequence[TemperatureReading]]:
    # Not every platform has sensors_temperatures (macOS, some BSDs); a broken hwmon driver can
    # also make it fail. Temperature is optional, so either case just means "no sensor".
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return {}
    try:
        result: Mapping[str, Sequence[TemperatureReading]] = read()
    except OSError:
        return {}
    return result


def _net_counters() -> dict[str, tuple[int, int]]:
    return {name: (c.bytes_sent, c.bytes_recv) for name, c in psutil.net_io_counters(pernic=True).items()}
