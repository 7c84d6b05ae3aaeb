"""Where a labelled probe run (a site survey, ``agentctl test --label TEXT``) goes on the map.

The plan wins, then the label:

- a run made at a detected stop carries its ``stop_id``: at a planned site it is a survey of that
  site; at a place not in the plan (a generated ``gh-`` id) that place becomes a *candidate* site,
  named by the label, with its visits (shore power, printer) and the run's figures;
- a run made before the bus counted as stopped has no ``stop_id``: it is placed at the GPS fix of
  the same boot nearest in time (within :data:`GPS_WITHIN_S`). A fix inside a planned site's radius
  makes it a survey of that site; else it joins the candidate of the same label (case and spacing
  ignored), or starts one there. Without a fix the candidate is listed, not drawn.

A run counts once: when a received visit of the same vehicle, boot and site spans the run, the
visit's medians already hold it and the run adds only its label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from agent.core.catalog import Catalog, Site, slug
from agent.core.geo import valid_position
from collector.aggregate import SiteAcc
from collector.map_records import RunFacts, VisitFacts

GPS_STREAM = "telemetry/gps"
#: A survey run starts a minute or so after the bus halts (settle time) and the bus then stands
#: still: a fix up to 5 minutes away in time is still taken where the run was made.
GPS_WITHIN_S = 300.0

Position = tuple[float, float]
Locate = Callable[[RunFacts], Position | None]


class Coverage:
    """The spans of the received visits, to tell whether a visit already summarised a run."""

    def __init__(self) -> None:
        self._spans: dict[tuple[str, str], list[tuple[str | None, float, float]]] = {}

    def add(self, visit: VisitFacts) -> None:
        if visit.site_id is None or visit.arrival_mono is None or visit.departure_mono is None:
            return
        key = (visit.vehicle, visit.site_id)
        self._spans.setdefault(key, []).append((visit.boot_id, visit.arrival_mono, visit.departure_mono))

    def covers(self, run: RunFacts, site_id: str) -> bool:
        return any(
            boot == run.boot_id and start <= run.mono <= end
            for boot, start, end in self._spans.get((run.vehicle, site_id), ())
        )


def place_runs(
    runs: Iterable[RunFacts],
    sites: dict[str, SiteAcc],
    *,
    coverage: Coverage,
    plan: Catalog,
    locate: Locate,
    operator: str | None,
) -> None:
    """Add each run to its site in ``sites``, making candidate sites as needed (see module docstring)."""
    candidates: dict[str, SiteAcc] = {}  # folded label -> candidate site
    # Runs at a detected stop first: a candidate they name is there for a later run of the same label.
    for run in sorted(runs, key=lambda r: (r.stop_id is None, r.wall)):
        if run.stop_id is not None:
            site = _site(sites, run.stop_id, run.stop_id)
            if site.position() is None:  # its visit never arrived: where the run was made
                _place(site, locate(run))
            covered = coverage.covers(run, run.stop_id)
        else:
            site = _site_without_stop(run, sites, candidates, plan, locate)
            covered = False
        site.add_run(run, operator, covered=covered)
        if not site.planned:
            candidates.setdefault(run.label.casefold(), site)


def _site_without_stop(
    run: RunFacts, sites: dict[str, SiteAcc], candidates: dict[str, SiteAcc], plan: Catalog, locate: Locate
) -> SiteAcc:
    fix = locate(run)
    planned = plan.match(*fix) if fix is not None else None
    if planned is not None and planned.planned:
        return _site(sites, planned.id, planned.id)
    known = candidates.get(run.label.casefold())
    if known is not None:
        return known
    site = _site(sites, survey_key(run.label), None)
    _place(site, fix)
    return site


def survey_key(label: str) -> str:
    """The id of a candidate known only by its label: ``survey-`` and the label's slug (or hash)."""
    return "survey-" + (slug(label) or hashlib.sha256(label.casefold().encode()).hexdigest()[:12])


def _site(sites: dict[str, SiteAcc], key: str, site_id: str | None) -> SiteAcc:
    site = sites.get(key)
    if site is None:
        site = sites[key] = SiteAcc(key, site_id)
    return site


def _place(site: SiteAcc, fix: Position | None) -> None:
    if fix is not None:
        site.place(*fix)


def planned_catalog(sites: Iterable[SiteAcc], catalog: Iterable[Site], radius_m: float) -> Catalog:
    """The plan as a Catalog to match fixes against: the catalog's sites, plus the planned sites
    visits named that the catalog lacks (at where the buses parked, with ``radius_m``)."""
    known = list(catalog)
    ids = {site.id for site in known}
    for acc in sites:
        where = acc.position()
        if acc.planned and acc.site_id is not None and acc.site_id not in ids and where is not None:
            known.append(Site(acc.site_id, acc.name, where[0], where[1], radius_m))
            ids.add(acc.site_id)
    return Catalog(known)


def gps_fix(rows: Iterable[dict[str, object]]) -> Position | None:
    """The first usable position among GPS snapshot payloads (given nearest first)."""
    for snap in rows:
        lat, lon, mode = snap.get("lat_deg"), snap.get("lon_deg"), snap.get("fix_mode")
        if snap.get("ok", True) is not True or not isinstance(mode, int) or mode < 2:
            continue
        if isinstance(lat, float | int) and isinstance(lon, float | int) and valid_position(lat, lon):
            return float(lat), float(lon)
    return None
