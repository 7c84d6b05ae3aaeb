"""The stop-visit summary: what shore power, signal, probes and printer were like during one stop.

A :class:`VisitRecorder` is made at arrival, fed readings while the bus is parked, and turned
into a frozen :class:`StopVisit` at departure. Pure: every reading comes with its ``now``
(monotonic seconds); nothing here reads a clock.

Memory stays bounded however long the stop: no snapshot is kept, only streaming figures (counts,
min, max, totals) and, for medians, at most :data:`MEDIAN_SAMPLES` floats per series, thinned
evenly over time once full (see :class:`_Series`). A 10 h stop read every 10 s (3600 readings)
fits whole.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from array import array
from collections.abc import Callable
from typing import TypeVar

from agent.core.grading import (
    LinkFigures,
    StopEvidence,
    grade_stop,
    run_figures,
    run_usable,
)
from agent.core.stops import Arrived, Departed, DepartureForeseen, ForeseenWhy, shore_of
from agent.core.timebase import TimeStamp
from agent.core.visit_summary import (
    HttpMedians,
    PrinterProblem,
    ProbeMedians,
    ShorePower,
    SignalStats,
    Stat,
    StopVisit,
)
from agent.probes.results import SuiteResult
from drivers.printer.reasons import problem_keyword
from drivers.snapshots import ModemSnapshot, PowerSnapshot, PrinterSnapshot

#: Values kept per series for its median: a 10 h stop read every 10 s (3600) fits whole, longer is thinned.
MEDIAN_SAMPLES = 4096
#: Operator/RAT pairs and portal URLs tracked per stop: far above real use (4 French operators x 4
#: RATs, a handful of configured portals); a garbage-spewing modem cannot grow the summary past it.
MAX_SIGNAL_GROUPS = 16
MAX_URLS = 32
MAX_PRINTER_PROBLEMS = 32
#: Unplugging the shore cable is the last thing the crew does before driving off; an unplug this
#: close to departure is leaving, not a dead socket. Longer, and the bus stood without power.
LEAVING_GRACE_S = 15 * 60.0

_K = TypeVar("_K")
_V = TypeVar("_V")


class VisitRecorder:
    """Collects one stop's readings; :meth:`finish` makes the :class:`StopVisit`."""

    def __init__(
        self, arrived: Arrived, stamp: TimeStamp, *, leaving_grace_s: float = LEAVING_GRACE_S
    ) -> None:
        self.arrived = arrived
        self.arrival = _stamp_at(stamp, arrived.at)  # back-dated to the start of the halt
        self.leaving_grace_s = leaving_grace_s
        self._shore = _ShoreTracker()
        self._battery_min_v: float | None = None
        self._modem_readings = 0
        self._registered = 0
        self._signal: dict[tuple[str | None, str | None], _SignalSeries] = {}
        self._runs = 0
        self._usable_runs = 0
        self._bytes = 0
        self._link = {name: _Series() for name in ("rtt_ms", "loss", "down_bps", "up_bps", "dns_ms")}
        self._http: dict[str, _HttpSeries] = {}
        self._printer: dict[str, float] = {}
        self._printer_failures = 0
        self._foreseen: tuple[ForeseenWhy, float] | None = None

    def add_modem(self, now: float, snap: ModemSnapshot) -> None:
        if not snap.ok:
            return
        self._modem_readings += 1
        if snap.registration in ("home", "roaming"):
            self._registered += 1
        if snap.rsrp_dbm is None and snap.rsrq_db is None and snap.sinr_db is None:
            return  # no LTE figures (not registered, or on 2G/3G): nothing to add to a signal group
        group = _slot(self._signal, (snap.operator_code, snap.rat), _SignalSeries, MAX_SIGNAL_GROUPS)
        if group is not None:
            group.add(snap)

    def add_power(self, now: float, snap: PowerSnapshot) -> None:
        self._shore.add(now, shore_of(snap))
        if snap.ok and snap.battery_v is not None and math.isfinite(snap.battery_v):
            low = self._battery_min_v
            self._battery_min_v = snap.battery_v if low is None else min(low, snap.battery_v)

    def add_printer(self, now: float, snap: PrinterSnapshot) -> None:
        if not snap.ok:
            self._printer_failures += 1
            return
        for reason in snap.reasons:
            keyword = problem_keyword(reason)
            if keyword is not None:
                _slot(self._printer, keyword, lambda: now, MAX_PRINTER_PROBLEMS)  # first seen wins

    def add_suite(self, suite: SuiteResult) -> None:
        self._runs += 1
        if run_usable(suite)[0]:
            self._usable_runs += 1
        self._bytes += suite.bytes_used
        figures = run_figures(suite)
        for name in ("rtt_ms", "loss", "down_bps", "up_bps"):
            self._link[name].add(getattr(figures, name))
        for dns in suite.dns:
            self._link["dns_ms"].add(dns.resolve_ms if dns.ok else None)
        for http in suite.http:
            series = _slot(self._http, http.url, _HttpSeries, MAX_URLS)
            if series is not None:
                series.add(http.ok, http.ttfb_ms, http.fetch_ms)

    def add_foreseen(self, event: DepartureForeseen) -> None:
        self._foreseen = (event.why, event.at)

    def retained_values(self) -> int:
        """How many floats the recorder holds for medians (the memory bound, for tests and benches)."""
        series = [*self._link.values()]
        series += [s for group in self._signal.values() for s in group.series()]
        series += [s for http in self._http.values() for s in (http.ttfb, http.fetch)]
        return sum(len(s.values) for s in series)

    def finish(self, departed: Departed, stamp: TimeStamp) -> StopVisit:
        """The summary, with departure at ``departed.at`` (when the movement first became evident)."""
        arrived = self.arrived
        site = departed.site or arrived.site  # a stop confirmed by shore power is located later
        departure = _stamp_at(stamp, departed.at)
        signal = tuple(group.stats(op, rat) for (op, rat), group in self._signal.items())
        probes = self._probe_medians()
        graded = grade_stop(
            StopEvidence(
                signal=tuple(group.medians() for group in signal),
                modem_readings=self._modem_readings,
                registered_readings=self._registered,
                runs=probes.runs,
                usable_runs=probes.usable_runs,
                link=LinkFigures(probes.rtt_ms, probes.loss, probes.down_bps, probes.up_bps),
            )
        )
        return StopVisit(
            site_id=site.id if site else None,
            site_name=site.name if site else None,
            planned=site.planned if site else False,
            lat=departed.lat if departed.lat is not None else arrived.lat,
            lon=departed.lon if departed.lon is not None else arrived.lon,
            confirmed_by=arrived.confirmed_by,
            arrival=self.arrival,
            departure=departure,
            duration_s=max(0.0, departed.at - arrived.at),
            departure_foreseen=self._foreseen,
            shore=self._shore.result(departed.at, self.leaving_grace_s),
            battery_min_v=self._battery_min_v,
            modem_readings=self._modem_readings,
            registered_readings=self._registered,
            signal=signal,
            probes=probes,
            printer_problems=tuple(PrinterProblem(k, t) for k, t in self._printer.items()),
            printer_read_failures=self._printer_failures,
            grade=graded.grade,
            grade_reason=graded.reason,
        )

    def _probe_medians(self) -> ProbeMedians:
        link = self._link
        return ProbeMedians(
            runs=self._runs,
            usable_runs=self._usable_runs,
            rtt_ms=link["rtt_ms"].median(),
            loss=link["loss"].median(),
            dns_ms=link["dns_ms"].median(),
            down_bps=link["down_bps"].median(),
            up_bps=link["up_bps"].median(),
            http=tuple(series.medians(url) for url, series in self._http.items()),
            bytes_used=self._bytes,
        )


class _Series:
    """Exact count, min and max; the median from at most ``cap`` values spread evenly over time.

    Once ``cap`` values are held, every other one is dropped and only every second new value is
    kept from then on (then every fourth, ...): the kept values stay evenly spaced across the whole
    stop, so the median is not biased towards its start or its end, and no randomness is needed.
    """

    def __init__(self, cap: int = MEDIAN_SAMPLES) -> None:
        self.cap = cap
        self.values = array("d")
        self.count = 0
        self.stride = 1
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        if self.count % self.stride == 0:
            self.values.append(value)
            if len(self.values) >= self.cap:
                self.values = self.values[::2]
                self.stride *= 2
        self.count += 1
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def stat(self) -> Stat | None:
        median = self.median()
        return None if median is None else Stat(self.count, self.min, median, self.max)


class _SignalSeries:
    def __init__(self) -> None:
        self.samples = 0
        self.rsrp, self.rsrq, self.sinr = _Series(), _Series(), _Series()

    def add(self, snap: ModemSnapshot) -> None:
        self.samples += 1
        self.rsrp.add(snap.rsrp_dbm)
        self.rsrq.add(snap.rsrq_db)
        self.sinr.add(snap.sinr_db)

    def series(self) -> tuple[_Series, _Series, _Series]:
        return self.rsrp, self.rsrq, self.sinr

    def stats(self, operator_code: str | None, rat: str | None) -> SignalStats:
        return SignalStats(
            operator_code, rat, self.samples, self.rsrp.stat(), self.rsrq.stat(), self.sinr.stat()
        )


class _HttpSeries:
    def __init__(self) -> None:
        self.fetches = 0
        self.failures = 0
        self.ttfb, self.fetch = _Series(), _Series()

    def add(self, ok: bool, ttfb_ms: float | None, fetch_ms: float | None) -> None:
        self.fetches += 1
        if not ok:
            self.failures += 1
            return  # a failed fetch's times describe the failure (a timeout), not the page
        self.ttfb.add(ttfb_ms)
        self.fetch.add(fetch_ms)

    def medians(self, url: str) -> HttpMedians:
        return HttpMedians(url, self.fetches, self.failures, self.ttfb.median(), self.fetch.median())


class _ShoreTracker:
    """Shore power over the stop: unknown readings (None) are skipped, not counted as unplugged."""

    def __init__(self) -> None:
        self.known = False
        self.ever_plugged = False
        self.plugged = False
        self.off_since: float | None = None  # start of the current spell off after being plugged
        self.off_s = 0.0
        self.outages = 0
        self.first_off: float | None = None

    def add(self, now: float, shore: bool | None) -> None:
        if shore is None:
            return
        self.known = True
        if shore and self.off_since is not None:
            self.off_s += now - self.off_since
            self.outages += 1
            self.off_since = None
        elif not shore and self.plugged:
            self.off_since = now
            self.first_off = self.first_off if self.first_off is not None else now
        self.plugged = shore
        self.ever_plugged = self.ever_plugged or shore

    def result(self, departed_at: float, leaving_grace_s: float) -> ShorePower:
        off_s, outages = self.off_s, self.outages
        if self.off_since is not None and departed_at - self.off_since > leaving_grace_s:
            off_s += departed_at - self.off_since  # unplugged long before leaving: the bus stood without
            outages += 1
        if not self.known:
            return ShorePower("unknown")
        if not self.ever_plugged:
            return ShorePower("never")
        if outages == 0:
            return ShorePower("seen")
        return ShorePower("lost", off_s, outages, self.first_off)


def _slot(table: dict[_K, _V], key: _K, make: Callable[[], _V], cap: int) -> _V | None:
    """``table[key]``, made by ``make`` while the table has fewer than ``cap`` entries; else None."""
    if key not in table and len(table) < cap:
        table[key] = make()
    return table.get(key)


def _stamp_at(stamp: TimeStamp, mono: float) -> TimeStamp:
    """``stamp`` moved to ``mono`` on the same wall footing (events are back-dated to when they began)."""
    return dataclasses.replace(stamp, mono=mono, wall=stamp.wall + (mono - stamp.mono))
