"""What a technician and systemd see of a running daemon: `agentctl` verdicts and watchdog pings."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.backend import SimulatedBackend
from simulators.devices import SimulatedBus
from tests.agent.daemon_harness import BIN, Daemon, agent_config, wait_for


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatedBus, Daemon]]:
    work = tmp_path_factory.mktemp("live")
    with SimulatedBus(work / "bus") as bus, SimulatedBackend(work / "backend", settle_s=0.0) as backend:
        daemon = Daemon(work, agent_config(bus, backend))
        try:
            yield bus, daemon
        finally:
            daemon.stop()


def agentctl(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "agentctl"), *args, "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status_json(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    result = agentctl(daemon, "status", "--json")
    return result.returncode, json.loads(result.stdout)


def settled(daemon: Daemon, code: int) -> dict[str, Any] | None:
    rc, status = status_json(daemon)
    return status if rc == code else None


def test_status_is_ok_on_a_healthy_bus_and_reacts_to_shore_power_and_paper(
    running: tuple[SimulatedBus, Daemon],
) -> None:
    bus, daemon = running
    wait_for(lambda: settled(daemon, 0), 60, "agentctl status to exit 0 on the healthy bus")
    screen = agentctl(daemon, "status")
    assert screen.returncode == 0, screen.stdout + screen.stderr
    assert "bus-sim-01" in screen.stdout and "\x1b[" not in screen.stdout  # plain when not a TTY
    for word in ("GPS", "Modem", "Power", "Printer", "MQTT"):
        assert word.lower() in screen.stdout.lower()

    bus.apply("unplug-shore")
    status = wait_for(lambda: settled(daemon, 1), 15, "a warning once shore power is gone")
    assert "shore" in status["verdict"]["text"].lower() or any(
        "shore" in c["text"].lower() for c in status["checks"] if c["level"] == "warning"
    )
    bus.apply("plug-shore")
    wait_for(lambda: settled(daemon, 0), 15, "OK again with shore power back")

    bus.apply("paper-out")
    wait_for(lambda: settled(daemon, 1), 15, "a warning once the paper tray is empty")
    assert "out of paper" in agentctl(daemon, "status").stdout
    bus.apply("printer-ok")
    wait_for(lambda: settled(daemon, 0), 15, "OK again with paper")


def test_stops_and_test_commands_answer(running: tuple[SimulatedBus, Daemon]) -> None:
    _, daemon = running
    result = agentctl(daemon, "test", "--label", "Mairie, Lavit")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usable" in result.stdout.lower()
    stops = agentctl(daemon, "stops", "--json")
    assert stops.returncode == 0
    assert isinstance(json.loads(stops.stdout), (list, dict))


def test_unreachable_daemon_exits_3_saying_how_to_start_it(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nvehicle_id = "bus-1"\nruntime_dir = "{tmp_path}/run"\n')
    result = subprocess.run(
        [str(BIN / "agentctl"), "status", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3
    assert "busagent run" in result.stdout + result.stderr


def test_watchdog_pings_stop_while_a_worker_is_stuck_and_resume_after(tmp_path: Path) -> None:
    with SimulatedBus(tmp_path / "bus") as bus:
        assert bus.printer is not None
        extra = {"agent": "watchdog_stall_s = 3.0", "printer": "timeout_s = 30.0"}
        daemon = Daemon(tmp_path, agent_config(bus, None, extra), watchdog_usec=1_000_000)
        try:
            healthy_from = time.monotonic()
            time.sleep(4)
            pings = [at for at, f in daemon.notify.collect() if "WATCHDOG" in f and at >= healthy_from]
            gaps = [b - a for a, b in itertools.pairwise(pings)]
            assert len(pings) >= 6 and max(gaps) < 1.0, f"healthy: a ping every 0.5 s, got gaps {gaps}"

            bus.printer.set_delay(12.0)  # every printer read now hangs 12 s: the poller is stuck
            wait_for(lambda: any("stuck" in f.get("STATUS", "") for _, f in daemon.notify.collect()), 15,
                     "STATUS naming the stuck worker")  # fmt: skip
            stuck_since = time.monotonic()
            time.sleep(2.0)
            late = [at for at, f in daemon.notify.collect() if "WATCHDOG" in f and at > stuck_since]
            assert late == [], "no WATCHDOG=1 while the printer poller is stuck"
            stuck = [f["STATUS"] for _, f in daemon.notify.messages if "stuck" in f.get("STATUS", "")]
            assert "poll-printer" in stuck[0]

            bus.printer.set_delay(0.0)
            resumed = time.monotonic()
            wait_for(lambda: [a for a, f in daemon.notify.collect() if "WATCHDOG" in f and a > resumed], 25,
                     "pings to resume once the printer answers again")  # fmt: skip
        finally:
            daemon.stop()
