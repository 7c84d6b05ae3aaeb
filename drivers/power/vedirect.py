"""Read a Victron VE.Direct device: the streaming text-protocol parser, unit conversions, serial reader.

Three layers, each usable on its own: :class:`VeDirectParser` turns bytes (fed in any chunks) into
checksum-verified blocks and never raises; :func:`reading_from_fields` converts labels to SI units
and derives shore presence where the device can know it; :class:`VeDirectPort` keeps the serial
line open and waits for a fresh block. Wire format: docs/protocols.md section 5.1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import termios
import time
from collections.abc import Callable, Mapping
from typing import Literal, Protocol, cast

import serial

from drivers.base import DeviceTimeout, DeviceUnavailable

BAUDRATE = 19200
CR, LF, TAB, COLON = 0x0D, 0x0A, 0x09, 0x3A
# Protocol limits (label <= 8, value <= 32 characters). Longer means line noise: the field is
# dropped, and the caps also keep memory bounded whatever garbage arrives.
MAX_LABEL = 8
MAX_VALUE = 32
MAX_FIELDS = 64

#: ``CS`` charge/operation state as lowercase words (docs/protocols.md 5.1).
CHARGE_STATES = {
    0: "off",
    1: "low-power",
    2: "fault",
    3: "bulk",
    4: "absorption",
    5: "float",
    6: "storage",
    7: "equalize",
    9: "inverting",
    11: "power-supply",
    245: "starting-up",
    246: "repeated-absorption",
    247: "auto-equalize",
    248: "batterysafe",
    252: "external-control",
}
#: ``OR`` off-reason bits.
OFF_REASONS = {
    0x1: "no-input-power",
    0x2: "power-switch",
    0x4: "device-mode",
    0x8: "remote-input",
    0x10: "protection",
    0x20: "paygo",
    0x40: "bms",
    0x80: "engine-shutdown",
    0x100: "analysing-input-voltage",
}
NO_INPUT_POWER = 0x1
#: A mains charger only bulks, absorbs, floats or equalizes when its AC input is live.
INPUT_PRESENT_STATES = frozenset({3, 4, 5, 7, 247})

Family = Literal["mppt", "charger", "inverter", "battery-monitor", "unknown"]


class _State(enum.Enum):
    IDLE = enum.auto()  # between blocks, waiting for the LF that starts a field
    LABEL = enum.auto()
    VALUE = enum.auto()
    CHECKSUM = enum.auto()  # the next byte, whatever it is, closes the block
    HEX = enum.auto()  # inside a ':...\n' HEX frame


@dataclasses.dataclass
class ParserStats:
    """Counters a technician can use to tell a noisy line from a silent one."""

    blocks: int = 0
    bad_checksums: int = 0
    fragments: int = 0  # the tail of a block we joined halfway (after start or resync)
    hex_frames: int = 0
    dropped_fields: int = 0


class VeDirectParser:
    """Streaming VE.Direct text parser: :meth:`feed` any bytes, get back the valid blocks they completed."""

    def __init__(self) -> None:
        self.stats = ParserStats()
        self.resync()

    def resync(self) -> None:
        """Forget any half-received block (after the input buffer was flushed or the port reopened)."""
        self._state = _State.IDLE
        self._before_hex = _State.IDLE
        self._sum = 0
        self._fields: dict[str, str] = {}
        self._label = bytearray()
        self._value = bytearray()
        # A block counts as corrupt only if we saw it from its first byte; otherwise it is just
        # the tail end of a block that started before we listened.
        self._synced: bool | None = None

    def feed(self, data: bytes) -> list[dict[str, str]]:
        """Consume ``data``; return every block it completed whose checksum is right. Never raises."""
        blocks = []
        for byte in data:
            block = self._step(byte)
            if block is not None:
                blocks.append(block)
        return blocks

    def _step(self, byte: int) -> dict[str, str] | None:
        if self._synced is None:
            self._synced = byte == CR
        if self._state is _State.HEX:
            if byte == LF:
                self._state = self._before_hex
                self.stats.hex_frames += 1
            return None
        # HEX frames may interrupt the text anywhere except the checksum byte (which may itself
        # be ':'); they are not part of the text block, so they stay out of its checksum.
        if byte == COLON and self._state is not _State.CHECKSUM:
            self._before_hex, self._state = self._state, _State.HEX
            return None
        self._sum = (self._sum + byte) & 0xFF
        if self._state is _State.CHECKSUM:
            return self._end_block()
        if self._state is _State.IDLE:
            if byte == LF:
                self._start_label()
        elif self._state is _State.LABEL:
            self._label_byte(byte)
        elif byte == LF:  # VALUE: the LF of the next field's CR LF ends this one
            self._store_field()
            self._start_label()
        elif byte != CR and len(self._value) <= MAX_VALUE:  # one past the limit marks it too long
            self._value.append(byte)
        return None

    def _start_label(self) -> None:
        self._label.clear()
        self._state = _State.LABEL

    def _label_byte(self, byte: int) -> None:
        if byte == TAB:
            self._value.clear()
            self._state = _State.CHECKSUM if self._label == b"Checksum" else _State.VALUE
        elif byte == LF:
            self._label.clear()
        elif byte != CR and len(self._label) <= MAX_LABEL:
            self._label.append(byte)

    def _store_field(self) -> None:
        too_long = len(self._label) > MAX_LABEL or len(self._value) > MAX_VALUE
        label = self._label.decode("ascii", "replace")
        if too_long or not label or (len(self._fields) >= MAX_FIELDS and label not in self._fields):
            self.stats.dropped_fields += 1
            return
        self._fields[label] = self._value.decode("ascii", "replace")

    def _end_block(self) -> dict[str, str] | None:
        fields, valid, synced = self._fields, self._sum == 0, self._synced
        self._fields = {}
        self._sum = 0
        self._state = _State.IDLE
        self._synced = True
        if valid and fields:
            self.stats.blocks += 1
            return fields
        if not valid:
            if synced:
                self.stats.bad_checksums += 1
            else:
                self.stats.fragments += 1
        return None


@dataclasses.dataclass(frozen=True)
class VeDirectReading:
    """What a VE.Direct device said, in SI units; ``None`` where the device does not report it."""

    fields: dict[str, str]
    family: Family
    product_id: int | None = None
    battery_v: float | None = None
    battery_current_a: float | None = None
    battery_soc_pct: float | None = None
    charge_state: int | None = None
    charging_state: str | None = None
    panel_v: float | None = None
    panel_w: float | None = None
    ac_out_v: float | None = None
    off_reason: int | None = None
    off_reasons: tuple[str, ...] = ()
    input_present: bool | None = None


def _number(fields: Mapping[str, str], label: str, scale: float = 1.0) -> float | None:
    whole = _integer(fields, label)
    return None if whole is None else round(whole * scale, 6)


def _integer(fields: Mapping[str, str], label: str, base: int = 10) -> int | None:
    try:
        return int(fields[label].strip(), base)
    except (KeyError, ValueError):
        return None


def device_family(fields: Mapping[str, str]) -> Family:
    """Which kind of device sent these labels (only the label set is reliable across firmware)."""
    if "VPV" in fields or "PPV" in fields:
        return "mppt"
    if "AC_OUT_V" in fields or "MODE" in fields:
        return "inverter"
    if "CS" in fields:
        return "charger"
    if {"SOC", "CE", "BMV", "MON"} & fields.keys():
        return "battery-monitor"
    return "unknown"


def _input_present(family: Family, cs: int | None, off_reason: int | None) -> bool | None:
    # Only a mains charger's state says anything about shore power: an MPPT's input is the
    # panel, an inverter's OR bit 0x1 is its DC input, and monitors have no input at all.
    if family != "charger" or cs is None:
        return None
    if cs in INPUT_PRESENT_STATES:
        return True
    if cs == 0 and off_reason is not None and off_reason & NO_INPUT_POWER:
        return False
    return None


def _charging_state(family: Family, cs: int | None, current_a: float | None) -> str | None:
    if cs is not None:
        return CHARGE_STATES.get(cs, f"state-{cs}")
    if family == "battery-monitor" and current_a is not None:
        # A shunt has no charger state; the sign of the battery current is the honest answer.
        return "charging" if current_a > 0 else "discharging" if current_a < 0 else "idle"
    return None


def reading_from_fields(fields: Mapping[str, str]) -> VeDirectReading:
    """Convert merged block fields to units (V mV, I mA, SOC per mille, AC_OUT_V 0.01 V, ...)."""
    family = device_family(fields)
    cs = _integer(fields, "CS")
    off_reason = _integer(fields, "OR", 16)
    current_a = _number(fields, "I", 0.001)
    soc = _number(fields, "SOC", 0.1)
    return VeDirectReading(
        fields=dict(fields),
        family=family,
        product_id=_integer(fields, "PID", 16),
        battery_v=_number(fields, "V", 0.001),
        battery_current_a=current_a,
        # A BMV shows SOC "---" until it has synchronised once: that parses as None, as it should.
        battery_soc_pct=None if soc is None else round(soc, 1),
        charge_state=cs,
        charging_state=_charging_state(family, cs, current_a),
        panel_v=_number(fields, "VPV", 0.001),
        panel_w=_number(fields, "PPV"),
        ac_out_v=_number(fields, "AC_OUT_V", 0.01),
        off_reason=off_reason,
        off_reasons=tuple(name for bit, name in OFF_REASONS.items() if (off_reason or 0) & bit),
        input_present=_input_present(family, cs, off_reason),
    )


class _SerialLine(Protocol):
    """What we use of a pyserial port; every ``serial_for_url`` handler provides it."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


class VeDirectPort:
    """A VE.Direct line kept open between reads, because the device streams a block every second."""

    #: How long one ``read()`` on the serial port may block; the overall deadline is checked between.
    POLL_S = 0.05

    def __init__(self, url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.parser = VeDirectParser()
        self._clock = clock
        self._serial: _SerialLine | None = None

    def read(self, timeout_s: float) -> VeDirectReading:
        """Wait up to ``timeout_s`` for a fresh valid block; raise DeviceTimeout/DeviceUnavailable."""
        try:
            return self._read(timeout_s)
        except (DeviceTimeout, DeviceUnavailable):
            self.close()  # the next read reopens: the USB adapter may have re-enumerated
            raise

    def close(self) -> None:
        if self._serial is not None:
            port, self._serial = self._serial, None
            # An unplugged adapter may fail even to close; there is nothing left to release then.
            with contextlib.suppress(serial.SerialException, OSError, termios.error):
                port.close()

    def _read(self, timeout_s: float) -> VeDirectReading:
        port = self._open()
        # Whatever sat in the kernel buffer since the last poll is stale (and truncated once the
        # buffer overflowed): drop it and wait for a block sent after this read began.
        self._io(port.reset_input_buffer)
        self.parser.resync()
        deadline = self._clock() + timeout_s
        received, bad_before = 0, self.parser.stats.bad_checksums
        # A BMV or SmartShunt alternates its main block with history blocks: merge what arrives,
        # and wait for the main block (every device sends V there) unless the deadline comes first.
        fields: dict[str, str] = {}
        got_block = False
        while self._clock() < deadline and "V" not in fields:
            chunk = self._io(lambda: port.read(port.in_waiting or 1))
            received += len(chunk)
            for block in self.parser.feed(chunk):
                fields.update(block)
                got_block = True
        if got_block:
            return reading_from_fields(fields)
        raise DeviceTimeout(self._silence(received, self.parser.stats.bad_checksums - bad_before, timeout_s))

    def _open(self) -> _SerialLine:
        if self._serial is None:
            try:
                opened = serial.serial_for_url(self.url, BAUDRATE, timeout=self.POLL_S)
                # The stubs type it SerialBase; every URL handler's class has the methods we use.
                self._serial = cast(_SerialLine, opened)
            except (serial.SerialException, OSError, ValueError, termios.error) as exc:
                raise DeviceUnavailable(f"cannot open VE.Direct port {self.url}: {exc}") from exc
        return self._serial

    def _io(self, action: Callable[[], bytes | None]) -> bytes:
        try:
            return action() or b""
        except (serial.SerialException, OSError, termios.error) as exc:
            raise DeviceUnavailable(f"VE.Direct port {self.url} failed: {exc}") from exc

    def _silence(self, received: int, bad: int, timeout_s: float) -> str:
        if received == 0:
            return (
                f"no data from VE.Direct port {self.url} within {timeout_s:g} s "
                "(device off or its TX wire not connected)"
            )
        return (
            f"no valid VE.Direct block from {self.url} within {timeout_s:g} s: {received} bytes, "
            f"{bad} bad checksums (wrong baud rate, noise, or not a VE.Direct device)"
        )
