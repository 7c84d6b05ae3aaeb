"""`busagent-sim day` on the fast scenario: the whole chain, checked against what the scenario scripts.

Two stops, a red light between them, a broker outage during the first stop, a printer out of
paper and no shore power at the second. The agent daemon runs in its own process on a clock 60
times real time, reading the simulators through gpsd, the AT port, sysfs, GPIO and IPP; the
probes measure the simulated network; records go through the real mosquitto to the collector.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulators.scenario import load_scenario

FAST = Path(__file__).parent.parent / "simulators" / "scenarios" / "fast.toml"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path_factory.mktemp("day")
    result = subprocess.run(
        [str(BIN / "busagent-sim"), "day", str(FAST), "--speedup", "60", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    return result, summary


def test_day_ends_with_a_matching_summary(
    day: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, summary = day
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert summary["ok"] is True and summary["problems"] == []
    assert "RESULT: the day matches the scenario" in result.stdout
    assert "summary.json" in result.stdout and "stops.html" in result.stdout


def test_every_stop_found_once_by_catalog_name_and_none_at_the_red_light(
    day: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, summary = day
    assert [(s["name"], s["found"]) for s in summary["stops"]] == [
        ("Essai A - halle", 1),
        ("Essai B - gare", 1),
    ]
    assert summary["red_lights"] == 1
    assert summary["unexpected_stops"] == []


def test_shore_power_and_printer_incident_as_scripted(
    day: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, summary = day
    a, b = summary["stops"]
    assert (a["shore"], b["shore"]) == ("seen", "never")
    assert a["printer"] == [] and b["printer"] == ["media-empty"]


def test_nothing_lost_across_the_outage(day: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    _, summary = day
    records = summary["records"]
    assert records["lost"] == 0 and records["missing"] == 0
    # The outage lasted 10 simulated minutes: the agent made records throughout, all delivered later.
    assert records["received"] > 1000
    assert records["received"] + records["queued_on_bus"] >= records["created"]


def test_probe_figures_match_each_stop_link(
    day: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    _, summary = day
    scenario = load_scenario(FAST)
    for report, stop in zip(summary["stops"], scenario.stops, strict=True):
        probes = report["probes"]
        assert probes["runs"] >= 1
        assert abs(probes["rtt_ms"] - stop.link.rtt_ms) <= 20
        assert abs(probes["down_mbps"] - stop.link.down_mbps) <= 0.25 * stop.link.down_mbps
        assert abs(probes["up_mbps"] - stop.link.up_mbps) <= 0.25 * stop.link.up_mbps


def test_a_bad_scenario_is_rejected_naming_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(FAST.read_text().replace('arrive = "10:02"', 'arrive = "25:02"'))
    result = subprocess.run(
        [str(BIN / "busagent-sim"), "day", str(bad), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{bad}:stops[0].arrive:" in result.stderr
