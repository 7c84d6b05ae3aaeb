"""Pure parsers for AT answers: 27.007 signal, registration and identity, plus Quectel/Sierra/Huawei lines.

Each parser takes the information lines of one answer (as ``AtChannel.command`` returns them) and
gives back a small frozen result, or None when no line of the expected form is there. Garbage,
truncation and out-of-range values never raise: a field that cannot be read is None. Conversions:
docs/protocols.md 1.2 to 1.5 (ModemManager's lower-bucket-edge convention)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable

from drivers.snapshots import Registration

# 27.007 registration <stat> -> snapshot word. 6/7 ("SMS only") and 9/10 ("CSFB not preferred")
# are registered for data, so they count as home/roaming; 11 (RLOS: restricted local operator
# services) gives no normal service, which is what "emergency-only" tells a technician.
REGISTRATION: dict[int, Registration] = {
    0: "not-registered", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming",
    6: "home", 7: "roaming", 8: "emergency-only", 9: "home", 10: "roaming", 11: "emergency-only",
}  # fmt: skip

# COPS/CEREG <AcT> -> RAT word (ModemManager get_mm_access_tech_from_etsi_access_tech, coarsened).
ACT_RAT: dict[int, str] = {
    0: "GSM", 1: "GSM", 2: "UMTS", 3: "GSM", 4: "UMTS", 5: "UMTS", 6: "UMTS", 7: "LTE",
    8: "GSM", 9: "NB-IoT", 10: "LTE", 11: "NR5G-SA", 12: "NR5G-SA", 13: "NR5G-NSA",
}  # fmt: skip

# Vendor system-mode words (QENG RAT, !GSTATUS "System mode", ^HCSQ sysmode) -> RAT word.
_SYSMODE_RAT = {
    "LTE": "LTE",
    "WCDMA": "UMTS",
    "UMTS": "UMTS",
    "GSM": "GSM",
    "NR": "NR5G",
    "NR5G-SA": "NR5G-SA",
}


def _int(text: str, base: int = 10) -> int | None:
    try:
        return int(text.strip(), base)
    except ValueError:  # also past 4300 digits, which int() refuses
        return None


def _float(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _scaled(n: int | None, top: int, base: float, step: float) -> float | None:
    """``base + step*n`` for a 0..top index; anything else (255, 99, garbage) means unknown."""
    if n is None or not 0 <= n <= top:
        return None
    return float(round(base + step * n, 2))


def _fields(line: str, prefix: str) -> list[str] | None:
    """Comma-separated values after ``prefix:`` with quotes stripped; None for any other line."""
    head, sep, rest = line.partition(":")
    if not sep or head.strip().upper() != prefix.upper():
        return None
    return [field.strip().strip('"').strip() for field in rest.split(",")]


def _first(lines: Iterable[str], prefix: str) -> list[str] | None:
    for line in lines:
        fields = _fields(line, prefix)
        if fields is not None:
            return fields
    return None


def _at(fields: list[str], index: int) -> str:
    return fields[index] if index < len(fields) else ""


# --- 27.007 ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Csq:
    """``+CSQ``: RSSI in dBm (None for 99/unknown) and the raw bit-error class."""

    rssi_dbm: float | None
    ber: int | None


def parse_csq(lines: Iterable[str]) -> Csq | None:
    fields = _first(lines, "+CSQ")
    if fields is None:
        return None
    n = _int(fields[0])
    rssi: float | None = None
    if n is not None and 0 <= n <= 31:
        rssi = -113.0 + 2 * n
    elif n is not None and 100 <= n <= 191:  # Quectel TD-SCDMA RSCP scale: -116..-25 dBm
        rssi = float(n - 216)
    ber = _int(_at(fields, 1))
    return Csq(rssi, ber if ber is not None and 0 <= ber <= 7 else None)


@dataclasses.dataclass(frozen=True)
class Cesq:
    """``+CESQ`` converted with the ModemManager lower-edge rule; None where the modem says unknown."""

    rxlev_dbm: float | None
    rscp_dbm: float | None
    ecno_db: float | None
    rsrq_db: float | None
    rsrp_dbm: float | None


def parse_cesq(lines: Iterable[str]) -> Cesq | None:
    fields = _first(lines, "+CESQ")
    if fields is None:
        return None
    n = [_int(_at(fields, i)) for i in range(6)]
    return Cesq(
        rxlev_dbm=_scaled(n[0], 63, -111, 1),
        rscp_dbm=_scaled(n[2], 96, -121, 1),
        ecno_db=_scaled(n[3], 49, -24.5, 0.5),
        rsrq_db=_scaled(n[4], 34, -20, 0.5),
        rsrp_dbm=_scaled(n[5], 97, -141, 1),
    )


@dataclasses.dataclass(frozen=True)
class Cops:
    """``+COPS?``: mode, operator format (0/1 names, 2 numeric), operator and access technology."""

    mode: int
    format: int | None = None
    operator: str | None = None
    act: int | None = None

    @property
    def numeric(self) -> str | None:
        """MCC+MNC when the answer is numeric (``AT+COPS=3,2``)."""
        op = self.operator
        return op if self.format == 2 and op and op.isdigit() and 5 <= len(op) <= 6 else None

    @property
    def name(self) -> str | None:
        return self.operator if self.format in (0, 1) and self.operator else None

    @property
    def rat(self) -> str | None:
        return ACT_RAT.get(self.act) if self.act is not None else None


# Numbers of at most 9 digits (and not the start of a longer run): int() refuses thousands of digits.
_COPS = re.compile(
    r'\+COPS:\s*(\d{1,9})(?!\d)(?:\s*,\s*(\d{1,9})\s*,\s*"([^"]*)"(?:\s*,\s*(\d{1,9})(?!\d))?)?', re.I | re.A
)


def parse_cops(lines: Iterable[str]) -> Cops | None:
    for line in lines:
        match = _COPS.match(line.strip())
        if match:
            mode, fmt, oper, act = match.groups()
            return Cops(int(mode), _int(fmt or ""), oper, _int(act or ""))
    return None


@dataclasses.dataclass(frozen=True)
class Reg:
    """A ``+CEREG?``/``+CREG?`` read answer: report level n, stat and (n >= 2) hex TAC/LAC and cell."""

    n: int
    stat: int
    registration: Registration
    tac: int | None = None
    cell_id: int | None = None
    act: int | None = None


def parse_reg(lines: Iterable[str], prefix: str = "+CEREG") -> Reg | None:
    """Read answer ``<n>,<stat>[,<tac>,<ci>[,<AcT>]]``; the URC form (no n) is not an answer."""
    for line in lines:
        fields = _fields(line, prefix)
        if fields is None or len(fields) < 2:
            continue
        n, stat = _int(fields[0]), _int(fields[1])
        if n is None or stat is None:
            continue
        tac, ci = _int(_at(fields, 2), 16), _int(_at(fields, 3), 16)
        return Reg(n, stat, REGISTRATION.get(stat, "unknown"), tac, ci, _int(_at(fields, 4)))
    return None


_IMEI = re.compile(r'(?:\+CGSN:|IMEI:)?\s*"?(\d{14,16})"?', re.I | re.A)
_ICCID = re.compile(r"(\d{18,20})F?", re.I | re.A)


def parse_imei(lines: Iterable[str]) -> str | None:
    """``AT+CGSN``: a bare IMEI line, ``+CGSN: "<imei>"``, or ATI's ``IMEI: <imei>``."""
    for line in lines:
        match = _IMEI.fullmatch(line.strip())
        if match:
            return match.group(1)
    return None


def parse_iccid(lines: Iterable[str]) -> str | None:
    """Any vendor ICCID answer (``+QCCID:``, ``+CCID:``, ``^ICCID:``, ``!ICCID:``...), trailing F dropped."""
    for line in lines:
        value = line.rpartition(":")[2].strip().strip('"')
        match = _ICCID.fullmatch(value)
        if match:
            return match.group(1)
    return None


def identify_vendor(lines: Iterable[str]) -> str:
    """Driver family from ``AT+CGMI`` or ``ATI`` text: quectel, sierra, huawei or generic."""
    text = " ".join(lines).lower()
    for vendor in ("quectel", "sierra", "huawei"):
        if vendor in text:
            return vendor
    return "generic"


# --- vendor serving-cell lines --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cell:
    """Serving cell from a vendor line; the vendor's RSRP/RSRQ/SINR win over 27.007 figures."""

    state: str | None = None
    rat: str | None = None
    operator_code: str | None = None
    cell_id: int | None = None
    tac: int | None = None
    pci: int | None = None
    band: int | None = None
    earfcn: int | None = None
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None
    rssi_dbm: float | None = None


def qeng_sinr_db(raw: float | None) -> float | None:
    """QENG SINR: -20..40 is plain dB (captures show negatives); 41..250 is Quectel's 1/5 dB raw
    scale (x/5 - 20, as documented for QCSQ). Anything else is implausible, so unknown."""
    if raw is None:
        return None
    if -20 <= raw <= 40:
        return raw
    if 40 < raw <= 250:
        return round(raw / 5 - 20, 2)
    return None


def _plmn(mcc: str, mnc: str) -> str | None:
    # One-digit MNCs ("1") are printed without the leading zero by some firmware (unverified).
    if not (mcc.isdigit() and mnc.isdigit()) or len(mcc) > 3 or len(mnc) > 3:
        return None
    return mcc.zfill(3) + mnc.zfill(2)


def _qeng_lte(state: str, tail: list[str]) -> Cell:
    """LTE fields from is_tdd onward. 18- and 20-field firmware share positions up to SINR."""
    return Cell(
        state=state,
        rat="LTE",
        operator_code=_plmn(_at(tail, 1), _at(tail, 2)),
        cell_id=_int(_at(tail, 3), 16),
        pci=_int(_at(tail, 4)),
        earfcn=_int(_at(tail, 5)),
        band=_int(_at(tail, 6)),
        tac=_int(_at(tail, 9), 16),
        rsrp_dbm=_float(_at(tail, 10)),
        rsrq_db=_float(_at(tail, 11)),
        rssi_dbm=_float(_at(tail, 12)),
        sinr_db=qeng_sinr_db(_float(_at(tail, 13))),
    )


def parse_qeng(lines: Iterable[str]) -> Cell | None:
    """``AT+QENG="servingcell"``: the LTE single-line form, SEARCH/LIMSRV, and the EN-DC multi-line form."""
    cell: Cell | None = None
    for line in lines:
        fields = _fields(line, "+QENG")
        if not fields:
            continue
        kind = fields[0].upper()
        if kind == "SERVINGCELL":
            state, rat = _at(fields, 1) or None, _at(fields, 2).upper()
            if rat == "LTE":
                cell = _qeng_lte(state or "", fields[3:])
            else:
                cell = Cell(state=state, rat=_SYSMODE_RAT.get(rat, rat or None))
        elif kind == "LTE" and cell is not None:  # EN-DC: the LTE anchor line, shifted by 2
            cell = _qeng_lte(cell.state or "", fields[1:])
        elif kind == "NR5G-NSA" and cell is not None:
            cell = dataclasses.replace(cell, rat="NR5G-NSA")
    return cell


def _hex_first(value: str) -> int | None:
    """``9C41 (40001)`` -> 0x9C41: Sierra prints hex then decimal in parentheses."""
    words = value.split()
    return _int(words[0], 16) if words else None


def _gstatus_pairs(lines: Iterable[str]) -> Iterable[tuple[str, str]]:
    """``Key: value`` pairs; a line holds one or two, separated by tabs."""
    for line in lines:
        for chunk in re.split(r"\t+", line):
            key, sep, value = chunk.partition(":")
            if sep and key.strip():
                yield key.strip().upper(), value.strip()


def parse_gstatus(lines: Iterable[str]) -> Cell | None:
    """Sierra ``AT!GSTATUS?``. RSRP and RSSI are given per antenna path (PCC RxM main, RxD
    diversity); the modem combines both branches, so we report the best PCC path. A weak RxD next
    to a good RxM hints at a diversity antenna problem, which a per-path field could surface later."""
    values: dict[str, str] = {}
    rsrp: dict[str, float] = {}
    rssi: dict[str, float] = {}
    path = ""
    for key, value in _gstatus_pairs(lines):
        if key.endswith(" RSSI"):  # "PCC RxM RSSI" opens the path its "RSRP (dBm)" belongs to
            path = key.removesuffix(" RSSI")
            _put(rssi, path, value)
        elif key == "RSRP (DBM)":
            _put(rsrp, path, value)
        elif key.endswith(" RSRP"):  # EM7565 labels: "PCC RxM RSRP"
            _put(rsrp, key.removesuffix(" RSRP"), value)
        else:
            values.setdefault(key, value)
    if not values and not rsrp:
        return None
    mode = values.get("SYSTEM MODE", "").upper() or None
    return Cell(
        state=values.get("EMM STATE") or None,
        rat=_SYSMODE_RAT.get(mode or "", mode),
        cell_id=_hex_first(values.get("CELL ID", "")),
        tac=_hex_first(values.get("TAC", "")),
        band=_int(values.get("LTE BAND", "").upper().removeprefix("B")),
        earfcn=_int(values.get("LTE RX CHAN", "")),
        rsrp_dbm=_best_pcc(rsrp),
        rsrq_db=_float(values.get("RSRQ (DB)", "")),
        sinr_db=_float(values.get("SINR (DB)", "")),
        rssi_dbm=_best_pcc(rssi),
    )


def _put(target: dict[str, float], path: str, value: str) -> None:
    number = _float(value)
    if number is not None and path:
        target.setdefault(path, number)


def _best_pcc(paths: dict[str, float]) -> float | None:
    # Secondary carriers (SCC, carrier aggregation) are another cell: not the serving figure.
    pcc = [v for k, v in paths.items() if k.startswith("PCC")]
    return max(pcc) if pcc else None


def parse_hcsq(lines: Iterable[str]) -> Cell | None:
    """Huawei ``^HCSQ``: ``[<n>,<m>,]"<sysmode>",<values>``, converted as ModemManager does."""
    fields = _first(lines, "^HCSQ")
    if fields is None:
        return None
    start = next((i for i, f in enumerate(fields) if f and _int(f) is None), None)
    if start is None:
        return None
    mode = fields[start].upper()
    n = [_int(f) for f in fields[start + 1 :]] + [None] * 4
    rat = _SYSMODE_RAT.get(mode)
    if mode == "LTE":
        return Cell(
            rat=rat,
            rssi_dbm=_scaled(n[0], 96, -121, 1),
            rsrp_dbm=_scaled(n[1], 97, -141, 1),
            sinr_db=_scaled(n[2], 251, -20.2, 0.2),
            rsrq_db=_scaled(n[3], 34, -20, 0.5),
        )
    if mode == "NR":
        return Cell(
            rat=rat,
            rsrp_dbm=_scaled(n[0], 97, -141, 1),
            sinr_db=_scaled(n[1], 251, -20.2, 0.2),
            rsrq_db=_scaled(n[2], 34, -20, 0.5),
        )
    if mode in ("WCDMA", "GSM"):
        return Cell(rat=rat, rssi_dbm=_scaled(n[0], 96, -121, 1))
    return Cell(state=mode, rat=rat)  # NOSERVICE and modes we do not know
