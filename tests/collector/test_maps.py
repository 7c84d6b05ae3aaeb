"""busagent-collector map: per-site figures over a two-bus fleet stored through ingest, the files, the CLI."""

from __future__ import annotations

import csv
import datetime
import io
import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.catalog import Site
from agent.core.grading import ANY_USE, COMFORTABLE, GOOD_SHARE, ONLINE_PROCEDURES, USABLE_SHARE
from collector.aggregate import SiteFigures, weighted_median
from collector.cli import main
from collector.map_columns import num
from collector.maps import MapData, collect, parse_operator, parse_since, write_maps
from collector.render_files import csv_cell
from collector.store import Store
from tests.collector.map_fleet import (
    DAY2,
    LABASTIDE,
    LABASTIDE_LABEL,
    LIZAC,
    LIZAC_LABEL,
    MOISSAC_AT,
    ORANGE,
    POSTE,
    POSTE_LABEL,
    SCRIPT_LABEL,
    SFR,
    UNLOCATED_LABEL,
    XSS,
    XSS_NAME,
    build_fleet,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = Store(tmp_path_factory.mktemp("fleet") / "collector.db")
    build_fleet(opened)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def data(store: Store) -> MapData:
    return collect(store)


def site(data: MapData, key: str) -> SiteFigures:
    return next(s for s in data.sites if key in (s.site_id, s.key))


def labelled(data: MapData, label: str) -> SiteFigures:
    return next(s for s in data.sites if label in s.labels)


# -- aggregation -------------------------------------------------------------------------------------------


def test_a_site_visited_by_two_buses_adds_up_both_visits(data: MapData) -> None:
    poste = site(data, POSTE.id)
    assert (poste.kind, poste.name, poste.visits) == ("planned", POSTE.name, 2)
    assert poste.vehicles == ("bus-tdc-01", "bus-tdc-02")
    assert (poste.first_visit, poste.last_visit) == ("2026-03-02T09:00:00Z", "2026-03-03T12:00:00Z")
    # 3 runs at 12/3 Mbit/s and 45 ms, 2 runs at 3/1 Mbit/s and 90 ms: medians weighted by runs.
    assert (poste.runs, poste.usable_runs) == (5, 5)
    assert (poste.down_bps, poste.up_bps, poste.rtt_ms, poste.loss, poste.dns_ms) == (
        12e6,
        3e6,
        45.0,
        0.0,
        20.0,
    )
    # Portal medians 400 ms (CAF) and 500 ms (impots) over 10 answered fetches: half each side.
    assert poste.fetch_ms == 450.0
    assert [(p.url, p.fetches, p.failures, p.fetch_ms) for p in poste.portals] == [
        ("https://www.caf.fr/", 5, 0, 400.0),
        ("https://www.impots.gouv.fr/", 5, 0, 500.0),
    ]
    assert poste.grade == "good"
    assert poste.visit_grades == {"usable": 1, "good": 1}
    assert poste.shore == {"worked": 2, "failed": 0, "absent": 0, "not measured": 0}
    assert poste.printer == {"media-empty": 1, "media-jam": 1} and poste.printer_visits == 2


def test_signal_is_given_per_operator_with_median_and_minimum(data: MapData) -> None:
    poste = site(data, POSTE.id)
    figures = {(s.operator, s.rat): s for s in poste.signal}
    orange, sfr = figures[(ORANGE, "LTE")], figures[(SFR, "LTE")]
    assert (orange.samples, orange.rsrp_dbm, orange.rsrp_min_dbm, orange.rsrq_db, orange.sinr_db) == (
        3, -97.0, -99.0, -11.0, 9.0,
    )  # fmt: skip
    assert (sfr.samples, sfr.rsrp_dbm, sfr.rsrp_min_dbm, sfr.quality) == (2, -105.0, -106.0, "poor")
    assert poste.main_operator == ORANGE  # the operator read most
    assert data.operator_names == {ORANGE: "Orange F", SFR: "SFR"}


def test_a_poor_link_is_graded_by_the_shared_floors_and_says_why(data: MapData) -> None:
    lizac = site(data, LIZAC.id)
    assert lizac.grade == "poor"
    assert "median download 1 Mbit/s under the 2 Mbit/s floor for online procedures" in lizac.grade_reason
    assert (lizac.runs, lizac.usable_runs, lizac.usable_share) == (3, 0, 0.0)


def test_shore_power_lost_while_parked_is_a_failure_with_its_duration(data: MapData) -> None:
    lizac = site(data, LIZAC.id)
    assert lizac.shore == {"worked": 0, "failed": 1, "absent": 0, "not measured": 0}
    assert lizac.shore_off_s == 40 * 60


def test_a_survey_at_a_place_not_in_the_plan_makes_a_candidate_named_by_its_label(data: MapData) -> None:
    candidate = site(data, LABASTIDE.id)
    assert (candidate.kind, candidate.name, candidate.labels) == (
        "candidate",
        LABASTIDE_LABEL,
        (LABASTIDE_LABEL,),
    )
    assert (candidate.lat, candidate.lon) == (LABASTIDE.lat, LABASTIDE.lon)
    # The labelled run is inside the visit: counted once, through the visit's medians.
    assert (candidate.visits, candidate.surveys, candidate.runs) == (1, 1, 1)
    assert candidate.shore["absent"] == 1


def test_a_survey_before_the_bus_counted_as_stopped_is_placed_at_the_gps_fix(data: MapData) -> None:
    candidate = labelled(data, SCRIPT_LABEL)
    assert (candidate.kind, candidate.name, candidate.site_id) == ("candidate", SCRIPT_LABEL, None)
    assert candidate.key == "survey-stade-script-b-bold-b-moissac"
    assert candidate.lat == pytest.approx(MOISSAC_AT[0], abs=1e-6)
    assert candidate.lon == pytest.approx(MOISSAC_AT[1], abs=1e-6)
    assert (candidate.visits, candidate.runs, candidate.usable_runs, candidate.down_bps) == (0, 1, 1, 5e6)


def test_a_survey_inside_a_planned_sites_radius_counts_for_that_site(data: MapData) -> None:
    lizac = site(data, LIZAC.id)
    assert lizac.kind == "planned" and lizac.labels == (LIZAC_LABEL,)
    assert lizac.runs == 3  # two in the visit, plus the survey run no visit summarised
    assert {s.operator for s in lizac.signal} == {ORANGE, SFR}


def test_a_survey_at_a_planned_stop_adds_its_label_not_its_figures_twice(data: MapData) -> None:
    poste = site(data, POSTE.id)
    assert poste.labels == (POSTE_LABEL,) and poste.surveys == 1 and poste.runs == 5


def test_a_survey_without_any_position_is_listed_without_coordinates(data: MapData) -> None:
    lost = labelled(data, UNLOCATED_LABEL)
    assert (lost.kind, lost.lat, lost.lon, lost.runs) == ("candidate", None, None, 1)


def test_visits_without_a_place_and_unreadable_records_are_counted_not_mapped(data: MapData) -> None:
    assert (data.unplaced, data.unreadable) == (1, 1)
    assert len(data.sites) == 7


def test_sites_come_worst_first(data: MapData) -> None:
    grades = [s.grade for s in data.sites]
    assert grades[0] == "poor" and grades[-1] == "unknown"
    assert grades == sorted(grades, key=["unusable", "poor", "usable", "good", "unknown"].index)


def test_an_operator_filter_keeps_only_that_operators_figures(store: Store) -> None:
    data = collect(store, operator=SFR)
    poste = site(data, POSTE.id)
    assert [s.operator for s in poste.signal] == [SFR]
    assert (poste.runs, poste.down_bps, poste.rtt_ms) == (2, 3e6, 90.0)
    assert poste.grade == "usable" and "the link may drop" in poste.grade_reason
    xss = site(data, XSS.id)  # only ever measured on Orange
    assert (xss.grade, xss.grade_reason) == ("unknown", f"nothing measured on operator {SFR}")
    assert xss.visits == 1 and xss.shore["worked"] == 1  # visits and shore power do not depend on it


def test_since_leaves_out_earlier_records(store: Store) -> None:
    data = collect(store, since=datetime.datetime.fromtimestamp(DAY2, datetime.UTC))
    keys = {s.site_id for s in data.sites}
    assert XSS.id not in keys and LABASTIDE.id not in keys
    assert site(data, POSTE.id).visits == 1


def test_catalog_sites_never_visited_are_shown_as_not_visited(store: Store) -> None:
    boudou = Site("sdf-boudou", "Mairie - salle des fêtes, Boudou", 44.096944, 1.014444, 100.0)
    moved = Site(POSTE.id, POSTE.name, 44.0200, 1.0760, 100.0)
    data = collect(store, catalog=[boudou, moved])
    unvisited = site(data, "sdf-boudou")
    assert (unvisited.kind, unvisited.grade, unvisited.grade_reason, unvisited.visits) == (
        "planned", "unknown", "not visited", 0,
    )  # fmt: skip
    assert (site(data, POSTE.id).lat, site(data, POSTE.id).lon) == (44.0200, 1.0760)  # the catalog's position


def test_the_documented_floors_and_shares_are_the_codes() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "maps.md").read_text(encoding="utf-8")
    for floors in (ANY_USE, ONLINE_PROCEDURES, COMFORTABLE):
        down, up = num(floors.down_bps / 1e6), num(floors.up_bps / 1e6)
        rtt, loss = num(floors.rtt_ms), num(floors.loss * 100)
        row = f"| {floors.name} | {down} Mbit/s | {up} Mbit/s | {rtt} ms | {loss} % |"
        assert row in doc
    assert f"fewer than {num(USABLE_SHARE * 100)} % of the runs" in doc
    assert f"fewer than {num(GOOD_SHARE * 100)} % of the runs" in doc


@given(st.lists(st.integers(-200, 200), min_size=1, max_size=30))
def test_the_weighted_median_with_equal_weights_is_the_median(values: list[int]) -> None:
    assert weighted_median((float(v), 1.0) for v in values) == statistics.median(values)


def test_the_weighted_median_follows_the_weights() -> None:
    assert weighted_median([(1.0, 1), (2.0, 1), (10.0, 5)]) == 10.0
    assert weighted_median([(1.0, 3), (10.0, 3)]) == 5.5
    assert weighted_median([]) is None


# -- files -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("maps")
    summary = write_maps(store, out)
    assert summary.files == (out / "stops.html", out / "stops.geojson", out / "stops.csv")
    assert summary.sites == 7 and summary.grades[POSTE.id] == "good" and summary.grades[LIZAC.id] == "poor"
    return out


def geojson(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "stops.geojson").read_text(encoding="utf-8"))
    return doc


def test_the_geojson_has_a_point_per_located_site_with_its_figures(written: Path) -> None:
    doc = geojson(written)
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 7
    by_id = {f["id"]: f for f in doc["features"]}
    poste = by_id[POSTE.id]
    assert poste["geometry"] == {"type": "Point", "coordinates": [POSTE.lon, POSTE.lat]}  # lon first
    props = poste["properties"]
    assert (props["grade"], props["visits"], props["usable_pct"], props["down_mbps"], props["up_mbps"]) == (
        "good", 2, 100.0, 12.0, 3.0,
    )  # fmt: skip
    assert (props["rsrp_dbm_20801_LTE"], props["rsrp_min_dbm_20801_LTE"], props["rsrp_dbm_20810_LTE"]) == (
        -97.0, -99.0, -105.0,
    )  # fmt: skip
    assert (props["shore_worked"], props["printer_incidents"]) == (2, "media-empty 1, media-jam 1")
    assert by_id[XSS.id]["properties"]["name"] == XSS_NAME  # JSON keeps the text as it is
    unlocated = [f for f in doc["features"] if f["geometry"] is None]
    assert [f["properties"]["name"] for f in unlocated] == [UNLOCATED_LABEL]


def test_the_csv_opens_in_a_french_excel(written: Path) -> None:
    raw = (written / "stops.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads accents right
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    ids = [f["id"] for f in geojson(written)["features"]]
    assert [row["site id"] for row in rows] == ids
    lizac = next(row for row in rows if row["site id"] == LIZAC.id)
    assert lizac["median upload (Mbit/s)"] == "0,3"  # decimal comma
    assert lizac["shore power failed (visits)"] == "1" and lizac["shore power off while parked (min)"] == "40"
    assert next(row for row in rows if row["site id"] == LABASTIDE.id)["name"] == LABASTIDE_LABEL


def test_csv_cells_never_start_a_formula() -> None:
    assert csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert (csv_cell(-97.0), csv_cell(0.25), csv_cell(3), csv_cell(None)) == ("-97", "0,25", "3", "")


def test_the_html_holds_field_text_only_escaped(written: Path) -> None:
    page = (written / "stops.html").read_text(encoding="utf-8")
    assert XSS_NAME not in page and "<b>bold</b>" not in page
    assert page.count("</script>") == 3  # the data block, Leaflet, the page's script: nothing else
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # in the table
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in page  # in the JSON for the popups


# -- the command ---------------------------------------------------------------------------------------------


def test_the_map_command_writes_the_three_files(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "maps"
    code = main(
        [
            "map",
            "--db",
            str(store.path),
            "--out",
            str(out),
            "--operator",
            "208-10",
            "--since",
            "2026-03-03T00:00+00:00",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("5 sites (") and str(out / "stops.html") in printed
    assert geojson(out)["busagent"]["operator"] == SFR
    assert sorted(p.name for p in out.iterdir()) == ["stops.csv", "stops.geojson", "stops.html"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--operator", "orange"], "--operator 'orange': expected MCC-MNC, like 208-01 or 20801"),
        (["--since", "yesterday"], "--since 'yesterday': expected a date like 2026-03-01"),
    ],
)
def test_bad_option_values_are_named_in_one_line(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["map", "--db", str(store.path), "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_catalog_is_reported_with_file_and_key(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "stops.toml"
    catalog.write_text('[[sites]]\nname = "Mairie"\nlat = 144.0\nlon = 1.0\n', encoding="utf-8")
    assert (
        main(["map", "--db", str(store.path), "--out", str(tmp_path / "o"), "--catalog", str(catalog)]) == 2
    )
    assert f"{catalog}:sites[0].lat: must be between -90 and 90, got 144.0" in capsys.readouterr().err


def test_a_missing_or_foreign_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["map", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "o")]) == 2
    assert f"no database at {tmp_path / 'none.db'}" in capsys.readouterr().err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not SQLite" * 100)
    assert main(["map", "--db", str(junk), "--out", str(tmp_path / "o")]) == 2
    assert f"{junk}: not a collector database" in capsys.readouterr().err


def test_command_line_values_are_parsed() -> None:
    assert parse_operator("208-01") == parse_operator("20801") == "20801"
    assert parse_operator("310-260") == "310260"
    local = parse_since("2026-03-01")
    assert local.tzinfo is not None and (local.year, local.month, local.day, local.hour) == (2026, 3, 1, 0)


# -- the store's read methods --------------------------------------------------------------------------------


def test_stream_payloads_reads_every_vehicle_in_chunks(store: Store) -> None:
    visits = list(store.stream_payloads("stops/visit", chunk=2))
    assert [row.vehicle for row in visits] == ["bus-tdc-01"] * 4 + ["bus-tdc-02"] * 4
    assert [row.payload.get("site_id") for row in visits[:4]] == [POSTE.id, XSS.id, LIZAC.id, LABASTIDE.id]


def test_stream_payloads_with_text_keeps_only_labelled_runs(store: Store) -> None:
    runs = list(store.stream_payloads("probes/result", with_text="label", chunk=3))
    assert sorted(row.payload["label"] for row in runs) == sorted(
        [LABASTIDE_LABEL, POSTE_LABEL, SCRIPT_LABEL, LIZAC_LABEL, UNLOCATED_LABEL]
    )
    assert len(list(store.stream_payloads("probes/result"))) == 13
    with pytest.raises(ValueError, match="plain key name"):
        list(store.stream_payloads("probes/result", with_text='x" OR 1'))


def test_stream_payloads_since_compares_record_wall_times(store: Store) -> None:
    rows = list(store.stream_payloads("stops/visit", since=DAY2))
    assert {row.vehicle for row in rows} == {"bus-tdc-02"} and all(row.wall >= DAY2 for row in rows)


def test_payloads_near_finds_one_boots_records_nearest_first(store: Store) -> None:
    gps = list(store.stream_payloads("telemetry/gps"))
    middle = gps[3]
    near = store.payloads_near("bus-tdc-02", "telemetry/gps", "boot-b1", middle.mono + 10, within_s=45)
    assert [row.mono for row in near] == [middle.mono, middle.mono + 30, middle.mono - 30]
    assert store.payloads_near("bus-tdc-02", "telemetry/gps", "other-boot", middle.mono, within_s=45) == []
    assert store.payloads_near("bus-tdc-01", "telemetry/gps", "boot-b1", middle.mono, within_s=45) == []
