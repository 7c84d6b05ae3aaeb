"""Simulator verbs refuse non-finite numbers with nothing changed, and serving threads outlive a bad step.

Everything is read back over the real pty by the real drivers: a simulator whose thread died would
answer nothing, so each test would see a timeout instead of data.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.gps.nmea_driver import NmeaSerialDriver
from drivers.modem.at_driver import AtModemDriver
from drivers.power.vedirect import VeDirectPort
from simulators.gps import GpsSimulator
from simulators.hilink import HiLinkSimulator
from simulators.modem_at import AtModemSimulator
from simulators.power import ShorePowerSim
from simulators.power_sysfs import SysfsPowerSimulator
from simulators.power_vedirect import VeDirectSimulator
from simulators.printer import IppPrinterSimulator
from simulators.pty import PtyPort

NAN, INF = math.nan, math.inf


class FailingOncePort(PtyPort):
    """A real pty whose next write or read raises once, as a bug inside one step of a loop would."""

    def __init__(self, link: Path) -> None:
        super().__init__(link)
        self.fail_write = threading.Event()
        self.fail_read = threading.Event()

    def write(self, data: bytes) -> int:
        if self.fail_write.is_set():
            self.fail_write.clear()
            raise RuntimeError("bug in one step")
        return super().write(data)

    def read(self, timeout_s: float) -> bytes:
        if self.fail_read.is_set():
            self.fail_read.clear()
            raise RuntimeError("bug in one step")
        return super().read(timeout_s)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[tuple[AtModemSimulator, AtModemDriver]]:
    with PtyPort(tmp_path / "ttyUSB2") as port, AtModemSimulator(port) as sim:
        driver = AtModemDriver(port.path, timeout_s=0.5)
        yield sim, driver
        driver.close()


@pytest.mark.parametrize(
    ("values", "named"),
    [((NAN, -11, 9), "rsrp_dbm"), ((-97, INF, 9), "rsrq_db"), ((-97, -11, -INF), "sinr_db")],
)
def test_modem_set_signal_refuses_a_non_finite_value_naming_it_and_keeps_the_old_signal(
    modem: tuple[AtModemSimulator, AtModemDriver], values: tuple[float, float, float], named: str
) -> None:
    sim, driver = modem
    sim.set_signal(-103, -13, 4)
    with pytest.raises(ValueError, match=named):
        sim.set_signal(*values)
    snap = driver.read()
    assert snap.ok, snap.reason
    assert (snap.rsrp_dbm, snap.rsrq_db) == (-103, -13)


def test_modem_keeps_answering_after_a_bug_while_answering_one_command(
    modem: tuple[AtModemSimulator, AtModemDriver],
) -> None:
    sim, driver = modem
    # A state no verb accepts (set directly on the public attribute): building +CSQ fails.
    good = sim.radio
    sim.radio = dataclasses.replace(good, rsrp_dbm=NAN)
    assert not driver.read().ok
    assert sim.history.count("error") >= 1
    sim.radio = good
    snap = driver.read()
    assert snap.ok, snap.reason
    assert snap.rsrp_dbm == good.rsrp_dbm


def test_modem_serve_loop_records_an_unexpected_exception_and_goes_on(tmp_path: Path) -> None:
    port = FailingOncePort(tmp_path / "ttyUSB2")
    with port, AtModemSimulator(port) as sim:
        port.fail_read.set()
        wait_until(lambda: sim.history.count("error") == 1)
        driver = AtModemDriver(port.path, timeout_s=0.5)
        snap = driver.read()
        driver.close()
    assert snap.ok, snap.reason
    error = next(e for e in sim.history.events if e.name == "error")
    assert error.detail == {"where": "serve", "error": "RuntimeError: bug in one step"}


@pytest.mark.parametrize(
    ("verb", "named"),
    [
        (lambda g: g.set_position(NAN, 1.0), "lat"),
        (lambda g: g.set_position(44.0, INF), "lon"),
        (lambda g: g.set_position(91.0, 1.0), "lat"),
        (lambda g: g.set_position(44.0, 1.0, alt_m=NAN), "alt_m"),
        (lambda g: g.set_motion(NAN, 0.0), "speed_mps"),
        (lambda g: g.set_motion(-1.0, 0.0), "speed_mps"),
        (lambda g: g.set_motion(10.0, INF), "track_deg"),
        (lambda g: g.follow_route([(44.0, 1.0), (NAN, 1.0)], 10.0), "lat"),
        (lambda g: g.set_jitter(INF), "metres"),
    ],
)
def test_gps_verbs_refuse_bad_numbers_and_the_receiver_keeps_reporting_where_it_was(
    tmp_path: Path, verb: Callable[[GpsSimulator], None], named: str
) -> None:
    with PtyPort(tmp_path / "ttyACM0") as port, GpsSimulator(port, rate_hz=10.0) as sim:
        sim.set_position(44.0395, 1.1069)
        with pytest.raises(ValueError, match=named):
            verb(sim)
        driver = NmeaSerialDriver(port.path, timeout_s=2.0)
        snap = driver.read()
        driver.close()
    assert snap.ok, snap.reason
    assert snap.lat_deg == pytest.approx(44.0395, abs=1e-5)
    assert snap.lon_deg == pytest.approx(1.1069, abs=1e-5)


def test_gps_epoch_loop_records_an_unexpected_exception_and_goes_on(tmp_path: Path) -> None:
    port = FailingOncePort(tmp_path / "ttyACM0")
    with port, GpsSimulator(port, rate_hz=20.0) as sim:
        port.fail_write.set()
        wait_until(lambda: sim.history.count("error") == 1)
        epochs = sim.epochs
        wait_until(lambda: sim.epochs >= epochs + 3)
    assert [e.detail["where"] for e in sim.history.events if e.name == "error"] == ["epoch"]


@pytest.fixture
def shore(tmp_path: Path) -> Iterator[tuple[ShorePowerSim, VeDirectPort]]:
    with PtyPort(tmp_path / "ttyVE0") as port, ShorePowerSim(tmp_path, port, interval_s=0.05) as sim:
        reader = VeDirectPort(port.path)
        yield sim, reader
        reader.close()


@pytest.mark.parametrize(
    ("values", "named"), [((NAN, 50.0), "volts"), ((INF, 50.0), "volts"), ((12.5, 101.0), "soc_pct")]
)
def test_shore_power_set_battery_refuses_bad_numbers_with_nothing_changed(
    shore: tuple[ShorePowerSim, VeDirectPort], values: tuple[float, float], named: str
) -> None:
    sim, reader = shore
    with pytest.raises(ValueError, match=named):
        sim.set_battery(*values)
    sim.unplug()  # rebuilds the VE.Direct state from the stored battery values
    assert (sim.sysfs.battery_dir / "voltage_now").read_text().strip() == "13200000"
    reading = reader.read(2.0)
    while reading.battery_v is None:  # the SmartShunt's history block carries no voltage
        reading = reader.read(2.0)
    assert (reading.battery_v, reading.battery_current_a) == (13.2, -3.0)


def test_sysfs_and_vedirect_set_battery_refuse_non_finite_numbers(tmp_path: Path) -> None:
    sysfs = SysfsPowerSimulator(tmp_path / "power_supply")
    with pytest.raises(ValueError, match="current_a"):
        sysfs.set_battery(12.0, 50.0, current_a=NAN)
    assert (sysfs.battery_dir / "voltage_now").read_text().strip() == "12650000"
    with PtyPort(tmp_path / "ttyVE0") as port:
        vedirect = VeDirectSimulator(port)
        with pytest.raises(ValueError, match="soc_pct"):
            vedirect.set_battery(12.0, 1.0, INF)
        assert b"\r\nV\t12650" in vedirect.tick()


def test_vedirect_tick_loop_records_an_unexpected_exception_and_goes_on(tmp_path: Path) -> None:
    port = FailingOncePort(tmp_path / "ttyVE0")
    with port, VeDirectSimulator(port, interval_s=0.02) as sim:
        port.fail_write.set()
        wait_until(lambda: sim.history.count("error") == 1)
        blocks = sim.history.count("block")
        wait_until(lambda: sim.history.count("block") >= blocks + 3)
    assert [e.detail["where"] for e in sim.history.events if e.name == "error"] == ["tick"]


def test_http_simulators_refuse_non_finite_delays_and_levels() -> None:
    printer, hilink = IppPrinterSimulator(), HiLinkSimulator()
    with pytest.raises(ValueError, match="seconds"):
        printer.set_delay(INF)
    with pytest.raises(ValueError, match="marker level"):
        printer.set_marker_level(2**40)
    with pytest.raises(ValueError, match="seconds"):
        hilink.set_delay(NAN)
    with pytest.raises(ValueError, match="rsrq_db"):
        hilink.set_signal(-97, NAN, 9)
    assert printer.history.names() == [] and hilink.history.names() == []
