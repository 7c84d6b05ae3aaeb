"""GPS simulator (NMEA on a pty, read back through the line) and the real gpsd run by GpsdProcess."""

from __future__ import annotations

import datetime as dt
import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from drivers.gps.nmea import NmeaState, split_sentence
from drivers.snapshots import GpsSnapshot
from simulators.gps import GpsSimulator, distance_m
from simulators.gpsd import GpsdProcess, GpsdStartError, listed_devices
from simulators.pty import PtyPort

START = dt.datetime(2026, 3, 2, 8, 0, 0, 250_000, tzinfo=dt.UTC)


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ticking_utc() -> Callable[[], dt.datetime]:
    """UTC that advances 1 s per call from START, so each epoch has a new time."""
    calls = iter(range(1_000_000))
    return lambda: START + dt.timedelta(seconds=next(calls))


@pytest.fixture
def port(tmp_path: Path) -> Iterator[PtyPort]:
    with PtyPort(tmp_path / "ttyGPS") as pty:
        yield pty


def read_lines(path: str, seconds: float) -> list[bytes]:
    """Complete lines the receiver wrote during ``seconds`` from now."""
    with serial.Serial(path, timeout=0.05) as tty:
        tty.reset_input_buffer()
        data, deadline = b"", time.monotonic() + seconds
        while time.monotonic() < deadline:
            data += tty.read(4096)
    return [line for line in data.split(b"\n")[1:-1] if line.strip()]  # drop the cut first and last


def wait_for_fix(path: str, accept: Callable[[GpsSnapshot], bool], timeout_s: float = 3.0) -> GpsSnapshot:
    """Parse the line until the snapshot satisfies ``accept``."""
    state, pending = NmeaState(), b""
    with serial.Serial(path, timeout=0.05) as tty:
        tty.reset_input_buffer()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            *lines, pending = (pending + tty.read(4096)).split(b"\n")
            for line in lines:
                state.feed(line)
            if state.epoch_complete and accept(state.snapshot()):
                return state.snapshot()
    raise AssertionError(f"no matching fix within {timeout_s} s; last {state.snapshot()}")


def test_each_epoch_has_gga_gsa_gsv_rmc_vtg_with_valid_checksums(port: PtyPort) -> None:
    with GpsSimulator(port, rate_hz=20):
        lines = read_lines(port.path, 0.5)
    kinds = [split_sentence(line).kind for line in lines]  # raises on any bad checksum
    first = kinds.index("GGA")
    assert kinds[first : first + 7] == ["GGA", "GSA", "GSV", "GSV", "GSV", "RMC", "VTG"]
    assert all(len(line.strip()) <= 82 for line in lines)


def test_nmea_time_comes_from_utc_now_not_from_the_clock(port: PtyPort) -> None:
    fixed = dt.datetime(2026, 3, 2, 8, 0, 0, 250_000, tzinfo=dt.UTC)
    with GpsSimulator(port, utc_now=lambda: fixed, rate_hz=20):
        lines = read_lines(port.path, 0.3)
    rmc = next(split_sentence(line) for line in lines if b"RMC" in line)
    assert rmc.get(1) == "080000.25" and rmc.get(9) == "020326"


def test_position_altitude_and_motion_reach_the_wire(port: PtyPort) -> None:
    sim = GpsSimulator(port, clock=ManualClock(), utc_now=ticking_utc(), rate_hz=20)
    sim.set_position(44.0395, -1.1069, alt_m=95.0)
    sim.set_motion(speed_mps=12.5, track_deg=270.0)
    with sim:
        snap = wait_for_fix(port.path, lambda s: s.fix_mode == 3)
    assert snap.lat_deg == pytest.approx(44.0395, abs=1e-6) and snap.lon_deg == pytest.approx(
        -1.1069, abs=1e-6
    )
    assert snap.speed_mps == pytest.approx(12.5, abs=1e-3) and snap.track_deg == pytest.approx(270.0)
    assert snap.altitude_m == 95.0 and snap.satellites_used == 8 and snap.satellites_seen == 11
    assert snap.gps_time_utc is not None and snap.gps_time_utc.startswith("2026-03-02T08:")


def test_set_motion_dead_reckons_as_the_clock_advances(port: PtyPort) -> None:
    clock = ManualClock()
    sim = GpsSimulator(port, clock=clock)
    sim.set_position(44.0, 1.0)
    sim.set_motion(10.0, 0.0)
    clock.now += 100
    truth = sim.truth()
    assert distance_m((44.0, 1.0), (truth.lat_deg, truth.lon_deg)) == pytest.approx(1000.0, rel=1e-3)
    assert truth.lat_deg > 44.0 and truth.lon_deg == pytest.approx(1.0)
    sim.set_motion(0.0, 0.0)
    clock.now += 100
    assert sim.truth().lat_deg == pytest.approx(truth.lat_deg)


def test_follow_route_drives_each_segment_then_parks_at_the_end(port: PtyPort) -> None:
    clock = ManualClock()
    sim = GpsSimulator(port, clock=clock)
    route = [(44.0, 1.0), (44.0, 1.01), (44.01, 1.01)]
    first, second = distance_m(route[0], route[1]), distance_m(route[1], route[2])
    sim.follow_route(route, speed_mps=10.0)
    assert (sim.truth().lat_deg, sim.truth().lon_deg) == pytest.approx(route[0])
    clock.now += first / 2 / 10.0
    mid = sim.truth()
    assert mid.track_deg == pytest.approx(90.0, abs=0.01) and mid.speed_mps == 10.0
    assert distance_m(route[0], (mid.lat_deg, mid.lon_deg)) == pytest.approx(first / 2, rel=1e-3)
    clock.now += first / 2 / 10.0 + second / 2 / 10.0
    assert sim.truth().track_deg == pytest.approx(0.0, abs=0.01)
    clock.now += 3600
    end = sim.truth()
    assert (end.lat_deg, end.lon_deg) == pytest.approx(route[-1]) and end.speed_mps == 0.0
    with pytest.raises(ValueError):
        sim.follow_route([(44.0, 1.0)], 10.0)


def test_jitter_wanders_within_its_radius_while_parked(port: PtyPort) -> None:
    sim = GpsSimulator(port, clock=ManualClock(), utc_now=ticking_utc(), rate_hz=50, rng=random.Random(7))
    sim.set_position(44.0395, 1.1069)
    sim.set_jitter(5.0)
    with sim:
        lines = read_lines(port.path, 0.6)
    positions = set()
    for line in lines:
        state = NmeaState()
        state.feed(line)
        snap = state.snapshot()
        if snap.lat_deg is not None and snap.lon_deg is not None:
            positions.add((snap.lat_deg, snap.lon_deg))
            assert distance_m((44.0395, 1.1069), (snap.lat_deg, snap.lon_deg)) <= 5.05
    assert len(positions) > 5


def test_lose_fix_then_regain_fix(port: PtyPort) -> None:
    with GpsSimulator(port, utc_now=ticking_utc(), rate_hz=20) as sim:
        sim.lose_fix()
        lost = wait_for_fix(port.path, lambda s: s.fix_mode == 1)
        assert lost.lat_deg is None and lost.satellites_used == 0 and lost.satellites_seen == 11
        sim.regain_fix()
        assert wait_for_fix(port.path, lambda s: s.fix_mode == 3).has_fix


def test_set_satellites_is_seen_in_gga_gsa_and_gsv(port: PtyPort) -> None:
    with GpsSimulator(port, utc_now=ticking_utc(), rate_hz=20) as sim:
        sim.set_satellites(used=5, seen=9)
        snap = wait_for_fix(port.path, lambda s: s.satellites_seen == 9)
    assert snap.satellites_used == 5 and snap.hdop is not None and snap.hdop > 0.9
    with pytest.raises(ValueError):
        sim.set_satellites(used=10, seen=9)


def test_emit_garbage_goes_on_the_line(port: PtyPort) -> None:
    sim = GpsSimulator(port)
    with serial.Serial(port.path, timeout=0.5) as tty:
        tty.reset_input_buffer()
        sim.emit_garbage(b"\xff\x00$GPGG")
        assert tty.read(8) == b"\xff\x00$GPGG"


def test_history_records_every_verb_in_order(port: PtyPort) -> None:
    sim = GpsSimulator(port)
    sim.set_position(44.0, 1.0, alt_m=100.0)
    sim.set_motion(5.0, 90.0)
    sim.follow_route([(44.0, 1.0), (44.1, 1.0)], 10.0)
    sim.lose_fix()
    sim.regain_fix()
    sim.set_jitter(3.0)
    sim.set_satellites(4, 6)
    sim.emit_garbage(b"xx")
    assert sim.history.names() == [
        "set_position", "set_motion", "follow_route", "lose_fix", "regain_fix",
        "set_jitter", "set_satellites", "emit_garbage",
    ]  # fmt: skip
    assert sim.history.events[0].detail == {"lat": 44.0, "lon": 1.0, "alt_m": 100.0}


def test_start_and_stop_run_one_daemon_thread(port: PtyPort) -> None:
    sim = GpsSimulator(port, rate_hz=50)
    sim.start()
    sim.start()
    time.sleep(0.1)
    sim.stop()
    sent = sim.epochs
    assert sent >= 2
    time.sleep(0.1)
    assert sim.epochs == sent and sim.history.count("start") == 1


# --- the real gpsd ---


def test_gpsd_process_serves_the_device_on_a_free_port_and_frees_it(port: PtyPort) -> None:
    with GpsSimulator(port, rate_hz=5), GpsdProcess([port.path]) as gpsd:
        assert gpsd.url == f"gpsd://127.0.0.1:{gpsd.port}" and gpsd.port > 0
        assert "activated" in listed_devices(gpsd.port)[port.path]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", gpsd.port), timeout=1).close()
    assert gpsd.history.names() == ["start", "stop"]


def test_gpsd_process_start_fails_with_gpsds_own_words_for_a_missing_device(tmp_path: Path) -> None:
    gpsd = GpsdProcess([str(tmp_path / "ttyNONE")])
    with pytest.raises(GpsdStartError, match="open failed"):
        gpsd.start()
    assert not gpsd.running


def test_gpsd_process_on_a_taken_port_fails_instead_of_moving(port: PtyPort) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(GpsdStartError, match="can't bind"):
            GpsdProcess([port.path], port=taken).start()


def test_three_satellites_give_a_2d_fix_and_two_give_none(port: PtyPort) -> None:
    with GpsSimulator(port, utc_now=ticking_utc(), rate_hz=20) as sim:
        sim.set_satellites(used=3, seen=6)
        assert wait_for_fix(port.path, lambda s: s.satellites_used == 3).fix_mode == 2
        sim.set_satellites(used=2, seen=6)
        assert wait_for_fix(port.path, lambda s: s.satellites_used == 0).fix_mode == 1
