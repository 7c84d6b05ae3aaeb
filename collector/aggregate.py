"""One stop site's figures over all its visits and survey runs, graded by ``agent.core.grading``.

Each visit is added once (one pass over the stream, a few floats kept per site); a site's median is
the median of its visits' medians, each weighted by how many readings or runs made it, so a visit
with ten probe runs counts ten times one with a single run. Minima are exact. The grade is
``grading.grade_stop`` on those aggregated figures: the same rules and floors as a single visit.

With an operator filter (``--operator``) only figures measured on that operator count: its signal
groups, and the probe runs of visits spent mainly on it. Visits, shore power and printer do not
depend on the operator and always count.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Literal

from agent.core.geo import valid_position
from agent.core.grading import (
    GRADES,
    Grade,
    LinkFigures,
    SignalMedians,
    StopEvidence,
    StopGrade,
    grade_stop,
    main_signal,
)
from agent.core.timebase import MAX_PLAUSIBLE_WALL, MIN_PLAUSIBLE_WALL
from collector.map_records import Link, PortalSample, RunFacts, SignalSample, VisitFacts
from drivers.modem import quality
from drivers.snapshots import Quality

SiteKind = Literal["planned", "discovered", "candidate"]

#: Table and summary order: the worst measured grade first, sites with nothing measured last.
WORST_FIRST: tuple[Grade, ...] = (*reversed([g for g in GRADES if g != "unknown"]), "unknown")

#: What shore power did at one visit, in planners' words (``ShorePower.state`` of the visit).
SHORE_WORDS = {"seen": "worked", "lost": "failed", "never": "absent", "unknown": "not measured"}


def _iso_bound(wall: float) -> str:
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).isoformat()[:10]


# Visits of a box whose clock was never set carry 1970 dates: they count, but not as first/last visit.
_ISO_LOW, _ISO_HIGH = _iso_bound(MIN_PLAUSIBLE_WALL), _iso_bound(MAX_PLAUSIBLE_WALL)


def weighted_median(pairs: Iterable[tuple[float, float]]) -> float | None:
    """The median of ``(value, weight)`` pairs; with equal weights it is ``statistics.median``."""
    ordered = sorted(pair for pair in pairs if pair[1] > 0)
    half = sum(weight for _, weight in ordered) / 2
    total = 0.0
    for index, (value, weight) in enumerate(ordered):
        total += weight
        if total > half:
            return value
        if total == half:  # the middle falls between two values: their mean, as for an even count
            return (value + ordered[index + 1][0]) / 2
    return None


class _Figure:
    """Weighted values for a median, and the lowest value seen."""

    __slots__ = ("low", "pairs")

    def __init__(self) -> None:
        self.pairs: list[tuple[float, float]] = []
        self.low = math.inf

    def add(self, value: float | None, weight: float, low: float | None = None) -> None:
        if value is None or weight <= 0:
            return
        self.pairs.append((value, weight))
        self.low = min(self.low, value if low is None else low)

    def median(self) -> float | None:
        return weighted_median(self.pairs)

    def minimum(self) -> float | None:
        return None if math.isinf(self.low) else self.low


class _SignalAcc:
    __slots__ = ("figures", "samples")

    def __init__(self) -> None:
        self.samples = 0
        self.figures = (_Figure(), _Figure(), _Figure())  # RSRP, RSRQ, SINR


class _PortalAcc:
    __slots__ = ("failures", "fetch", "fetches")

    def __init__(self) -> None:
        self.fetches = self.failures = 0
        self.fetch = _Figure()


@dataclasses.dataclass(frozen=True)
class SignalFigures:
    """One operator and radio technology at a site: medians and minima over every reading."""

    operator: str | None
    rat: str | None
    samples: int
    rsrp_dbm: float | None
    rsrp_min_dbm: float | None
    rsrq_db: float | None
    rsrq_min_db: float | None
    sinr_db: float | None
    sinr_min_db: float | None

    @property
    def quality(self) -> Quality:
        return quality.grade(self.rsrp_dbm, self.rsrq_db, self.sinr_db)


@dataclasses.dataclass(frozen=True)
class PortalFigures:
    url: str
    fetches: int
    failures: int
    fetch_ms: float | None


class LinkAcc:
    """Connectivity evidence of one site: readings, runs, weighted medians, per operator and portal."""

    def __init__(self) -> None:
        self.modem_readings = self.registered = self.runs = self.usable_runs = 0
        self.rtt, self.loss, self.dns = _Figure(), _Figure(), _Figure()
        self.down, self.up, self.fetch = _Figure(), _Figure(), _Figure()
        self.portals: dict[str, _PortalAcc] = {}
        self.signal: dict[tuple[str | None, str | None], _SignalAcc] = {}

    def add(self, link: Link, operator: str | None) -> bool:
        """Add what counts under the operator filter; True when the link's probe runs counted."""
        if operator is None or link.operator == operator:
            wanted = link.signal if operator is None else [s for s in link.signal if s.operator == operator]
            self.modem_readings += link.modem_readings
            self.registered += link.registered
            self._probes(link)
            self._signal(wanted)
            return True
        wanted = [s for s in link.signal if s.operator == operator]
        if wanted:  # the modem was mostly on another operator: keep only this one's signal
            readings = sum(s.samples for s in wanted)
            self.modem_readings += readings
            self.registered += readings
            self._signal(wanted)
        return False

    def _probes(self, link: Link) -> None:
        runs = link.runs
        self.runs += runs
        self.usable_runs += min(link.usable_runs, runs)
        for figure, value in (
            (self.rtt, link.rtt_ms),
            (self.loss, link.loss),
            (self.dns, link.dns_ms),
            (self.down, link.down_bps),
            (self.up, link.up_bps),
        ):
            figure.add(value, runs)
        for portal in link.portals:
            self._portal(portal)

    def _portal(self, portal: PortalSample) -> None:
        acc = self.portals.get(portal.url)
        if acc is None:
            acc = self.portals[portal.url] = _PortalAcc()
        acc.fetches += portal.fetches
        acc.failures += portal.failures
        answered = portal.fetches - portal.failures
        acc.fetch.add(portal.fetch_ms, answered)
        self.fetch.add(portal.fetch_ms, answered)

    def _signal(self, groups: Iterable[SignalSample]) -> None:
        for group in groups:
            key = (group.operator, group.rat)
            acc = self.signal.get(key)
            if acc is None:
                acc = self.signal[key] = _SignalAcc()
            acc.samples += group.samples
            for figure, spread in zip(
                acc.figures, (group.rsrp_dbm, group.rsrq_db, group.sinr_db), strict=True
            ):
                if spread is not None:
                    figure.add(spread.median, spread.samples, spread.low)

    def signal_figures(self) -> tuple[SignalFigures, ...]:
        """Per operator and RAT, the most read first."""
        found = [
            SignalFigures(
                operator,
                rat,
                acc.samples,
                *(value for figure in acc.figures for value in (figure.median(), figure.minimum())),
            )
            for (operator, rat), acc in self.signal.items()
        ]
        return tuple(sorted(found, key=lambda s: (-s.samples, s.operator or "", s.rat or "")))

    def portal_figures(self) -> tuple[PortalFigures, ...]:
        return tuple(
            PortalFigures(url, acc.fetches, acc.failures, acc.fetch.median())
            for url, acc in sorted(self.portals.items())
        )

    def evidence(self, signal: Iterable[SignalFigures]) -> StopEvidence:
        """What ``grading.grade_stop`` decides from, as for a single visit."""
        return StopEvidence(
            signal=tuple(
                SignalMedians(s.operator, s.rat, s.samples, s.rsrp_dbm, s.rsrq_db, s.sinr_db) for s in signal
            ),
            modem_readings=self.modem_readings,
            registered_readings=self.registered,
            runs=self.runs,
            usable_runs=self.usable_runs,
            link=LinkFigures(self.rtt.median(), self.loss.median(), self.down.median(), self.up.median()),
        )


@dataclasses.dataclass(frozen=True)
class SiteFigures:
    """Everything the maps show of one site. Throughput in bit/s, times in ms, loss and share 0..1."""

    key: str
    site_id: str | None
    name: str | None
    kind: SiteKind
    lat: float | None
    lon: float | None
    grade: Grade
    grade_reason: str
    visits: int
    vehicles: tuple[str, ...]
    first_visit: str | None
    last_visit: str | None
    visit_grades: dict[Grade, int]
    runs: int
    usable_runs: int
    rtt_ms: float | None
    loss: float | None
    dns_ms: float | None
    fetch_ms: float | None
    down_bps: float | None
    up_bps: float | None
    main_operator: str | None
    signal: tuple[SignalFigures, ...]
    portals: tuple[PortalFigures, ...]
    shore: dict[str, int]  # SHORE_WORDS value -> visits
    shore_off_s: float
    printer: dict[str, int]  # IPP problem keyword -> visits it was seen at
    printer_visits: int
    labels: tuple[str, ...]
    surveys: int

    @property
    def usable_share(self) -> float | None:
        return self.usable_runs / self.runs if self.runs else None

    @property
    def severity(self) -> int:
        return WORST_FIRST.index(self.grade)


class SiteAcc:
    """Collects one site's visits and survey runs; :meth:`finish` makes its :class:`SiteFigures`."""

    def __init__(self, key: str, site_id: str | None) -> None:
        self.key, self.site_id = key, site_id
        self.planned = False
        self.name: str | None = None
        self._named_at = ""
        self.fixed: tuple[float, float] | None = None  # a catalog position beats where buses parked
        self.lats: list[float] = []
        self.lons: list[float] = []
        self.visits = 0
        self.vehicles: set[str] = set()
        self.first, self.last = "", ""
        self.visit_grades: Counter[Grade] = Counter()
        self.link = LinkAcc()
        self.shore: Counter[str] = Counter()
        self.shore_off_s = 0.0
        self.printer: Counter[str] = Counter()
        self.printer_visits = 0
        self.labels: dict[str, str] = {}  # folded label -> as last written
        self.surveys = 0

    def add_visit(self, visit: VisitFacts, operator: str | None) -> None:
        self.visits += 1
        self.vehicles.add(visit.vehicle)
        self.planned = self.planned or visit.planned
        when = visit.departure or visit.arrival or ""
        if visit.site_name is not None and when >= self._named_at:
            self.name, self._named_at = visit.site_name, when
        self.place(visit.lat, visit.lon)
        if visit.arrival is not None and _ISO_LOW <= visit.arrival < _ISO_HIGH:
            self.first = min(self.first or visit.arrival, visit.arrival)
        if visit.departure is not None and _ISO_LOW <= visit.departure < _ISO_HIGH:
            self.last = max(self.last, visit.departure)
        if self.link.add(visit.link, operator) and visit.link.grade is not None:
            self.visit_grades[visit.link.grade] += 1
        self.shore[SHORE_WORDS[visit.shore]] += 1
        if visit.shore == "lost":
            self.shore_off_s += visit.shore_off_s
        self.printer.update(set(visit.printer))
        self.printer_visits += bool(visit.printer)

    def add_run(self, run: RunFacts, operator: str | None, *, covered: bool) -> None:
        """A labelled run; its figures count unless a visit of this site already holds them."""
        self.surveys += 1
        self.vehicles.add(run.vehicle)
        self.labels[run.label.casefold()] = run.label
        if not covered:
            self.link.add(run.link, operator)

    def place(self, lat: float | None, lon: float | None) -> None:
        if lat is not None and lon is not None and valid_position(lat, lon):
            self.lats.append(lat)
            self.lons.append(lon)

    def position(self) -> tuple[float, float] | None:
        if self.fixed is not None:
            return self.fixed
        if not self.lats:
            return None
        return statistics.median(self.lats), statistics.median(self.lons)

    @property
    def kind(self) -> SiteKind:
        if self.planned:
            return "planned"
        return "candidate" if self.labels else "discovered"

    def finish(self, operator: str | None) -> SiteFigures:
        link = self.link
        signal = link.signal_figures()
        graded = self._grade(link.evidence(signal), operator)
        main = main_signal([SignalMedians(s.operator, s.rat, s.samples, s.rsrp_dbm) for s in signal])
        where = self.position()
        name = self.name if self.name is not None or not self.labels else list(self.labels.values())[-1]
        return SiteFigures(
            key=self.key,
            site_id=self.site_id,
            name=name,
            kind=self.kind,
            lat=where[0] if where else None,
            lon=where[1] if where else None,
            grade=graded.grade,
            grade_reason=graded.reason,
            visits=self.visits,
            vehicles=tuple(sorted(self.vehicles)),
            first_visit=self.first or None,
            last_visit=self.last or None,
            visit_grades={g: self.visit_grades[g] for g in WORST_FIRST if self.visit_grades[g]},
            runs=link.runs,
            usable_runs=link.usable_runs,
            rtt_ms=link.rtt.median(),
            loss=link.loss.median(),
            dns_ms=link.dns.median(),
            fetch_ms=link.fetch.median(),
            down_bps=link.down.median(),
            up_bps=link.up.median(),
            main_operator=main.operator_code if main is not None else None,
            signal=signal,
            portals=link.portal_figures(),
            shore={word: self.shore[word] for word in SHORE_WORDS.values()},
            shore_off_s=self.shore_off_s,
            printer=dict(sorted(self.printer.items(), key=lambda item: (-item[1], item[0]))),
            printer_visits=self.printer_visits,
            labels=tuple(self.labels.values()),
            surveys=self.surveys,
        )

    def _grade(self, evidence: StopEvidence, operator: str | None) -> StopGrade:
        link = self.link
        if link.runs == 0 and link.modem_readings == 0:
            if self.visits == 0 and self.surveys == 0:
                return StopGrade("unknown", "not visited")
            if operator is not None:
                return StopGrade("unknown", f"nothing measured on operator {operator}")
        return grade_stop(evidence)
