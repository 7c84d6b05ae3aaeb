"""The planners' per-stop maps: stops.html, stops.geojson and stops.csv from the collector's store.

:func:`write_maps` is the one entry point (``busagent-collector map`` and the simulated-day runner
call it). It reads the store through three methods only (``stream_payloads``, ``payloads_near``,
``PayloadRow``), one pass over the stop visits and one over the labelled probe runs, so another
database can stand in for SQLite. How sites, grades and candidate sites are decided: docs/maps.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from agent.core.catalog import DEFAULT_RADIUS_M, Site
from agent.core.grading import Grade
from collector import candidates, render_files, render_html
from collector.aggregate import SiteAcc, SiteFigures
from collector.map_columns import KIND_WORDS, columns
from collector.map_records import RunFacts, decode_run, decode_visit
from collector.store import PayloadRow

VISITS = "stops/visit"
PROBES = "probes/result"
FILES = ("stops.html", "stops.geojson", "stops.csv")


class MapStore(Protocol):
    """What the maps read of a store (collector.store.Store; a PostgreSQL store offers the same)."""

    def stream_payloads(
        self, stream: str, *, since: float | None = ..., with_text: str | None = ..., chunk: int = ...
    ) -> Iterable[PayloadRow]: ...

    def payloads_near(
        self, vehicle: str, stream: str, boot_id: str, mono: float, *, within_s: float, limit: int = ...
    ) -> list[PayloadRow]: ...


@dataclasses.dataclass(frozen=True)
class MapData:
    sites: tuple[SiteFigures, ...]  # worst first
    operator_names: dict[str, str]
    unreadable: int  # payloads that are not a readable visit or probe run
    unplaced: int  # visits with no site (a stop confirmed by shore power, without a position)


@dataclasses.dataclass(frozen=True)
class MapSummary:
    """What :func:`write_maps` wrote: the files, and each site's grade by site id (or survey key)."""

    sites: int
    files: tuple[Path, ...]
    grades: dict[str, Grade]
    unreadable: int
    unplaced: int


def write_maps(
    store: MapStore,
    out_dir: str | Path,
    *,
    since: datetime.datetime | None = None,
    operator: str | None = None,
    catalog: Sequence[Site] = (),
    leaflet_dir: Path | None = render_html.LEAFLET_DIR,
) -> MapSummary:
    """Write stops.html, stops.geojson and stops.csv into ``out_dir`` (made if missing).

    ``since``: only records made from then on (a naive datetime is local time). ``operator``:
    MCC-MNC whose figures alone count (see :func:`parse_operator`). ``catalog``: planned sites to
    show even when no visit reached them.
    """
    code = parse_operator(operator) if operator is not None else None
    data = collect(store, since=since, operator=code, catalog=catalog)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols = columns(data.sites, data.operator_names)
    lines = summary_lines(data, since=since, operator=code)
    meta = {"generated": _now_iso(), "since": since.isoformat() if since else None, "operator": code}
    render_files.write_text(out / "stops.geojson", render_files.geojson_text(data.sites, cols, meta))
    render_files.write_text(out / "stops.csv", render_files.csv_text(data.sites, cols), encoding="utf-8-sig")
    page = render_html.html_text(
        data.sites, data.operator_names, title=_title(code), summary=lines, leaflet_dir=leaflet_dir
    )
    render_files.write_text(out / "stops.html", page)
    return MapSummary(
        sites=len(data.sites),
        files=tuple(out / name for name in FILES),
        grades={site.site_id or site.key: site.grade for site in data.sites},
        unreadable=data.unreadable,
        unplaced=data.unplaced,
    )


def collect(
    store: MapStore,
    *,
    since: datetime.datetime | None = None,
    operator: str | None = None,
    catalog: Sequence[Site] = (),
) -> MapData:
    """Every site's figures, worst first: visits in one pass, then the labelled probe runs."""
    low = since.timestamp() if since is not None else None
    sites: dict[str, SiteAcc] = {}
    for site in catalog:
        acc = sites[site.id] = SiteAcc(site.id, site.id)
        acc.planned, acc.name, acc.fixed = True, site.name, (site.lat, site.lon)
    coverage = candidates.Coverage()
    unreadable = unplaced = 0
    for row in store.stream_payloads(VISITS, since=low):
        visit = decode_visit(row.vehicle, row.payload)
        if visit is None:
            unreadable += 1
        elif visit.site_id is None:
            unplaced += 1
        else:
            acc = sites.get(visit.site_id) or sites.setdefault(
                visit.site_id, SiteAcc(visit.site_id, visit.site_id)
            )
            acc.add_visit(visit, operator)
            coverage.add(visit)
    runs: list[RunFacts] = []
    for row in store.stream_payloads(PROBES, since=low, with_text="label"):
        run = decode_run(row.vehicle, row.boot_id, row.mono, row.wall, row.payload)
        if run is None:
            unreadable += 1
        else:
            runs.append(run)
    candidates.place_runs(
        runs,
        sites,
        coverage=coverage,
        plan=candidates.planned_catalog(sites.values(), catalog, DEFAULT_RADIUS_M),
        locate=lambda run: _locate(store, run),
        operator=operator,
    )
    figures = sorted((acc.finish(operator) for acc in sites.values()), key=_worst_first)
    names = {
        r.link.operator: r.operator_name
        for r in sorted(runs, key=lambda r: r.wall)
        if r.link.operator and r.operator_name
    }
    return MapData(tuple(figures), names, unreadable, unplaced)


def _locate(store: MapStore, run: RunFacts) -> candidates.Position | None:
    rows = store.payloads_near(
        run.vehicle, candidates.GPS_STREAM, run.boot_id, run.mono, within_s=candidates.GPS_WITHIN_S
    )
    return candidates.gps_fix(row.payload for row in rows)


def _worst_first(site: SiteFigures) -> tuple[int, float, str]:
    share = site.usable_share
    return (site.severity, 1.0 if share is None else share, (site.name or site.key).casefold())


def summary_lines(data: MapData, *, since: datetime.datetime | None, operator: str | None) -> list[str]:
    """The few lines under the page title: what is shown, of which period and operator."""
    kinds = {kind: sum(site.kind == kind for site in data.sites) for kind in KIND_WORDS}
    visits = sum(site.visits for site in data.sites)
    lines = [
        f"{len(data.sites)} sites ({kinds['planned']} planned, {kinds['discovered']} not in the plan,"
        f" {kinds['candidate']} candidates surveyed), {visits} visits; written {_now_local()}.",
        f"Period: {'since ' + since.strftime('%Y-%m-%d %H:%M') if since else 'everything received'}."
        f" Operator: {operator if operator else 'all'}.",
    ]
    if data.unplaced or data.unreadable:
        lines.append(
            f"Left out: {_count(data.unplaced, 'visit')} without a place (no position),"
            f" {_count(data.unreadable, 'record')} that could not be read."
        )
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _title(operator: str | None) -> str:
    return "busagent: connectivity at the stops" + (f" (operator {operator})" if operator else "")


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _now_local() -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")


# -- command-line values --------------------------------------------------------------------------------

_OPERATOR_RE = re.compile(r"^(\d{3})-?(\d{2,3})$")


def parse_operator(text: str) -> str:
    """ "208-01" or "20801" -> "20801" (MCC and MNC as the modem reports them); ValueError otherwise."""
    match = _OPERATOR_RE.match(text.strip())
    if match is None:
        raise ValueError(f"--operator {text!r}: expected MCC-MNC, like 208-01 or 20801")
    return match.group(1) + match.group(2)


def parse_since(text: str) -> datetime.datetime:
    """ "2026-03-01" (local midnight) or an ISO 8601 date and time; ValueError otherwise."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a date like 2026-03-01 or a date and time like 2026-03-01T08:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()
