"""AT answer parsers and line framing on docs/protocols.md section 1 transcripts, garbage and truncation."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modem.at_channel import AtCommandError, answer_prefix, clean_line, is_final, is_urc
from drivers.modem.at_parsers import (
    REGISTRATION,
    Cell,
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
    qeng_sinr_db,
)

QENG_20 = '+QENG: "servingcell","NOCONN","LTE","FDD",208,01,1A2B3C4,318,6300,20,3,3,9C41,-97,-11,-68,9,8,-,34'
QENG_18 = '+QENG: "servingcell","NOCONN","LTE","FDD",208,10,844D92A,101,1300,3,5,5,D6E7,-89,-8,-61,17,38'
GSTATUS = """!GSTATUS:
Current Time:  22016\t\tTemperature: 40
Reset Counter: 1\t\tMode:        ONLINE
System mode:   LTE        \tPS state:    Attached
LTE band:      B20    \t\tLTE bw:      10 MHz
LTE Rx chan:   6300\t\tLTE Tx chan: 24300
EMM state:     Registered     \tNormal Service
RRC state:     RRC Idle
IMS reg state: No Srv

PCC RxM RSSI:  -66\t\tRSRP (dBm):  -95
PCC RxD RSSI:  -70\t\tRSRP (dBm):  -99
Tx Power:      --\t\tTAC:         9C41 (40001)
RSRQ (dB):     -11.0\t\tCell ID:     01A2B3C4 (27439044)
SINR (dB):     9.4""".splitlines()

Parser = Callable[[Iterable[str]], object]
PARSERS: list[Parser] = [
    parse_csq, parse_cesq, parse_cops, parse_reg, parse_imei, parse_iccid,
    parse_qeng, parse_gstatus, parse_hcsq,
]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "dbm"),
    [("+CSQ: 0,0", -113), ("+CSQ: 1,99", -111), ("+CSQ: 15,99", -83), ("+CSQ: 31,99", -51),
     ("+CSQ: 99,99", None), ("+CSQ: 100,99", -116), ("+CSQ: 191,99", -25), ("+CSQ: 199,99", None),
     ("+CSQ: 32,99", None)],
)  # fmt: skip
def test_csq_rssi_follows_the_27007_table_and_99_is_unknown(line: str, dbm: float | None) -> None:
    csq = parse_csq([line])
    assert csq is not None and csq.rssi_dbm == dbm


def test_cesq_uses_modemmanager_lower_edge_convention_and_255_is_unknown() -> None:
    cesq = parse_cesq(["+CESQ: 99,99,255,255,20,52"])  # docs/protocols.md 1.2 example
    assert cesq is not None
    assert (cesq.rsrq_db, cesq.rsrp_dbm) == (-10.0, -89.0)
    assert (cesq.rxlev_dbm, cesq.rscp_dbm, cesq.ecno_db) == (None, None, None)
    edges = parse_cesq(["+CESQ: 0,0,0,0,0,0"])
    assert edges is not None and (edges.rsrp_dbm, edges.rsrq_db, edges.ecno_db) == (-141, -20, -24.5)
    top = parse_cesq(["+CESQ: 99,99,255,255,34,97"])
    assert top is not None and (top.rsrq_db, top.rsrp_dbm) == (-3.0, -44.0)
    unknown = parse_cesq(["+CESQ: 99,99,255,255,255,255"])
    assert unknown is not None and unknown.rsrp_dbm is None and unknown.rsrq_db is None


def test_cops_reads_alphanumeric_and_numeric_forms_with_access_technology() -> None:
    named = parse_cops(['+COPS: 0,0,"Orange F",7'])
    assert named is not None and (named.name, named.numeric, named.rat) == ("Orange F", None, "LTE")
    numeric = parse_cops(['+COPS: 0,2,"20815",2'])
    assert numeric is not None and (numeric.numeric, numeric.name, numeric.rat) == ("20815", None, "UMTS")
    idle = parse_cops(["+COPS: 0"])
    assert idle is not None and (idle.mode, idle.operator, idle.rat) == (0, None, None)
    endc = parse_cops(['+COPS: 0,2,"20801",13'])
    assert endc is not None and endc.rat == "NR5G-NSA"


@pytest.mark.parametrize(("stat", "word"), sorted(REGISTRATION.items()))
def test_every_cereg_stat_maps_to_a_registration_word(stat: int, word: str) -> None:
    reg = parse_reg([f"+CEREG: 0,{stat}"])
    assert reg is not None and reg.registration == word


def test_cereg_level_2_answer_carries_hex_tac_and_cell_id() -> None:
    reg = parse_reg(['+CEREG: 2,1,"9C41","1A2B3C4",7'])
    assert reg is not None
    assert (reg.n, reg.registration, reg.tac, reg.cell_id, reg.act) == (2, "home", 0x9C41, 0x1A2B3C4, 7)
    creg = parse_reg(['+CREG: 2,1,"00C3","1A2B"'], "+CREG")  # docs/protocols.md 1.1 pitfall example
    assert creg is not None and (creg.tac, creg.cell_id) == (0xC3, 0x1A2B)


def test_registration_urc_form_is_not_taken_for_a_read_answer() -> None:
    assert parse_reg(["+CREG: 1"], "+CREG") is None
    assert parse_reg(['+CEREG: 1,"9C41","1A2B3C4",7']) is None
    assert parse_reg(["+CEREG: 1", "+CEREG: 0,5"]) == parse_reg(["+CEREG: 0,5"])
    odd = parse_reg(["+CEREG: 0,42"])
    assert odd is not None and odd.registration == "unknown"


def test_identity_lines_bare_quoted_and_vendor_prefixed() -> None:
    assert parse_imei(["867698041234567"]) == "867698041234567"
    assert parse_imei(['+CGSN: "867698041234567"']) == "867698041234567"
    assert parse_imei(["Revision: EC25", "IMEI: 359072060000000"]) == "359072060000000"
    assert parse_imei(["ERROR", "12345"]) is None
    assert parse_iccid(["+QCCID: 8933011234567890123F"]) == "8933011234567890123"
    assert parse_iccid(['+CCID: "89330123456789012345"']) == "89330123456789012345"
    assert parse_iccid(["^ICCID: 89330123456789012345", "ICCID: 1"]) == "89330123456789012345"
    assert parse_iccid(["+QCCID: 8933"]) is None


def test_vendor_identified_from_cgmi_or_ati_text() -> None:
    assert identify_vendor(["Quectel"]) == "quectel"
    assert identify_vendor(["Manufacturer: Sierra Wireless, Incorporated", "Model: MC7455"]) == "sierra"
    assert identify_vendor(["huawei"]) == "huawei"
    assert identify_vendor(["SIMCOM INCORPORATED"]) == "generic"


def test_qeng_20_field_lte_line_from_the_reference_example() -> None:
    assert parse_qeng([QENG_20]) == Cell(
        state="NOCONN", rat="LTE", operator_code="20801", cell_id=0x1A2B3C4, tac=0x9C41, pci=318,
        band=20, earfcn=6300, rsrp_dbm=-97, rsrq_db=-11, sinr_db=9, rssi_dbm=-68,
    )  # fmt: skip


def test_qeng_18_field_firmware_line_keeps_sinr_and_drops_nothing_else() -> None:
    cell = parse_qeng([QENG_18])
    assert cell is not None
    assert (cell.operator_code, cell.cell_id, cell.tac, cell.band) == ("20810", 0x844D92A, 0xD6E7, 3)
    assert (cell.rsrp_dbm, cell.rsrq_db, cell.rssi_dbm, cell.sinr_db) == (-89, -8, -61, 17)


def test_qeng_search_and_limited_service_states() -> None:
    assert parse_qeng(['+QENG: "servingcell","SEARCH"']) == Cell(state="SEARCH", rat=None)
    limited = parse_qeng([QENG_20.replace("NOCONN", "LIMSRV")])
    assert limited is not None and limited.state == "LIMSRV" and limited.rsrp_dbm == -97
    wcdma = parse_qeng(['+QENG: "servingcell","NOCONN","WCDMA",208,10,1A2B,3F'])
    assert wcdma is not None and wcdma.rat == "UMTS" and wcdma.rsrp_dbm is None


def test_qeng_en_dc_multi_line_form_reads_the_lte_anchor() -> None:
    cell = parse_qeng([
        '+QENG: "servingcell","NOCONN"',
        '+QENG: "LTE","FDD",208,01,1A2B3C4,318,6300,20,3,3,9C41,-97,-11,-68,9,8,-,34',
        '+QENG: "NR5G-NSA",208,01,500,-90,12,-10',
    ])  # fmt: skip
    assert cell is not None and (cell.rat, cell.rsrp_dbm, cell.tac, cell.operator_code) == (
        "NR5G-NSA",
        -97,
        0x9C41,
        "20801",
    )


@pytest.mark.parametrize(
    ("raw", "db"),
    [(-9, -9), (-20, -20), (40, 40), (150, 10), (250, 30), (41, -11.8), (251, None), (-21, None)],
)
def test_qeng_sinr_is_db_in_minus20_to_40_and_fifth_db_raw_above(raw: float, db: float | None) -> None:
    assert qeng_sinr_db(raw) == db


def test_gstatus_transcript_takes_best_antenna_path_and_hex_ids() -> None:
    cell = parse_gstatus(GSTATUS)
    assert cell == Cell(
        state="Registered", rat="LTE", cell_id=0x01A2B3C4, tac=0x9C41, band=20, earfcn=6300,
        rsrp_dbm=-95, rsrq_db=-11.0, sinr_db=9.4, rssi_dbm=-66,
    )  # fmt: skip


def test_gstatus_best_path_wins_even_when_diversity_is_listed_first_or_labelled_em7565_style() -> None:
    swapped = ["PCC RxD RSSI:  -70\t\tRSRP (dBm):  -99", "PCC RxM RSSI:  -66\t\tRSRP (dBm):  -93"]
    assert parse_gstatus(swapped) == Cell(rsrp_dbm=-93, rssi_dbm=-66)
    em7565 = ["PCC RxM RSSI:  -66\t\tPCC RxM RSRP:  -95", "PCC RxD RSSI:  -70\t\tPCC RxD RSRP:  -90"]
    assert parse_gstatus(em7565) == Cell(rsrp_dbm=-90, rssi_dbm=-66)
    carrier_aggregation = [*GSTATUS, "SCC RxM RSSI:  -50\t\tRSRP (dBm):  -70", "LTE Scell band: B3"]
    cell = parse_gstatus(carrier_aggregation)
    assert cell is not None and cell.rsrp_dbm == -95 and cell.rssi_dbm == -66


def test_gstatus_idle_dashes_and_missing_lines_are_unknown() -> None:
    cell = parse_gstatus(["!GSTATUS:", "PCC RxM RSSI:  --\t\tRSRP (dBm):  --", "System mode:   LTE"])
    assert cell == Cell(rat="LTE")
    assert parse_gstatus(["OK", "nonsense"]) is None


def test_hcsq_lte_reference_example_with_modemmanager_conversions() -> None:
    cell = parse_hcsq(['^HCSQ: "LTE",46,52,151,21'])
    assert cell == Cell(rat="LTE", rssi_dbm=-75, rsrp_dbm=-89, sinr_db=10.0, rsrq_db=-9.5)
    assert parse_hcsq(['^HCSQ: 0,1,"LTE",46,52,151,21']) == cell  # optional <n>,<m> prefix


def test_hcsq_other_modes_and_unknown_values() -> None:
    assert parse_hcsq(['^HCSQ: "NOSERVICE"']) == Cell(state="NOSERVICE")
    assert parse_hcsq(['^HCSQ: "WCDMA",30,30,40']) == Cell(rat="UMTS", rssi_dbm=-91)
    assert parse_hcsq(['^HCSQ: "GSM",40']) == Cell(rat="GSM", rssi_dbm=-81)
    assert parse_hcsq(['^HCSQ: "NR",52,151,21']) == Cell(rat="NR5G", rsrp_dbm=-89, sinr_db=10.0, rsrq_db=-9.5)
    assert parse_hcsq(['^HCSQ: "LTE",255,255,255,255']) == Cell(rat="LTE")
    assert parse_hcsq(['^HCSQ: "LTE",46']) == Cell(rat="LTE", rssi_dbm=-75)


@pytest.mark.parametrize(
    "line",
    ["+CSQ:", "+CSQ: ,", "+CESQ: 99,99", '+COPS: 0,0,"Orange', "+CEREG: 2,",
     '+QENG: "servingcell","NOCONN","LTE","FDD",208', "!GSTATUS:", "^HCSQ: ", "\x00\x01garbage",
     "+QCCID: 89330123ZZ"],
)  # fmt: skip
def test_truncated_and_garbage_lines_give_none_or_partial_results(line: str) -> None:
    for parse in PARSERS:
        parse([line])  # must not raise
    partial = parse_qeng(['+QENG: "servingcell","NOCONN","LTE","FDD",208,01,1A2B3C4'])
    assert partial is not None and partial.cell_id == 0x1A2B3C4 and partial.rsrp_dbm is None


@given(st.lists(st.text(max_size=120), max_size=6))
def test_no_text_makes_any_parser_raise(lines: list[str]) -> None:
    for parse in PARSERS:
        parse(lines)
    parse_reg(lines, "+CREG")


_TRANSCRIPTS = [QENG_20, QENG_18, '^HCSQ: 0,1,"LTE",46,52,151,21', '+CEREG: 2,1,"9C41","1A2B3C4",7',
                '+COPS: 0,0,"Orange F",7', "+CESQ: 99,99,255,255,20,52", *GSTATUS]  # fmt: skip


@given(st.sampled_from(_TRANSCRIPTS), st.integers(0, 120), st.text(max_size=8))
def test_real_lines_cut_or_spliced_anywhere_never_raise(line: str, cut: int, splice: str) -> None:
    mangled = [line[:cut] + splice + line[cut + len(splice) :], line[:cut]]
    for parse in PARSERS:
        parse(mangled)


def test_final_results_and_call_results_only_close_call_commands() -> None:
    assert (
        is_final("OK", "AT+CSQ")
        and is_final("+CME ERROR: 10", "AT+COPS?")
        and is_final("+CMS ERROR: 500", "AT")
    )
    assert not is_final("NO CARRIER", "AT+CSQ") and is_final("NO CARRIER", "ATD*99#")
    assert not is_final("+CSQ: 20,99", "AT+CSQ")


def test_urcs_are_told_from_answers_by_prefix_and_registration_arity() -> None:
    boot = ["RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE", "RING"]
    assert all(is_urc(line, "+CSQ") for line in boot)
    assert is_urc('+CMTI: "SM",3', "+CSQ") and is_urc("^MODE: 5,4", "^HCSQ") and is_urc("^RSSI: 20", "+CSQ")
    assert is_urc('^HCSQ: "LTE",46,52,151,21', "+CSQ") and not is_urc('^HCSQ: "LTE",46,52,151,21', "^HCSQ")
    assert is_urc("+CREG: 1", "+CREG") and not is_urc("+CREG: 0,1", "+CREG")
    assert not is_urc('+CREG: 2,1,"00C3","1A2B"', "+CREG") and is_urc(
        '+CEREG: 1,"9C41","1A2B3C4",7', "+CEREG"
    )
    assert is_urc("+CEREG: 0,1", "+CSQ")  # a CEREG line is an answer only when AT+CEREG? was asked
    assert not is_urc("+CPIN: READY", "+CPIN") and not is_urc("867698041234567", "+CGSN")


def test_answer_prefix_of_commands() -> None:
    assert answer_prefix("AT+CEREG?") == "+CEREG" and answer_prefix('AT+QENG="servingcell"') == "+QENG"
    assert answer_prefix("AT^HCSQ?") == "^HCSQ" and answer_prefix("at!gstatus?") == "!GSTATUS"
    assert answer_prefix("ATI") == ""


def test_cme_error_message_names_the_code_meaning_and_command() -> None:
    error = AtCommandError("AT+COPS?", "+CME ERROR: 10")
    assert str(error) == "+CME ERROR: 10 (SIM not inserted) in answer to AT+COPS?" and error.code == 10
    assert str(AtCommandError("AT+X", "ERROR")) == "ERROR in answer to AT+X"
    assert AtCommandError("AT+CPIN?", "+CME ERROR: SIM not inserted").code is None


@given(st.binary(max_size=200))
def test_any_bytes_clean_to_text_without_control_characters(raw: bytes) -> None:
    text = clean_line(raw)
    assert all(ch == "\t" or ch >= " " for ch in text) and "\ufffd" not in text
    is_urc(text, "+CEREG")
    is_final(text, "AT")
