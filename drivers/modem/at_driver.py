"""The AT-command 4G modem driver: set the modem up once per connection, then read its radio state.

Each read asks the 27.007 questions every modem answers (COPS?, CEREG?, CSQ, CESQ) and the one
vendor line that carries the serving cell (Quectel ``+QENG``, Sierra ``!GSTATUS?``, Huawei
``^HCSQ``). The vendor figures win for RSRP/RSRQ/SINR because they come from the serving cell
measurement itself; when the vendor command fails the 27.007 values stand alone. Protocol facts:
docs/protocols.md section 1.

Time: ``timeout_s`` is how long one command may take to answer; ``read_budget_s`` (3 x
``timeout_s`` unless given) bounds a whole read of five or six commands, so a modem that answers
every command just inside ``timeout_s`` fails the read with DeviceTimeout instead of holding it
for five or six times the timeout. A read that also sets the modem up (the first one, and the
one after any failure: about nine more commands) gets twice the budget. A command write stalled
by a modem that stops draining its input is bounded by ``timeout_s`` on its own and may overrun
the budget by that much, because pyserial's write timeout cannot follow the deadline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import structlog

from drivers.base import Driver
from drivers.deadline import Deadline
from drivers.modem.at_channel import AtChannel, AtCommandError
from drivers.modem.at_parsers import (
    ACT_RAT,
    Cell,
    Cesq,
    Cops,
    Csq,
    Reg,
    identify_vendor,
    parse_cesq,
    parse_cops,
    parse_csq,
    parse_gstatus,
    parse_hcsq,
    parse_iccid,
    parse_imei,
    parse_qeng,
    parse_reg,
)
from drivers.modem.quality import grade
from drivers.snapshots import ModemSnapshot

log = structlog.get_logger(__name__)

VENDORS = ("quectel", "sierra", "huawei", "generic")
VENDOR_NAMES = {"quectel": "Quectel", "sierra": "Sierra Wireless", "huawei": "Huawei"}

# The serving-cell command of each vendor and its parser.
CELL_COMMANDS: dict[str, tuple[str, Callable[[Iterable[str]], Cell | None]]] = {
    "quectel": ('AT+QENG="servingcell"', parse_qeng),
    "sierra": ("AT!GSTATUS?", parse_gstatus),
    "huawei": ("AT^HCSQ?", parse_hcsq),
}

# ICCID is vendor specific (docs/protocols.md 1.2); only QCCID is verified, so failures are tolerated.
ICCID_COMMANDS = {"quectel": "AT+QCCID", "sierra": "AT!ICCID?", "huawei": "AT^ICCID?", "generic": "AT+CCID"}

FRENCH_PLMNS = {"20801": "Orange", "20810": "SFR", "20815": "Free", "20820": "Bouygues Telecom"}


@dataclasses.dataclass(frozen=True)
class _Identity:
    """What the modem told us once per connection."""

    vendor: str
    model: str | None
    imei: str | None
    iccid: str | None


class AtModemDriver(Driver[ModemSnapshot]):
    """Reads a 4G modem through its AT port (``/dev/ttyUSB2``, a pty, ``socket://host:port``)."""

    kind = "modem"

    def __init__(
        self,
        endpoint: str,
        model: str = "auto",
        baudrate: int = 115200,
        timeout_s: float = 2.0,
        read_budget_s: float | None = None,
    ) -> None:
        if model not in ("auto", *VENDORS):
            raise ValueError(f"modem model must be auto or one of {', '.join(VENDORS)}, not {model!r}")
        super().__init__(endpoint)
        self.model = model
        self.read_budget_s = 3 * timeout_s if read_budget_s is None else read_budget_s
        if not self.read_budget_s > 0:  # also refuses NaN, which would never time out
            raise ValueError(
                f"modem read budget must be a positive number of seconds, not {self.read_budget_s}"
            )
        self.channel = AtChannel(endpoint, baudrate=baudrate, timeout_s=timeout_s)
        self._identity: _Identity | None = None
        self._budget = Deadline(self.read_budget_s)
        # Commands this modem does not implement (EC25 and CESQ): not asked again on this connection.
        self._unsupported: set[str] = set()

    def _read(self) -> ModemSnapshot:
        setting_up = self._identity is None
        self._budget = Deadline(self.read_budget_s * (2 if setting_up else 1))
        if self._identity is None:
            self._identity = self._connect()
        return self._measure(self._identity)

    def _failed(self, reason: str) -> ModemSnapshot:
        return ModemSnapshot(ok=False, reason=reason)

    def _after_failure(self) -> None:
        # Reopen and set the modem up again next time: after a replug it is a fresh modem with
        # echo on and default settings.
        self.channel.close()
        self._identity = None
        self._unsupported.clear()

    def close(self) -> None:
        self.channel.close()
        self._identity = None
        self._unsupported.clear()

    def _ask(self, cmd: str) -> tuple[str, ...]:
        return self.channel.command(cmd, budget=self._budget).lines

    def _try(self, cmd: str) -> tuple[str, ...] | None:
        """Lines of a command the modem may refuse; None when it answered an error."""
        if cmd in self._unsupported:
            return None
        try:
            return self._ask(cmd)
        except AtCommandError as exc:
            log.debug("modem.command_refused", endpoint=self.endpoint, command=cmd, reason=str(exc))
            # A bare ERROR or CME 4 means "not implemented", not "not now" (no SIM is CME 10).
            if exc.final == "ERROR" or (exc.final.startswith("+CME ERROR") and exc.code == 4):
                self._unsupported.add(cmd)
            return None

    def _connect(self) -> _Identity:
        self._ask("ATE0")  # echo is on at power-up; the channel copes, but quieter is faster
        self._ask("AT+CMEE=1")  # numeric +CME ERROR codes instead of a bare ERROR
        # Numeric operator and CEREG level 2 (TAC + cell id) may be refused by a SIM-less or old
        # modem; the reads then make do with what it gives.
        self._try("AT+COPS=3,2")
        self._try("AT+CEREG=2")
        maker = self._try("AT+CGMI") or self._try("ATI") or ()
        vendor = identify_vendor(maker) if self.model == "auto" else self.model
        identity = _Identity(
            vendor=vendor,
            model=self._model_name(vendor, maker),
            imei=parse_imei(self._try("AT+CGSN") or ()),
            iccid=parse_iccid(self._try(ICCID_COMMANDS[vendor]) or ()),
        )
        log.info("modem.connected", endpoint=self.endpoint, vendor=vendor, model=identity.model)
        return identity

    def _model_name(self, vendor: str, maker: tuple[str, ...]) -> str | None:
        """ "Quectel EC25": our name for the vendor (else the modem's own) and the AT+CGMM model."""
        name = VENDOR_NAMES.get(vendor) or (maker[0] if maker else "")
        model = (self._try("AT+CGMM") or ("",))[0]
        return f"{name} {model}".strip() or None

    def _measure(self, identity: _Identity) -> ModemSnapshot:
        cops = parse_cops(self._ask("AT+COPS?"))
        reg = self._registration(cops)
        csq = parse_csq(self._try("AT+CSQ") or ())
        cesq = parse_cesq(self._try("AT+CESQ") or ())
        cell = self._serving_cell(identity.vendor)
        return _snapshot(identity, cops=cops, reg=reg, csq=csq, cesq=cesq, cell=cell or Cell())

    def _registration(self, cops: Cops | None) -> Reg | None:
        """EPS registration; on 2G/3G (CEREG says not registered) the circuit-switched one."""
        reg = parse_reg(self._try("AT+CEREG?") or (), "+CEREG")
        if reg is not None and (
            reg.registration in ("home", "roaming") or cops is None or cops.rat in (None, "LTE")
        ):
            return reg
        # No EPS answer, or not EPS-registered while COPS says 2G/3G: ask for the circuit-switched view.
        return parse_reg(self._try("AT+CREG?") or (), "+CREG") or reg

    def _serving_cell(self, vendor: str) -> Cell | None:
        if vendor not in CELL_COMMANDS:
            return None
        cmd, parse = CELL_COMMANDS[vendor]
        lines = self._try(cmd)
        return parse(lines) if lines is not None else None


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _snapshot(
    identity: _Identity,
    *,
    cops: Cops | None,
    reg: Reg | None,
    csq: Csq | None,
    cesq: Cesq | None,
    cell: Cell,
) -> ModemSnapshot:
    """Merge the answers: vendor serving-cell figures first, 27.007 figures as the fallback."""
    rsrp = _first(cell.rsrp_dbm, cesq.rsrp_dbm if cesq else None)
    rsrq = _first(cell.rsrq_db, cesq.rsrq_db if cesq else None)
    code = (cops.numeric if cops else None) or cell.operator_code
    name = (cops.name if cops else None) or FRENCH_PLMNS.get(code or "")
    reg_rat = ACT_RAT.get(reg.act) if reg is not None and reg.act is not None else None
    return ModemSnapshot(
        model=identity.model,
        imei=identity.imei,
        iccid=identity.iccid,
        registration=reg.registration if reg is not None else "unknown",
        operator_code=code,
        operator_name=name,
        rat=cell.rat or (cops.rat if cops else None) or reg_rat,
        rsrp_dbm=rsrp,
        rsrq_db=rsrq,
        sinr_db=cell.sinr_db,
        rssi_dbm=_first(cell.rssi_dbm, csq.rssi_dbm if csq else None),
        cell_id=(reg.cell_id if reg is not None else None) or cell.cell_id,
        tac=(reg.tac if reg is not None else None) or cell.tac,
        pci=cell.pci,
        band=cell.band,
        earfcn=cell.earfcn,
        quality=grade(rsrp, rsrq, cell.sinr_db),
    )
