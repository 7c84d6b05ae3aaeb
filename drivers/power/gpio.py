"""Sense shore power from a mains-detect opto on a GPIO line (docs/protocols.md 5.4).

The usual wiring is a mains-rated opto module (or a small 230 V -> 5 V PSU feeding a PC817) whose
transistor pulls a pulled-up GPIO low while mains is present, hence ``active_low`` by default.
Debounce belongs in hardware: an RC on the line (or the PSU's own smoothing) removes the 100 Hz
ripple of an AC-fed opto such as the H11AA1. Without it, one read can land on a zero crossing and
report "no mains"; the software cure is several reads over >= 50 ms, believing "present" if any
read says so (ripple only ever produces false "absent").

Lines are read through the small :class:`LineReader` protocol so that a libgpiod reader can be
added beside the legacy sysfs value file without touching the driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from drivers.base import DeviceUnavailable, ProtocolError


class LineReader(Protocol):
    """One digital input line."""

    @property
    def name(self) -> str:
        """Where the line is read from, for reasons shown to technicians."""
        ...

    def read(self) -> int:
        """The electrical level now: 0 (low) or 1 (high); raise a DriverError when unreadable."""
        ...


class SysfsValueLine:
    """A line exported through legacy sysfs GPIO: ``/sys/class/gpio/gpioN/value`` holds "0" or "1"."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return str(self.path)

    def read(self) -> int:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError as exc:
            raise DeviceUnavailable(
                f"GPIO value file {self.path} is missing (line not exported, or wrong GPIO number)"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise DeviceUnavailable(f"cannot read GPIO value file {self.path}: {exc}") from exc
        value = text.strip()
        if value not in ("0", "1"):
            raise ProtocolError(f"GPIO value file {self.path} holds {value[:20]!r}, expected 0 or 1")
        return int(value)


def mains_present(line: LineReader, *, active_low: bool = True) -> bool:
    """Whether the mains-detect line says shore power is present."""
    level = line.read()
    return level == 0 if active_low else level == 1
