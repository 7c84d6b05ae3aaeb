"""Stored ``stops/visit`` and ``probes/result`` payloads turned into the few facts the maps aggregate.

The payloads are what the agent wrote (``StopVisit.to_dict``, ``agent.probes.results.to_dict`` plus
``reason``, ``label`` and ``stamp``), but a collector also holds records of older or broken agents:
every decoder returns None for a payload it cannot read instead of raising, and the caller counts it.
Probe runs are judged by the agent's own ``run_usable``/``run_figures`` on a rebuilt SuiteResult.
The facts are NamedTuples: a year of a fleet is 100,000 visits, and they are cheaper to build.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable
from typing import Any, NamedTuple, TypeVar, get_args

from agent.core.grading import GRADES, Grade, SignalMedians, main_signal, run_figures, run_usable
from agent.core.visit_summary import ShoreState
from agent.probes.results import DnsResult, HttpResult, LatencyResult, SuiteResult, ThroughputResult

_SHORE_STATES: frozenset[str] = frozenset(get_args(ShoreState))
_REGISTERED = ("home", "roaming")
_P = TypeVar("_P", LatencyResult, DnsResult, HttpResult, ThroughputResult)


class Spread(NamedTuple):
    """One signal figure over a group of readings: median, minimum and how many readings."""

    median: float
    low: float
    samples: int


class SignalSample(NamedTuple):
    """The readings of one operator and radio technology: of a whole visit, or the one of a probe run."""

    operator: str | None
    rat: str | None
    samples: int
    rsrp_dbm: Spread | None
    rsrq_db: Spread | None
    sinr_db: Spread | None


class PortalSample(NamedTuple):
    """Page fetches of one portal URL; ``fetch_ms`` is the median over the successful ones."""

    url: str
    fetches: int
    failures: int
    fetch_ms: float | None


class Link(NamedTuple):
    """What one visit's probe runs and modem readings, or one probe run, say of the link.

    ``operator`` is the operator it was measured on: for a visit the one the modem was on most
    (``grading.main_signal``), for a run the one of its radio snapshot. ``grade`` is the visit's
    own grade as the agent gave it (None for a lone run).
    """

    operator: str | None
    modem_readings: int
    registered: int
    runs: int
    usable_runs: int
    rtt_ms: float | None
    loss: float | None
    dns_ms: float | None
    down_bps: float | None
    up_bps: float | None
    portals: tuple[PortalSample, ...]
    signal: tuple[SignalSample, ...]
    grade: Grade | None = None


class VisitFacts(NamedTuple):
    """One stop visit: where, when (ISO UTC strings, as the agent wrote them), shore power, printer."""

    vehicle: str
    site_id: str | None
    site_name: str | None
    planned: bool
    lat: float | None
    lon: float | None
    boot_id: str | None
    arrival_mono: float | None
    departure_mono: float | None
    arrival: str | None
    departure: str | None
    shore: ShoreState
    shore_off_s: float
    printer: tuple[str, ...]
    link: Link


class RunFacts(NamedTuple):
    """One labelled probe run (a site survey): who ran it, when (boot and monotonic start), where."""

    vehicle: str
    boot_id: str
    mono: float
    wall: float
    stop_id: str | None
    label: str
    operator_name: str | None
    link: Link


# -- visits ------------------------------------------------------------------------------------------


def decode_visit(vehicle: str, payload: dict[str, Any]) -> VisitFacts | None:
    """The facts of a ``stops/visit`` payload, or None when it is not a readable visit."""
    try:
        return _visit(vehicle, payload)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _visit(vehicle: str, data: dict[str, Any]) -> VisitFacts:
    arrival, departure = _dict(data.get("arrival")), _dict(data.get("departure"))
    shore = _dict(data.get("shore"))
    state = shore.get("state")
    probes = _dict(data.get("probes"))
    signal = tuple(_visit_signal(_dict(group)) for group in _list(data.get("signal")))
    medians = [
        SignalMedians(s.operator, s.rat, s.samples, *(_median(f) for f in (s.rsrp_dbm, s.rsrq_db, s.sinr_db)))
        for s in signal
    ]
    main = main_signal(medians)  # the operator that grades the visit; else the first one named
    operator = (
        main.operator_code if main is not None else next((s.operator for s in signal if s.operator), None)
    )
    grade = data.get("grade")
    link = Link(
        operator=operator,
        modem_readings=_count(data.get("modem_readings")),
        registered=_count(data.get("registered_readings")),
        runs=_count(probes.get("runs")),
        usable_runs=_count(probes.get("usable_runs")),
        rtt_ms=_number(probes.get("rtt_ms")),
        loss=_number(probes.get("loss")),
        dns_ms=_number(probes.get("dns_ms")),
        down_bps=_number(probes.get("down_bps")),
        up_bps=_number(probes.get("up_bps")),
        portals=tuple(_visit_portal(_dict(item)) for item in _list(probes.get("http"))),
        signal=signal,
        grade=grade if grade in GRADES else None,
    )
    return VisitFacts(
        vehicle=vehicle,
        site_id=_text(data.get("site_id")),
        site_name=_text(data.get("site_name")),
        planned=data.get("planned") is True,
        lat=_number(data.get("lat")),
        lon=_number(data.get("lon")),
        boot_id=_text(arrival.get("boot_id")),
        arrival_mono=_number(arrival.get("mono")),
        departure_mono=_number(departure.get("mono")),
        arrival=_text(arrival.get("wall")),
        departure=_text(departure.get("wall")),
        shore=state if isinstance(state, str) and state in _SHORE_STATES else "unknown",  # type: ignore[arg-type]
        shore_off_s=_number(shore.get("off_s")) or 0.0,
        printer=tuple(
            keyword
            for item in _list(data.get("printer_problems"))
            if (keyword := _text(_dict(item).get("keyword"))) is not None
        ),
        link=link,
    )


def _visit_signal(group: dict[str, Any]) -> SignalSample:
    samples = _count(group.get("samples"))
    figures = [_spread(group.get(key)) for key in ("rsrp_dbm", "rsrq_db", "sinr_db")]
    return SignalSample(_text(group.get("operator_code")), _text(group.get("rat")), samples, *figures)


def _spread(stat: Any) -> Spread | None:
    if stat is None:  # the figure was never read (no RSRQ from this modem)
        return None
    median, low = _number(_dict(stat).get("median")), _number(stat.get("min"))
    if median is None:
        return None
    return Spread(median, median if low is None else low, max(1, _count(stat.get("samples"))))


def _visit_portal(item: dict[str, Any]) -> PortalSample:
    url = _text(item.get("url"))
    if url is None:
        raise ValueError("portal without url")
    return PortalSample(
        url, _count(item.get("fetches")), _count(item.get("failures")), _number(item.get("fetch_ms"))
    )


def _median(spread: Spread | None) -> float | None:
    return None if spread is None else spread.median


# -- labelled probe runs ---------------------------------------------------------------------------


def decode_run(
    vehicle: str, boot_id: str, mono: float, wall: float, payload: dict[str, Any]
) -> RunFacts | None:
    """The facts of a labelled ``probes/result`` payload (None if unreadable or not labelled).

    The row's ``boot_id``/``mono``/``wall`` are the record's; the payload's ``stamp`` (when the run
    started) is preferred when present.
    """
    try:
        return _run(vehicle, boot_id, mono, wall, payload)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, statistics.StatisticsError):
        return None


def _run(vehicle: str, boot_id: str, mono: float, wall: float, data: dict[str, Any]) -> RunFacts | None:
    label = data.get("label")
    if not isinstance(label, str) or not label.strip():
        return None
    stamp = _dict(data.get("stamp") or {})
    radio = _dict(data.get("radio") or {})
    suite = suite_from_dict(data)
    figures = run_figures(suite)
    dns = [
        d.resolve_ms for d in suite.dns if d.ok and d.resolve_ms is not None and math.isfinite(d.resolve_ms)
    ]
    reading = radio.get("ok", True) is True and bool(radio)
    operator = _text(radio.get("operator_code"))
    started = _number(stamp.get("mono"))
    started = _number(data.get("started_mono_s")) if started is None else started
    stamp_wall = _number(stamp.get("wall"))
    link = Link(
        operator=operator,
        modem_readings=int(reading),
        registered=int(reading and radio.get("registration") in _REGISTERED),
        runs=1,
        usable_runs=int(run_usable(suite)[0]),
        rtt_ms=figures.rtt_ms,
        loss=figures.loss,
        dns_ms=statistics.median(dns) if dns else None,
        down_bps=figures.down_bps,
        up_bps=figures.up_bps,
        portals=tuple(
            PortalSample(h.url, 1, 0 if h.ok else 1, _number(h.fetch_ms) if h.ok else None)
            for h in suite.http
        ),
        signal=_run_signal(radio, operator) if reading else (),
    )
    return RunFacts(
        vehicle=vehicle,
        boot_id=_text(stamp.get("boot_id")) or boot_id,
        mono=started if started is not None else mono,
        wall=stamp_wall if stamp_wall is not None else wall,
        stop_id=_text(data.get("stop_id")),
        label=" ".join(label.split()),
        operator_name=_text(radio.get("operator_name")),
        link=link,
    )


def _run_signal(radio: dict[str, Any], operator: str | None) -> tuple[SignalSample, ...]:
    figures = [_number(radio.get(key)) for key in ("rsrp_dbm", "rsrq_db", "sinr_db")]
    if all(value is None for value in figures):
        return ()
    spreads = [None if value is None else Spread(value, value, 1) for value in figures]
    return (SignalSample(operator, _text(radio.get("rat")), 1, *spreads),)


def suite_from_dict(data: dict[str, Any]) -> SuiteResult:
    """A SuiteResult back from its JSON form (``agent.probes.results.to_dict``); unknown keys ignored."""
    throughput = data.get("throughput")
    return SuiteResult(
        started_mono_s=float(data["started_mono_s"]),
        finished_mono_s=float(data["finished_mono_s"]),
        latency=tuple(_probe(LatencyResult, item) for item in _list(data.get("latency"))),
        dns=tuple(_probe(DnsResult, item) for item in _list(data.get("dns"))),
        http=tuple(_probe(HttpResult, item) for item in _list(data.get("http"))),
        throughput=None if throughput is None else _probe(ThroughputResult, throughput),
        stop_id=_text(data.get("stop_id")),
    )


def _probe(cls: type[_P], raw: Any) -> _P:
    names = {field.name for field in dataclasses.fields(cls)}
    values: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value for key, value in _dict(raw).items()
    }
    return cls(**{key: value for key, value in values.items() if key in names})


# -- tolerant readers ------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any) -> Iterable[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (bool, string, NaN, an integer too large for a float)."""
    kind = type(value)  # exact types: bool is an int subclass, and True is no measurement
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def _count(value: Any) -> int:
    if type(value) is int:
        return value if value > 0 else 0
    number = _number(value)
    return int(number) if number is not None and number > 0 else 0
