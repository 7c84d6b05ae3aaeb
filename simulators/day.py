"""``busagent-sim day SCENARIO``: a whole simulated service day, end to end, then the planners' outputs.

What runs, and at which speed:

- Simulated time (the scenario's clock, ``speedup`` times real time): the bus's movement (the GPS
  simulator's position at each epoch), the radio, shore power, the printer and the broker outages,
  which the runner changes as the itinerary says; and inside the agent daemon (its own process,
  :mod:`simulators.day_agent`) device polling, stop detection, probe scheduling and the stamps of
  every record. Both processes read one :class:`~agent.runtime.clock.ScaledClock` origin.
- Real time: the device protocols themselves (gpsd, AT, IPP, sysfs reads take what they take),
  the probe measurements (real round trips, DNS and portal fetches, and short speed tests over
  the simulated link, so a probe suite lasts a few real seconds, i.e. minutes of the day), and
  MQTT (batching, acknowledgements and resends run on real seconds, as on a real link).

The collector runs in this process and receives everything through the real mosquitto; the agent
reaches the broker through a relay that the scenario's outages cut.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.control_client import ControlError, request
from agent.runtime.clock import ScaledClock
from simulators.backend import SimulatedBackend
from simulators.day_report import build_summary, summary_table
from simulators.day_world import DayWorld
from simulators.devices import SimulatedBus
from simulators.itinerary import Itinerary
from simulators.process import terminate
from simulators.relay import TcpRelay
from simulators.scenario import Scenario, catalog_toml, load_scenario

#: Real seconds per speed-test direction: under 2 s, a slow link's upload is measured ±20 % (queues).
SPEEDTEST_S = 2.0
#: Simulated seconds the bus stands at the depot before it leaves: the agent is up and has a fix.
LEAD_S = 60.0
#: Real seconds the agent may take to hand over its last records once the day is over.
DRAIN_S = 60.0
#: The agent has caught up when its oldest unsent record is younger than this (real seconds).
CAUGHT_UP_S = 3.0

Progress = Callable[[str], None]


def run_day(
    scenario_path: str | Path, *, speedup: float, out_dir: Path, progress: Progress = print
) -> dict[str, Any]:
    """Run the day; returns the summary (also written to ``out_dir/summary.json``)."""
    scenario = load_scenario(scenario_path)
    itinerary = Itinerary(scenario)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    started = time.monotonic()
    clock = ScaledClock(itinerary.start - LEAD_S, speedup)
    with contextlib.ExitStack() as stack:
        bus = stack.enter_context(SimulatedBus(work / "bus", vehicle_id=scenario.vehicle.id, clock=clock))
        backend = stack.enter_context(SimulatedBackend(work / "backend", speedtest_length_s=SPEEDTEST_S))
        relay = TcpRelay(backend.broker.port).start()
        stack.callback(relay.stop)
        config = work / "agent.toml"
        config.write_text(
            _agent_config(scenario, bus=bus, backend=backend, relay=relay, work=work, speedup=speedup)
        )
        world = DayWorld(itinerary, bus, backend.network, relay, clock)
        agent = stack.enter_context(_agent(config, clock, work / "agent.log"))
        world.apply(clock.wall())
        memory = _drive(world, config, progress, agent.pid)
        _drain(config, progress)
        _stop_agent(agent)
        assert backend.collector is not None and backend.store is not None
        backend.collector.flush_acks()
        visits = [p for _, p in backend.store.payloads(scenario.vehicle.id, "stops/visit")]
        rows = [vars(row) for row in backend.store.stream_rows()]
        files = _planner_outputs(backend, out_dir)
        run = {
            "speedup": speedup,
            "wall_s": round(time.monotonic() - started, 1),
            "files": files,
            "agent_memory": memory,
        }
        outbox = _reconcile(work / "bus" / "data" / "outbox.sqlite", backend.db_path, scenario.vehicle.id)
        summary = build_summary(itinerary, visits, rows, outbox, run=run)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    progress(summary_table(summary))
    return summary


def _agent_config(
    scenario: Scenario,
    *,
    bus: SimulatedBus,
    backend: SimulatedBackend,
    relay: TcpRelay,
    work: Path,
    speedup: float,
) -> str:
    catalog = scenario.catalog_path
    if catalog is None:
        catalog = work / "catalog.toml"
        catalog.write_text(catalog_toml(scenario.sites))
    # One GPS read per simulated second up to 100 per real second; stop detection needs a fix at
    # least every 5 s of the day.
    gps_poll = min(4.0, max(1.0, speedup / 100))
    probes = backend.network.probes_toml(speedtest_length_s=SPEEDTEST_S)
    text = bus.config_text(vedirect=False).replace("[gps]\n", f"[gps]\npoll_s = {gps_poll}\n", 1)
    return (
        f'{text}\n[stops]\ncatalog = "{catalog.resolve()}"\n\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{relay.port}"\nbatch_seconds = 1.0\n\n{probes}'
    )


@contextlib.contextmanager
def _agent(config: Path, clock: ScaledClock, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The daemon in its own process; the simulated day begins the moment it is told the origin."""
    origin = time.monotonic() + 0.0
    clock.restart(origin)
    argv = [
        sys.executable, "-m", "simulators.day_agent", "--config", str(config),
        "--start-wall", repr(clock.start_wall), "--speedup", repr(clock.speedup),
        "--origin", repr(origin), "--boot-id", str(uuid.uuid4()),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        yield proc
    finally:
        terminate(proc, timeout_s=30)


def _drive(world: DayWorld, config: Path, progress: Progress, agent_pid: int) -> dict[str, float]:
    """Apply the itinerary as simulated time runs, until the day's end; progress every few seconds.

    Returns the agent's resident memory (MB): peak, and at the first and last hour of the day."""
    itinerary, clock = world.itinerary, world.clock
    next_report = next_sample = 0.0
    rss: list[tuple[float, float]] = []  # (hours into the day, MB)
    while (now := clock.wall()) < itinerary.end:
        world.apply(now)
        if time.monotonic() >= next_sample:
            mb = _rss_mb(agent_pid)
            if mb is not None:
                rss.append(((now - itinerary.start) / 3600, mb))
            next_sample = time.monotonic() + 0.5
        if time.monotonic() >= next_report:
            progress(_progress_line(itinerary, now, config))
            next_report = time.monotonic() + 3.0
        time.sleep(0.01)
    world.apply(itinerary.end)
    return _memory_figures(rss)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _memory_figures(samples: list[tuple[float, float]]) -> dict[str, float]:
    """Peak RSS, and the median RSS over the day's first full hour and over its last hour."""
    if not samples:
        return {}
    last_hour = max(hour for hour, _ in samples) - 1
    first = sorted(mb for hour, mb in samples if 1 <= hour < 2) or [samples[0][1]]
    last = sorted(mb for hour, mb in samples if hour >= last_hour) or [samples[-1][1]]
    return {
        "peak_mb": round(max(mb for _, mb in samples), 1),
        "hour_1_mb": round(first[len(first) // 2], 1),
        "last_hour_mb": round(last[len(last) // 2], 1),
    }


def _progress_line(itinerary: Itinerary, now: float, config: Path) -> str:
    stop = itinerary.stop_at(now)
    if stop is not None:
        where = f"at {stop.name}"
    elif itinerary.position(now).speed_mps > 0:
        where = "driving"
    else:
        red = any(start <= now < end for start, end in itinerary.halts)
        where = "at a red light" if red else "at the depot"
    if itinerary.outage_at(now) is not None:
        where += " (broker unreachable)"
    status = _agent_status(config)
    outbox = "agent starting"
    if status is not None:
        box = status["outbox"]
        outbox = f"outbox {box['pending']} pending, {box['sent_unacked']} awaiting ack"
    clock_text = time.strftime("%H:%M", time.gmtime(now + itinerary.scenario.vehicle.utc_offset_s))
    return f"{clock_text}  {where}; {outbox}"


def _agent_status(config: Path) -> dict[str, Any] | None:
    socket_file = str(config.parent / "bus" / "run" / "control.sock")
    try:
        status: dict[str, Any] = request(socket_file, {"cmd": "status"}, timeout_s=5.0)
    except ControlError:
        return None
    return status


def _drain(config: Path, progress: Progress) -> None:
    """Wait (real time) until the agent has caught up: nothing awaiting an ack, no backlog older than
    a couple of batches. It keeps polling its devices, so the outbox is never quite empty."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        status = _agent_status(config)
        if status is not None:
            box = status["outbox"]
            age = box["oldest_pending_age_s"]
            if box["sent_unacked"] == 0 and (age is None or age < CAUGHT_UP_S):
                return
        time.sleep(0.2)
    progress(f"the agent did not catch up within {DRAIN_S:g} s; the summary counts what is still queued")


def _reconcile(outbox_db: Path, collector_db: Path, vehicle: str) -> dict[str, dict[str, int]]:
    """Per stream, once the agent has stopped: records it made, those still queued on the bus and not
    at the collector, those the outbox cap dropped, and those lost (none of the three)."""
    with contextlib.closing(sqlite3.connect(f"file:{outbox_db}?mode=ro", uri=True)) as db:
        made = {s: (n - 1, d) for s, n, d in db.execute("SELECT stream, next_seq, dropped FROM streams")}
        kept = set(db.execute("SELECT stream, seq FROM records"))
    with contextlib.closing(sqlite3.connect(f"file:{collector_db}?mode=ro", uri=True)) as db:
        received = set(db.execute("SELECT stream, seq FROM messages WHERE vehicle = ?", (vehicle,)))
    counts = {}
    for stream, (created, dropped) in made.items():
        absent = {(stream, seq) for seq in range(1, created + 1)} - received
        queued = len(absent & kept)
        counts[stream] = {
            "created": created,
            "queued": queued,
            "dropped": dropped,
            "lost": max(0, len(absent) - queued - dropped),
        }
    return counts


def _stop_agent(agent: subprocess.Popen[bytes]) -> None:
    agent.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        agent.wait(30)


def _planner_outputs(backend: SimulatedBackend, out_dir: Path) -> list[str]:
    """stops.html, stops.geojson, stops.csv from the collector's database."""
    import importlib

    try:
        maps = importlib.import_module("collector.maps")
    except ImportError:
        return []
    assert backend.store is not None
    maps.write_maps(backend.store, out_dir)
    return [str(out_dir / name) for name in ("stops.html", "stops.geojson", "stops.csv")]
