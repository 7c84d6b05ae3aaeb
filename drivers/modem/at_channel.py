"""One AT command port: send a command, collect its answer up to the final result, set URCs aside.

The port is opened with ``serial.serial_for_url`` (a device path, a pty path or ``socket://``) and
kept open between commands. Framing follows docs/protocols.md 1.1: an echoed command line is skipped,
information lines are collected until ``OK``/``ERROR``/``+CME ERROR``/``+CMS ERROR``, and
unsolicited result codes (RING, ``+CEREG: 1``, ``^HCSQ`` we did not ask for...) go to ``urcs`` and
the ``on_urc`` callback instead of being taken for the answer. Bytes that are not text are dropped,
never raised on. Failures are the DriverError family, worded for a technician.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import time
from collections.abc import Callable

import serial
import structlog

from drivers.base import DeviceReportedError, DeviceTimeout, DeviceUnavailable
from drivers.deadline import Deadline

log = structlog.get_logger(__name__)

# 27.007 +CME ERROR codes (0-16 checked in ModemManager-errors.h; see docs/protocols.md 1.1).
CME_ERRORS = {
    0: "phone failure",
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    30: "no network service",
    100: "unknown error",
    516: "GNSS not fixed now",
}

_POLL_S = 0.05  # serial read slice: short, so the command deadline is honoured closely
_MAX_PARTIAL = 4096  # an unterminated run longer than this is noise, not a line
_CALL_FINALS = ("CONNECT", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
_URC_WORDS = frozenset({"RING", "RDY", "NO CARRIER", "POWERED DOWN"})
_URC_HEADS = frozenset(
    {
        "+CREG", "+CGREG", "+CEREG", "+C5GREG", "+CMTI", "+CMT", "+CDS", "+CBM", "+CUSD", "+CRING",
        "+CLIP", "+CPIN", "+CFUN", "+QIND", "+QUSIM", "+QSTAT", "^HCSQ", "^MODE", "^RSSI", "^SRVST",
        "^SIMST", "^BOOT", "^DSFLOWRPT", "^CERSSI", "^SYSSTART",
    }
)  # fmt: skip
_REG_HEADS = frozenset({"+CREG", "+CGREG", "+CEREG", "+C5GREG"})
_ERROR_CODE = re.compile(r"\s*(\d{1,9})\s*", re.ASCII)
_NOT_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ufffd]")  # controls (not tab), undecodable bytes


@dataclasses.dataclass(frozen=True)
class AtResponse:
    """The information lines of one answer and the final result that closed it."""

    command: str
    lines: tuple[str, ...]
    final: str


class AtCommandError(DeviceReportedError):
    """The modem closed an answer with ERROR, +CME ERROR or +CMS ERROR."""

    def __init__(self, command: str, final: str) -> None:
        self.command = command
        self.final = final
        head, _, value = final.partition(":")
        # At most 9 digits: a modem (or line noise) sending thousands would make int() raise.
        number = _ERROR_CODE.fullmatch(value)
        self.code = int(number.group(1)) if number else None
        meaning = CME_ERRORS.get(self.code) if head == "+CME ERROR" and self.code is not None else None
        text = f"{final} ({meaning})" if meaning else final
        super().__init__(f"{text} in answer to {command}")


def answer_prefix(cmd: str) -> str:
    """The prefix the answer lines of ``cmd`` carry: ``AT+CEREG?`` -> ``+CEREG``; "" for ``ATI``."""
    body = cmd.strip().upper().removeprefix("AT")
    match = re.match(r"[+^!$#%][A-Z0-9]+", body)
    return match.group(0) if match else ""


def is_final(line: str, cmd: str) -> bool:
    """A final result; call results (NO CARRIER...) only close a call command, else they are URCs."""
    if line in ("OK", "ERROR") or line.startswith(("+CME ERROR:", "+CMS ERROR:")):
        return True
    return cmd.strip().upper().startswith(("ATD", "ATA", "ATO")) and line.startswith(_CALL_FINALS)


def is_urc(line: str, asked: str) -> bool:
    """An unsolicited line, given the answer prefix of the command in progress (docs/protocols.md 1.1).

    A line carrying the prefix we asked for is the answer, except for the registration family,
    whose URC and read answer share a prefix: the read answer always starts ``<n>,<stat>`` (two
    bare numbers), the URC ``<stat>`` alone or ``<stat>,"<tac>",...``.
    """
    if line.upper() in _URC_WORDS:
        return True
    head, sep, rest = line.partition(":")
    head = head.strip().upper()
    if not sep or head not in _URC_HEADS:
        return False
    if head != asked:
        return True
    if head in _REG_HEADS:
        fields = [f.strip() for f in rest.split(",")]
        return not (len(fields) >= 2 and fields[0].isdecimal() and fields[1].isdecimal())
    return False


def clean_line(raw: bytes) -> str:
    """Text of one line; non-UTF-8 bytes and control characters (not tabs) are dropped."""
    return _NOT_TEXT.sub("", raw.decode("utf-8", errors="replace")).strip()


class AtChannel:
    """A persistent AT port; ``command()`` reopens it after a failure closed it."""

    def __init__(
        self,
        endpoint: str,
        *,
        baudrate: int = 115200,
        timeout_s: float = 2.0,
        on_urc: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.on_urc = on_urc
        self.urcs: collections.deque[str] = collections.deque(maxlen=64)
        self._port: serial.Serial | None = None
        self._buffer = bytearray()

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def open(self) -> None:
        """Open the port if it is not open yet."""
        if self._port is not None:
            return
        # A USB modem that was unplugged leaves no device node: say so plainly rather than ENOENT.
        if "://" not in self.endpoint and not os.path.exists(self.endpoint):
            raise DeviceUnavailable(f"modem port {self.endpoint} missing")
        try:
            port = serial.serial_for_url(
                self.endpoint, baudrate=self.baudrate, timeout=_POLL_S, write_timeout=self.timeout_s
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceUnavailable(f"cannot open modem port {self.endpoint}: {exc}") from exc
        self._port = port
        self._buffer.clear()

    def close(self) -> None:
        port, self._port = self._port, None
        self._buffer.clear()
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                log.debug("at.close_failed", endpoint=self.endpoint)

    def take_urcs(self) -> list[str]:
        """URCs seen since the last call, oldest first."""
        urcs = list(self.urcs)
        self.urcs.clear()
        return urcs

    def command(self, cmd: str, timeout_s: float | None = None, budget: Deadline | None = None) -> AtResponse:
        """Send ``cmd`` and return its answer; raises AtCommandError on an error final result.

        The answer is awaited for ``timeout_s`` (the channel's by default), but never past
        ``budget``, the deadline of the whole read this command is part of.
        """
        limit = self.timeout_s if timeout_s is None else timeout_s
        if budget is not None and budget.expired:
            raise self._budget_spent(budget, cmd)
        self.open()
        try:
            self._drain(cmd)
            self._write(cmd.encode("ascii", errors="replace") + b"\r")
            response = self._collect(cmd, limit, budget)
        except serial.SerialTimeoutException as exc:
            self.close()
            raise DeviceTimeout(
                f"modem port {self.endpoint} did not take {cmd} within {limit:.1f} s"
            ) from exc
        except (serial.SerialException, OSError) as exc:
            self.close()
            if "://" not in self.endpoint and not os.path.exists(self.endpoint):
                raise DeviceUnavailable(f"modem port {self.endpoint} missing") from exc
            raise DeviceUnavailable(f"modem port {self.endpoint} failed: {exc}") from exc
        if response.final != "OK":
            raise AtCommandError(cmd, response.final)
        return response

    def _write(self, data: bytes) -> None:
        assert self._port is not None
        self._port.write(data)
        self._port.flush()

    def _collect(self, cmd: str, limit: float, budget: Deadline | None) -> AtResponse:
        deadline = time.monotonic() + limit
        cut_by_budget = budget is not None and budget.at < deadline
        if budget is not None:
            deadline = min(deadline, budget.at)
        asked = answer_prefix(cmd)
        lines: list[str] = []
        while (line := self._next_line(deadline)) is not None:
            if line.upper() == cmd.strip().upper():
                continue  # echo (ATE1), as at power-up
            if is_final(line, cmd):
                return AtResponse(cmd, tuple(lines), line)
            if is_urc(line, asked):
                self._route_urc(line)
            else:
                lines.append(line)
        if cut_by_budget and budget is not None:
            raise self._budget_spent(budget, cmd)
        raise DeviceTimeout(f"no answer from {self.endpoint} to {cmd} within {limit:.1f} s")

    def _budget_spent(self, budget: Deadline, cmd: str) -> DeviceTimeout:
        return DeviceTimeout(
            f"modem at {self.endpoint} too slow: read not done within {budget.budget_s:.1f} s (at {cmd})"
        )

    def _drain(self, cmd: str) -> None:
        """Take what arrived between commands: URCs are kept, stale lines and noise dropped."""
        assert self._port is not None
        waiting = self._port.in_waiting
        if waiting:
            self._buffer.extend(self._port.read(waiting))
        while (line := self._pop_line()) is not None:
            if is_urc(line, ""):
                self._route_urc(line)
            else:
                log.debug("at.stale_line", endpoint=self.endpoint, line=line, before=cmd)
        self._buffer.clear()  # an unterminated fragment would otherwise glue onto the echo

    def _next_line(self, deadline: float) -> str | None:
        assert self._port is not None
        while (line := self._pop_line()) is None:
            if time.monotonic() >= deadline:
                return None
            self._buffer.extend(self._port.read(max(1, self._port.in_waiting)))
            if len(self._buffer) > _MAX_PARTIAL and b"\r" not in self._buffer and b"\n" not in self._buffer:
                self._buffer.clear()
        return line

    def _pop_line(self) -> str | None:
        """The next non-empty complete line in the buffer (CR and LF both end a line)."""
        while True:
            ends = [i for i in (self._buffer.find(b"\r"), self._buffer.find(b"\n")) if i >= 0]
            if not ends:
                return None
            raw = bytes(self._buffer[: min(ends)])
            del self._buffer[: min(ends) + 1]
            line = clean_line(raw)
            if line:
                return line

    def _route_urc(self, line: str) -> None:
        log.debug("at.urc", endpoint=self.endpoint, urc=line)
        self.urcs.append(line)
        if self.on_urc is not None:
            self.on_urc(line)
