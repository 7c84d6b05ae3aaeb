"""Stop detection on simulated drives: lights and jams are not stops, halts and shore power are."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.catalog import Catalog, Site
from agent.core.geo import haversine_m, offset_m, site_id_for
from agent.core.stops import (
    Arrived,
    Departed,
    DepartureForeseen,
    StopDetector,
    StopEvent,
    StopParams,
    shore_of,
)
from drivers.snapshots import GpsSnapshot, PowerSnapshot

DEPOT = (44.0395, 1.1069)
CITY_MPS = 13.0  # ~47 km/h


class Drive:
    """A simulated bus fed to a detector at 1 Hz: it moves east, its GPS jitters and may vanish."""

    def __init__(self, detector: StopDetector | None = None, *, jitter_m: float = 0.0, seed: int = 7) -> None:
        self.detector = detector or StopDetector()
        self.lat, self.lon = DEPOT
        self.t = 0.0
        self.jitter_m = jitter_m
        self.rng = random.Random(seed)
        self.shore: bool | None = None
        self.events: list[StopEvent] = []

    def run(
        self, seconds: float, speed_mps: float, *, reported_mps: float | None = None, gps: bool = True
    ) -> None:
        """Move east at ``speed_mps``; the receiver reports ``reported_mps`` (default: the true speed)."""
        for _ in range(int(seconds)):
            self.lat, self.lon = offset_m(self.lat, self.lon, 0.0, speed_mps)
            snap = self.snapshot(speed_mps if reported_mps is None else reported_mps) if gps else None
            self.events += self.detector.update(self.t, snap, self.shore)
            self.t += 1.0

    def park(self, seconds: float, *, gps: bool = True, spikes: bool = False) -> None:
        """Stand still; the receiver's speed wanders a little and, with ``spikes``, jumps now and then."""
        for _ in range(int(seconds)):
            speed = abs(self.rng.gauss(0.0, 0.1))
            if spikes and self.rng.random() < 0.02:
                speed = self.rng.uniform(1.0, 4.0)
            snap = self.snapshot(speed) if gps else None
            self.events += self.detector.update(self.t, snap, self.shore)
            self.t += 1.0

    def glitch(self, seconds: float, speed_mps: float, *, off_m: float = 0.0) -> None:
        """Stand still while the receiver reports ``speed_mps`` and a position ``off_m`` north (multipath)."""
        for _ in range(int(seconds)):
            self.events += self.detector.update(self.t, self.snapshot(speed_mps, off_m), self.shore)
            self.t += 1.0

    def snapshot(self, speed_mps: float, off_m: float = 0.0) -> GpsSnapshot:
        radius = self.jitter_m * math.sqrt(self.rng.random())  # uniform over a disc
        angle = self.rng.uniform(0.0, 2 * math.pi)
        lat, lon = offset_m(self.lat, self.lon, off_m + radius * math.cos(angle), radius * math.sin(angle))
        return GpsSnapshot(fix_mode=3, lat_deg=lat, lon_deg=lon, speed_mps=speed_mps, read_mono_s=self.t)

    def state(self) -> str:
        return self.detector.state

    def of(self, kind: type[StopEvent]) -> list[StopEvent]:
        return [event for event in self.events if isinstance(event, kind)]


# -- halts that are not stops ------------------------------------------------------------------------


def test_traffic_light_of_90_seconds_is_not_a_stop() -> None:
    drive = Drive(jitter_m=5.0)
    drive.run(120, CITY_MPS)
    drive.park(90)
    assert drive.state() == "halted"
    drive.run(120, CITY_MPS)
    assert drive.events == []
    assert drive.state() == "moving"


def test_level_crossing_of_four_minutes_is_still_not_a_stop() -> None:
    drive = Drive()
    drive.run(60, CITY_MPS)
    drive.park(240)
    drive.run(60, CITY_MPS)
    assert drive.events == []


def test_jam_at_3_kmh_for_5_minutes_is_not_a_stop() -> None:
    drive = Drive(jitter_m=5.0)
    drive.run(60, CITY_MPS)
    drive.run(300, 3 / 3.6)
    drive.run(60, CITY_MPS)
    assert drive.events == []


def test_ten_minute_crawl_with_under_reported_speed_drifts_off_its_anchor_and_is_not_a_stop() -> None:
    # The receiver says 0.4 m/s (under the halt threshold) while the bus really crawls at 3 km/h.
    drive = Drive(jitter_m=5.0)
    drive.run(60, CITY_MPS)
    drive.run(600, 3 / 3.6, reported_mps=0.4)
    assert drive.state() == "halted"  # it is slow enough to look halted...
    drive.run(60, CITY_MPS)
    assert drive.events == []  # ...but the halt kept restarting as it crept away


# -- stops --------------------------------------------------------------------------------------------


def test_ten_minute_halt_is_a_stop_back_dated_to_its_start() -> None:
    drive = Drive(jitter_m=5.0)
    drive.run(100, CITY_MPS)
    halt_start = drive.t
    drive.park(299)
    assert drive.events == []
    drive.park(301)
    (arrived,) = drive.events
    assert isinstance(arrived, Arrived)
    assert arrived.confirmed_by == "dwell"
    assert arrived.at == halt_start
    assert arrived.lat is not None and arrived.lon is not None
    assert haversine_m(arrived.lat, arrived.lon, drive.lat, drive.lon) < 5.0
    assert drive.state() == "parked"
    assert drive.detector.stop is not None and drive.detector.stop.arrived_at == halt_start


def test_four_hour_stop_with_30m_jitter_spikes_and_20_minute_gps_loss_is_one_visit() -> None:
    drive = Drive(jitter_m=30.0, seed=11)
    drive.run(300, CITY_MPS)
    halt_start = drive.t
    drive.park(2 * 3600, spikes=True)
    drive.park(20 * 60, gps=False)
    assert drive.state() == "parked"
    drive.park(2 * 3600 - 20 * 60, spikes=True)
    leave = drive.t
    drive.run(300, 8.0)
    arrivals, departures = drive.of(Arrived), drive.of(Departed)
    assert len(arrivals) == 1 and len(departures) == 1
    assert drive.events == [arrivals[0], departures[0]]
    departed = departures[0]
    assert isinstance(departed, Departed)
    assert departed.arrived_at == halt_start
    assert leave <= departed.at <= leave + 15  # when the move became evident, within seconds
    assert drive.state() == "moving"


def test_parked_bus_ignores_20_seconds_of_false_speed_from_a_wandering_fix() -> None:
    drive = Drive(jitter_m=30.0)
    drive.run(60, CITY_MPS)
    drive.park(400)
    drive.glitch(20, 4.0)  # the receiver claims 14 km/h while the fix wanders on the spot
    drive.park(60)
    assert [type(e) for e in drive.events] == [Arrived]


def test_parked_bus_ignores_a_5_second_multipath_jump_with_speed() -> None:
    drive = Drive(jitter_m=10.0)
    drive.run(60, CITY_MPS)
    drive.park(400)
    drive.glitch(5, 6.0, off_m=200.0)
    drive.park(60)
    assert [type(e) for e in drive.events] == [Arrived]


def test_gps_back_far_away_after_a_loss_ends_the_stop() -> None:
    drive = Drive()
    drive.run(60, CITY_MPS)
    drive.park(400)
    drive.run(600, CITY_MPS, gps=False)  # drove 7.8 km in a GPS shadow
    drive.park(60)
    assert [type(e) for e in drive.events] == [Arrived, Departed]


def test_two_stops_300m_apart_are_two_visits_with_distinct_site_ids() -> None:
    drive = Drive(jitter_m=10.0)
    drive.run(60, CITY_MPS)
    drive.park(600)
    drive.run(60, 5.0)  # 300 m to the second stop
    drive.park(600)
    drive.run(60, CITY_MPS)
    kinds = [type(e) for e in drive.events]
    assert kinds == [Arrived, Departed, Arrived, Departed]
    first, second = drive.of(Arrived)
    assert isinstance(first, Arrived) and isinstance(second, Arrived)
    assert first.site is not None and second.site is not None
    assert first.site.id != second.site.id
    assert not first.site.planned and first.site.id.startswith("gh-")


def test_arrival_inside_a_catalog_radius_takes_the_planned_site() -> None:
    stop = offset_m(*DEPOT, 0.0, 60 * CITY_MPS + 30.0)  # 30 m past where the bus will halt
    catalog = Catalog([Site("poste", "La Poste", *stop, 80.0)])
    drive = Drive(StopDetector(catalog=catalog), jitter_m=10.0)
    drive.run(60, CITY_MPS)
    drive.park(400)
    (arrived,) = drive.events
    assert isinstance(arrived, Arrived) and arrived.site is not None
    assert (arrived.site.id, arrived.site.name) == ("poste", "La Poste")


def test_arrival_outside_every_catalog_radius_gets_a_generated_id() -> None:
    elsewhere = offset_m(*DEPOT, 0.0, 60 * CITY_MPS + 500.0)
    catalog = Catalog([Site("poste", "La Poste", *elsewhere, 80.0)])
    drive = Drive(StopDetector(catalog=catalog))
    drive.run(60, CITY_MPS)
    drive.park(400)
    (arrived,) = drive.events
    assert isinstance(arrived, Arrived) and arrived.site is not None
    assert arrived.lat is not None and arrived.lon is not None
    assert arrived.site.id == site_id_for(arrived.lat, arrived.lon)
    assert arrived.site.name is None and not arrived.site.planned
    assert catalog.discovered == [arrived.site]


# -- shore power ---------------------------------------------------------------------------------------


def test_shore_power_without_any_gps_confirms_a_stop_at_once_and_holds_it() -> None:
    drive = Drive()
    drive.shore = False
    drive.park(100, gps=False)
    drive.shore = True
    drive.park(3600, gps=False)
    assert drive.events == [Arrived(100.0, None, None, None, "shore")]
    drive.shore = False
    drive.park(600, gps=False)
    assert drive.events[1:] == [DepartureForeseen(3700.0, "shore-unplugged")]
    assert drive.state() == "parked"  # no GPS: nothing says the bus moved


def test_stop_confirmed_without_position_is_located_when_fixes_come() -> None:
    drive = Drive()
    drive.shore = True
    drive.park(60, gps=False)
    drive.park(60)
    stop = drive.detector.stop
    assert stop is not None and stop.lat is not None and stop.site is not None
    drive.shore = False
    drive.run(120, CITY_MPS)
    departed = drive.events[-1]
    assert isinstance(departed, Departed)
    assert departed.site == stop.site and departed.lat == stop.lat


def test_shore_plugged_during_a_halt_confirms_at_once_back_dated() -> None:
    drive = Drive()
    drive.run(60, CITY_MPS)
    drive.park(40)
    drive.shore = True
    drive.park(1)
    (arrived,) = drive.events
    assert isinstance(arrived, Arrived)
    assert (arrived.at, arrived.confirmed_by) == (60.0, "shore")


def test_plugged_shore_blocks_departure_until_unplugged() -> None:
    drive = Drive()
    drive.run(60, CITY_MPS)
    drive.shore = True
    drive.park(600)
    drive.run(120, CITY_MPS)  # a wild GPS says the bus drives off; the cable says it cannot
    assert [type(e) for e in drive.events] == [Arrived]
    drive.shore = False
    drive.park(30)
    drive.run(60, CITY_MPS)
    assert [type(e) for e in drive.events] == [Arrived, DepartureForeseen, Departed]


def test_a_silent_shore_sensor_stops_blocking_departure() -> None:
    drive = Drive()
    drive.run(60, CITY_MPS)
    drive.shore = True
    drive.park(10)
    drive.shore = None  # the power sensor stops answering
    drive.park(600)
    drive.run(60, CITY_MPS)
    assert [type(e) for e in drive.events] == [Arrived, Departed]


def test_engine_start_while_parked_foresees_departure() -> None:
    detector = StopDetector()
    fix = GpsSnapshot(fix_mode=3, lat_deg=DEPOT[0], lon_deg=DEPOT[1], speed_mps=0.0)
    detector.update(0.0, fix, True, engine=False)
    assert detector.update(10.0, fix, True, engine=True) == [DepartureForeseen(10.0, "engine-started")]
    assert detector.update(20.0, fix, True, engine=True) == []


def test_shore_of_reads_a_power_snapshot() -> None:
    assert shore_of(PowerSnapshot(shore_connected=True)) is True
    assert shore_of(PowerSnapshot(ok=False, reason="no sysfs", shore_connected=True)) is None
    assert shore_of(None) is None


# -- property ------------------------------------------------------------------------------------------

_fix = st.builds(
    lambda north, east, speed, mode: GpsSnapshot(
        fix_mode=mode,
        lat_deg=offset_m(*DEPOT, north, east)[0],
        lon_deg=offset_m(*DEPOT, north, east)[1],
        speed_mps=speed,
    ),
    st.floats(-400, 400),
    st.floats(-400, 400),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 30)),
    st.sampled_from([0, 1, 2, 3]),
)
_gps = st.one_of(st.none(), st.just(GpsSnapshot(ok=False, reason="gpsd down")), _fix)
_step = st.tuples(
    st.floats(0, 200), _gps, st.sampled_from([None, True, False]), st.sampled_from([None, True, False])
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_step, max_size=150), st.sampled_from([StopParams(), StopParams(dwell_s=20, window_s=5)]))
def test_random_snapshot_streams_never_raise_and_stops_alternate(
    steps: list[tuple[float, GpsSnapshot | None, bool | None, bool | None]], params: StopParams
) -> None:
    detector = StopDetector(params)
    now = 0.0
    parked_since: float | None = None
    for dt, gps, shore, engine in steps:
        now += dt
        for event in detector.update(now, gps, shore, engine=engine):
            assert event.at <= now
            if isinstance(event, Arrived):
                assert parked_since is None
                parked_since = event.at
            elif isinstance(event, Departed):
                assert parked_since is not None and event.arrived_at == parked_since <= event.at
                parked_since = None
            else:
                assert parked_since is not None  # departure is only foreseen while parked
        assert (detector.state == "parked") == (parked_since is not None)
