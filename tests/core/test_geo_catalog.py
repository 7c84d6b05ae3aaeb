"""Geodesy and the stop catalog: distances, geohash ids, TOML/GeoJSON parsing and site matching."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.config.loader import ConfigError
from agent.core.catalog import Catalog, CatalogError, Site, parse_catalog, parse_geojson, parse_toml, slug
from agent.core.geo import geohash, haversine_m, offset_m, site_id_for

POSTE = (43.998, 1.278)  # La Poste, Saint-Agnan (the demo scenario's first stop)


def errors_of(text: str, source: str) -> list[str]:
    with pytest.raises(CatalogError) as info:
        parse_catalog(text, source)
    return info.value.errors


# -- geo -------------------------------------------------------------------------------------------


def test_haversine_matches_a_known_distance_paris_to_london() -> None:
    # Notre-Dame de Paris to Big Ben: about 341 km on the sphere.
    assert haversine_m(48.8530, 2.3499, 51.5007, -0.1246) == pytest.approx(341_000, rel=0.01)


def test_haversine_is_zero_for_one_point_and_symmetric() -> None:
    assert haversine_m(*POSTE, *POSTE) == 0.0
    other = (44.0, 1.3)
    assert haversine_m(*POSTE, *other) == pytest.approx(haversine_m(*other, *POSTE))


@pytest.mark.parametrize(("north", "east"), [(300.0, 0.0), (0.0, 300.0), (-120.0, 90.0), (2000.0, -1500.0)])
def test_offset_moves_by_the_asked_distance(north: float, east: float) -> None:
    moved = offset_m(*POSTE, north, east)
    assert haversine_m(*POSTE, *moved) == pytest.approx((north**2 + east**2) ** 0.5, abs=0.5)


def test_offset_north_changes_only_latitude() -> None:
    lat, lon = offset_m(*POSTE, 100.0, 0.0)
    assert lat > POSTE[0]
    assert lon == POSTE[1]


@pytest.mark.parametrize(
    ("lat", "lon", "precision", "expected"),
    [(42.6, -5.6, 5, "ezs42"), (57.64911, 10.40744, 11, "u4pruydqqvj"), (0.0, 0.0, 1, "s")],
)
def test_geohash_matches_reference_values(lat: float, lon: float, precision: int, expected: str) -> None:
    assert geohash(lat, lon, precision) == expected


def test_geohash_rejects_impossible_positions() -> None:
    with pytest.raises(ValueError, match="not a valid position"):
        geohash(91.0, 0.0)


def test_site_id_is_gh_plus_the_seven_character_geohash() -> None:
    assert site_id_for(*POSTE) == "gh-" + geohash(*POSTE, 7)
    assert len(site_id_for(*POSTE)) == 10


# -- catalog parsing -------------------------------------------------------------------------------

TOML = """
[[sites]]
name = "La Poste, Saint-Agnan"
lat = 43.998
lon = 1.278
radius_m = 80
commune = "Saint-Agnan"

[[sites]]
id = "mairie-lafrancaise"
name = "Mairie"
lat = 44.1288
lon = 1.2434
notes = "socket behind the town hall"
"""


def test_toml_catalog_loads_sites_with_slug_ids_and_default_radius() -> None:
    catalog = parse_toml(TOML, "stops.toml")
    first, second = catalog.sites
    assert first == Site("la-poste-saint-agnan", "La Poste, Saint-Agnan", 43.998, 1.278, 80.0, "Saint-Agnan")
    assert second.id == "mairie-lafrancaise"
    assert second.radius_m == 100.0
    assert second.notes == "socket behind the town hall"
    assert all(site.planned for site in catalog.sites)


def test_slug_drops_accents_and_punctuation() -> None:
    assert slug("  Église Saint-Étienne / Place du Marché ") == "eglise-saint-etienne-place-du-marche"


def test_toml_errors_name_file_site_index_and_key() -> None:
    text = TOML + '\n[[sites]]\nname = "Far"\nlat = 95.5\nlon = "east"\nradius = 10\n'
    errors = errors_of(text, "stops.toml")
    assert "stops.toml:sites[2].lat: must be between -90 and 90, got 95.5" in errors
    assert "stops.toml:sites[2].lon: must be a number, got str 'east'" in errors
    assert any(e.startswith("stops.toml:sites[2].radius: unknown key") for e in errors)
    assert len(errors) == 3


def test_toml_catalog_error_is_a_config_error_with_all_problems() -> None:
    with pytest.raises(ConfigError) as info:
        parse_toml(
            '[[sites]]\nlat = 1.0\nlon = true\n[[sites]]\nname = "B"\nlat = 1\nlon = 2\nradius_m = 0\n'
        )
    assert info.value.errors == [
        "stops.toml:sites[0].name: missing (this key is required)",
        "stops.toml:sites[0].lon: must be a number, got bool True",
        "stops.toml:sites[1].radius_m: must be between 1 and 5000, got 0",
    ]


def test_duplicate_ids_are_rejected_even_when_derived_from_names() -> None:
    text = '[[sites]]\nname = "Mairie"\nlat = 1\nlon = 2\n[[sites]]\nname = "MAIRIE!"\nlat = 3\nlon = 4\n'
    assert errors_of(text, "s.toml") == ["s.toml:sites[1].id: id 'mairie' is already used by sites[0]"]


def test_generated_id_prefix_is_reserved_and_odd_ids_rejected() -> None:
    text = (
        '[[sites]]\nid = "gh-u0abcde"\nname = "A"\nlat = 1\nlon = 2\n'
        '[[sites]]\nid = "a b"\nname = "B"\nlat = 1\nlon = 2\n'
    )
    errors = errors_of(text, "s.toml")
    assert (
        errors[0] == "s.toml:sites[0].id: 'gh-u0abcde' must not start with 'gh-' (reserved for generated ids)"
    )
    assert errors[1].startswith("s.toml:sites[1].id: 'a b' is not a valid id")


def test_empty_or_broken_toml_is_rejected() -> None:
    assert errors_of("# nothing yet\n", "s.toml") == [
        "s.toml:sites: no sites: expected one or more [[sites]] tables"
    ]
    assert errors_of("[[sites]\n", "s.toml")[0].startswith("s.toml: not valid TOML:")
    assert errors_of('site = 1\n[[sites]]\nname = "A"\nlat = 1\nlon = 2\n', "s.toml") == [
        "s.toml:site: unknown key (known keys here: sites)"
    ]


def feature(lon: Any, lat: Any, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": props}


def geojson(*features: Any) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def test_geojson_reads_coordinates_as_lon_then_lat_and_ignores_gis_properties() -> None:
    text = geojson(feature(1.278, 43.998, name="La Poste", radius_m=60, commune="Saint-Agnan", fid=7))
    (site,) = parse_geojson(text).sites
    assert (site.lat, site.lon) == (43.998, 1.278)
    assert (site.id, site.radius_m, site.commune) == ("la-poste", 60.0, "Saint-Agnan")


def test_geojson_errors_point_at_the_coordinate_or_property() -> None:
    text = geojson(
        feature(1.0, 43.0, name="Ok"),
        feature(200.0, 43.0, name="Lon too big"),
        feature(1.0, 43.0, radius_m=-5),
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
        feature(1.0, 43.0, name="Ok"),
    )
    assert errors_of(text, "stops.geojson") == [
        "stops.geojson:features[1].geometry.coordinates[0]: must be between -180 and 180, got 200.0",
        "stops.geojson:features[2].properties.name: missing (this key is required)",
        "stops.geojson:features[2].properties.radius_m: must be between 1 and 5000, got -5",
        "stops.geojson:features[3].geometry: must be a Point geometry",
        "stops.geojson:features[4].id: id 'ok' is already used by features[0]",
    ]


def test_geojson_that_is_not_a_feature_collection_is_rejected() -> None:
    assert errors_of("{not json", "a.geojson")[0].startswith("a.geojson: not valid JSON:")
    assert errors_of('{"type": "Feature"}', "a.geojson") == [
        "a.geojson:type: must be a GeoJSON FeatureCollection"
    ]
    assert errors_of(geojson(), "a.json") == [
        "a.json:features: no features: expected a list of Point features"
    ]


# -- matching ---------------------------------------------------------------------------------------


def planned(radius_m: float = 80.0) -> Catalog:
    return Catalog([Site("poste", "La Poste", *POSTE, radius_m)])


def test_point_inside_a_planned_radius_gets_that_site() -> None:
    site = planned().match(*offset_m(*POSTE, 50.0, 30.0))
    assert site is not None and site.id == "poste" and site.planned


def test_nearest_planned_site_wins_when_radii_overlap() -> None:
    near = offset_m(*POSTE, 0.0, 120.0)
    catalog = Catalog([Site("a", "A", *POSTE, 200.0), Site("b", "B", *near, 200.0)])
    site = catalog.match(*offset_m(*POSTE, 0.0, 100.0))
    assert site is not None and site.id == "b"


def test_point_outside_every_radius_gets_a_remembered_generated_site() -> None:
    catalog = planned()
    place = offset_m(*POSTE, 0.0, 300.0)
    site = catalog.match(*place)
    assert site is not None
    assert (site.id, site.name, site.planned) == (site_id_for(*place), None, False)
    assert catalog.discovered == [site]


def test_same_place_next_time_gets_the_same_id_even_across_a_cell_border() -> None:
    catalog = Catalog()
    # Walk east in 5 m steps until the geohash cell changes: a border between two points 5 m apart.
    west = POSTE
    while site_id_for(*offset_m(*west, 0.0, 5.0)) == site_id_for(*west):
        west = offset_m(*west, 0.0, 5.0)
    east = offset_m(*west, 0.0, 5.0)
    first = catalog.match(*west)
    again = catalog.match(*east)
    assert first is not None and again is not None
    assert site_id_for(*east) != first.id
    assert again.id == first.id
    assert len(catalog.discovered) == 1


def test_discovered_sites_survive_a_restart_through_plain_dicts() -> None:
    before = Catalog()
    site = before.match(*POSTE)
    saved = json.loads(json.dumps(before.discovered_to_dicts()))
    after = Catalog()
    after.load_discovered(saved)
    assert after.match(*offset_m(*POSTE, 20.0, -20.0)) == site


def test_damaged_discovered_list_is_rejected_with_paths() -> None:
    catalog = Catalog()
    with pytest.raises(CatalogError) as info:
        catalog.load_discovered([{"id": "poste", "lat": 1.0, "lon": 2.0}, {"id": "gh-u0abcde", "lat": None}])
    assert info.value.errors == [
        "discovered:[0].id: 'poste' must start with 'gh-' (reserved for generated ids)",
        "discovered:[1].lat: missing (this key is required)",
        "discovered:[1].lon: missing (this key is required)",
    ]
    assert catalog.discovered == []


def test_planned_site_overrides_a_place_discovered_there_before() -> None:
    discovered = Catalog().match(*POSTE)
    assert discovered is not None
    catalog = Catalog([Site("poste", "La Poste", *POSTE, 80.0)], discovered=[discovered])
    site = catalog.match(*POSTE)
    assert site is not None and site.id == "poste"


def test_invalid_position_matches_nothing_and_remembers_nothing() -> None:
    catalog = Catalog()
    assert catalog.match(float("nan"), 1.0) is None
    assert catalog.discovered == []
