"""Fuzzing every device parser of untrusted bytes: only the documented error family, in bounded time.

NMEA sentences, gpsd POLL replies, AT answers, HiLink XML, VE.Direct blocks and binary IPP, built
from real device output and damaged (fuzz_serial.py, fuzz_network.py), plus raw bytes. For each
input: no exception but the parser's own (NmeaError, ProtocolError, IppDecodeError; none at all for
the AT, HiLink and VE.Direct parsers, which document that they never raise), what comes out is
sane (finite floats, coordinates in range, ISO times, the protocol's size caps), each input is
handled within 50 ms per 4 KiB, and 1 MiB costs at most ~16 times 64 KiB (fuzzing.scaling).
`make test` runs ~1000 inputs per parser, `make soak` 100,000.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import DriverError, ProtocolError
from drivers.gps.gpsd_driver import latest_reports, snapshot_from_reports
from drivers.gps.nmea import NmeaError, NmeaState, parse
from drivers.modem import at_parsers
from drivers.modem.at_channel import AtCommandError, answer_prefix, clean_line, is_final, is_urc
from drivers.modem.hilink import MAX_BODY_BYTES, parse_reply, snapshot_from
from drivers.power.vedirect import MAX_FIELDS, MAX_LABEL, MAX_VALUE, VeDirectParser, reading_from_fields
from drivers.printer import ipp
from drivers.printer.driver import describe_status, snapshot_from_answer
from drivers.printer.reasons import problems
from drivers.snapshots import GpsSnapshot
from tests.reliability.fuzz_mutate import seeds
from tests.reliability.fuzz_network import hilink_body, ipp_answer, ipp_flood, poll_line
from tests.reliability.fuzz_serial import at_answer, at_flood, nmea_flood, nmea_stream, ve_flood, ve_stream
from tests.reliability.fuzzing import Campaign, finite_json, fuzz_settings, quiet_logs, scaling

ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def check_gps(snap: GpsSnapshot, *, ranges: bool) -> None:
    """What every GPS snapshot promises the outbox and the stop detector."""
    assert finite_json(snap), snap
    json.dumps(dataclasses.asdict(snap), allow_nan=False)
    assert snap.fix_mode in (0, 1, 2, 3)
    assert snap.gps_time_utc is None or ISO_MS.fullmatch(snap.gps_time_utc), snap.gps_time_utc
    for count in (snap.satellites_used, snap.satellites_seen):
        assert count is None or (isinstance(count, int) and count >= 0)
    if ranges:  # NMEA promises WGS84 ranges; gpsd's figures are passed on, the core checks them
        assert snap.lat_deg is None or -90 <= snap.lat_deg <= 90
        assert snap.lon_deg is None or -180 <= snap.lon_deg <= 180


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with quiet_logs():
        yield


# -- NMEA -------------------------------------------------------------------------------------------


def nmea_work(lines: list[bytes]) -> NmeaState:
    state = NmeaState()
    for line in lines:
        with contextlib.suppress(NmeaError):
            parse(line)
        state.feed(line)
    check_gps(state.snapshot(), ranges=True)
    return state


def test_nmea_lines_raise_only_nmea_errors_and_the_fix_stays_in_range() -> None:
    campaign = Campaign("fuzz_nmea")

    @fuzz_settings(2000)
    @given(seeds.map(nmea_stream) | st.lists(st.binary(max_size=300), max_size=10))
    def run(lines: list[bytes]) -> None:
        state = campaign.run(sum(map(len, lines)), lambda: nmea_work(lines))
        campaign.count("with-fix" if state.fix_mode >= 2 else "no-fix")

    run()
    campaign.report(**scaling("nmea", nmea_flood, nmea_work))


# -- gpsd -------------------------------------------------------------------------------------------


def gpsd_work(line: bytes) -> str:
    """Decode one gpsd line as the driver does (JSON object, then the POLL's newest TPV and SKY)."""
    try:
        packet = json.loads(line)
    except (ValueError, RecursionError):
        return "not-json"
    if not isinstance(packet, dict):
        return "not-object"
    try:
        snap = snapshot_from_reports(*latest_reports(packet, "fuzz"), "fuzz")
    except ProtocolError:
        return "protocol-error"
    check_gps(snap, ranges=False)
    return f"mode-{snap.fix_mode}"


def satellite_flood(size: int) -> bytes:
    satellite = b'{"PRN":5,"el":60.0,"az":55.0,"ss":43.0,"used":true},'
    head = b'{"class":"POLL","active":1,"tpv":[{"class":"TPV","mode":3,"lat":1.0}],"sky":[{"satellites":['
    return head + satellite * (size // len(satellite)) + b'{"PRN":1}]}]}'


def test_gpsd_poll_replies_raise_only_protocol_errors_and_snapshots_stay_finite() -> None:
    campaign = Campaign("fuzz_gpsd_decode")

    @fuzz_settings(2000)
    @given(seeds.map(poll_line) | st.binary(max_size=600))
    def run(line: bytes) -> None:
        campaign.count(campaign.run(len(line), lambda: gpsd_work(line)))

    run()
    campaign.report(**scaling("gpsd", satellite_flood, gpsd_work))


# -- AT answers -------------------------------------------------------------------------------------

AT_PARSERS: list[Callable[[list[str]], object]] = [
    at_parsers.parse_csq, at_parsers.parse_cesq, at_parsers.parse_cops, at_parsers.parse_reg,
    at_parsers.parse_imei, at_parsers.parse_iccid, at_parsers.parse_qeng, at_parsers.parse_gstatus,
    at_parsers.parse_hcsq, at_parsers.identify_vendor,
]  # fmt: skip


def at_work(command: str, lines: list[str]) -> int:
    """Every parser on the answer (they document that they never raise), plus the framing helpers."""
    found = 0
    for parser in AT_PARSERS:
        result = parser(lines)
        assert finite_json(result), (parser.__name__, result)
        found += result is not None
    for prefix in ("+CREG", "+CGREG"):
        assert finite_json(at_parsers.parse_reg(lines, prefix))
    asked = answer_prefix(command)
    for line in lines:
        is_urc(line, asked)
        is_final(line, command)
        clean_line(line.encode("utf-8", "surrogatepass"))
        error = AtCommandError(command, line)
        assert error.code is None or 0 <= error.code < 10**9
    return found


def at_line_flood(size: int) -> tuple[str, list[str]]:
    """Half the bytes as answer lines, half as one long vendor line (the regexes' worst case)."""
    lines = clean_line(at_flood(size // 2)).split() or [""]
    long_line = '+QENG: "servingcell","NOCONN","LTE","FDD",208,01' + ",-97" * (size // 8)
    return 'AT+QENG="servingcell"', [*lines, long_line, '+COPS: 0,0,"' + "9" * (size // 2)]


def test_at_answers_never_make_a_parser_raise_and_figures_stay_finite() -> None:
    campaign = Campaign("fuzz_at_parsers")

    @fuzz_settings(2000)
    @given(seeds.map(at_answer) | st.tuples(st.just("AT+CSQ"), st.lists(st.text(max_size=200), max_size=8)))
    def run(answer: tuple[str, list[str]]) -> None:
        command, lines = answer
        found = campaign.run(sum(len(line) for line in lines), lambda: at_work(command, lines))
        campaign.count(f"{min(found, 3)}+-parsed" if found >= 3 else f"{found}-parsed")

    run()
    campaign.report(**scaling("AT parsers", at_line_flood, lambda answer: at_work(*answer)))


# -- HiLink XML -------------------------------------------------------------------------------------


def hilink_work(body: bytes) -> str:
    reply = parse_reply(body)  # documented: never raises, whatever the bytes
    assert (reply.problem is not None) + (reply.error_code is not None) + bool(reply.fields) <= 1, reply
    snap = snapshot_from(reply.fields, reply.fields, reply.fields)
    assert finite_json(snap), snap
    json.dumps(dataclasses.asdict(snap), allow_nan=False)
    return "problem" if reply.problem else "error" if reply.error_code is not None else "fields"


def test_hilink_bodies_never_make_the_parser_raise_and_snapshots_stay_finite() -> None:
    campaign = Campaign("fuzz_hilink_xml")

    @fuzz_settings(2000)
    @given(seeds.map(hilink_body) | st.binary(max_size=2000))
    def run(body: bytes) -> None:
        campaign.count(campaign.run(len(body), lambda: hilink_work(body)))

    run()
    campaign.report(**scaling("HiLink", signal_flood, hilink_work))


def signal_flood(size: int) -> bytes:
    """A document of ``size`` bytes, or just under the 64 KiB a HiLink body may have (the rest is refused)."""
    elements = (min(size, MAX_BODY_BYTES) - 32) // 16
    return b"<response>" + b"<rsrp>-97</rsrp>" * elements + b"</response>"


# -- VE.Direct --------------------------------------------------------------------------------------


def ve_work(chunks: list[bytes]) -> int:
    parser = VeDirectParser()
    merged: dict[str, str] = {}
    blocks = 0
    for chunk in chunks:
        for block in parser.feed(chunk):  # documented: never raises
            assert 0 < len(block) <= MAX_FIELDS
            assert all(0 < len(k) <= MAX_LABEL and len(v) <= MAX_VALUE for k, v in block.items()), block
            assert finite_json(reading_from_fields(block))
            merged.update(block)
            blocks += 1
    assert finite_json(reading_from_fields(merged))
    assert min(dataclasses.astuple(parser.stats)) >= 0
    return blocks


def test_ve_direct_streams_never_make_the_parser_raise_and_blocks_respect_the_caps() -> None:
    campaign = Campaign("fuzz_vedirect")

    @fuzz_settings(1000)
    @given(seeds.map(ve_stream) | st.lists(st.binary(max_size=400), max_size=6))
    def run(chunks: list[bytes]) -> None:
        blocks = campaign.run(sum(map(len, chunks)), lambda: ve_work(chunks))
        campaign.count("blocks" if blocks else "no-block")

    run()
    campaign.report(**scaling("VE.Direct", ve_chunks, ve_work))


def ve_chunks(size: int) -> list[bytes]:
    """``size`` bytes of a VE.Direct line, in the 4 KiB pieces a serial read returns."""
    data = ve_flood(size)
    return [data[i : i + 4096] for i in range(0, size, 4096)]


# -- IPP --------------------------------------------------------------------------------------------


def ipp_work(raw: bytes) -> str:
    try:
        message = ipp.decode(raw)
    except ipp.IppDecodeError:
        return "decode-error"
    describe_status(message)
    snap = snapshot_from_answer(message)
    problems(snap)
    for marker in snap.markers:
        assert marker.level_pct is None or 0 <= marker.level_pct <= 100
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in dataclasses.astuple(snap))
    return "decoded"


def test_ipp_answers_raise_only_decode_errors_and_any_decoded_answer_gives_a_snapshot() -> None:
    campaign = Campaign("fuzz_ipp")

    @fuzz_settings(2000)
    @given(seeds.map(ipp_answer) | st.binary(max_size=600))
    def run(raw: bytes) -> None:
        campaign.count(campaign.run(len(raw), lambda: ipp_work(raw)))

    run()
    campaign.report(**scaling("IPP", ipp_flood, ipp_work))


def test_the_drivers_share_one_error_family() -> None:
    # The endpoint fuzzers (test_fuzz_drivers.py) rely on it: anything else is an "internal error".
    assert issubclass(ProtocolError, DriverError) and issubclass(AtCommandError, DriverError)
