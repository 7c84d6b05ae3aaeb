"""The simulated day's summary: what counts as a match, and every way a day can fail to match."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from simulators.day_report import build_summary, summary_table
from simulators.itinerary import Itinerary
from simulators.scenario import load_scenario

FAST = Path(__file__).parent.parent.parent / "simulators" / "scenarios" / "fast.toml"
ITINERARY = Itinerary(load_scenario(FAST))
CLEAN = {"telemetry/gps": {"created": 100, "queued": 0, "dropped": 0, "lost": 0}}


def iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat().replace("+00:00", "Z")


def visit(index: int, **changes: Any) -> dict[str, Any]:
    """The visit the agent should report for the scenario's stop ``index``."""
    expected = ITINERARY.expected_stops[index]
    stop = ITINERARY.scenario.stops[index]
    keywords = [{"keyword": r} for c in stop.printer if c.state == "stopped" for r in c.reasons]
    data: dict[str, Any] = {
        "site_id": f"site-{index}",
        "site_name": expected.name,
        "lat": expected.lat,
        "lon": expected.lon,
        "arrival": {"wall": iso(expected.arrival + 40)},
        "departure": {"wall": iso(expected.departure + 20)},
        "shore": {"state": "seen" if stop.shore_power else "never"},
        "printer_problems": keywords,
        "probes": {
            "runs": 2,
            "rtt_ms": stop.link.rtt_ms + 3,
            "down_bps": stop.link.down_mbps * 0.9e6,
            "up_bps": stop.link.up_mbps * 1.1e6,
        },
        "grade": "good",
    }
    data.update(changes)
    return data


def summarise(visits: list[dict[str, Any]], outbox: dict[str, dict[str, int]] = CLEAN) -> dict[str, Any]:
    rows = [{"stream": "telemetry/gps", "received": 100, "missing": 0, "duplicates": 0, "dropped": 0}]
    return build_summary(ITINERARY, visits, rows, outbox, run={"speedup": 60})


def test_a_day_as_scripted_matches() -> None:
    summary = summarise([visit(0), visit(1)])
    assert summary["ok"] and summary["problems"] == []
    assert [s["found"] for s in summary["stops"]] == [1, 1]
    assert "RESULT: the day matches the scenario" in summary_table(summary)


def test_a_missing_or_doubled_stop_fails() -> None:
    assert summarise([visit(0)])["problems"] == ["Essai B - gare: found 0 times, expected once"]
    doubled = summarise([visit(0), visit(0), visit(1)])
    assert doubled["problems"] == ["Essai A - halle: found 2 times, expected once"]


def test_a_stop_at_the_red_light_fails_but_waiting_at_the_depot_does_not() -> None:
    light = visit(0, site_id="gh-xyz", site_name=None, lat=44.042, lon=1.11)
    depot = visit(0, site_id="gh-depot", site_name=None, lat=44.0395, lon=1.1069)
    summary = summarise([visit(0), visit(1), light, depot])
    assert len(summary["unexpected_stops"]) == 1 and len(summary["depot_stops"]) == 1
    assert summary["problems"] == [f"unexpected stop at {summary['unexpected_stops'][0]['arrival']} (gh-xyz)"]


def test_wrong_shore_power_or_a_missed_printer_incident_fails() -> None:
    summary = summarise([visit(0, shore={"state": "lost"}), visit(1, printer_problems=[])])
    assert summary["problems"] == [
        "Essai A - halle: shore power lost, scripted seen",
        "Essai B - gare: printer incident media-empty not recorded",
    ]


def test_probe_figures_outside_the_tolerance_fail() -> None:
    far = {"runs": 1, "rtt_ms": 40 + 21, "down_bps": 20e6 * 0.74, "up_bps": 5e6}
    summary = summarise([visit(0, probes=far), visit(1)])
    assert summary["problems"] == [
        "Essai A - halle: latency 61.0 ms, link 40 ms (±20)",
        "Essai A - halle: down 14.8 Mbit/s, link 20 (±25%)",
    ]
    none = summarise([visit(0, probes={"runs": 0}), visit(1)])
    assert none["problems"] == ["Essai A - halle: no probe run"]


def test_records_neither_delivered_nor_queued_are_lost() -> None:
    outbox = {"events": {"created": 10, "queued": 2, "dropped": 0, "lost": 3}}
    summary = summarise([visit(0), visit(1)], outbox)
    assert summary["records"]["lost"] == 3
    assert summary["problems"] == ["3 records lost: neither at the collector nor queued on the bus"]
