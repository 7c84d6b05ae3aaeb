"""VE.Direct: the streaming parser on constructed transcripts, unit conversions, serial reader on a pty."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import DeviceTimeout, DeviceUnavailable
from drivers.power.vedirect import VeDirectParser, VeDirectPort, reading_from_fields
from simulators.power_vedirect import VeDirectSimulator
from simulators.pty import PtyPort

# The constructed MPPT block of docs/protocols.md 5.1, field by field.
MPPT = {
    "PID": "0xA053", "FW": "159", "SER#": "HQ2132ABCDE", "V": "13250", "I": "-1200", "VPV": "18760",
    "PPV": "0", "CS": "5", "MPPT": "0", "OR": "0x00000000", "ERR": "0", "LOAD": "ON", "IL": "1200",
    "H19": "10234", "H20": "35", "H21": "112", "H22": "41", "H23": "130", "HSDS": "17",
}  # fmt: skip
SHUNT = {"PID": "0xA389", "V": "12650", "I": "-3000", "P": "-38", "CE": "-12500", "SOC": "876", "TTG": "-1"}
HEX_PING_REPLY = b":51641F9\n"


def block(fields: dict[str, str]) -> bytes:
    """Frame fields by hand, independently of the simulator: CR LF label TAB value, then the checksum."""
    body = b"".join(f"\r\n{label}\t{value}".encode() for label, value in fields.items()) + b"\r\nChecksum\t"
    return body + bytes([-sum(body) % 256])


def with_checksum_byte(wanted: bytes) -> dict[str, str]:
    """SHUNT plus a serial number chosen so that the block's checksum byte is ``wanted``."""
    base = sum(block({**SHUNT, "SER#": ""})[:-1])
    # Three printable characters add 99..378, which covers every residue mod 256.
    extra = (-wanted[0] - base) % 256 + (0 if (-wanted[0] - base) % 256 >= 99 else 256)
    first = min(0x7E, extra - 2 * 0x21)
    second = min(0x7E, extra - first - 0x21)
    serial = bytes([first, second, extra - first - second]).decode()
    fields = {**SHUNT, "SER#": serial}
    assert block(fields)[-1:] == wanted
    return fields


def parse(*chunks: bytes) -> tuple[list[dict[str, str]], VeDirectParser]:
    parser = VeDirectParser()
    blocks = [b for chunk in chunks for b in parser.feed(chunk)]
    return blocks, parser


def test_constructed_mppt_block_checksum_byte_is_0x28_and_whole_block_sums_to_zero() -> None:
    data = block(MPPT)
    assert data[-1] == 0x28
    assert sum(data) % 256 == 0
    assert data.startswith(b"\r\nPID\t0xA053\r\nFW\t159")


def test_mppt_block_parses_to_exactly_its_fields() -> None:
    blocks, parser = parse(block(MPPT))
    assert blocks == [MPPT]
    assert parser.stats.blocks == 1 and parser.stats.bad_checksums == 0


def test_mppt_reading_is_in_volts_amps_and_float_state_without_shore_claim() -> None:
    reading = reading_from_fields(MPPT)
    assert reading.family == "mppt"
    assert reading.product_id == 0xA053
    assert reading.battery_v == 13.25
    assert reading.battery_current_a == -1.2
    assert reading.panel_v == 18.76 and reading.panel_w == 0
    assert reading.charge_state == 5 and reading.charging_state == "float"
    assert reading.off_reasons == ()
    # An MPPT's input is the solar panel, not shore power.
    assert reading.input_present is None


def test_block_with_one_flipped_byte_is_rejected_and_counted() -> None:
    good = block(SHUNT)
    flipped = bytearray(good)
    flipped[good.index(b"12650") + 2] ^= 0x01
    blocks, parser = parse(good, bytes(flipped), good)
    assert blocks == [SHUNT, SHUNT]
    assert parser.stats.bad_checksums == 1


def test_hex_frames_between_fields_are_skipped_and_left_out_of_the_checksum() -> None:
    data = block(SHUNT)
    at = data.index(b"\r\nI\t")
    blocks, parser = parse(data[:at] + HEX_PING_REPLY + data[at:])
    assert blocks == [SHUNT]
    assert parser.stats.hex_frames == 1


def test_hex_frame_between_blocks_does_not_disturb_either_block() -> None:
    blocks, _ = parse(block(SHUNT) + HEX_PING_REPLY + block(MPPT))
    assert blocks == [SHUNT, MPPT]


def test_block_split_at_every_position_is_parsed_exactly_once() -> None:
    data = block(MPPT)
    for cut in range(len(data) + 1):
        blocks, _ = parse(data[:cut], data[cut:])
        assert blocks == [MPPT], cut


def test_block_fed_one_byte_at_a_time_is_parsed() -> None:
    data = block(SHUNT)
    blocks, _ = parse(*(data[i : i + 1] for i in range(len(data))))
    assert blocks == [SHUNT]


@pytest.mark.parametrize("wanted", [b":", b"\r", b"\n", b"\t", b"\x00", b"\xff"])
def test_checksum_byte_may_be_any_byte_even_colon_or_line_end(wanted: bytes) -> None:
    fields = with_checksum_byte(wanted)
    blocks, _ = parse(block(fields) + block(SHUNT))
    assert blocks == [fields, SHUNT]


def test_tail_of_a_block_joined_halfway_is_a_fragment_not_a_bad_checksum() -> None:
    data = block(MPPT)
    blocks, parser = parse(data[40:] + block(SHUNT))
    assert blocks == [SHUNT]
    assert parser.stats.fragments == 1 and parser.stats.bad_checksums == 0


def test_garbage_costs_at_most_the_block_it_touches() -> None:
    garbage = b"\x00\xff\x13 noise\r\nV\t9\x80\x81\n\n\t\t\r"
    blocks, parser = parse(block(MPPT) + garbage + block(SHUNT) + block(MPPT))
    assert blocks[0] == MPPT and blocks[-1] == MPPT
    assert parser.stats.bad_checksums + len(blocks) == 3


def test_oversized_fields_are_dropped_but_the_block_kept() -> None:
    fields = {**SHUNT, "LONGLABEL9": "1", "BMV": "x" * 33}
    blocks, parser = parse(block(fields))
    assert blocks == [SHUNT]
    assert parser.stats.dropped_fields == 2


def test_smartshunt_values_convert_to_volts_amps_and_percent() -> None:
    reading = reading_from_fields(SHUNT)
    assert reading.family == "battery-monitor"
    assert (reading.battery_v, reading.battery_current_a, reading.battery_soc_pct) == (12.65, -3.0, 87.6)
    assert reading.charging_state == "discharging"
    assert reading.input_present is None


def test_bmv_soc_dashes_before_first_sync_mean_unknown() -> None:
    assert reading_from_fields({**SHUNT, "SOC": "---"}).battery_soc_pct is None


@pytest.mark.parametrize(
    ("cs", "off_reason", "present"),
    [("3", "0x00000000", True), ("4", "0x0", True), ("5", "0x0", True), ("7", "0x0", True),
     ("247", "0x0", True), ("0", "0x00000001", False), ("0", "0x00000000", None), ("2", "0x1", None)],
)  # fmt: skip
def test_charger_state_gives_shore_presence_only_where_derivable(
    cs: str, off_reason: str, present: bool | None
) -> None:
    reading = reading_from_fields({"PID": "0xA332", "V": "13800", "I": "4000", "CS": cs, "OR": off_reason})
    assert reading.family == "charger"
    assert reading.input_present is present


def test_off_reason_bits_are_named() -> None:
    reading = reading_from_fields({"V": "12000", "CS": "0", "OR": "0x00000101"})
    assert reading.off_reasons == ("no-input-power", "analysing-input-voltage")


def test_inverter_ac_output_is_in_volts_and_says_nothing_about_shore() -> None:
    fields = {"PID": "0xA2E1", "MODE": "2", "CS": "9", "AC_OUT_V": "23001", "AC_OUT_I": "12", "V": "12800"}
    reading = reading_from_fields(fields)
    assert reading.family == "inverter"
    assert reading.ac_out_v == 230.01
    assert reading.charging_state == "inverting"
    assert reading.input_present is None


def test_unparseable_values_become_none() -> None:
    reading = reading_from_fields({"V": "12.6V", "I": "", "CS": "bulk", "PID": "zz", "OR": "0xZZ"})
    assert (reading.battery_v, reading.battery_current_a, reading.charge_state) == (None, None, None)
    assert reading.product_id is None and reading.off_reason is None


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_parser_never_raises_on_any_bytes_in_any_chunks(chunks: list[bytes]) -> None:
    parser = VeDirectParser()
    for chunk in chunks:
        for parsed in parser.feed(chunk):
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items())
            reading_from_fields(parsed)


_LABEL = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#_", min_size=1, max_size=8).filter(
    lambda label: label != "Checksum"
)
_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters=":"), max_size=32
)


@given(st.dictionaries(_LABEL, _VALUE, min_size=1, max_size=25), st.data())
def test_any_well_formed_block_split_anywhere_round_trips(
    fields: dict[str, str], data: st.DataObject
) -> None:
    wire = block(fields)
    cut = data.draw(st.integers(0, len(wire)))
    blocks, _ = parse(wire[:cut], wire[cut:])
    assert blocks == [fields]


# -- the serial reader over a real pty --------------------------------------------------------------


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[PtyPort]:
    with PtyPort(tmp_path / "ttyVE0") as port:
        yield port


@pytest.fixture
def reader(pty: PtyPort) -> Iterator[VeDirectPort]:
    port = VeDirectPort(pty.path)
    yield port
    port.close()


def test_reader_merges_smartshunt_blocks_and_waits_for_the_main_one(
    pty: PtyPort, reader: VeDirectPort
) -> None:
    sim = VeDirectSimulator(pty, device="smartshunt", interval_s=0.03)
    sim.set_battery(12.4, -2.5, 64.0)
    with sim:
        readings = [reader.read(1.0) for _ in range(4)]
    assert all(r.battery_v == 12.4 and r.battery_soc_pct == 64.0 for r in readings)
    assert any("H1" in r.fields for r in readings)  # history blocks arrived and were merged
    assert sim.history.count("block") >= 4


def test_reader_skips_a_corrupted_block_and_takes_the_next(pty: PtyPort, reader: VeDirectPort) -> None:
    sim = VeDirectSimulator(pty, device="mppt", hex_every=2)
    sim.set_battery(13.1, 2.0)
    sim.corrupt_next_block()
    timers = [threading.Timer(delay, sim.tick) for delay in (0.1, 0.2)]
    for timer in timers:
        timer.start()
    reading = reader.read(2.0)
    for timer in timers:
        timer.join()
    assert reading.battery_v == 13.1
    assert reader.parser.stats.bad_checksums == 1
    assert [e.detail["corrupted"] for e in sim.history.events if e.name == "block"] == [True, False]


def test_reader_on_a_missing_port_says_which(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable, match="ttyUSB9"):
        VeDirectPort(str(tmp_path / "ttyUSB9")).read(0.2)


def test_reader_on_a_silent_line_times_out_saying_no_data(pty: PtyPort, reader: VeDirectPort) -> None:
    with pytest.raises(DeviceTimeout, match=r"no data from VE\.Direct port .* within 0\.3 s"):
        reader.read(0.3)


def test_reader_on_a_noisy_line_times_out_counting_bad_checksums(pty: PtyPort, reader: VeDirectPort) -> None:
    stop = threading.Event()

    def noise() -> None:
        bad = bytearray(block(SHUNT))
        bad[5] ^= 0x01
        while not stop.wait(0.02):
            pty.write(bytes(bad))

    writer = threading.Thread(target=noise, daemon=True)
    writer.start()
    try:
        with pytest.raises(DeviceTimeout, match=r"no valid VE\.Direct block .* [1-9]\d* bad checksums"):
            reader.read(0.4)
    finally:
        stop.set()
        writer.join()


def test_reader_reopens_after_the_adapter_vanished_and_came_back(pty: PtyPort, reader: VeDirectPort) -> None:
    sim = VeDirectSimulator(pty, device="charger", interval_s=0.03)
    sim.set_charger(5, True)
    with sim:
        assert reader.read(1.0).input_present is True
        pty.vanish()
        with pytest.raises(DeviceUnavailable):
            reader.read(0.3)
        pty.reappear()
        sim.set_charger(0, False)
        reading = reader.read(1.0)
    assert reading.input_present is False
    assert reading.off_reasons == ("no-input-power",)


def test_reader_ignores_blocks_that_queued_up_since_the_last_poll(pty: PtyPort, reader: VeDirectPort) -> None:
    sim = VeDirectSimulator(pty, device="mppt", interval_s=0.02)
    sim.set_battery(12.0, 1.0)
    with sim:
        assert reader.read(1.0).battery_v == 12.0
        time.sleep(0.2)  # blocks at 12.0 V pile up in the kernel buffer between polls
        sim.set_battery(13.5, 1.0)
        assert reader.read(1.0).battery_v == 13.5


def test_endless_garbage_without_line_ends_keeps_the_parser_small_and_working() -> None:
    parser = VeDirectParser()
    for _ in range(200):
        parser.feed(b"\r\nV\t" + b"9" * 5000)
    assert parser.feed(block(SHUNT) + block(SHUNT))[-1] == SHUNT
    assert len(parser._value) <= 33  # bounded, whatever arrived
