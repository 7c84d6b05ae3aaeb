"""Scenario files: the shipped days parse and match their catalog; bad files list every problem."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.config.loader import ConfigError
from agent.core.catalog import parse_catalog
from simulators.scenario import (
    DRIVING_LINK,
    DRIVING_SIGNAL,
    Link,
    ScenarioError,
    Signal,
    catalog_toml,
    load_scenario,
    parse_scenario,
)
from tests.simulators.scenario_text import BASE, SCENARIOS, START, at, base

SHIPPED = sorted(p for p in SCENARIOS.glob("*.toml") if p.name != "tdc-catalog.toml")
TDC = [p for p in SHIPPED if p.name.startswith("tdc-")]


def errors_of(replace: dict[str, str], source: str = "day.toml") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        base(replace, source)
    return info.value.errors


# -- shipped files -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_scenario_parses(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.stops
    assert scenario.vehicle.start == pytest.approx(scenario.local(scenario.vehicle.start).timestamp())


@pytest.mark.parametrize("path", TDC, ids=lambda p: p.name)
def test_tdc_days_use_the_territory_catalog_under_its_names(path: Path) -> None:
    scenario = load_scenario(path)
    catalog_file = SCENARIOS / "tdc-catalog.toml"
    assert scenario.catalog_path == catalog_file.resolve()
    names = {site.name for site in parse_catalog(catalog_file.read_text(), str(catalog_file)).sites}
    assert {stop.name for stop in scenario.stops} <= names
    assert {site.name for site in scenario.sites} == names


def test_the_territory_catalog_has_every_site_a_day_visits_and_no_other() -> None:
    catalog_file = SCENARIOS / "tdc-catalog.toml"
    names = {site.name for site in parse_catalog(catalog_file.read_text(), str(catalog_file)).sites}
    visited = {stop.name for path in TDC for stop in load_scenario(path).stops}
    assert visited == names
    assert len(names) == 11


def test_the_shipped_days_show_each_field_problem_at_least_once() -> None:
    stops = [stop for path in TDC for stop in load_scenario(path).stops]
    assert any(stop.signal.rsrp_dbm <= -110 and stop.link.down_mbps < 2 for stop in stops)  # poor 4G
    assert any(not stop.shore_power for stop in stops)
    paper = [[(c.state, c.reasons) for c in stop.printer] for stop in stops]
    assert [("stopped", ("media-empty",)), ("idle", ())] in paper
    assert any(load_scenario(path).outages for path in TDC)
    assert {stop.signal.operator for stop in stops} == {"20801", "20810", "20815", "20820"}


# -- times and defaults ------------------------------------------------------------------------


def test_times_are_local_on_the_start_date_at_its_offset() -> None:
    scenario = base()
    assert scenario.vehicle.start == START
    assert scenario.stops[0].arrive == START + 600  # 08:10 at +01:00
    assert scenario.stops[1].printer[0].at == START + 90 * 60
    assert scenario.outages[0].start == START + 75 * 60
    assert scenario.outages[0].end == START + 85 * 60
    assert scenario.local(scenario.stops[1].depart).isoformat() == "2026-03-02T10:00:00+01:00"


def test_seconds_and_toml_native_times_are_accepted() -> None:
    scenario = base(
        {
            'start = "2026-03-02T08:00:00+01:00"': "start = 2026-03-02T08:00:00+01:00",
            'arrive = "08:10"': "arrive = 08:09:30",
            'depart = "09:00"': 'depart = "09:00:15"',
        }
    )
    assert scenario.vehicle.start == START
    assert scenario.stops[0].arrive == at("08:09:30")
    assert scenario.stops[0].depart == at("09:00:15")


def test_a_summer_offset_shifts_every_time() -> None:
    scenario = base({"+01:00": "+02:00"})
    assert scenario.vehicle.start == START - 3600
    assert scenario.stops[0].arrive == START - 3600 + 600
    assert scenario.vehicle.utc_offset_s == 7200


def test_optional_keys_take_their_defaults() -> None:
    scenario = base(
        {
            'signal = { operator = "20801", rat = "LTE", rsrp = -90, rsrq = -9, sinr = 12 }\n': "",
            "link = { down_mbps = 20.0, up_mbps = 5.0, rtt_ms = 40 }\n": "",
        }
    )
    first, second = scenario.stops
    assert first.shore_power is True  # absent means a working socket
    assert second.shore_power is False
    assert first.signal == DRIVING_SIGNAL
    assert first.link == DRIVING_LINK
    assert scenario.vehicle.red_light_s == 60.0
    assert scenario.vehicle.end_margin_s == 120.0
    assert second.link.loss == 0.05
    assert first.radius_m == 100.0
    assert scenario.catalog_path is None


DRIVING = """\
[driving]
signal = { operator = "20820", rsrp = -100, rsrq = -12, sinr = 4 }
link = { down_mbps = 8, up_mbps = 2, rtt_ms = 70 }

"""


def test_the_driving_table_sets_the_default_of_stops_without_their_own() -> None:
    scenario = base(
        {
            'signal = { operator = "20801", rat = "LTE", rsrp = -90, rsrq = -9, sinr = 12 }\n': "",
            '[[stops]]\nname = "Mairie A"': DRIVING + '[[stops]]\nname = "Mairie A"',
        }
    )
    assert scenario.driving_signal == Signal("20820", "LTE", -100.0, -12.0, 4.0)
    assert scenario.driving_link == Link(8.0, 2.0, 70.0, 0.0)
    assert scenario.stops[0].signal == scenario.driving_signal
    assert scenario.stops[0].link == Link(20.0, 5.0, 40.0, 0.0)


def test_the_catalog_built_from_the_stops_reads_back_in_the_agent_format() -> None:
    scenario = base({"lat = 44.0575\n": "lat = 44.0575\nradius_m = 250\n"})
    assert [(s.id, s.name, s.radius_m) for s in scenario.sites] == [
        ("mairie-a", "Mairie A", 100.0),
        ("poste-b", "Poste B", 250.0),
    ]
    again = parse_catalog(catalog_toml(scenario.sites), "sites.toml")
    assert again.sites == scenario.sites


def test_a_place_visited_twice_under_one_name_is_one_site() -> None:
    extra = '[[stops]]\nname = "Mairie A"\nlat = 44.0396\nlon = 1.1319\narrive = "10:10"\ndepart = "10:40"\n'
    scenario = parse_scenario(BASE + extra, "day.toml")
    assert len(scenario.stops) == 3
    assert [site.name for site in scenario.sites] == ["Mairie A", "Poste B"]


# -- bad files ---------------------------------------------------------------------------------

PRINTER = """\
printer = [ { at = "09:30", state = "stopped", reasons = ["media-empty"] },
            { at = "09:40", state = "idle", reasons = [] } ]"""

CASES = [
    ({'arrive = "08:10"': 'arrive = "25:00"'}, 'stops[0].arrive: "25:00" is not a time HH:MM'),
    ({'depart = "09:00"': 'depart = "9h00"'}, 'stops[0].depart: "9h00" is not a time HH:MM'),
    ({'depart = "09:00"': "depart = 900"}, 'stops[0].depart: must be a time "HH:MM", got int 900'),
    (
        {"shore_power = false": "shore = false"},
        "stops[1].shore: unknown key (known keys here: arrive, depart, lat, link, lon, name, printer,"
        " radius_m, shore_power, signal)",
    ),
    ({"lat = 44.0575": "lat = 94.0575"}, "stops[1].lat: must be between -90 and 90, got 94.0575"),
    (
        {'lon = 1.1319\narrive = "08:10"': 'lon = "1.13"\narrive = "08:10"'},
        "stops[0].lon: must be a number, got str '1.13'",
    ),
    ({"rsrp = -115": "rsrp = -150"}, "stops[1].signal.rsrp: must be between -140 and -44, got -150"),
    ({"rsrq = -17": "rsrq = -25"}, "stops[1].signal.rsrq: must be between -20 and -3, got -25"),
    ({"sinr = -3": "sinr = 45"}, "stops[1].signal.sinr: must be between -20 and 40, got 45"),
    ({"loss = 0.05": "loss = 1.5"}, "stops[1].link.loss: must be between 0 and 1, got 1.5"),
    ({"down_mbps = 1.0": "down_mbps = 0"}, "stops[1].link.down_mbps: must be more than 0, got 0"),
    ({"rtt_ms = 150": "rtt_ms = -1"}, "stops[1].link.rtt_ms: must be between 0 and 60000, got -1"),
    (
        {'"20815"': '"208-15"'},
        'stops[1].signal.operator: "208-15" is not an operator code (5 or 6 digits, like "20801")',
    ),
    ({'"20815"': "20815"}, "stops[1].signal.operator: must be a non-empty string, got int 20815"),
    (
        {'rat = "LTE", rsrp = -115': 'rat = "5G", rsrp = -115'},
        "stops[1].signal.rat: must be one of LTE, UMTS, GSM, NR5G-SA, NR5G-NSA, got str '5G'",
    ),
    (
        {'state = "stopped"': 'state = "jammed"'},
        "stops[1].printer[0].state: must be one of idle, processing, stopped, got str 'jammed'",
    ),
    (
        {'["media-empty"]': '["Media Empty"]'},
        "stops[1].printer[0].reasons: must be a list of IPP keywords like"
        """ ["media-empty"], got ['Media Empty']""",
    ),
    (
        {"shore_power = false": 'shore_power = "no"'},
        "stops[1].shore_power: must be true or false, got str 'no'",
    ),
    (
        {'arrive = "09:10"': 'arrive = "08:50"'},
        'stops[1].arrive: "08:50" is before stops[0].depart "09:00": stops must be in time order',
    ),
    (
        {'arrive = "08:10"': 'arrive = "07:50"'},
        'stops[0].arrive: "07:50" is before the start (08:00): stops must be in time order',
    ),
    ({'depart = "09:00"': 'depart = "08:05"'}, 'stops[0].depart: "08:05" must be after arrive "08:10"'),
    (
        {'arrive = "08:10"': 'arrive = "08:04"'},
        'stops[0].arrive: "08:04" cannot be reached: the 2.0 km from the depot (left at 08:00)'
        " take 4 min 20 s at 36 km/h with a 60 s red light; the earliest arrival is 08:04:20",
    ),
    (
        {'arrive = "09:10"': 'arrive = "09:03"', "speed_kmh = 36": "speed_kmh = 36\nred_light_s = 0"},
        'stops[1].arrive: "09:03" cannot be reached: the 2.0 km from stops[0] (left at 09:00) take 3 min 21 s'
        " at 36 km/h; the earliest arrival is 09:03:21",
    ),
    (
        {'at = "09:30"': 'at = "10:30"'},
        'stops[1].printer[0].at: "10:30" is outside the stay at this stop (09:10 to 10:00)',
    ),
    ({'at = "09:40"': 'at = "09:20"'}, 'stops[1].printer[1].at: "09:20" must be after printer[0].at "09:30"'),
    ({'from = "09:15"': 'from = "07:30"'}, 'outages[0].from: "07:30" is before the start (08:00)'),
    ({'to = "09:25"': 'to = "09:15"'}, 'outages[0].to: "09:15" must be after from "09:15"'),
    (
        {"+01:00": ""},
        'vehicle.start: "2026-03-02T08:00:00" has no UTC offset: write it like "2026-03-02T07:45:00+01:00"',
    ),
    (
        {'"2026-03-02T08:00:00+01:00"': '"tomorrow"'},
        'vehicle.start: "tomorrow" is not a date and time like "2026-03-02T07:45:00+01:00"',
    ),
    ({"speed_kmh = 36": "speed_kmh = 0"}, "vehicle.speed_kmh: must be more than 0, got 0"),
    (
        {"speed_kmh = 36": "speed_kmh = 36\nred_light_s = -5"},
        "vehicle.red_light_s: must be between 0 and 600, got -5",
    ),
    (
        {'"bus-test-01"': '"bus test"'},
        "vehicle.id: 'bus test' is not a valid vehicle id (letters, digits, '-', '_', '.')",
    ),
    (
        {"{ lat = 44.0395, lon = 1.1069 }": "{ lon = 1.1069 }"},
        "vehicle.depot.lat: missing (this key is required)",
    ),
    ({'depart = "10:00"\n': ""}, "stops[1].depart: missing (this key is required)"),
    (
        {"[[outages]]": "[extra]\nx = 1\n\n[[outages]]"},
        "extra: unknown key (known keys here: driving, outages, stops, vehicle)",
    ),
    ({'name = "Poste B"': 'name = ""'}, "stops[1].name: must be a non-empty string, got str ''"),
    (
        {PRINTER: 'printer = "paper out"'},
        "stops[1].printer: must be a list of tables, got str 'paper out'",
    ),
    ({"[[outages]]": "[outages]"}, "outages: must be a list of tables, got a table"),
]


@pytest.mark.parametrize(
    ("replace", "message"), CASES, ids=[c[1].split(":")[0] + "-" + str(i) for i, c in enumerate(CASES)]
)
def test_a_bad_value_is_reported_with_its_file_and_key(replace: dict[str, str], message: str) -> None:
    assert errors_of(replace) == [f"day.toml:{message}"]


def test_every_problem_of_a_file_is_listed_at_once() -> None:
    errors = errors_of(
        {
            'arrive = "08:10"': 'arrive = "25:00"',
            "lat = 44.0575": "lat = 94.0575",
            "rsrp = -115": "rsrp = -150",
            'state = "stopped"': 'state = "jammed"',
            'from = "09:15"': 'from = "07:30"',
            "speed_kmh = 36": "speed_kmh = 36\ncolour = 'white'",
        }
    )
    assert errors == [
        "day.toml:vehicle.colour: unknown key (known keys here: catalog, depot, end_margin_s, id,"
        " red_light_s, speed_kmh, start)",
        'day.toml:stops[0].arrive: "25:00" is not a time HH:MM',
        "day.toml:stops[1].lat: must be between -90 and 90, got 94.0575",
        "day.toml:stops[1].printer[0].state: must be one of idle, processing, stopped, got str 'jammed'",
        "day.toml:stops[1].signal.rsrp: must be between -140 and -44, got -150",
        'day.toml:outages[0].from: "07:30" is before the start (08:00)',
    ]


def test_a_bad_stop_does_not_hide_the_time_problems_of_another() -> None:
    errors = errors_of({"rsrq = -9": "rsrq = 0", 'arrive = "09:10"': 'arrive = "08:50"'})
    assert errors == [
        "day.toml:stops[0].signal.rsrq: must be between -20 and -3, got 0",
        'day.toml:stops[1].arrive: "08:50" is before stops[0].depart "09:00": stops must be in time order',
    ]


def test_a_file_without_vehicle_or_stops_says_so() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario("stops = []\n", "empty.toml")
    assert info.value.errors == [
        "empty.toml:vehicle: missing (this table is required)",
        "empty.toml:stops: no stops: a day needs one or more [[stops]]",
    ]


def test_invalid_toml_is_one_error_and_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario("[vehicle\n", "broken.toml")
    assert len(info.value.errors) == 1
    assert info.value.errors[0].startswith("broken.toml: not valid TOML:")


def test_an_unreadable_file_is_reported_like_an_invalid_one(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nowhere\.toml: cannot read: No such file"):
        load_scenario(tmp_path / "nowhere.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(BASE.replace("Mairie A", "Salle des f\xeates").encode("latin-1"))
    with pytest.raises(ScenarioError, match=r"latin\.toml: not UTF-8 text \(byte \d+\)"):
        load_scenario(latin)


def test_two_stops_sharing_a_name_must_be_one_place() -> None:
    extra = '[[stops]]\nname = "Mairie A"\nlat = 44.0485\nlon = 1.1319\narrive = "10:10"\ndepart = "10:40"\n'
    with pytest.raises(ScenarioError) as info:
        parse_scenario(BASE + extra, "day.toml")
    assert info.value.errors == ['day.toml:stops[2].lat: "Mairie A" is also stops[0], more than 100 m away']


# -- a catalog file ----------------------------------------------------------------------------

CATALOG = """\
[[sites]]
name = "Mairie A"
lat = 44.0396
lon = 1.1320

[[sites]]
name = "Poste B"
lat = 44.0575
lon = 1.1319
radius_m = 150
"""


def with_catalog(tmp_path: Path, catalog: str | None) -> Path:
    if catalog is not None:
        (tmp_path / "sites").mkdir()
        (tmp_path / "sites" / "cat.toml").write_text(catalog)
    path = tmp_path / "day.toml"
    path.write_text(BASE.replace("speed_kmh = 36", 'speed_kmh = 36\ncatalog = "sites/cat.toml"'))
    return path


def test_a_catalog_file_beside_the_scenario_gives_the_sites(tmp_path: Path) -> None:
    scenario = load_scenario(with_catalog(tmp_path, CATALOG))
    assert scenario.catalog_path == (tmp_path / "sites" / "cat.toml").resolve()
    assert [(s.id, s.radius_m) for s in scenario.sites] == [("mairie-a", 100.0), ("poste-b", 150.0)]


@pytest.mark.parametrize(
    ("catalog", "message"),
    [
        (
            CATALOG.replace('"Poste B"', '"La Poste B"'),
            'stops[1].name: "Poste B" is not the name sites/cat.toml gives this place: "La Poste B"',
        ),
        (
            CATALOG.replace("lat = 44.0575", "lat = 44.0675"),
            'stops[1].name: no site of sites/cat.toml holds this stop (nearest: "Poste B", 1112 m away)',
        ),
    ],
)
def test_every_stop_must_be_a_catalog_site_under_the_same_name(
    tmp_path: Path, catalog: str, message: str
) -> None:
    path = with_catalog(tmp_path, catalog)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.errors == [f"{path}:{message}"]


def test_a_missing_or_broken_catalog_file_is_reported(tmp_path: Path) -> None:
    path = with_catalog(tmp_path, None)
    with pytest.raises(
        ScenarioError, match=r'day\.toml:vehicle\.catalog: cannot read "sites/cat\.toml" \(.*\): No such file'
    ):
        load_scenario(path)
    broken = with_catalog(tmp_path, CATALOG.replace("lat = 44.0396", "lat = 144.0396"))
    with pytest.raises(ScenarioError) as info:
        load_scenario(broken)
    catalog = (tmp_path / "sites" / "cat.toml").resolve()
    assert info.value.errors == [f"{catalog}:sites[0].lat: must be between -90 and 90, got 144.0396"]


def test_scenario_dataclasses_are_frozen() -> None:
    scenario = base()
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.stops[0].lat = 0.0  # type: ignore[misc]
