"""A bus for the clock tests: a GPS receiver telling true time through the real gpsd, shore power,
the simulated backend (real mosquitto, collector, probe targets), and the agent booted with a
wrong wall clock (tests/reliability/clock_agent.py).

Simulated time runs ``speedup`` times real time on one CLOCK_MONOTONIC origin shared with the
agent's process, so a monotonic time means the same moment on both sides and true time at it is
``true_wall(mono)``. The GPS simulator writes true time in its sentences: the agent's own wall
clock is what is wrong.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.runtime.clock import ScaledClock
from simulators.backend import SimulatedBackend
from simulators.devices import DEPOT, MAX_GPS_RATE_HZ
from simulators.gps import GpsSimulator
from simulators.gpsd import GpsdProcess
from simulators.power import ShorePowerSim
from simulators.process import terminate
from simulators.pty import PtyPort

VEHICLE = "bus-clock-01"


@dataclass(frozen=True)
class Stored:
    """One record as the collector stored it."""

    stream: str
    seq: int
    mono: float
    wall: float
    wall_source: str
    payload: dict[str, Any]


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
    return value


class ClockBus:
    """Start with ``with ClockBus(...) as bus``; then :meth:`boot_agent` with the wall clock it has."""

    def __init__(self, workdir: Path, *, speedup: float, true_start: float) -> None:
        self.workdir = workdir
        self.true = ScaledClock(true_start, speedup)
        self.backend = SimulatedBackend(workdir / "backend", speedtest_length_s=1.5, settle_s=0.0)
        self.agent: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "agent.log"
        self._stack = contextlib.ExitStack()
        self.gps: GpsSimulator
        self.power: ShorePowerSim
        self.gpsd: GpsdProcess

    def __enter__(self) -> ClockBus:
        stack = self._stack
        try:
            stack.enter_context(self.backend)
            port = stack.enter_context(PtyPort(self.workdir / "ttyGPS0"))
            true = self.true
            self.gps = GpsSimulator(
                port,
                clock=true.monotonic,
                utc_now=lambda: dt.datetime.fromtimestamp(true.wall(), dt.UTC),
                rate_hz=min(true.speedup, MAX_GPS_RATE_HZ),
            )
            self.gps.lose_fix()  # in the depot: no sky yet
            self.gps.start()
            stack.callback(self.gps.stop)
            self.gpsd = GpsdProcess([port.path])
            self.gpsd.start()
            stack.callback(self.gpsd.stop)
            self.power = stack.enter_context(ShorePowerSim(self.workdir / "power"))
            stack.callback(self._stop_agent)
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def true_wall(self, mono: float) -> float:
        """True time at the agent's monotonic time ``mono``."""
        return self.true.start_wall + (mono - self.true.start_mono)

    def config_text(self) -> str:
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        mqtt_and_probes = self.backend.config_text().replace("batch_seconds = 5.0", "batch_seconds = 1.0")
        return f"""[agent]
vehicle_id = "{VEHICLE}"
data_dir = "{data}"
runtime_dir = "{self.workdir / "run"}"

[gps]
url = "{self.gpsd.url}"
poll_s = 1.0

[power]
gpio = "{self.power.gpio_path}"
sysfs = "{self.power.sysfs_root}"
poll_s = 1.0

[system]
disk_path = "{data}"
poll_s = 5.0

{mqtt_and_probes}"""

    def boot_agent(self, *, start_wall: float, ntp_flag: Path | None = None) -> None:
        """Simulated time starts now; the agent boots with its wall clock at ``start_wall``."""
        config = self.workdir / "agent.toml"
        config.write_text(self.config_text())
        origin = time.monotonic()
        self.true.restart(origin)
        self.gps.set_position(*DEPOT, alt_m=95.0)  # re-anchored on the restarted clock
        argv = [
            sys.executable, "-m", "tests.reliability.clock_agent", "--config", str(config),
            "--start-wall", repr(start_wall), "--true-wall", repr(self.true.start_wall),
            "--speedup", repr(self.true.speedup), "--origin", repr(origin), "--boot-id", str(uuid.uuid4()),
        ]  # fmt: skip
        if ntp_flag is not None:
            argv += ["--ntp-flag", str(ntp_flag)]
        with self.log_path.open("ab") as log:
            self.agent = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def _stop_agent(self) -> None:
        if self.agent is not None:
            terminate(self.agent, timeout_s=30)

    def stop_agent(self) -> int:
        """SIGTERM: the agent hands what it can to the broker and exits; its exit code."""
        assert self.agent is not None
        self._stop_agent()
        return self.agent.returncode

    def events(self, name: str) -> list[dict[str, Any]]:
        """The agent's JSON log lines with ``"event": name``."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def stored(self) -> list[Stored]:
        """Every record of the vehicle the collector has stored."""
        with contextlib.closing(sqlite3.connect(f"file:{self.backend.db_path}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT stream, seq, mono, wall, wall_source, payload FROM messages WHERE vehicle = ?"
                " ORDER BY stream, seq",
                (VEHICLE,),
            ).fetchall()
        return [Stored(s, q, m, w, src, json.loads(p)) for s, q, m, w, src, p in rows]
