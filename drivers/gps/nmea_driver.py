"""GPS from a raw NMEA receiver on a serial line (no gpsd): read one fresh epoch per read into a GpsSnapshot.

The endpoint is anything ``serial.serial_for_url`` opens: ``/dev/ttyACM0``, a pty path, or
``socket://host:port`` for a receiver behind a serial-to-TCP bridge.
"""

from __future__ import annotations

import contextlib
import termios
import time

import serial

from drivers.base import DeviceTimeout, DeviceUnavailable, Driver, ProtocolError
from drivers.errors import os_reason
from drivers.gps.nmea import MAX_LINE_CHARS, NmeaState
from drivers.snapshots import GpsSnapshot

_POLL_S = 0.1  # serial read slice: how late we may notice that an epoch is complete


class NmeaSerialDriver(Driver[GpsSnapshot]):
    """Reads an NMEA 0183 receiver; keeps the port open between reads and reopens it after failures."""

    kind = "gps"

    def __init__(self, endpoint: str, baudrate: int = 9600, timeout_s: float = 2.0) -> None:
        super().__init__(endpoint)
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.state = NmeaState()
        self._port: serial.Serial | None = None
        self._pending = b""

    def _open(self) -> serial.Serial:
        try:
            port = serial.serial_for_url(self.endpoint, baudrate=self.baudrate, timeout=_POLL_S)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceUnavailable(f"cannot open GPS receiver {self.endpoint}: {os_reason(exc)}") from None
        # A (re)connected receiver starts from nothing: do not carry the old fix over.
        self.state, self._pending, self._port = NmeaState(), b"", port
        return port

    def _read(self) -> GpsSnapshot:
        port = self._port or self._open()
        try:
            return self._read_epoch(port)
        except (serial.SerialException, OSError, termios.error) as exc:
            # termios.error (not an OSError) comes from flushing a tty that was hung up (unplugged).
            raise DeviceUnavailable(f"lost GPS receiver {self.endpoint}: {os_reason(exc)}") from None

    def _read_epoch(self, port: serial.Serial) -> GpsSnapshot:
        # Lines queued since the last read describe where the bus *was*: drop them and wait for a
        # fresh epoch (GGA and RMC of the same second), or whatever came by the deadline.
        port.reset_input_buffer()
        self._pending = b""
        state = self.state
        state.begin_epoch()
        accepted, rejected = state.accepted, sum(state.rejected.values())
        deadline = time.monotonic() + self.timeout_s
        while not state.epoch_complete and time.monotonic() < deadline:
            self._feed(port.read(4096))
        if not state.epoch_has_position:
            self._no_position(state.accepted - accepted, sum(state.rejected.values()) - rejected)
        return state.snapshot()

    def _no_position(self, heard: int, garbled: int) -> None:
        """Raise why no GGA/RMC came: the state still holds the previous position, which is stale."""
        within = f"from {self.endpoint} within {self.timeout_s} s"
        if heard == 0 and garbled:
            raise ProtocolError(
                f"no valid NMEA {within} ({garbled} garbled lines: wrong baud rate or line noise?)"
            )
        if heard == 0:
            raise DeviceTimeout(f"no NMEA {within}")
        # Satellites (GSA/GSV) but no position sentence: a receiver whose GGA/RMC are lost or
        # corrupt must not be reported at the place it was last heard from.
        detail = f"only {heard} other sentences" + (f", {garbled} garbled lines" if garbled else "")
        error = ProtocolError if garbled else DeviceTimeout
        raise error(f"no position sentence (GGA/RMC) {within} ({detail})")

    def _feed(self, data: bytes) -> None:
        """Split ``data`` into lines for the parser, keeping an unfinished line for the next call."""
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            self.state.feed(line)
        if len(self._pending) > MAX_LINE_CHARS:  # noise with no newline: count it, do not hoard it
            self.state.feed(self._pending)
            self._pending = b""

    def _failed(self, reason: str) -> GpsSnapshot:
        return GpsSnapshot(ok=False, reason=reason, source="nmea")

    def _after_failure(self) -> None:
        self.close()

    def close(self) -> None:
        if self._port is not None:
            # Closing a port whose device is gone can fail; there is nothing left to release then.
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None
