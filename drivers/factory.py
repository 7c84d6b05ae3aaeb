"""Build the configured drivers from the agent configuration ("hardware by URL")."""

from __future__ import annotations

from typing import Any

from agent.config import AgentConfig, GpsSection, ModemSection, PowerSection, PrinterSection, SystemSection
from drivers.base import Driver


def gps_driver(section: GpsSection) -> Driver[Any]:
    """gpsd:// URLs go through gpsd; anything else is a serial NMEA receiver."""
    if section.url.startswith("gpsd://"):
        from drivers.gps.gpsd_driver import GpsdDriver

        return GpsdDriver(section.url, timeout_s=section.timeout_s)
    from drivers.gps.nmea_driver import NmeaSerialDriver

    return NmeaSerialDriver(section.url, baudrate=section.baudrate, timeout_s=section.timeout_s)


def modem_driver(section: ModemSection) -> Driver[Any]:
    """http(s):// is a HiLink stick; anything else is an AT command port."""
    if section.url.startswith(("http://", "https://")):
        from drivers.modem.hilink import HiLinkDriver

        return HiLinkDriver(section.url, timeout_s=section.timeout_s)
    from drivers.modem.at_driver import AtModemDriver

    return AtModemDriver(
        section.url, model=section.model, baudrate=section.baudrate, timeout_s=section.timeout_s
    )


def power_driver(section: PowerSection) -> Driver[Any]:
    from drivers.power.driver import PowerDriver

    return PowerDriver(
        sysfs=section.sysfs,
        vedirect=section.vedirect,
        gpio=section.gpio,
        gpio_active_low=section.gpio_active_low,
        timeout_s=section.timeout_s,
    )


def printer_driver(section: PrinterSection) -> Driver[Any]:
    from drivers.printer.driver import IppPrinterDriver

    return IppPrinterDriver(section.url, timeout_s=section.timeout_s)


def system_driver(section: SystemSection, data_dir: str) -> Driver[Any]:
    from drivers.system import SystemDriver

    return SystemDriver(section.disk_path or data_dir, interfaces=section.interfaces)


def build_drivers(config: AgentConfig) -> dict[str, Driver[Any]]:
    """One driver per configured device, keyed gps/modem/power/printer/system."""
    drivers: dict[str, Driver[Any]] = {}
    if config.gps is not None:
        drivers["gps"] = gps_driver(config.gps)
    if config.modem is not None:
        drivers["modem"] = modem_driver(config.modem)
    if config.power is not None:
        drivers["power"] = power_driver(config.power)
    if config.printer is not None:
        drivers["printer"] = printer_driver(config.printer)
    if config.system is not None:
        drivers["system"] = system_driver(config.system, config.agent.data_dir)
    return drivers
