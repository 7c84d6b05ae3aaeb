"""A short scripted drive through the device simulators: three stops, a traffic light, a jam.

The bus leaves the depot, halts 90 s at a red light, parks 20 minutes at a town hall with shore
power, crawls through a 5-minute jam, parks 15 minutes at a post office without shore power
(GPS wandering 15 m), then 15 minutes at a village hall with shore power, and drives off. The
agent reads the real gpsd (fed by the GPS simulator on a pty), the AT modem simulator and the
mains-detect line, on a clock running 60 times real time; the probes measure the simulated
network for real. Exactly three visits must come out, named from the catalog, with the right
shore-power state and probe figures matching what each stop's link delivered.
"""

from __future__ import annotations

import datetime
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.core.catalog import Catalog, Site
from agent.core.geo import haversine_m, offset_m
from agent.core.tracker import StopTracker
from agent.probes.suite import run_suite
from agent.runtime.clock import ScaledClock
from agent.runtime.loop import Runtime
from drivers.gps.gpsd_driver import GpsdDriver
from drivers.modem.at_driver import AtModemDriver
from drivers.power.driver import PowerDriver
from simulators.gps import GpsSimulator
from simulators.gpsd import GpsdProcess
from simulators.modem_at import AtModemSimulator
from simulators.netsvc.link import LinkProfile
from simulators.network import SimulatedNetwork
from simulators.power import GpioLineSimulator
from simulators.pty import PtyPort

# Measurements of a simulated link in real time: a scheduler stall on a shared 2-core machine can
# delay one run by tens of milliseconds. A wrong measurement fails all three attempts.
pytestmark = pytest.mark.flaky(reruns=2)


SPEEDUP = 40.0
CRUISE_MPS = 50 / 3.6
START = datetime.datetime(2026, 3, 2, 7, 45, tzinfo=datetime.UTC).timestamp()

DEPOT = (44.0395, 1.1069)
LIGHT = offset_m(*DEPOT, north_m=0, east_m=1000)
TOWN_HALL = offset_m(*DEPOT, north_m=0, east_m=3000)
JAM = offset_m(*TOWN_HALL, north_m=800, east_m=0)
POST_OFFICE = offset_m(*JAM, north_m=2000, east_m=0)
VILLAGE_HALL = offset_m(*POST_OFFICE, north_m=0, east_m=2500)
AWAY = offset_m(*VILLAGE_HALL, north_m=0, east_m=1500)

LINKS = {
    "mairie-saint-agnan": LinkProfile(down_mbps=12.0, up_mbps=3.0, rtt_ms=45.0),
    "poste-caylus": LinkProfile(down_mbps=4.0, up_mbps=1.0, rtt_ms=90.0),
    "salle-lacapelle": LinkProfile(down_mbps=20.0, up_mbps=5.0, rtt_ms=35.0),
}
CATALOG = Catalog(
    (
        Site("mairie-saint-agnan", "Mairie, Saint-Agnan", *TOWN_HALL, 100.0),
        Site("poste-caylus", "La Poste, Caylus", *POST_OFFICE, 100.0),
        Site("salle-lacapelle", "Salle des fêtes, Lacapelle", *VILLAGE_HALL, 100.0),
    )
)


class Bus:
    """The simulated bus: devices, network and the script that drives them on the scaled clock."""

    def __init__(self, workdir: Path, clock: ScaledClock) -> None:
        self.clock = clock
        self.gps_port = PtyPort(workdir / "ttyGPS0")
        self.gps = GpsSimulator(
            self.gps_port,
            clock=clock.monotonic,
            utc_now=lambda: datetime.datetime.fromtimestamp(clock.wall(), datetime.UTC),
            rate_hz=SPEEDUP,  # 1 Hz of simulated time
        )
        self.gps.set_position(*DEPOT, alt_m=95.0)
        self.gpsd = GpsdProcess([self.gps_port.path])
        self.modem_port = PtyPort(workdir / "ttyUSB2")
        self.modem = AtModemSimulator(self.modem_port, variant="quectel")
        self.mains = GpioLineSimulator(workdir / "gpio17")
        self.mains.set_mains(False)
        self.network = SimulatedNetwork()

    def start(self) -> None:
        self.gps.start()
        self.gpsd.start()
        self.modem.start()
        self.network.start()

    def stop(self) -> None:
        for stop in (self.network.stop, self.modem.stop, self.gpsd.stop, self.gps.stop):
            stop()
        self.modem_port.close()
        self.gps_port.close()

    def sleep(self, sim_s: float) -> None:
        time.sleep(sim_s / SPEEDUP)

    def drive(self, *points: tuple[float, float], speed_mps: float = CRUISE_MPS) -> None:
        """Drive the straight legs to the last point and stop there (returns on arrival)."""
        here = self.gps.truth()
        route = [(here.lat_deg, here.lon_deg), *points]
        self.gps.follow_route(route, speed_mps)
        metres = sum(_distance(a, b) for a, b in itertools.pairwise(route))
        self.sleep(metres / speed_mps + 2)

    def crawl(self, speed_mps: float, track_deg: float, sim_s: float) -> None:
        self.gps.set_motion(speed_mps, track_deg)
        self.sleep(sim_s)
        self.gps.set_motion(0.0, track_deg)

    def park(self, site_id: str, minutes: float, *, shore: bool, rsrp: float) -> None:
        self.network.set_link(LINKS[site_id])
        self.modem.set_signal(rsrp, -11.0, 9.0)
        if shore:
            self.sleep(30)  # the crew plugs the cable in half a minute after stopping
            self.mains.set_mains(True)
            self.sleep(minutes * 60 - 90)
            self.mains.set_mains(False)  # the last thing before driving off
            self.sleep(60)
        else:
            self.gps.set_jitter(15.0)
            self.sleep(minutes * 60)
            self.gps.set_jitter(0.0)

    def script(self) -> None:
        self.sleep(60)
        self.drive(LIGHT)
        self.sleep(90)  # red light
        self.drive(TOWN_HALL)
        self.park("mairie-saint-agnan", 20, shore=True, rsrp=-92.0)
        self.drive(JAM)
        self.crawl(3 / 3.6, 0.0, 300)  # a jam at 3 km/h for 5 minutes
        self.drive(POST_OFFICE)
        self.park("poste-caylus", 15, shore=False, rsrp=-104.0)
        self.drive(VILLAGE_HALL)
        self.park("salle-lacapelle", 15, shore=True, rsrp=-85.0)
        self.drive(AWAY)
        self.sleep(120)


def _distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return haversine_m(a[0], a[1], b[0], b[1])


@pytest.fixture
def records(tmp_path: Path) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    clock = ScaledClock(START, SPEEDUP)
    bus = Bus(tmp_path, clock)
    bus.start()
    out: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def sink(stream: str, payload: dict[str, Any]) -> None:
        with lock:
            out.append((stream, payload))

    # 3 s per direction: long enough that a scheduling hiccup on a busy 2-core box averages out.
    suite_config = bus.network.suite_config(throughput_length_s=3.0)
    runtime = Runtime(
        drivers={
            "gps": GpsdDriver(bus.gpsd.url, timeout_s=1.0),
            "modem": AtModemDriver(bus.modem_port.path, timeout_s=1.0),
            "power": PowerDriver(gpio=str(bus.mains.path), gpio_active_low=True),
        },
        intervals={"gps": 2.0, "modem": 10.0, "power": 5.0},
        tracker=StopTracker("boot-test", catalog=CATALOG),
        run_suite=lambda request: run_suite(suite_config, include_throughput=request.throughput),
        sink=sink,
        clock=clock,
    )
    thread = threading.Thread(target=runtime.run, name="runtime")
    thread.start()
    try:
        bus.script()
    finally:
        runtime.stop()
        thread.join(timeout=120)
        bus.stop()
    yield out


def test_a_scripted_drive_yields_three_named_visits_with_measured_links(
    records: list[tuple[str, dict[str, Any]]],
) -> None:
    visits = [payload for stream, payload in records if stream == "stops/visit"]
    arrivals = [p for s, p in records if s == "events" and p["type"] == "arrived"]
    assert [v["site_name"] for v in visits] == [
        "Mairie, Saint-Agnan",
        "La Poste, Caylus",
        "Salle des fêtes, Lacapelle",
    ], "the traffic light and the jam must not become stops"
    assert len(arrivals) == 3
    assert [v["shore"]["state"] for v in visits] == ["seen", "never", "seen"]
    for visit in visits:
        link = LINKS[visit["site_id"]]
        probes = visit["probes"]
        assert probes["runs"] >= 1, visit["site_id"]
        assert probes["rtt_ms"] == pytest.approx(link.rtt_ms, abs=20), visit["site_id"]
        assert probes["down_bps"] == pytest.approx(link.down_mbps * 1e6, rel=0.25), visit["site_id"]
        assert probes["up_bps"] == pytest.approx(link.up_mbps * 1e6, rel=0.25), visit["site_id"]
        assert visit["duration_s"] > 10 * 60
    # A probe result carries the radio state and the stop it was measured at.
    results = [p for s, p in records if s == "probes/result" and p["stop_id"] == "poste-caylus"]
    assert results and results[0]["radio"]["rsrp_dbm"] == pytest.approx(-104.0, abs=1)
    # ...and when it was measured: the GPS had given the time by then.
    stamp = results[0]["stamp"]
    assert stamp["boot_id"] == "boot-test" and stamp["source"] == "gps"
    assert abs(stamp["wall"] - (START + stamp["mono"] - 1000.0)) < 5, "wall time follows the GPS clock"
