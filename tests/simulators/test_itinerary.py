"""The itinerary of a scenario: positions, speeds, red lights, stops and states at chosen instants."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.core.geo import haversine_m
from simulators.itinerary import IDLE, Itinerary, PrinterState
from simulators.scenario import DRIVING_LINK, DRIVING_SIGNAL, load_scenario
from tests.simulators.scenario_text import SCENARIOS, START, at, base

DEPOT = (44.0395, 1.1069)
A = (44.0395, 1.1319)
B = (44.0575, 1.1319)
SPEED = 10.0  # 36 km/h
TDC_DAYS = sorted(p for p in SCENARIOS.glob("tdc-*.toml") if p.name != "tdc-catalog.toml")
TO_A = haversine_m(*DEPOT, *A)
TO_B = haversine_m(*A, *B)
HOME = haversine_m(*B, *DEPOT)


@pytest.fixture(name="day")
def day_fixture() -> Itinerary:
    return Itinerary(base())


def metres_from(point: tuple[float, float], day: Itinerary, t: float) -> float:
    fix = day.position(t)
    return haversine_m(*point, fix.lat, fix.lon)


def test_the_bus_waits_at_the_depot_until_the_start(day: Itinerary) -> None:
    for t in (START - 3600, START - 0.001):
        fix = day.position(t)
        assert (fix.lat, fix.lon, fix.speed_mps) == (*DEPOT, 0.0)
        assert day.stop_index_at(t) is None
        assert not day.shore_at(t)
    assert day.position(START) == (*DEPOT, SPEED, day.legs[0].track_deg)  # leaves on the dot
    assert day.signal_at(START - 1) == DRIVING_SIGNAL
    assert day.link_at(START - 1) == DRIVING_LINK


def test_the_first_leg_drives_east_at_cruising_speed(day: Itinerary) -> None:
    fix = day.position(START + 50)
    assert fix.speed_mps == pytest.approx(SPEED)
    assert fix.track_deg == pytest.approx(90.0, abs=0.01)
    assert metres_from(DEPOT, day, START + 50) == pytest.approx(500.0, abs=1.0)
    assert day.stop_index_at(START + 50) is None


def test_the_red_light_halts_the_bus_halfway_for_a_minute(day: Itinerary) -> None:
    halfway_s = TO_A / 2 / SPEED
    assert day.halts[0] == pytest.approx((START + halfway_s, START + halfway_s + 60))
    for t in (START + halfway_s, START + halfway_s + 30, START + halfway_s + 59.9):
        fix = day.position(t)
        assert fix.speed_mps == 0.0
        assert metres_from(DEPOT, day, t) == pytest.approx(TO_A / 2, abs=0.5)
        assert day.stop_index_at(t) is None  # a red light is not a stop
    after = START + halfway_s + 70
    assert day.position(after).speed_mps == pytest.approx(SPEED)
    assert metres_from(DEPOT, day, after) == pytest.approx(TO_A / 2 + 100, abs=1.0)


def test_the_bus_gets_to_a_stop_as_early_as_it_can_and_waits(day: Itinerary) -> None:
    arrival = START + TO_A / SPEED + 60
    assert arrival < at("08:10")  # the plan allowed until 08:10
    assert day.stop_index_at(arrival - 0.5) is None
    assert day.position(arrival - 0.5).speed_mps == pytest.approx(SPEED)
    for t in (arrival, at("08:10"), at("08:59:59")):
        fix = day.position(t)
        assert fix.speed_mps == 0.0
        assert (fix.lat, fix.lon) == pytest.approx(A)
        assert day.stop_index_at(t) == 0
    assert day.stop_index_at(at("09:00")) is None  # leaves at depart
    assert day.position(at("09:00")).speed_mps == pytest.approx(SPEED)
    assert day.position(at("09:00:10")).track_deg == pytest.approx(0.0, abs=0.01)  # north to B


def test_shore_signal_and_link_follow_the_stop(day: Itinerary) -> None:
    assert day.shore_at(at("08:30"))
    assert day.signal_at(at("08:30")).rsrp_dbm == -90.0
    assert day.link_at(at("08:30")).down_mbps == 20.0
    assert not day.shore_at(at("09:30"))  # Poste B has no working socket
    assert day.signal_at(at("09:30")).operator == "20815"
    assert day.link_at(at("09:30")).loss == 0.05
    assert not day.shore_at(at("09:02"))  # on the road
    assert day.signal_at(at("09:02")) == DRIVING_SIGNAL
    assert day.link_at(at("09:02")) == DRIVING_LINK


def test_the_printer_is_idle_until_its_changes_and_keeps_the_last(day: Itinerary) -> None:
    assert day.printer_state_at(START) == IDLE
    assert day.printer_state_at(at("09:29:59")) == IDLE
    assert day.printer_state_at(at("09:30")) == PrinterState("stopped", ("media-empty",))
    assert day.printer_state_at(at("09:39")) == PrinterState("stopped", ("media-empty",))
    assert day.printer_state_at(at("09:40")) == IDLE
    assert day.printer_state_at(at("11:00")) == IDLE


def test_an_outage_covers_from_its_start_to_just_before_its_end(day: Itinerary) -> None:
    assert day.outage_at(at("09:14:59")) is None
    assert day.outage_at(at("09:15")) is not None
    assert day.outage_at(at("09:24:59")) is not None
    assert day.outage_at(at("09:25")) is None


def test_the_day_ends_a_margin_after_the_bus_is_back_at_the_depot(day: Itinerary) -> None:
    back = at("10:00") + HOME / SPEED + 60
    assert day.legs[-1].end == pytest.approx(back)
    assert day.end == pytest.approx(back + 120)
    assert day.position(back - 1).speed_mps == pytest.approx(SPEED)
    for t in (back, day.end, day.end + 3600):
        fix = day.position(t)
        assert fix.speed_mps == 0.0
        assert (fix.lat, fix.lon) == pytest.approx(DEPOT)
        assert day.stop_index_at(t) is None
    assert day.position(back).track_deg == pytest.approx(day.legs[-1].track_deg)


def test_expected_stops_give_the_real_arrivals_and_the_planned_departures(day: Itinerary) -> None:
    first, second = day.expected_stops
    assert (first.name, first.shore_power) == ("Mairie A", True)
    assert first.arrival == pytest.approx(START + TO_A / SPEED + 60)
    assert (first.departure, first.planned_arrival) == (at("09:00"), at("08:10"))
    assert (second.name, second.shore_power) == ("Poste B", False)
    assert second.arrival == pytest.approx(at("09:00") + TO_B / SPEED + 60)
    assert second.departure == at("10:00")


def test_the_distance_driven_matches_speed_times_driving_time(day: Itinerary) -> None:
    step = 0.5
    driven = 0.0
    moving_s = 0.0
    t = START
    previous = day.position(t)
    while t < day.end:
        t += step
        fix = day.position(t)
        travelled = haversine_m(previous.lat, previous.lon, fix.lat, fix.lon)
        assert travelled <= SPEED * step + 0.01  # never faster than the cruising speed
        driven += travelled
        moving_s += step if fix.speed_mps > 0 else 0.0
        previous = fix
    assert driven == pytest.approx(TO_A + TO_B + HOME, rel=1e-3)
    assert driven == pytest.approx(SPEED * moving_s, rel=2e-3)
    assert sum(leg.distance_m for leg in day.legs) == pytest.approx(TO_A + TO_B + HOME)


def test_change_times_hold_every_transition_in_order(day: Itinerary) -> None:
    times = day.change_times
    assert list(times) == sorted(set(times))
    for expected in (START, *day.halts[0], day.expected_stops[1].arrival, at("09:30"), at("09:15"), day.end):
        assert expected in times
    assert day.next_change(START - 10) == START
    assert day.next_change(at("09:29")) == at("09:30")
    assert day.next_change(day.end) is None


def test_no_red_light_when_switched_off_or_on_short_legs() -> None:
    off = Itinerary(base({"speed_kmh = 36": "speed_kmh = 36\nred_light_s = 0"}))
    assert off.halts == ()
    assert off.expected_stops[0].arrival == pytest.approx(START + TO_A / SPEED)
    short = Itinerary(base({"lon = 1.1319\narrive": "lon = 1.1169\narrive"}))  # A 800 m from the depot
    assert short.legs[0].halt is None
    assert short.legs[1].halt is not None


def test_a_stop_at_the_depot_starts_parked() -> None:
    day = Itinerary(base({'lon = 1.1319\narrive = "08:10"': 'lon = 1.1069\narrive = "08:00"'}))
    assert day.legs[0].distance_m == 0.0
    assert day.stop_index_at(START) == 0
    assert day.expected_stops[0].arrival == START


def test_a_hand_made_scenario_with_an_unreachable_stop_is_refused() -> None:
    scenario = base()
    late = dataclasses.replace(scenario.stops[0], depart=START + 100)
    with pytest.raises(ValueError, match=r"stop 0 \(Mairie A\) cannot be reached"):
        Itinerary(dataclasses.replace(scenario, stops=(late, scenario.stops[1])))


# -- shipped scenarios -------------------------------------------------------------------------


def test_the_fast_scenario_has_what_the_end_to_end_tests_need() -> None:
    day = Itinerary(load_scenario(SCENARIOS / "fast.toml"))
    assert 45 * 60 <= day.end - day.start <= 65 * 60
    assert len(day.halts) == 1
    assert 60 <= day.halts[0][1] - day.halts[0][0] <= 90  # a red light, under the 300 s dwell
    assert len(day.expected_stops) == 2
    for stop in day.expected_stops:
        assert 15 * 60 <= stop.departure - stop.arrival <= 25 * 60  # dwell 300 s + probes settle 60 s
    assert [stop.shore_power for stop in day.expected_stops] == [True, False]
    (outage,) = day.scenario.outages
    assert outage.end - outage.start == 600
    assert any(day.printer_state_at(t).state == "stopped" for t in day.change_times)
    assert day.printer_state_at(day.end) == IDLE


@pytest.mark.parametrize("path", TDC_DAYS, ids=lambda p: p.name)
def test_every_tdc_day_is_a_working_day_that_arrives_on_time(path: Path) -> None:
    day = Itinerary(load_scenario(path))
    assert 8.5 * 3600 <= day.end - day.start <= 10.5 * 3600
    for stop, planned in zip(day.expected_stops, day.scenario.stops, strict=True):
        assert stop.arrival <= planned.arrive
        assert day.stop_index_at((stop.arrival + stop.departure) / 2) == stop.index


def test_the_benchmark_day_lasts_about_ten_hours() -> None:
    day = Itinerary(load_scenario(SCENARIOS / "tdc-s13-lundi.toml"))
    assert day.end - day.start == pytest.approx(10 * 3600, abs=15 * 60)


def test_the_day_lasts_until_an_outage_after_the_return_is_over() -> None:
    from simulators.scenario import parse_scenario

    text = """
[vehicle]
id = "bus-1"
start = "2026-03-02T07:45:00+01:00"
depot = { lat = 44.0395, lon = 1.1069 }
speed_kmh = 50

[[stops]]
name = "La Poste"
lat = 44.05
lon = 1.12
arrive = "09:00"
depart = "12:30"

[[outages]]
from = "12:40"
to = "13:30"
"""
    itinerary = Itinerary(parse_scenario(text, "day.toml", Path(".")))
    back_at_depot = itinerary.legs[-1].end
    outage = itinerary.scenario.outages[0]
    assert back_at_depot < outage.end
    assert itinerary.end == outage.end + itinerary.scenario.vehicle.end_margin_s
