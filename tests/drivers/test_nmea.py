"""NMEA 0183 parser: reference sentences, recorded-style epochs, and lines to drop without raising."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.gps.nmea import (
    ChecksumError,
    Gga,
    Gsa,
    NmeaError,
    NmeaState,
    Rmc,
    Vtg,
    checksum,
    parse,
    split_sentence,
)

# docs/protocols.md 4.3, with their published checksums.
GGA = "$GPGGA,123519.00,4852.3452,N,00221.1234,E,1,08,0.9,45.3,M,47.1,M,,*5E"
RMC = "$GPRMC,123519.00,A,4852.3452,N,00221.1234,E,12.4,084.4,150624,,,A*66"
VTG = "$GPVTG,084.4,T,,M,12.4,N,23.0,K,A*03"
GGA_NO_FIX = "$GPGGA,123520.00,,,,,0,00,99.99,,,,,,*61"
RMC_NO_FIX = "$GPRMC,123520.00,V,,,,,,,150624,,,N*7E"
LAT, LON = 48 + 52.3452 / 60, 2 + 21.1234 / 60


def line(body: str) -> str:
    """A sentence with its checksum, computed here independently of the code under test."""
    xor = 0
    for char in body:
        xor ^= ord(char)
    return f"${body}*{xor:02X}\r\n"


def fed(*lines: str | bytes) -> NmeaState:
    state = NmeaState()
    for item in lines:
        state.feed(item)
    return state


def test_checksum_matches_the_reference_examples() -> None:
    assert checksum(GGA[1:-3]) == 0x5E
    assert checksum(RMC[1:-3]) == 0x66
    assert checksum(VTG[1:-3]) == 0x03
    assert checksum(GGA_NO_FIX[1:-3]) == 0x61
    assert checksum(RMC_NO_FIX[1:-3]) == 0x7E


def test_gga_gives_position_quality_satellites_hdop_and_altitude() -> None:
    gga = parse(GGA + "\r\n")
    assert isinstance(gga, Gga)
    assert gga.time == dt.time(12, 35, 19)
    assert gga.lat_deg == pytest.approx(LAT) and gga.lon_deg == pytest.approx(LON)
    assert (gga.quality, gga.satellites_used, gga.hdop, gga.altitude_m) == (1, 8, 0.9, 45.3)


def test_rmc_speed_is_converted_from_knots_to_metres_per_second() -> None:
    rmc = parse(RMC)
    assert isinstance(rmc, Rmc)
    assert rmc.valid and rmc.date == dt.date(2024, 6, 15)
    assert rmc.speed_mps == pytest.approx(6.379, abs=1e-3)  # 12.4 kn, docs/protocols.md unit check
    assert rmc.track_deg == 84.4


def test_vtg_with_unit_letters_and_the_old_bare_form_give_the_same_motion() -> None:
    new, old = parse(VTG), parse(line("GPVTG,084.4,,12.4,23.0"))
    assert isinstance(new, Vtg) and isinstance(old, Vtg)
    assert new.track_deg == old.track_deg == 84.4
    assert new.speed_mps == pytest.approx(6.379, abs=1e-3)
    assert old.speed_mps == pytest.approx(6.379, abs=1e-3)


def test_vtg_falls_back_to_kmh_when_knots_are_empty() -> None:
    vtg = parse(line("GPVTG,084.4,T,,M,,N,23.0,K,A"))
    assert isinstance(vtg, Vtg) and vtg.speed_mps == pytest.approx(23.0 / 3.6)


def test_south_and_west_are_negative() -> None:
    gga = parse(line("GPGGA,123519.00,3352.3452,S,07021.1234,W,1,08,0.9,45.3,M,47.1,M,,"))
    assert isinstance(gga, Gga)
    assert gga.lat_deg == pytest.approx(-(33 + 52.3452 / 60))
    assert gga.lon_deg == pytest.approx(-(70 + 21.1234 / 60))


def test_gsa_lists_used_prns_and_mode() -> None:
    gsa = parse(line("GPGSA,A,2,05,13,15,,,,,,,,,,2.5,1.3,2.1"))
    assert gsa == Gsa(mode=2, prns=(5, 13, 15), hdop=1.3)


def test_a_full_epoch_folds_into_a_3d_snapshot() -> None:
    state = fed(
        GGA,
        line("GPGSA,A,3,05,13,15,18,20,23,24,26,,,,,1.4,0.9,1.2"),
        line("GPGSV,3,1,11,05,60,055,43,13,76,359,43,15,80,165,45,18,51,054,40"),
        line("GPGSV,3,2,11,20,55,220,42,23,26,109,45,24,63,192,38,26,67,358,40"),
        line("GPGSV,3,3,11,29,38,247,21,02,19,166,14,10,35,110,12"),
        RMC,
        VTG,
    )
    snap = state.snapshot()
    assert snap.source == "nmea" and snap.ok and snap.fix_mode == 3 and snap.has_fix
    assert snap.lat_deg == pytest.approx(LAT) and snap.lon_deg == pytest.approx(LON)
    assert snap.speed_mps == pytest.approx(6.379, abs=1e-3) and snap.track_deg == 84.4
    assert (snap.altitude_m, snap.satellites_used, snap.satellites_seen, snap.hdop) == (45.3, 8, 11, 0.9)
    assert snap.gps_time_utc == "2024-06-15T12:35:19.000Z"
    assert state.epoch_complete and state.accepted == 7 and not state.rejected


def test_recorded_style_multi_gnss_epoch_adds_up_satellites_of_each_constellation() -> None:
    # u-blox M8 order and talkers: GN for the combined fix, GP/GL for each constellation's sky.
    state = fed(
        line("GNRMC,083559.50,A,4402.37000,N,00106.41400,E,0.012,,020326,,,A"),
        line("GNVTG,,T,,M,0.012,N,0.022,K,A"),
        line("GNGGA,083559.50,4402.37000,N,00106.41400,E,1,12,0.71,95.0,M,49.0,M,,"),
        line("GNGSA,A,3,05,13,15,18,20,23,,,,,,,1.25,0.71,1.03"),
        line("GNGSA,A,3,65,71,72,,,,,,,,,,1.25,0.71,1.03"),
        line("GPGSV,2,1,07,05,60,055,43,13,76,359,43,15,80,165,45,18,51,054,40"),
        line("GPGSV,2,2,07,20,55,220,42,23,26,109,45,29,38,247,21"),
        line("GLGSV,1,1,04,65,42,031,35,71,50,270,38,72,33,190,30,88,10,100,"),
        line("GNGLL,4402.37000,N,00106.41400,E,083559.50,A,A"),
    )
    snap = state.snapshot()
    assert snap.fix_mode == 3 and snap.satellites_used == 12 and snap.satellites_seen == 11
    assert snap.speed_mps == pytest.approx(0.012 * 0.514444) and snap.track_deg is None
    assert snap.gps_time_utc == "2026-03-02T08:35:59.500Z"
    assert state.ignored == 1  # GLL is valid but not needed


def test_no_fix_sentences_give_mode_1_without_position_or_time() -> None:
    snap = fed(GGA, RMC, GGA_NO_FIX, RMC_NO_FIX).snapshot()
    assert snap.fix_mode == 1 and not snap.has_fix
    assert snap.lat_deg is None and snap.lon_deg is None and snap.speed_mps is None
    assert snap.gps_time_utc is None and snap.satellites_used == 0


def test_gsa_2d_fix_reports_no_altitude() -> None:
    snap = fed(GGA, line("GPGSA,A,2,05,13,15,,,,,,,,,,2.5,1.3,2.1"), RMC).snapshot()
    assert snap.fix_mode == 2 and snap.altitude_m is None and snap.lat_deg == pytest.approx(LAT)


def test_nothing_heard_is_mode_0() -> None:
    assert NmeaState().snapshot().fix_mode == 0


def test_bad_checksum_is_counted_and_ignored() -> None:
    state = fed(GGA.replace("45.3", "46.3"), RMC)
    assert state.rejected["bad checksum"] == 1 and state.accepted == 1
    assert state.snapshot().fix_mode == 2  # RMC alone: no altitude, no 3D
    with pytest.raises(ChecksumError):
        split_sentence(GGA[:-2] + "00")


@pytest.mark.parametrize(
    "junk",
    [
        b"\xff\xfe\x00\x13garbage\r\n",
        b"$GPGGA,123519.00,4852.34",  # cut by a buffer overrun
        b"$GPGGA,123519.00,4852.3452,N*",  # checksum digits missing
        b"GPGGA,123519.00,4852.3452,N,00221.1234,E,1,08,0.9,45.3,M,47.1,M,,*5E",  # no '$'
        b"$*00",
        b"$" + b"A" * 300 + b"*00",
        line("GPGGA,12a519.00,4852.3452,N,00221.1234,E,1,08,0.9,45.3,M,47.1,M,,").encode(),
        line("GPGGA,123519.00,4872.3452,N,00221.1234,E,1,08,0.9,45.3,M,47.1,M,,").encode(),  # 72 min
        line("GPRMC,123519.00,X,4852.3452,N,00221.1234,E,12.4,084.4,150624,,,A").encode(),
        line("GPRMC,123519.00,A,4852.3452,N,00221.1234,E,12.4,084.4,310224,,,A").encode(),  # 31 Feb
        line("GPGSA,A,7,05,,,,,,,,,,,,1.0,1.0,1.0").encode(),
        line("GPVTG,nan,T,,M,inf,N,,K,A").encode(),
    ],
)
def test_garbage_and_truncated_lines_are_counted_as_malformed(junk: bytes) -> None:
    state = fed(junk)
    assert state.rejected["malformed"] == 1 and state.accepted == 0
    with pytest.raises(NmeaError):
        parse(junk)


def test_a_sentence_after_noise_on_the_same_line_is_still_read() -> None:
    state = fed(b"\x00\x7f$GPGGA,1235" + RMC.encode() + b"\r\n")
    assert state.accepted == 1 and state.snapshot().lat_deg == pytest.approx(LAT)


def test_blank_lines_are_not_errors() -> None:
    state = fed(b"\r\n", b"", "  ")
    assert state.accepted == 0 and not state.rejected


def test_epoch_is_complete_only_with_gga_and_rmc_of_the_same_time() -> None:
    state = fed(GGA)
    assert not state.epoch_complete
    state.feed(RMC_NO_FIX)  # 12:35:20, GGA was 12:35:19
    assert not state.epoch_complete
    state.feed(GGA_NO_FIX)
    assert state.epoch_complete
    state.begin_epoch()
    assert not state.epoch_complete


# --- properties: no input makes the parser raise anything but NmeaError ---

FIELD = st.text(alphabet="0123456789.,-+ENSWAVMTKNe", max_size=12)


@given(st.binary(max_size=200))
def test_no_bytes_make_feed_raise(data: bytes) -> None:
    state = NmeaState()
    state.feed(data)
    state.snapshot()


@given(st.binary(max_size=200))
def test_split_sentence_raises_only_nmea_errors(data: bytes) -> None:
    with contextlib.suppress(NmeaError):
        split_sentence(data)


@given(
    st.sampled_from(["GPGGA", "GNRMC", "GPVTG", "GPGSA", "GLGSV", "GPZDA", "PUBX"]),
    st.lists(FIELD, max_size=20),
)
def test_checksummed_sentences_with_any_fields_never_crash_the_decoders(
    address: str, fields: list[str]
) -> None:
    text = line(",".join([address, *fields]))
    with contextlib.suppress(NmeaError):
        parse(text)
    state = NmeaState()
    state.feed(text)
    state.feed(RMC)
    state.snapshot()
