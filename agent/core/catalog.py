"""The stop catalog: planned sites from TOML or GeoJSON text, and stable ids for places found on the road.

Parsing takes text, not paths, so the core stays free of I/O: the runtime reads the file and
passes its name as ``source`` for error messages (``stops.toml:sites[3].lat: ...``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

from agent.config.loader import ConfigError
from agent.core.geo import haversine_m, site_id_for, valid_position

#: Radius when a planned site gives none: a village square or car park the bus may stand anywhere on.
DEFAULT_RADIUS_M = 100.0
#: Larger than any square a bus parks on; a bigger radius is a typo (km typed as m) and would swallow
#: neighbouring villages.
MAX_RADIUS_M = 5000.0
#: How close a new halt must be to a place found before to get that place's id again: GPS spread
#: plus a bus parking at the other end of the same square, without merging two streets apart.
DISCOVERED_RADIUS_M = 150.0

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_GENERATED_PREFIX = "gh-"
_SITE_KEYS = ("id", "name", "lat", "lon", "radius_m", "commune", "notes")


@dataclasses.dataclass(frozen=True)
class Site:
    """A place where the bus stops: planned (from the catalog) or discovered (``planned=False``)."""

    id: str
    name: str | None
    lat: float
    lon: float
    radius_m: float
    commune: str | None = None
    notes: str | None = None
    planned: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form, for persistence and payloads."""
        return dataclasses.asdict(self)


class CatalogError(ConfigError):
    """A catalog (or saved discovered sites) is invalid; ``errors`` holds one ``file:path: problem`` each."""


def slug(name: str) -> str:
    """An id from a name: accents dropped, lower case, runs of other characters become ``-``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].rstrip("-")


class Catalog:
    """Planned sites plus the places discovered so far; :meth:`match` names the place of a halt."""

    def __init__(
        self,
        sites: Iterable[Site] = (),
        *,
        discovered: Iterable[Site] = (),
        discovered_radius_m: float = DISCOVERED_RADIUS_M,
    ) -> None:
        self.sites: tuple[Site, ...] = tuple(sites)
        self.discovered_radius_m = discovered_radius_m
        self._discovered: list[Site] = []
        self._ids: set[str] = set()
        for site in self.sites:
            self._claim(site.id)
        for site in discovered:
            self._remember(site)

    @property
    def discovered(self) -> list[Site]:
        """Places found on the road, oldest first (a copy: use :meth:`match` to add)."""
        return list(self._discovered)

    def match(self, lat: float, lon: float) -> Site | None:
        """The site of a halt at (lat, lon); None only for an invalid position.

        Planned sites win (nearest whose radius holds the point); then the nearest place found
        before within ``discovered_radius_m``, so a bus parking a few metres across a geohash cell
        border next week still gets last week's id; else a new place, remembered from now on.
        """
        if not valid_position(lat, lon):
            return None
        planned = _nearest(self.sites, lat, lon, lambda site: site.radius_m)
        if planned is not None:
            return planned
        known = _nearest(self._discovered, lat, lon, lambda _site: self.discovered_radius_m)
        if known is not None:
            return known
        site_id = site_id_for(lat, lon)
        for site in self._discovered:
            if site.id == site_id:  # same ~150 m cell but just beyond the radius: still one place
                return site
        new = Site(site_id, None, lat, lon, self.discovered_radius_m, planned=False)
        self._remember(new)
        return new

    def discovered_to_dicts(self) -> list[dict[str, Any]]:
        """Discovered places as plain dicts, for the runtime to save across restarts."""
        return [site.to_dict() for site in self._discovered]

    def load_discovered(self, items: Any, source: str = "discovered") -> None:
        """Add discovered places saved by :meth:`discovered_to_dicts`; raise CatalogError if damaged."""
        checker = _Checker(source)
        if not isinstance(items, list):
            raise CatalogError([f"{source}: must be a list of sites, got {_describe(items)}"])
        good: list[Site] = []
        seen = set(self._ids)
        for i, item in enumerate(items):
            site = checker.site(item, _under(f"[{i}]"), discovered=True)
            if site is not None and site.id in seen:
                checker.error(f"[{i}].id", f"id {site.id!r} is already in the catalog")
            elif site is not None:
                seen.add(site.id)
                good.append(site)
        if checker.errors:
            raise CatalogError(checker.errors)
        for site in good:
            self._remember(site)

    def _remember(self, site: Site) -> None:
        self._claim(site.id)
        self._discovered.append(dataclasses.replace(site, planned=False))

    def _claim(self, site_id: str) -> None:
        if site_id in self._ids:
            raise ValueError(f"site id {site_id!r} is used twice")
        self._ids.add(site_id)


def _nearest(sites: Iterable[Site], lat: float, lon: float, radius: Callable[[Site], float]) -> Site | None:
    best: Site | None = None
    best_m = math.inf
    for site in sites:
        distance = haversine_m(lat, lon, site.lat, site.lon)
        if distance <= radius(site) and distance < best_m:
            best, best_m = site, distance
    return best


def parse_catalog(text: str, source: str) -> Catalog:
    """Parse a catalog, GeoJSON when ``source`` ends in .geojson or .json, TOML otherwise."""
    if source.lower().endswith((".geojson", ".json")):
        return parse_geojson(text, source)
    return parse_toml(text, source)


def parse_toml(text: str, source: str = "stops.toml") -> Catalog:
    """Planned sites from a TOML ``[[sites]]`` array; raise CatalogError listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError([f"{source}: not valid TOML: {exc}"]) from None
    checker = _Checker(source)
    for key in data:
        if key != "sites":
            checker.error(key, "unknown key (known keys here: sites)")
    raw_sites = data.get("sites")
    sites: list[Site | None] = []
    if not isinstance(raw_sites, list) or not raw_sites:
        checker.error("sites", "no sites: expected one or more [[sites]] tables")
    else:
        for i, raw in enumerate(raw_sites):
            sites.append(checker.site(raw, _under(f"sites[{i}]"), strict=True))
    return checker.catalog(sites, lambda i: f"sites[{i}]")


def parse_geojson(text: str, source: str = "stops.geojson") -> Catalog:
    """Planned sites from a FeatureCollection of Points (coordinates are lon, lat, as GeoJSON says).

    Unknown properties are ignored: GIS tools add their own (QGIS ``fid``, uMap styling).
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CatalogError([f"{source}: not valid JSON: {exc}"]) from None
    checker = _Checker(source)
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise CatalogError([f"{source}:type: must be a GeoJSON FeatureCollection"])
    features = data.get("features")
    sites: list[Site | None] = []
    if not isinstance(features, list) or not features:
        checker.error("features", "no features: expected a list of Point features")
    else:
        sites = [checker.feature(feature, f"features[{i}]") for i, feature in enumerate(features)]
    return checker.catalog(sites, lambda i: f"features[{i}]")


class _Checker:
    """Validates site entries, collecting every error with its path instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{self.source}:{path}: {message}")

    def feature(self, feature: Any, at: str) -> Site | None:
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            self.error(at, "must be a GeoJSON Feature")
            return None
        geometry = feature.get("geometry")
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") != "Point":
            self.error(f"{at}.geometry", "must be a Point geometry")
            return None
        if not isinstance(coords, list) or len(coords) not in (2, 3):
            self.error(f"{at}.geometry.coordinates", "must be [lon, lat] (optionally with altitude)")
            return None
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            self.error(f"{at}.properties", f"must be an object, got {_describe(props)}")
            return None
        raw = {key: props[key] for key in _SITE_KEYS if key in props and key not in ("lat", "lon")}
        raw["lon"], raw["lat"] = coords[0], coords[1]
        where = {"lon": f"{at}.geometry.coordinates[0]", "lat": f"{at}.geometry.coordinates[1]"}
        return self.site(raw, lambda key: where.get(key, f"{at}.properties.{key}"))

    def site(
        self, raw: Any, path: Callable[[str], str], *, strict: bool = False, discovered: bool = False
    ) -> Site | None:
        """One site from a flat mapping; ``path(key)`` says where each key lives in the file."""
        if not isinstance(raw, dict):
            self.error(path("").rstrip("."), f"must be a table, got {_describe(raw)}")
            return None
        if strict:
            for key in raw:
                if key not in _SITE_KEYS:
                    self.error(path(key), f"unknown key (known keys here: {', '.join(sorted(_SITE_KEYS))})")
        before = len(self.errors)
        name = self.text(raw, "name", path, required=not discovered)
        lat = self.number(raw, "lat", path, lo=-90.0, hi=90.0)
        lon = self.number(raw, "lon", path, lo=-180.0, hi=180.0)
        radius = self.number(raw, "radius_m", path, lo=1.0, hi=MAX_RADIUS_M, default=DEFAULT_RADIUS_M)
        commune = self.text(raw, "commune", path)
        notes = self.text(raw, "notes", path)
        site_id = self.site_id(raw, name, path, discovered)
        if len(self.errors) > before or site_id is None or lat is None or lon is None or radius is None:
            return None
        return Site(site_id, name, lat, lon, radius, commune, notes, planned=not discovered)

    def site_id(
        self, raw: dict[str, Any], name: str | None, path: Callable[[str], str], gen: bool
    ) -> str | None:
        given = self.text(raw, "id", path, required=gen)
        if given is None:
            derived = slug(name) if name else ""
            if name and not derived:
                self.error(path("name"), f'{name!r} gives no usable id: add an id = "..." to this site')
            return derived or None
        if not _ID_RE.match(given):
            self.error(
                path("id"), f"{given!r} is not a valid id (letters, digits, '-', '_', '.'; at most 64)"
            )
        elif given.lower().startswith(_GENERATED_PREFIX) != gen:
            rule = "must start with" if gen else "must not start with"
            self.error(path("id"), f"{given!r} {rule} {_GENERATED_PREFIX!r} (reserved for generated ids)")
        return given

    def text(
        self, raw: dict[str, Any], key: str, path: Callable[[str], str], required: bool = False
    ) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.error(path(key), "missing (this key is required)")
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(path(key), f"must be a non-empty string, got {_describe(value)}")
            return None
        return value.strip()

    def number(
        self,
        raw: dict[str, Any],
        key: str,
        path: Callable[[str], str],
        *,
        lo: float,
        hi: float,
        default: float | None = None,
    ) -> float | None:
        value = raw.get(key)
        if value is None:
            if default is None:
                self.error(path(key), "missing (this key is required)")
            return default
        # bool is an int in Python, but `lat = true` is still a mistake.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.error(path(key), f"must be a number, got {_describe(value)}")
            return None
        if not lo <= value <= hi:
            self.error(path(key), f"must be between {lo:g} and {hi:g}, got {value!r}")
            return None
        return float(value)

    def catalog(self, sites: list[Site | None], where: Callable[[int], str]) -> Catalog:
        """The catalog of the good sites, or CatalogError with every problem (ids must be unique)."""
        first_of: dict[str, int] = {}
        for i, site in enumerate(sites):
            if site is None:
                continue
            if site.id in first_of:
                self.error(f"{where(i)}.id", f"id {site.id!r} is already used by {where(first_of[site.id])}")
            first_of.setdefault(site.id, i)
        if self.errors:
            raise CatalogError(self.errors)
        return Catalog(site for site in sites if site is not None)


def _under(prefix: str) -> Callable[[str], str]:
    """Paths of keys inside one entry (a closure per entry, so each keeps its own index)."""
    return lambda key: f"{prefix}.{key}"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
