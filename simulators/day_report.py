"""What a simulated day produced, checked against its scenario: the ``summary.json`` and the final table.

Pure: the itinerary (what should have happened) and what the collector received (stop visits,
probe results, per-stream counts) in, a JSON-ready summary out. Each scenario stop must be found
exactly once under its catalog name, with the scripted shore-power state and printer incidents,
and probe medians within ``RTT_TOLERANCE_MS`` / ``RATE_TOLERANCE`` of the stop's link; any other
visit (a red light taken for a stop, say) and any record missing at the collector is a failure.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agent.core.geo import haversine_m
from simulators.itinerary import ExpectedStop, Itinerary
from simulators.scenario import ScenarioStop

RTT_TOLERANCE_MS = 20.0
RATE_TOLERANCE = 0.25
#: A visit this close to the depot is the bus waiting at its base, not a stop of the day.
DEPOT_RADIUS_M = 200.0


def build_summary(
    itinerary: Itinerary,
    visits: Sequence[Mapping[str, Any]],
    stream_rows: Iterable[Mapping[str, Any]],
    outbox: Mapping[str, Mapping[str, int]],
    *,
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """The day's summary; ``run`` holds facts about the run itself (speedup, wall seconds, files)."""
    scenario = itinerary.scenario
    offset = scenario.vehicle.utc_offset_s
    expected_names = {stop.name for stop in itinerary.expected_stops}
    stops = [
        _stop_report(expected, scenario.stops[expected.index], visits, offset)
        for expected in itinerary.expected_stops
    ]
    others = [v for v in visits if v.get("site_name") not in expected_names]
    # Standing at the depot before leaving or after coming back is a stop too, and a true one.
    at_depot = [v for v in others if _near(v, scenario.vehicle.depot_lat, scenario.vehicle.depot_lon)]
    unexpected = [
        {
            "site_id": v.get("site_id"),
            "site_name": v.get("site_name"),
            "arrival": _local(v, "arrival", offset),
        }
        for v in others
        if v not in at_depot
    ]
    streams = [dict(row) for row in stream_rows]
    received = sum(int(row.get("received", 0)) for row in streams)
    lost = sum(counts["lost"] for counts in outbox.values())
    problems = [p for stop in stops for p in stop["problems"]]
    problems += [f"unexpected stop at {u['arrival']} ({u['site_name'] or u['site_id']})" for u in unexpected]
    if lost:
        problems.append(f"{lost} records lost: neither at the collector nor queued on the bus")
    return {
        "scenario": scenario.source,
        "vehicle": scenario.vehicle.id,
        "ok": not problems,
        "problems": problems,
        "stops": stops,
        "unexpected_stops": unexpected,
        "depot_stops": [_local(v, "arrival", offset) for v in at_depot],
        "red_lights": len(itinerary.halts),
        "probe_runs": sum(stop["probes"]["runs"] for stop in stops),
        "records": {
            "created": sum(c["created"] for c in outbox.values()),
            "received": received,
            "queued_on_bus": sum(c["queued"] for c in outbox.values()),
            "duplicates": sum(int(row.get("duplicates", 0)) for row in streams),
            "dropped": sum(int(row.get("dropped", 0)) for row in streams),
            "missing": sum(int(row.get("missing", 0)) for row in streams),
            "lost": lost,
            "streams": streams,
        },
        "run": dict(run),
    }


def _stop_report(
    expected: ExpectedStop, stop: ScenarioStop, visits: Sequence[Mapping[str, Any]], offset: float
) -> dict[str, Any]:
    found = [v for v in visits if v.get("site_name") == expected.name]
    problems: list[str] = []
    if len(found) != 1:
        problems.append(f"{expected.name}: found {len(found)} times, expected once")
    visit = found[0] if found else {}
    shore_expected = "seen" if stop.shore_power else "never"
    shore = (visit.get("shore") or {}).get("state")
    if found and shore != shore_expected:
        problems.append(f"{expected.name}: shore power {shore}, scripted {shore_expected}")
    printer_expected = sorted({_keyword(r) for c in stop.printer if c.state == "stopped" for r in c.reasons})
    printer_seen = sorted({str(p.get("keyword")) for p in visit.get("printer_problems") or ()})
    missing_printer = [k for k in printer_expected if k not in printer_seen]
    if found and missing_printer:
        problems.append(f"{expected.name}: printer incident {', '.join(missing_printer)} not recorded")
    probes = _probe_check(visit.get("probes") or {}, stop)
    if found:
        problems += [f"{expected.name}: {p}" for p in probes["problems"]]
    return {
        "name": expected.name,
        "found": len(found),
        "site_id": visit.get("site_id"),
        "arrival_expected": _clock(expected.arrival, offset),
        "arrival": _local(visit, "arrival", offset),
        "departure_expected": _clock(expected.departure, offset),
        "departure": _local(visit, "departure", offset),
        "shore_expected": shore_expected,
        "shore": shore,
        "printer_expected": printer_expected,
        "printer": printer_seen,
        "grade": visit.get("grade"),
        "probes": probes,
        "problems": problems,
    }


def _probe_check(medians: Mapping[str, Any], stop: ScenarioStop) -> dict[str, Any]:
    link = stop.link
    runs = int(medians.get("runs") or 0)
    rtt, down, up = medians.get("rtt_ms"), medians.get("down_bps"), medians.get("up_bps")
    problems: list[str] = []
    if runs == 0:
        problems.append("no probe run")
    else:
        if rtt is None or abs(rtt - link.rtt_ms) > RTT_TOLERANCE_MS:
            problems.append(f"latency {_fmt(rtt)} ms, link {link.rtt_ms:g} ms (±{RTT_TOLERANCE_MS:g})")
        for word, measured, scripted in (("down", down, link.down_mbps), ("up", up, link.up_mbps)):
            mbps = None if measured is None else measured / 1e6
            if mbps is None or abs(mbps - scripted) > RATE_TOLERANCE * scripted:
                problems.append(f"{word} {_fmt(mbps)} Mbit/s, link {scripted:g} (±{RATE_TOLERANCE:.0%})")
    return {
        "runs": runs,
        "rtt_ms": rtt,
        "down_mbps": None if down is None else down / 1e6,
        "up_mbps": None if up is None else up / 1e6,
        "link": {"rtt_ms": link.rtt_ms, "down_mbps": link.down_mbps, "up_mbps": link.up_mbps},
        "problems": problems,
    }


def summary_table(summary: Mapping[str, Any]) -> str:
    """The table printed at the end of ``busagent-sim day``."""
    lines = [
        f"{'stop':34} {'arrived':>7} {'left':>7} {'shore':>6} {'printer':>12} {'rtt ms':>7} "
        f"{'down':>6} {'up':>5} {'grade':>8}"
    ]
    for stop in summary["stops"]:
        p = stop["probes"]
        lines.append(
            f"{stop['name'][:34]:34} {_hm(stop['arrival']):>7} {_hm(stop['departure']):>7} "
            f"{stop['shore'] or '-'!s:>6} {', '.join(stop['printer']) or '-':>12} {_fmt(p['rtt_ms']):>7} "
            f"{_fmt(p['down_mbps']):>6} {_fmt(p['up_mbps']):>5} {stop['grade'] or '-'!s:>8}"
        )
    records = summary["records"]
    lines.append(
        f"records: {records['created']} made, {records['received']} at the collector, "
        f"{records['queued_on_bus']} still queued on the bus, {records['lost']} lost; "
        f"probe runs {summary['probe_runs']}; "
        f"red lights {summary['red_lights']}, unexpected stops {len(summary['unexpected_stops'])}, "
        f"waits at the depot {len(summary['depot_stops'])}"
    )
    lines.append("RESULT: the day matches the scenario" if summary["ok"] else "RESULT: MISMATCH")
    lines += [f"  - {problem}" for problem in summary["problems"]]
    return "\n".join(lines)


def _near(visit: Mapping[str, Any], lat: float, lon: float) -> bool:
    here_lat, here_lon = visit.get("lat"), visit.get("lon")
    if not isinstance(here_lat, float | int) or not isinstance(here_lon, float | int):
        return False
    return haversine_m(float(here_lat), float(here_lon), lat, lon) <= DEPOT_RADIUS_M


def _keyword(reason: str) -> str:
    for suffix in ("-error", "-warning", "-report"):
        if reason.endswith(suffix):
            return reason[: -len(suffix)]
    return reason


def _local(visit: Mapping[str, Any], key: str, offset: float) -> str | None:
    stamp = visit.get(key) or {}
    wall = stamp.get("wall")
    if not isinstance(wall, str):
        return None
    moment = datetime.datetime.fromisoformat(wall.replace("Z", "+00:00"))
    return _clock(moment.timestamp(), offset)


def _clock(epoch: float, offset: float) -> str:
    zone = datetime.timezone(datetime.timedelta(seconds=offset))
    return datetime.datetime.fromtimestamp(epoch, zone).isoformat(timespec="seconds")


def _hm(iso: str | None) -> str:
    return "-" if iso is None else iso[11:16]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
