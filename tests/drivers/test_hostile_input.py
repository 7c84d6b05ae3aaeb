"""Hostile or broken devices end as ok=False with a reason, never as a driver bug, a stale fix or infinity.

Stale NMEA over a pty, HiLink and gpsd answers over 127.0.0.1, a sysfs path the OS refuses, and
property tests that no snapshot ever carries a non-finite float (it would break the JSON outbox).
"""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import ssl
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import Snapshot
from drivers.errors import os_reason
from drivers.gps.gpsd_driver import GpsdDriver, snapshot_from_reports
from drivers.gps.nmea import NmeaError, NmeaState, checksum, parse
from drivers.gps.nmea_driver import NmeaSerialDriver
from drivers.modem import at_parsers
from drivers.modem.at_channel import AtCommandError
from drivers.modem.hilink import HiLinkDriver, snapshot_from
from drivers.power.driver import PowerDriver
from drivers.printer.driver import IppPrinterDriver
from simulators.pty import PtyPort
from tests.drivers.slow_peers import ThreadedTcpPeer

HUGE = "1" * 5000  # past Python's 4300-digit limit for int()


def nmea(body: str) -> bytes:
    return f"${body}*{checksum(body):02X}\r\n".encode()


GGA = nmea("GPGGA,123519.00,4852.3452,N,00221.1234,E,1,08,0.9,45.3,M,47.1,M,,")
RMC = nmea("GPRMC,123519.00,A,4852.3452,N,00221.1234,E,12.4,084.4,150624,,,A")
GSA = nmea("GPGSA,A,3,04,05,09,12,24,,,,,,,,2.5,1.3,2.1")
GSV = nmea("GPGSV,1,1,04,04,40,083,46,05,12,150,40,09,60,300,44,12,25,045,41")
BAD_GGA = b"$GPGGA,123520.00,4852.3452,N,00221.1234,E,1,08,0.9,45.3,M,47.1,M,,*00\r\n"


def assert_all_floats_finite(snap: Snapshot) -> None:
    for field in dataclasses.fields(snap):
        value = getattr(snap, field.name)
        assert not isinstance(value, float) or math.isfinite(value), (field.name, value)
    json.dumps(dataclasses.asdict(snap), allow_nan=False)  # what the outbox does with it


# --------------------------------------------------------------------------- NMEA: no stale fix


@pytest.fixture
def port(tmp_path: Path) -> Iterator[PtyPort]:
    with PtyPort(tmp_path / "ttyGPS") as pty:
        yield pty


def keep_writing(port: PtyPort, lines: bytes) -> threading.Event:
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.05):
            port.write(lines)

    threading.Thread(target=run, daemon=True).start()
    return stop


def test_nmea_read_with_only_satellite_sentences_is_not_reported_as_the_old_fix(port: PtyPort) -> None:
    driver = NmeaSerialDriver(port.path, timeout_s=0.5)
    stop = keep_writing(port, GGA + RMC + GSA + GSV)
    first = driver.read()
    stop.set()
    stop = keep_writing(port, GSA + GSV)  # position sentences lost from now on
    later = driver.read()
    stop.set()
    driver.close()
    assert first.ok and first.fix_mode == 3 and first.lat_deg is not None
    assert not later.ok and later.lat_deg is None and later.fix_mode == 0
    assert later.reason is not None
    assert later.reason.startswith(f"no position sentence (GGA/RMC) from {port.path} within 0.5 s (only ")


def test_nmea_read_with_garbled_position_sentences_says_they_are_garbled(port: PtyPort) -> None:
    driver = NmeaSerialDriver(port.path, timeout_s=0.5)
    stop = keep_writing(port, BAD_GGA + GSA + GSV)
    snap = driver.read()
    stop.set()
    driver.close()
    assert not snap.ok and snap.reason is not None
    assert "no position sentence (GGA/RMC)" in snap.reason and "garbled lines" in snap.reason


def test_epoch_has_position_only_after_a_gga_or_rmc_since_begin_epoch() -> None:
    state = NmeaState()
    state.feed(GGA)
    state.begin_epoch()
    state.feed(GSA)
    assert not state.epoch_has_position
    state.feed(RMC)
    assert state.epoch_has_position


def test_a_checksummed_time_with_absurd_seconds_is_a_malformed_line_not_an_overflow() -> None:
    # "2637583231404227": 83 billion seconds, which dt.time refused with OverflowError, not ValueError.
    line = nmea("GPGGA,2637583231404227,4852.3452,N,00221.1234,E,1,08,0.9,45.3,M,47.1,M,,")
    with pytest.raises(NmeaError, match="bad UTC time"):
        parse(line)
    state = NmeaState()
    assert state.feed(line) is None and state.rejected == {"malformed": 1}


# --------------------------------------------------------------------------- power: one bad source


def test_sysfs_path_the_os_refuses_fails_that_source_only(tmp_path: Path) -> None:
    gpio = tmp_path / "value"
    gpio.write_text("0\n")  # active low: mains present
    too_long = tmp_path / ("p" * 300)  # ENAMETOOLONG, which Path.is_dir() raises instead of False
    snap = PowerDriver(sysfs=str(too_long), gpio=str(gpio)).read()
    assert snap.ok and (snap.shore_connected, snap.shore_source) == (True, "gpio")
    assert snap.reason == f"cannot read power_supply directory {too_long}: File name too long"


# --------------------------------------------------------------------------- huge numbers


def test_at_parsers_read_thousands_of_digits_as_unknown() -> None:
    assert at_parsers.parse_cops(["+COPS: " + HUGE]) is None
    assert at_parsers.parse_cops([f'+COPS: 0,{HUGE},"20801",7']) == at_parsers.Cops(0)
    assert at_parsers.parse_qeng([f'+QENG: "servingcell","NOCONN","LTE","FDD",208,01,{HUGE},1']) is not None
    assert at_parsers.parse_csq([f"+CSQ: {HUGE},99"]) == at_parsers.Csq(None, None)


def test_cme_error_with_thousands_of_digits_has_no_code_but_keeps_its_text() -> None:
    error = AtCommandError("AT+CSQ", f"+CME ERROR: {HUGE}")
    assert error.code is None and str(error).startswith("+CME ERROR: 111")
    assert AtCommandError("AT+CPIN?", "+CME ERROR: 10").code == 10


def hilink_stick(signal: bytes) -> ThreadedTcpPeer:
    """A HiLink stick over HTTP that answers every document with ``signal``'s fields."""
    body = b"<response><SesInfo>SessionID=abc</SesInfo><TokInfo>t</TokInfo>" + signal + b"</response>"

    def talk(conn: socket.socket) -> None:
        conn.recv(65_536)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n" + body)

    return ThreadedTcpPeer(talk)


def test_hilink_numbers_with_hundreds_of_digits_read_as_unknown_not_infinity() -> None:
    signal = (
        b"<rsrp>" + b"9" * 400 + b"dBm</rsrp><rsrq>-11dB</rsrq><earfcn>DL:" + HUGE.encode() + b"</earfcn>"
    )
    with hilink_stick(signal) as stick:
        snap = HiLinkDriver(f"http://127.0.0.1:{stick.port}", timeout_s=2.0).read()
    assert snap.ok, snap.reason
    assert (snap.rsrp_dbm, snap.rsrq_db, snap.earfcn) == (None, -11.0, None)
    assert_all_floats_finite(snap)


def test_a_negative_http_chunk_size_is_a_protocol_error_not_a_driver_bug() -> None:
    # http.client takes "-5" as a chunk size, then fails with ValueError (not an HTTPException).
    def talk(conn: socket.socket) -> None:
        conn.recv(65_536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n<response/>\r\n0\r\n\r\n")

    with ThreadedTcpPeer(talk) as peer:
        snaps = [
            HiLinkDriver(f"http://127.0.0.1:{peer.port}", timeout_s=2.0).read(),
            IppPrinterDriver(f"ipp://127.0.0.1:{peer.port}/printers/p", timeout_s=2.0).read(),
        ]
    for snap, label in zip(snaps, ("HiLink", "printer"), strict=True):
        assert not snap.ok and snap.reason is not None
        assert snap.reason.startswith(f"{label} at ") and "broke the HTTP exchange" in snap.reason, (
            snap.reason
        )


def test_gpsd_deeply_nested_json_is_a_protocol_error_not_a_driver_bug() -> None:
    def talk(conn: socket.socket) -> None:
        conn.sendall(b'{"class":"VERSION","release":"3.22"}\r\n')
        conn.recv(4096)
        conn.sendall(b"[" * 50_000 + b"\r\n")
        conn.recv(4096)

    with ThreadedTcpPeer(talk) as peer:
        snap = GpsdDriver(f"gpsd://127.0.0.1:{peer.port}", timeout_s=2.0).read()
    assert not snap.ok and snap.reason is not None
    assert snap.reason.startswith(f"gpsd at 127.0.0.1:{peer.port} sent a line that is not JSON")


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        ("0001-01-01T00:00:00+01:00", None),  # before year 1 once in UTC: datetime overflows
        ("9999-12-31T23:59:59-01:00", None),  # after year 9999 once in UTC
        ("0999-03-02T08:00:00.250Z", "0999-03-02T08:00:00.250Z"),  # strftime would print year "999"
        ("2026-03-02T09:00:00.5+01:00", "2026-03-02T08:00:00.500Z"),
    ],
)
def test_gpsd_times_are_iso_with_four_digit_years_or_unknown_never_an_overflow(
    time: str, expected: str | None
) -> None:
    tpv = {"class": "TPV", "mode": 2, "lat": 44.0, "lon": 1.1, "time": time}
    assert snapshot_from_reports(tpv, {}, "gpsd").gps_time_utc == expected


def test_gpsd_integers_too_large_for_a_float_read_as_unknown_not_as_an_overflow() -> None:
    # JSON integers have no size limit; math.isfinite() raised OverflowError past 1.8e308.
    huge = 10**400
    tpv = {"class": "TPV", "mode": 3, "lat": huge, "lon": 1.5, "alt": -huge, "speed": huge}
    snap = snapshot_from_reports(tpv, {"hdop": huge}, "gpsd")
    assert (snap.lat_deg, snap.lon_deg, snap.altitude_m, snap.speed_mps, snap.hdop) == (
        None,
        1.5,
        None,
        None,
        None,
    )


# --------------------------------------------------------------------------- properties: finite or None

NUMBERISH = st.text(alphabet="0123456789-.eEinfaINFAN +dBm:DL", max_size=500)
# Runs of 310+ digits overflow a float to infinity: random text almost never contains one.
LONG_RUNS = st.text(alphabet="0123456789", min_size=310, max_size=900).map(lambda digits: digits + "dBm")


@given(
    st.dictionaries(
        st.sampled_from(["rsrp", "rsrq", "sinr", "rssi", "cell_id", "earfcn"]),
        st.one_of(NUMBERISH, LONG_RUNS),
    )
)
def test_hilink_snapshots_never_carry_non_finite_floats(signal: dict[str, str]) -> None:
    assert_all_floats_finite(snapshot_from(signal, {}, {}))


@given(st.lists(NUMBERISH, min_size=1, max_size=20))
def test_at_serving_cell_figures_are_finite_or_none(fields: list[str]) -> None:
    line = ",".join(fields)
    for parsed in (
        at_parsers.parse_qeng([f'+QENG: "servingcell","NOCONN","LTE",{line}']),
        at_parsers.parse_hcsq([f'^HCSQ: "LTE",{line}']),
        at_parsers.parse_gstatus([f"PCC RxM RSSI: {fields[0]}", f"RSRP (dBm): {fields[-1]}"]),
        at_parsers.parse_cesq([f"+CESQ: {line}"]),
    ):
        values = dataclasses.astuple(parsed) if parsed is not None else ()
        assert all(math.isfinite(v) for v in values if isinstance(v, float))


FLOATS = st.floats(allow_nan=True, allow_infinity=True)


@given(st.fixed_dictionaries({"lat": FLOATS, "lon": FLOATS, "alt": FLOATS, "speed": FLOATS, "track": FLOATS}))
def test_gpsd_snapshots_never_carry_non_finite_floats(numbers: dict[str, float]) -> None:
    tpv = {"class": "TPV", "mode": 3, "time": "2024-06-15T12:35:19.000Z", **numbers}
    assert_all_floats_finite(snapshot_from_reports(tpv, {"hdop": numbers["lat"]}, "gpsd"))


# --------------------------------------------------------------------------- one wording of OS errors


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (FileNotFoundError(2, "No such file or directory: '/dev/ttyACM0'"), "No such file or directory"),
        (termios.error(5, "Input/output error"), "Input/output error"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "Name or service not known"),
        (TimeoutError("timed out"), "timed out"),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "TLS: "),
        (OSError("bare"), "bare"),
    ],
)
def test_os_errors_are_worded_for_technicians(exc: BaseException, reason: str) -> None:
    assert os_reason(exc).startswith(reason)
