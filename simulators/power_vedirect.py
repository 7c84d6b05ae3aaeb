"""A Victron VE.Direct device on a pty: checksummed text blocks every second, with occasional HEX frames.

It plays a SmartShunt (alternating main and history blocks, like a real BMV), an MPPT solar
charger (the field set of docs/protocols.md 5.1) or a mains charger (``CS`` plus ``OR``, from which
shore presence is derived). Framing is built here independently of the driver's parser, so a
shared misunderstanding cannot hide. Test verbs: ``set_battery``, ``set_charger``,
``corrupt_next_block``, ``go_silent``/``resume``; every block and verb lands in ``history``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from types import TracebackType
from typing import Literal

from simulators.base import Clock, History, ServingLoop, finite
from simulators.pty import PtyPort

Device = Literal["smartshunt", "mppt", "charger"]
NO_INPUT_POWER = 0x1  # OR bit 0
BATTERY_VOLTAGE_REGISTER = 0xED8D  # HEX register, 0.01 V: what an async HEX frame reports


@dataclasses.dataclass
class _State:
    volts: float = 12.65
    current_a: float = 1.5
    soc_pct: float = 87.0
    charge_state: int = 3  # bulk
    input_present: bool = True


def frame(fields: list[tuple[str, str]]) -> bytes:
    """``\\r\\n<label>\\t<value>`` per field, then ``Checksum`` and the byte making the sum 0 mod 256."""
    body = b"".join(b"\r\n%s\t%s" % (label.encode(), value.encode()) for label, value in fields)
    body += b"\r\nChecksum\t"
    return body + bytes([(256 - sum(body) % 256) % 256])


def hex_async_frame(register: int, value: int) -> bytes:
    """An asynchronous HEX message (``:A``): register and value little-endian, bytes summing to 0x55."""
    payload = [register & 0xFF, register >> 8, 0x00, value & 0xFF, (value >> 8) & 0xFF]
    checksum = (0x55 - 0xA - sum(payload)) & 0xFF
    return b":A" + "".join(f"{byte:02X}" for byte in [*payload, checksum]).encode() + b"\n"


class VeDirectSimulator:
    """One VE.Direct device streaming to ``port`` from a daemon thread between start() and stop()."""

    def __init__(
        self,
        port: PtyPort,
        *,
        device: Device = "smartshunt",
        clock: Clock = time.monotonic,
        interval_s: float = 1.0,
        hex_every: int = 4,
    ) -> None:
        self.port = port
        self.device = device
        self.interval_s = interval_s
        self.hex_every = hex_every
        self.history = History(clock)
        self._state = _State()
        self._lock = threading.Lock()
        # A block that fails to build is recorded in history; the device keeps streaming.
        self._loop = ServingLoop(
            f"vedirect-sim-{device}",
            self._tick_and_rest,
            self.history,
            where="tick",
            after_error_s=interval_s,
        )
        self._sent = 0
        self._corrupt_next = False
        self._silent = False

    # -- test verbs -------------------------------------------------------------------------------
    def set_battery(self, volts: float, current_a: float, soc_pct: float | None = None) -> None:
        """Battery voltage, current (+ charging) and, for a SmartShunt, state of charge.

        ValueError, with nothing changed, unless every number is finite and the charge is 0-100 %."""
        volts, current_a = finite("volts", volts, 0.0), finite("current_a", current_a)
        soc_pct = None if soc_pct is None else finite("soc_pct", soc_pct, 0.0, 100.0)
        with self._lock:
            self._state.volts, self._state.current_a = volts, current_a
            if soc_pct is not None:
                self._state.soc_pct = soc_pct
        self.history.record("set_battery", volts=volts, current_a=current_a, soc_pct=soc_pct)

    def set_charger(self, state_cs: int, input_present: bool) -> None:
        """Charger state (CS: 0 off, 3 bulk, 4 absorption, 5 float, ...) and whether its input is live."""
        with self._lock:
            self._state.charge_state, self._state.input_present = state_cs, input_present
        self.history.record("set_charger", state_cs=state_cs, input_present=input_present)

    def corrupt_next_block(self) -> None:
        """Flip one bit in the next block without fixing its checksum (line noise)."""
        with self._lock:
            self._corrupt_next = True
        self.history.record("corrupt_next_block")

    def go_silent(self) -> None:
        """Stop sending (device switched off, TX wire cut)."""
        with self._lock:  # a block being written right now finishes before this returns
            self._silent = True
        self.history.record("go_silent")

    def resume(self) -> None:
        with self._lock:
            self._silent = False
        self.history.record("resume")

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> VeDirectSimulator:
        self._loop.start()
        return self

    def stop(self) -> None:
        self._loop.stop()

    def __enter__(self) -> VeDirectSimulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _tick_and_rest(self) -> float:
        self.tick()
        return self.interval_s

    # -- wire -------------------------------------------------------------------------------------
    def tick(self) -> bytes:
        """Send the next block now (the thread calls this every ``interval_s``); returns what was sent."""
        # Built and written under the lock: once a verb returns, no block with the old state can
        # still reach the line, so "the next read sees it" holds in tests.
        with self._lock:
            if self._silent:
                return b""
            kind = "history" if self.device == "smartshunt" and self._sent % 2 == 1 else "main"
            fields = _history_fields() if kind == "history" else self._main_fields(self._state)
            corrupt, self._corrupt_next = self._corrupt_next, False
            with_hex = self.hex_every > 0 and self._sent % self.hex_every == self.hex_every - 1
            block = self._wire(fields, corrupt, with_hex)
            self._sent += 1
            written = self.port.write(block)
        self.history.record("block", kind=kind, corrupted=corrupt, hex=with_hex, written=written)
        return block

    def _wire(self, fields: list[tuple[str, str]], corrupt: bool, with_hex: bool) -> bytes:
        block = frame(fields)
        if corrupt:
            at = block.index(b"\t") + 1  # first value byte; the checksum byte stays as it was
            block = block[:at] + bytes([block[at] ^ 0x01]) + block[at + 1 :]
        if with_hex:
            # Between two text fields, as a device in HEX mode sends it: just before a field's CR LF.
            at = block.index(b"\r\n", 2)
            volts = hex_async_frame(BATTERY_VOLTAGE_REGISTER, round(self._state.volts * 100))
            block = block[:at] + volts + block[at:]
        return block

    def _main_fields(self, s: _State) -> list[tuple[str, str]]:
        millivolts, milliamps = str(round(s.volts * 1000)), str(round(s.current_a * 1000))
        off_reason = f"0x{0 if s.input_present else NO_INPUT_POWER:08X}"
        if self.device == "mppt":
            panel_w = max(0, round(s.volts * s.current_a))
            return [
                ("PID", "0xA053"), ("FW", "159"), ("SER#", "HQ2132ABCDE"), ("V", millivolts),
                ("I", milliamps), ("VPV", "18760"), ("PPV", str(panel_w)), ("CS", str(s.charge_state)),
                ("MPPT", "2" if panel_w else "0"), ("OR", off_reason), ("ERR", "0"), ("LOAD", "ON"),
                ("IL", "1200"), ("H19", "10234"), ("H20", "35"), ("H21", "112"), ("H22", "41"),
                ("H23", "130"), ("HSDS", "17"),
            ]  # fmt: skip
        if self.device == "charger":
            # PID is illustrative (a Phoenix Smart / Blue Smart charger); its exact value is unverified.
            return [
                ("PID", "0xA332"), ("FW", "134"), ("SER#", "HQ2240XYZAB"), ("V", millivolts),
                ("I", milliamps), ("ERR", "0"), ("CS", str(s.charge_state)), ("OR", off_reason),
            ]  # fmt: skip
        power_w = str(round(s.volts * s.current_a))
        return [
            ("PID", "0xA389"), ("V", millivolts), ("I", milliamps), ("P", power_w), ("CE", "-12500"),
            ("SOC", str(round(s.soc_pct * 10))), ("TTG", "-1"), ("Alarm", "OFF"), ("AR", "0"),
            ("BMV", "SmartShunt 500A/50mV"), ("FW", "0414"), ("MON", "0"),
        ]  # fmt: skip


def _history_fields() -> list[tuple[str, str]]:
    """The SmartShunt's second block: history counters only, no V (the reader must cope)."""
    values = ("-42000", "-12000", "-42000", "12", "0", "-250000", "11800", "14400", "86400", "2")
    return [(f"H{n}", value) for n, value in zip(range(1, 11), values, strict=True)]
