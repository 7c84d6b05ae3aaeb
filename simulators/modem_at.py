"""A 4G modem answering AT commands on a pty, as a Quectel EC25, Sierra MC7455, Huawei ME909 or plain modem.

The driver opens ``port.path`` exactly as it opens ``/dev/ttyUSB2``. A daemon thread reads command
lines from the pty master and answers them in the framing of docs/protocols.md 1.1 (echo on at power
up, ``AT+CMEE`` modes, URCs between commands or inside an answer). Tests steer the radio with verbs
(``set_signal``, ``set_registration``...) and break it with faults (``go_silent``, ``answer_error``,
``inject_garbage``, ``unplug``). Only LTE is modelled in depth: ``set_operator(rat=...)`` changes
the COPS/CEREG access technology and the ``^HCSQ`` mode, the vendor cell lines stay LTE.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from simulators.base import Clock, History, ServingLoop, finite
from simulators.modem_at_answers import (
    CME_TEXT,
    OPERATOR_NAMES,
    RAT_ACT,
    SETTINGS,
    SIM_COMMANDS,
    VARIANTS,
    Radio,
    cesq_lines,
    csq_lines,
    gstatus_lines,
    hcsq_lines,
    qeng_lines,
)
from simulators.pty import PtyPort

_IDLE_S = 0.005  # rest between reads while the line is quiet, outside the lock so verbs get in


class _Refused(Exception):
    """The command is answered with an error final result: ``args[0]`` is the CME code, or none."""


class AtModemSimulator:
    """One simulated modem on ``port``; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        port: PtyPort,
        *,
        variant: str = "quectel",
        clock: Clock = time.monotonic,
        imei: str = "867698041234567",
        iccid: str = "89330123456789012345",
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown modem variant {variant!r}; one of {', '.join(VARIANTS)}")
        self.port = port
        self.variant = variant
        self.vendor = VARIANTS[variant]
        self.imei, self.iccid = imei, iccid
        self.history = History(clock)
        self.radio = Radio()
        self.sim_present = True
        self._lock = threading.Lock()
        # A bug answering one command is recorded in history; the modem keeps answering the next.
        self._loop = ServingLoop(
            f"at-modem-{variant}", self._serve_once, self.history, where="serve", after_error_s=_IDLE_S
        )
        self._silent = False
        self._errors: dict[str, int | None] = {}
        self._pending_urcs: list[tuple[str, str]] = []
        self._rx = bytearray()
        self._power_up()

    def start(self) -> AtModemSimulator:
        self._loop.start()
        return self

    def stop(self) -> None:
        self._loop.stop(timeout_s=2.0)

    def __enter__(self) -> AtModemSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def commands(self) -> list[str]:
        """Command lines received so far, oldest first."""
        return [str(e.detail["line"]) for e in self.history.events if e.name == "command"]

    def set_signal(
        self, rsrp_dbm: float, rsrq_db: float, sinr_db: float, rssi_dbm: float | None = None
    ) -> None:
        """New LTE measurements; ValueError (radio unchanged) unless every one is a finite number."""
        self._update(
            "set_signal",
            rsrp_dbm=finite("rsrp_dbm", rsrp_dbm),
            rsrq_db=finite("rsrq_db", rsrq_db),
            sinr_db=finite("sinr_db", sinr_db),
            rssi_dbm=None if rssi_dbm is None else finite("rssi_dbm", rssi_dbm),
        )

    def set_registration(self, stat: int) -> None:
        """27.007 <stat>; a +CEREG URC goes out when the host enabled them (AT+CEREG=1 or 2)."""
        self._update("set_registration", stat=stat)
        with self._lock:
            if self._cereg_n >= 1:
                self._emit_line(self._reg_line("+CEREG", self._cereg_n, urc=True))

    def set_operator(self, code: str, rat: str = "LTE") -> None:
        if rat not in RAT_ACT:
            raise ValueError(f"rat must be one of {', '.join(RAT_ACT)}")
        self._update("set_operator", operator=code, rat=rat)

    def set_cell(self, cell_id: int, tac: int, pci: int, band: int, earfcn: int) -> None:
        self._update("set_cell", cell_id=cell_id, tac=tac, pci=pci, band=band, earfcn=earfcn)

    def _update(self, verb: str, **changes: Any) -> None:
        with self._lock:
            self.radio = dataclasses.replace(self.radio, **changes)
        self.history.record(verb, **changes)

    def remove_sim(self) -> None:
        """SIM identity and registration commands now answer +CME ERROR: 10 (per the CMEE mode).

        The IMEI (AT+CGSN) still answers: it belongs to the modem, not to the SIM."""
        with self._lock:
            self.sim_present = False
            self._emit_line("+CPIN: NOT INSERTED")
        self.history.record("remove_sim")

    def insert_sim(self) -> None:
        with self._lock:
            self.sim_present = True
            self._emit_line("+CPIN: READY")
        self.history.record("insert_sim")

    def go_silent(self) -> None:
        """Commands are still read (and recorded) but never answered, nor echoed."""
        self._silent = True
        self.history.record("go_silent")

    def resume(self) -> None:
        """Answer normally again: ends go_silent() and every answer_error() fault."""
        with self._lock:
            self._silent = False
            self._errors.clear()
        self.history.record("resume")

    def answer_error(self, cmd_prefix: str, code: int | None = None) -> None:
        """Commands starting with ``cmd_prefix`` fail: plain ERROR, or +CME ERROR ``code``."""
        with self._lock:
            self._errors[cmd_prefix.upper()] = code
        self.history.record("answer_error", cmd_prefix=cmd_prefix, code=code)

    def inject_garbage(self, data: bytes) -> None:
        """Raw bytes on the line now, as line noise or a baud-rate mismatch would give."""
        with self._lock:
            self.port.write(data)
        self.history.record("inject_garbage", data=data)

    def inject_urc(self, line: str, *, during: str | None = None) -> None:
        """A URC now, or (``during``) between the information lines and the final result of the
        next answer to a command starting with ``during``."""
        with self._lock:
            if during is None:
                self._emit_line(line)
            else:
                self._pending_urcs.append((during.upper(), line))
        self.history.record("inject_urc", line=line, during=during)

    def unplug(self) -> None:
        with self._lock:
            self.port.vanish()
            self._rx.clear()
        self.history.record("unplug")

    def replug(self) -> None:
        """Plug back: a freshly booted modem (echo on, default settings) under the same path."""
        with self._lock:
            self.port.reappear()
            self._power_up()
            for urc in self.vendor.boot_urcs:
                self._emit_line(urc)
        self.history.record("replug")

    def _power_up(self) -> None:
        self._echo, self._cmee, self._cops_format, self._cereg_n, self._creg_n = 1, 0, 0, 0, 0

    def _serve_once(self) -> float:
        """Read what the driver sent and answer it; how long to rest before reading again."""
        with self._lock:
            # Under the lock, so unplug() cannot close the fd while we wait on it.
            try:
                data = self.port.read(0.02) if self.port.present else b""
                if data:
                    self._receive(data)
            except OSError:  # the pty was closed behind our back (test teardown): nothing to serve
                data = b""
        return 0.0 if data else _IDLE_S

    def _receive(self, data: bytes) -> None:
        if self._echo and not self._silent:
            self.port.write(data)  # the modem echoes characters as they arrive
        self._rx.extend(data)
        while (end := self._rx.find(b"\r")) >= 0:
            line = self._rx[:end].decode("ascii", errors="replace").strip()
            del self._rx[: end + 1]
            if line:
                self._handle(line)

    def _handle(self, cmd: str) -> None:
        self.history.record("command", line=cmd)
        if self._silent:
            return
        upper = cmd.upper()
        try:
            lines, final = self._answer(upper), "OK"
        except _Refused as exc:
            lines, final = [], self._error_final(exc.args[0] if exc.args else None)
        urcs = [urc for prefix, urc in self._pending_urcs if upper.startswith(prefix)]
        self._pending_urcs = [p for p in self._pending_urcs if not upper.startswith(p[0])]
        body = "\r\n" + "\r\n".join(lines) + "\r\n" if lines else ""
        body += "".join(f"\r\n{urc}\r\n" for urc in urcs)
        self.port.write((body + f"\r\n{final}\r\n").encode())

    def _emit_line(self, line: str) -> None:
        self.port.write(f"\r\n{line}\r\n".encode())

    def _error_final(self, code: int | None) -> str:
        if code is None or self._cmee == 0:
            return "ERROR"
        if self._cmee == 2:
            return f"+CME ERROR: {CME_TEXT.get(code, code)}"
        return f"+CME ERROR: {code}"

    def _answer(self, cmd: str) -> list[str]:
        for prefix, code in self._errors.items():
            if cmd.startswith(prefix):
                raise _Refused(code)
        if not self.sim_present and (cmd in SIM_COMMANDS or cmd == self.vendor.iccid_command):
            raise _Refused(10)
        handler = self._exact().get(cmd)
        if handler is not None:
            return handler()
        for pattern, attribute in SETTINGS:
            match = re.fullmatch(pattern, cmd)
            if match:
                setattr(self, attribute, int(match.group(1)))
                return []
        raise _Refused()  # unknown command or syntax: plain ERROR whatever CMEE says

    def _exact(self) -> dict[str, Callable[[], list[str]]]:
        v = self.vendor
        table: dict[str, Callable[[], list[str]]] = {
            "AT": list,
            "ATI": self._ati,
            "AT+CGMI": lambda: [v.manufacturer],
            "AT+CGMM": lambda: [v.model],
            "AT+CGMR": lambda: [v.revision],
            "AT+CGSN": lambda: [f'+CGSN: "{self.imei}"' if v.quoted_cgsn else self.imei],
            "AT+CMEE?": lambda: [f"+CMEE: {self._cmee}"],
            "AT+CPIN?": lambda: ["+CPIN: READY"],
            "AT+CIMI": lambda: ["208011234567890"],
            v.iccid_command: lambda: [f"{v.iccid_prefix}: {self.iccid}"],
            "AT+COPS?": self._cops,
            "AT+CEREG?": lambda: [self._reg_line("+CEREG", self._cereg_n)],
            "AT+CREG?": lambda: [self._reg_line("+CREG", self._creg_n)],
            "AT+CSQ": lambda: csq_lines(self.radio, self.vendor),
        }
        if v.cesq:
            table["AT+CESQ"] = lambda: cesq_lines(self.radio)
        cells: dict[str, Callable[[], list[str]]] = {
            'AT+QENG="SERVINGCELL"': lambda: qeng_lines(self.radio, self.vendor),
            "AT!GSTATUS?": lambda: gstatus_lines(self.radio),
            "AT^HCSQ?": lambda: hcsq_lines(self.radio),
        }
        if v.cell_command is not None:
            table[v.cell_command] = cells[v.cell_command]
        return table

    def _ati(self) -> list[str]:
        v = self.vendor
        if not v.labelled_ati:
            return [v.manufacturer, v.model, f"Revision: {v.revision}"]
        return [f"Manufacturer: {v.manufacturer}", f"Model: {v.model}", f"Revision: {v.revision}",
                f"IMEI: {self.imei}", "+GCAP: +CGSM"]  # fmt: skip

    def _cops(self) -> list[str]:
        r = self.radio
        if not r.registered:
            return ["+COPS: 0"]
        oper = r.operator if self._cops_format == 2 else OPERATOR_NAMES.get(r.operator, r.operator)
        return [f'+COPS: 0,{self._cops_format},"{oper}",{RAT_ACT[r.rat]}']

    def _reg_line(self, prefix: str, n: int, *, urc: bool = False) -> str:
        """Read answer ``<n>,<stat>[,"<tac>","<ci>",<AcT>]``; the URC form drops ``<n>``."""
        r = self.radio
        line = f"{prefix}: {r.stat}" if urc else f"{prefix}: {n},{r.stat}"
        if n >= 2 and r.registered:
            line += f',"{r.tac:04X}","{r.cell_id:07X}",{RAT_ACT[r.rat]}'
        return line
