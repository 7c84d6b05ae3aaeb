"""What the simulated modem says about its radio: vendor profiles and the signal answer lines.

Pure functions of a :class:`Radio` state, encoded the way each family does on the wire
(docs/protocols.md 1.2 to 1.5): CSQ/CESQ bucket codes, Quectel ``+QENG``, Sierra ``!GSTATUS?``,
Huawei ``^HCSQ``. The serving side (pty, echo, URCs, faults) is simulators.modem_at.
"""

from __future__ import annotations

import dataclasses

OPERATOR_NAMES = {"20801": "Orange F", "20810": "SFR", "20815": "Free", "20820": "BYTEL"}
RAT_ACT = {"GSM": 0, "UMTS": 2, "LTE": 7}
CME_TEXT = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted", 100: "unknown"}
_REGISTERED = (1, 5)
SIM_COMMANDS = frozenset({"AT+CPIN?", "AT+CIMI", "AT+COPS?", "AT+CEREG?", "AT+CREG?"})
# Setting commands: pattern -> the attribute that keeps the value until the next power-up.
SETTINGS = (
    (r"ATE([01])", "_echo"),
    (r"AT\+CMEE=([012])", "_cmee"),
    (r"AT\+COPS=3,([012])", "_cops_format"),
    (r"AT\+CEREG=([0-5])", "_cereg_n"),
    (r"AT\+CREG=([0-3])", "_creg_n"),
)


@dataclasses.dataclass(frozen=True)
class Vendor:
    """What differs between modem families on the wire."""

    manufacturer: str
    model: str
    revision: str
    iccid_command: str
    iccid_prefix: str
    cell_command: str | None
    cesq: bool = True  # EC25 support for CESQ is unverified, so our EC25 refuses it
    labelled_ati: bool = True  # "Manufacturer: ..." lines rather than Quectel's bare ones
    csq_on_lte: bool = True  # False: +CSQ says 99 (unknown) on LTE, the 27.007 normal case
    quoted_cgsn: bool = False  # "+CGSN: "<imei>"" instead of a bare line
    qeng_fields: int = 20
    boot_urcs: tuple[str, ...] = ("+CPIN: READY",)


_QUECTEL = Vendor(
    "Quectel", "EC25", "EC25EFAR06A06M4G", "AT+QCCID", "+QCCID", 'AT+QENG="SERVINGCELL"', cesq=False,
    labelled_ati=False, boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"),
)  # fmt: skip
VARIANTS = {
    "quectel": _QUECTEL,
    "quectel18": dataclasses.replace(_QUECTEL, revision="EC25EFAR02A08M4G", qeng_fields=18),
    "sierra": Vendor(
        "Sierra Wireless, Incorporated", "MC7455", "SWI9X30C_02.33.03.00", "AT!ICCID?", "ICCID", "AT!GSTATUS?"
    ),
    "huawei": Vendor("huawei", "ME909s-120", "11.617.04.00.00", "AT^ICCID?", "^ICCID", "AT^HCSQ?"),
    "generic": Vendor(
        "SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "LE20B04SIM7600M22", "AT+CCID", "+CCID", None,
        csq_on_lte=False, quoted_cgsn=True,
    ),
}  # fmt: skip


@dataclasses.dataclass
class Radio:
    """The radio state the simulated modem reports (one LTE serving cell)."""

    stat: int = 1
    operator: str = "20801"
    rat: str = "LTE"
    rsrp_dbm: float = -97.0
    rsrq_db: float = -11.0
    sinr_db: float = 9.0
    rssi_dbm: float | None = None  # None: derived from RSRP for a 10 MHz carrier
    cell_id: int = 0x1A2B3C4
    tac: int = 0x9C41
    pci: int = 318
    band: int = 20
    earfcn: int = 6300

    @property
    def registered(self) -> bool:
        return self.stat in _REGISTERED

    @property
    def rssi(self) -> int:
        # 50 resource blocks x 12 subcarriers: RSSI is about RSRP + 27.8 dB on an idle 10 MHz cell.
        return round(self.rssi_dbm if self.rssi_dbm is not None else self.rsrp_dbm + 28)


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def csq_lines(r: Radio, vendor: Vendor) -> list[str]:
    if not r.registered or (r.rat == "LTE" and not vendor.csq_on_lte):
        return ["+CSQ: 99,99"]
    return [f"+CSQ: {_clamp((r.rssi + 113) / 2, 0, 31)},99"]


def cesq_lines(r: Radio) -> list[str]:
    if not r.registered or r.rat != "LTE":
        return ["+CESQ: 99,99,255,255,255,255"]
    rsrq, rsrp = _clamp((r.rsrq_db + 20) * 2, 0, 34), _clamp(r.rsrp_dbm + 141, 0, 97)
    return [f"+CESQ: 99,99,255,255,{rsrq},{rsrp}"]


def qeng_lines(r: Radio, vendor: Vendor) -> list[str]:
    if r.stat in (0, 2, 4):
        return ['+QENG: "servingcell","SEARCH"']
    state = "NOCONN" if r.registered else "LIMSRV"
    mcc, mnc = r.operator[:3], r.operator[3:]
    line = (
        f'+QENG: "servingcell","{state}","LTE","FDD",{mcc},{mnc},{r.cell_id:X},{r.pci},{r.earfcn},'
        f"{r.band},3,3,{r.tac:X},{round(r.rsrp_dbm)},{round(r.rsrq_db)},{r.rssi},{round(r.sinr_db)}"
    )
    return [line + (",8,-,34" if vendor.qeng_fields == 20 else ",34")]


def gstatus_lines(r: Radio) -> list[str]:
    rsrp = round(r.rsrp_dbm)
    emm = "Registered     \tNormal Service" if r.registered else "Deregistered   \tNo Service"
    # The diversity branch (RxD) reads 4 dB lower: the parser must pick the path, not average.
    return [
        "!GSTATUS: ",
        "Current Time:  22016\t\tTemperature: 40",
        "Reset Counter: 1\t\tMode:        ONLINE",
        f"System mode:   {r.rat}        \tPS state:    {'Attached' if r.registered else 'Detached'}",
        f"LTE band:      B{r.band}    \t\tLTE bw:      10 MHz",
        f"LTE Rx chan:   {r.earfcn}\t\tLTE Tx chan: {r.earfcn + 18000}",
        f"EMM state:     {emm}",
        "RRC state:     RRC Idle",
        "IMS reg state: No Srv",
        "",
        f"PCC RxM RSSI:  {r.rssi}\t\tRSRP (dBm):  {rsrp}",
        f"PCC RxD RSSI:  {r.rssi - 4}\t\tRSRP (dBm):  {rsrp - 4}",
        f"Tx Power:      --\t\tTAC:         {r.tac:04X} ({r.tac})",
        f"RSRQ (dB):     {r.rsrq_db:.1f}\t\tCell ID:     {r.cell_id:08X} ({r.cell_id})",
        f"SINR (dB):     {r.sinr_db:.1f}",
    ]


def hcsq_lines(r: Radio) -> list[str]:
    if not r.registered:
        return ['^HCSQ: "NOSERVICE"']
    rssi = _clamp(r.rssi + 121, 0, 96)
    if r.rat != "LTE":
        return [f'^HCSQ: "{"WCDMA" if r.rat == "UMTS" else "GSM"}",{rssi}']
    rsrp, rsrq = _clamp(r.rsrp_dbm + 141, 0, 97), _clamp((r.rsrq_db + 20) * 2, 0, 34)
    return [f'^HCSQ: "LTE",{rssi},{rsrp},{_clamp((r.sinr_db + 20.2) * 5, 0, 251)},{rsrq}']
