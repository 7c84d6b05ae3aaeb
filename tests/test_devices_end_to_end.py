"""The device layer end to end, as a technician uses it: `busagent-sim devices` then `agentctl probe`.

Everything runs as separate processes over real endpoints: the real gpsd reads the simulated GPS
on a pty, the modem answers AT commands on a pty, power is a sysfs tree, a GPIO value file and a
VE.Direct pty, the printer answers IPP over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)


def probe(config: Path) -> tuple[int, dict[str, Any]]:
    result = run(str(BIN / "agentctl"), "probe", "--config", str(config), "--json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def sim_do(config: Path, *action: str) -> None:
    result = run(str(BIN / "busagent-sim"), "do", "--config", str(config), *action)
    assert result.returncode == 0, result.stderr


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def simulated_bus(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    config = tmp_path / "bus.toml"
    proc = subprocess.Popen(
        [
            str(BIN / "busagent-sim"),
            "devices",
            "--write-config",
            str(config),
            "--workdir",
            str(tmp_path / "w"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: config.exists() or proc.poll() is not None, 30, "the simulators to write a config")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        yield config, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def gps_fixed(config: Path) -> dict[str, Any] | None:
    code, result = probe(config)
    return result if code == 0 and result["gps"]["fix_mode"] == 3 else None


def test_probe_reads_every_simulated_device(simulated_bus: tuple[Path, subprocess.Popen[str]]) -> None:
    config, _ = simulated_bus
    result = wait_for(lambda: gps_fixed(config), 30, "a 3D fix through gpsd")
    assert list(result) == ["gps", "modem", "power", "printer", "system"]
    gps = result["gps"]
    assert gps["source"] == "gpsd"
    assert abs(gps["lat_deg"] - 44.0395) < 1e-4 and abs(gps["lon_deg"] - 1.1069) < 1e-4
    modem = result["modem"]
    assert modem["ok"] and modem["rat"] == "LTE"
    assert -140 <= modem["rsrp_dbm"] <= -44
    assert modem["operator_code"] and modem["operator_code"].isdigit()
    power = result["power"]
    assert power["shore_connected"] is True and power["battery_v"] > 10
    assert result["printer"]["state"] == "idle"
    system = result["system"]
    assert system["mem_total_bytes"] > 0 and system["disk_free_bytes"] > 0


def test_changes_to_the_simulated_bus_show_in_the_next_probe(
    simulated_bus: tuple[Path, subprocess.Popen[str]],
) -> None:
    config, _ = simulated_bus
    wait_for(lambda: gps_fixed(config), 30, "a 3D fix through gpsd")
    sim_do(config, "unplug-shore")
    sim_do(config, "paper-out")
    sim_do(config, "modem-unplug")
    code, result = probe(config)
    assert code == 1, "a device that does not answer makes probe exit 1"
    assert result["power"]["shore_connected"] is False
    assert result["printer"]["state"] == "stopped"
    assert any(r.startswith("media-empty") for r in result["printer"]["reasons"])
    assert result["modem"]["ok"] is False and result["modem"]["reason"]
    assert result["gps"]["ok"] is True

    sim_do(config, "modem-replug")
    sim_do(config, "plug-shore")
    sim_do(config, "printer-ok")
    code, result = probe(config)
    assert code == 0, result
    assert result["power"]["shore_connected"] is True
    assert result["printer"]["state"] == "idle"


def test_table_output_names_problems_in_plain_words(
    simulated_bus: tuple[Path, subprocess.Popen[str]],
) -> None:
    config, _ = simulated_bus
    sim_do(config, "paper-out")
    result = run(str(BIN / "agentctl"), "probe", "--config", str(config))
    printer_line = next(line for line in result.stdout.splitlines() if line.startswith("printer"))
    assert "out of paper" in printer_line


def test_sim_do_rejects_unknown_actions_and_bad_arguments(
    simulated_bus: tuple[Path, subprocess.Popen[str]],
) -> None:
    config, _ = simulated_bus
    bad = run(str(BIN / "busagent-sim"), "do", "--config", str(config), "explode")
    assert bad.returncode == 1 and "unknown action 'explode'" in bad.stderr
    bad = run(str(BIN / "busagent-sim"), "do", "--config", str(config), "signal", "-90")
    assert bad.returncode == 1 and "expected 3 argument(s)" in bad.stderr


def test_stopping_the_simulators_cleans_up(simulated_bus: tuple[Path, subprocess.Popen[str]]) -> None:
    config, proc = simulated_bus
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not config.exists()
    gpsd_children = run("pgrep", "-f", f"gpsd.*{config.parent / 'w'}").stdout.split()
    assert [pid for pid in gpsd_children if int(pid) != os.getpid()] == []
    down = run(str(BIN / "busagent-sim"), "do", "--config", str(config), "paper-out")
    assert down.returncode == 3 and "no simulator answers" in down.stderr


def test_probe_with_bad_config_names_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[agent]\nvehicle_id = "b"\n[modem]\nurl = "COM3"\n')
    result = run(str(BIN / "agentctl"), "probe", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{config}:modem.url: must be a serial device path")
