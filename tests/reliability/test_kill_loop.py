"""Kill loop: the daemon under load, SIGKILLed at random moments and restarted, loses nothing.

The daemon (the real Service, run by simulators.day_agent on a ScaledClock ten times faster than
real time, as `busagent-sim day` runs it) reads the simulated bus: GPS at 1 Hz of its clock, modem,
power, printer every second, system every 5 s, about 50 records per real second. It stands at a
stop, so the scheduler runs probe suites, and a thread asks for more through the control socket
(`agentctl test`): records of every kind are being made, appended and published when the
SIGKILL lands. Before half of the kills the bus's link (a TcpRelay) stalls for a moment, so that
messages already published reach the broker only after their sender died.

After every kill the outbox must pass ``PRAGMA integrity_check`` (read-only, before the
restart). After the last restart the daemon is left to drain; then the collector must hold every
seq the outbox allocated before it (nothing missing by its own stats), nothing may be lost
overall (reconciled seq by seq as the day runner does), and every seq the broker carried more
than once must have carried the same record each time (the collector keeps the first copy of a
seq and counts the others as duplicates, so a different record under a reused seq would vanish
there unseen: a spy subscriber checks the wire; only ``wall`` may differ, re-timed in between).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.control_client import ControlError, request
from agent.mqtt import topics, wire
from agent.runtime.clock import ScaledClock
from simulators.backend import SimulatedBackend
from simulators.devices import SimulatedBus
from simulators.process import terminate
from simulators.relay import TcpRelay
from tests.agent.daemon_harness import FAST_POLLS, NotifyListener, wait_for
from tests.reliability.conftest import report, scale

VEHICLE = "bus-sim-01"


class Spy:
    """A subscriber that keeps every data record the broker carries, copies included."""

    def __init__(self, port: int) -> None:
        self.seen: dict[tuple[str, str, int], list[dict[str, Any]]] = {}  # (epoch, stream, seq) -> copies
        self.arrivals: list[float] = []  # time.monotonic() of each data record
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="kill-loop-spy", protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda client, userdata, message: self._keep(
            message.topic, bytes(message.payload)
        )
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"busagent/{VEHICLE}/#", qos=1)
        self.client.loop_start()

    def _keep(self, topic: str, payload: bytes) -> None:
        where = topics.parse(topic)
        if where is None or where.kind != "data":
            return
        doc = wire.loads(payload)
        records = (
            wire.records_of_batch(doc, VEHICLE)
            if doc["kind"] == "batch"
            else [wire.record_of_doc(doc, VEHICLE)]
        )
        with self._lock:
            self.arrivals.extend([time.monotonic()] * len(records))
            for r in records:
                self.seen.setdefault((doc["epoch"], r.stream, r.seq), []).append(dataclasses.asdict(r))

    def copies(self) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
        with self._lock:
            return {key: list(value) for key, value in self.seen.items()}

    def arrived_between(self, windows: list[tuple[float, float]]) -> int:
        with self._lock:
            return sum(1 for at in self.arrivals if any(start <= at <= end for start, end in windows))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class ProbeDriver:
    """Asks the running daemon for a probe suite again and again (`agentctl test`), across restarts."""

    def __init__(self, socket_file: Path) -> None:
        self.socket_file = socket_file
        self.suites = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                request(str(self.socket_file), {"cmd": "test", "label": "kill loop"}, timeout_s=60)
                self.suites += 1
            except (ControlError, OSError):
                self._stop.wait(0.2)  # the daemon is down or restarting

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(70)


SPEEDUP = 10.0


class Life:
    """One life of the daemon: its own process, log and notify socket; returns once READY."""

    def __init__(self, run_dir: Path, config: Path, clock: ScaledClock, boot_id: str) -> None:
        run_dir.mkdir()
        self.notify = NotifyListener(run_dir / "notify.sock")
        self.log_path = run_dir / "agent.log"
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify.path))
        argv = [
            sys.executable, "-m", "simulators.day_agent", "--config", str(config),
            "--start-wall", repr(clock.start_wall), "--speedup", repr(clock.speedup),
            "--origin", repr(clock.origin_real), "--boot-id", boot_id,
        ]  # fmt: skip
        self.spawned = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for(lambda: self.ready_at() or self._died(), 60, "READY=1")

    def _died(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the daemon exited {self.proc.returncode}: {self.log_path.read_text()[-3000:]}"
            )
        return False

    def ready_at(self) -> float | None:
        return next((at for at, fields in self.notify.collect() if "READY" in fields), None)

    def kill(self) -> float:
        """SIGKILL; returns when it was sent."""
        killed = time.monotonic()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.notify.close()
        return killed

    def stop(self) -> None:
        terminate(self.proc, timeout_s=30)
        self.notify.close()


def agent_config(bus: SimulatedBus, backend: SimulatedBackend, relay: TcpRelay) -> str:
    """The simulators' config, the broker reached through ``relay``, everything made often."""
    # VE.Direct sends once per real second, too slow for a fast clock (day.py leaves it out too).
    text = bus.config_text(vedirect=False) + "\n" + backend.config_text()
    text = text.replace(backend.broker.url, f"mqtt://127.0.0.1:{relay.port}")
    for section, poll in FAST_POLLS.items():
        text = text.replace(f"[{section}]\n", f"[{section}]\npoll_s = {poll}\n", 1)
    # One-second batches put more messages in flight when the kill lands. No throughput test: a
    # suite then takes about a second, so most lives finish some. A stop after the shortest
    # dwell, and a probe suite every simulated minute while parked.
    text = text.replace("batch_seconds = 5.0", "batch_seconds = 1.0")
    text = re.sub(r'speedtest_url = ".*"', 'speedtest_url = ""', text)
    return text.replace("[probes]\n", "[probes]\ninterval_min = 1.0\n", 1) + "\n[stops]\ndwell_s = 60.0\n"


@contextlib.contextmanager
def loaded_bus(work: Path) -> Iterator[tuple[SimulatedBackend, TcpRelay, Path, ScaledClock]]:
    """The simulated bus and backend on one scaled clock, the bus's link, and the daemon's config file."""
    clock = ScaledClock(time.time(), SPEEDUP)
    with contextlib.ExitStack() as stack:
        bus = stack.enter_context(SimulatedBus(work / "bus", vehicle_id=VEHICLE, clock=clock))
        backend = stack.enter_context(SimulatedBackend(work / "backend", settle_s=0.0))
        relay = TcpRelay(backend.broker.port).start()
        stack.callback(relay.stop)
        config = work / "agent.toml"
        config.write_text(agent_config(bus, backend, relay))
        clock.restart(time.monotonic())
        yield backend, relay, config, clock


def integrity(outbox: Path) -> str:
    """integrity_check through a read-only connection: it sees the file exactly as the kill left it."""
    with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as conn:
        return "; ".join(str(row[0]) for row in conn.execute("PRAGMA integrity_check"))


def allocated(outbox: Path) -> dict[str, int]:
    """Per stream, the highest seq the outbox ever handed out."""
    with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as conn:
        return {
            stream: next_seq - 1 for stream, next_seq in conn.execute("SELECT stream, next_seq FROM streams")
        }


def collected(backend: SimulatedBackend) -> dict[str, int]:
    """Per stream, the seq up to which the collector holds everything (what its ack says)."""
    assert backend.store is not None
    state = backend.store.ack_state(VEHICLE)
    return {} if state is None else {stream: view.upto for stream, view in state[1].items()}


def drained(backend: SimulatedBackend, made: dict[str, int]) -> bool:
    """The collector holds every seq up to ``made`` of every stream."""
    held = collected(backend)
    return all(held.get(stream, 0) >= last for stream, last in made.items())


def reconcile(outbox: Path, backend: SimulatedBackend) -> dict[str, dict[str, int]]:
    """Per stream: seqs made, at the collector, still queued on the bus, dropped by the cap, lost."""
    with contextlib.closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as conn:
        made = {s: (n - 1, d) for s, n, d in conn.execute("SELECT stream, next_seq, dropped FROM streams")}
        kept = set(conn.execute("SELECT stream, seq FROM records"))
    with contextlib.closing(sqlite3.connect(f"file:{backend.db_path}?mode=ro", uri=True)) as conn:
        received = set(conn.execute("SELECT stream, seq FROM messages WHERE vehicle = ?", (VEHICLE,)))
    counts = {}
    for stream, (created, dropped) in made.items():
        absent = {(stream, seq) for seq in range(1, created + 1)} - received
        counts[stream] = {
            "created": created,
            "collected": created - len(absent),
            "queued": len(absent & kept),
            "dropped": dropped,
            "lost": len(absent - kept),
        }
    return counts


def without_wall_times(value: Any) -> Any:
    """``value`` less the wall times re-timing may rewrite: ``wall`` (and its source) beside ``mono``,
    ``<name>_wall`` beside ``<name>_mono`` (the convention of agent.core.timebase.retime_payload)."""
    if isinstance(value, list):
        return [without_wall_times(item) for item in value]
    if not isinstance(value, dict):
        return value
    monos = {key[: -len("mono")] for key in value if key == "mono" or key.endswith("_mono")}
    retimed = {prefix + "wall" for prefix in monos}
    if "" in monos:
        retimed |= {"source", "wall_source"}
    return {key: without_wall_times(item) for key, item in value.items() if key not in retimed}


def check_copies(spy: Spy) -> tuple[int, int, float]:
    """Every copy of a seq is the same record, but for re-timed wall times.

    Returns (seqs carried more than once, of which re-timed in between, largest change of ``wall``).
    A record can reach the broker just before a kill and be re-timed by the next life before it is
    sent again (the new life's offset from GPS time differs by a fraction of a second).
    """
    repeated, retimed, wall_change = 0, 0, 0.0
    for key, copies in spy.copies().items():
        if len(copies) == 1:
            continue
        repeated += 1
        first = copies[0]
        for other in copies[1:]:
            same = without_wall_times(other) == without_wall_times(first)
            assert same, f"{key}: two different records under one seq:\n{json.dumps(copies, indent=1)}"
            retimed += other != first
            wall_change = max(wall_change, abs(other["wall"] - first["wall"]))
    return repeated, retimed, wall_change


class KillLoop:
    """Kills the daemon at random moments and starts its next life, checking the outbox in between."""

    def __init__(
        self, work: Path, bus: tuple[SimulatedBackend, TcpRelay, Path, ScaledClock], seed: int
    ) -> None:
        self.work = work
        self.backend, self.relay, self.config, self.clock = bus
        self.rng = random.Random(seed)
        self.seed = seed
        self.boot_id = str(uuid.uuid4())  # one boot of the machine: the daemon restarts, the kernel does not
        self.outbox = work / "bus" / "data" / "outbox.sqlite"
        self.restarts: list[float] = []  # SIGKILL -> READY of the next life, the test's checks left out
        self.backlogs: list[int] = []  # records made but not yet at the collector, at each kill
        self.stalled = 0
        self.dead: list[tuple[float, float]] = []  # (killed, next life spawned)

    def first(self) -> Life:
        return Life(self.work / "run-00", self.config, self.clock, self.boot_id)

    def kill_and_restart(self, life: Life, number: int) -> Life:
        # Half the kills land while the link holds what was just published: it reaches the broker
        # after the death, so the next life must neither lose it nor send another record in its seq.
        stall_s = self.rng.uniform(0.2, 1.0) if self.rng.random() < 0.5 else 0.0
        time.sleep(max(0.0, self.rng.uniform(0.5, 5.0) - stall_s))
        if stall_s:
            self.relay.stall()
            time.sleep(stall_s)
        killed = life.kill()
        self.relay.resume()
        self.stalled += stall_s > 0
        check = integrity(self.outbox)
        assert check == "ok", f"seed {self.seed}, kill {number}: integrity_check: {check}"
        made, held = allocated(self.outbox), collected(self.backend)
        self.backlogs.append(sum(last - held.get(stream, 0) for stream, last in made.items()))
        dead_s = time.monotonic() - killed
        life = Life(self.work / f"run-{number:02d}", self.config, self.clock, self.boot_id)
        self.dead.append((killed, life.spawned))
        self.restarts.append(dead_s + (life.ready_at() or 0.0) - life.spawned)
        return life


@pytest.mark.timeout(3600)
def test_sigkill_under_load_at_random_moments_loses_nothing_and_resends_only_identical_copies(
    tmp_path: Path,
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    kills = scale(10, 50)
    with loaded_bus(tmp_path) as bus:
        backend = bus[0]
        spy = Spy(backend.broker.port)
        loop = KillLoop(tmp_path, bus, seed)
        life = loop.first()
        prober = ProbeDriver(tmp_path / "bus" / "run" / "control.sock")
        try:
            for number in range(1, kills + 1):
                life = loop.kill_and_restart(life, number)
            last = allocated(loop.outbox)
            wait_for(
                lambda: drained(backend, last),
                120,
                "the collector to hold every seq made before the last kill",
            )
            drain_s = time.monotonic() - (life.ready_at() or 0.0)
        finally:
            prober.stop()
            life.stop()
        assert backend.collector is not None and backend.store is not None
        backend.collector.flush_acks()
        time.sleep(1.0)  # the last messages of the clean stop reach the collector
        rows = [row for row in backend.store.stream_rows() if row.vehicle == VEHICLE]
        counts = reconcile(loop.outbox, backend)
        repeated, retimed, wall_change = check_copies(spy)
        after_death = spy.arrived_between(loop.dead)
        spy.close()
    logs = "".join(path.read_text(errors="replace") for path in sorted(tmp_path.glob("run-*/agent.log")))
    assert "outbox.corrupt_moved_aside" not in logs and "Traceback" not in logs
    assert all(row.missing == 0 for row in rows), f"seed {seed}: {rows}"
    assert all(c["lost"] == 0 and c["dropped"] == 0 for c in counts.values()), f"seed {seed}: {counts}"
    assert all(counts[s]["collected"] >= n for s, n in last.items()), f"seed {seed}: {counts} vs {last}"
    assert counts["probes/result"]["created"] >= 1, counts
    report(
        "kill_loop",
        seed=seed,
        kills=kills,
        kills_with_link_stalled=loop.stalled,
        records=sum(c["created"] for c in counts.values()),
        probe_results=counts["probes/result"]["created"],
        probe_suites_asked=prober.suites,
        collected=sum(c["collected"] for c in counts.values()),
        queued_at_stop=sum(c["queued"] for c in counts.values()),
        lost=sum(c["lost"] for c in counts.values()),
        delivered_after_death=after_death,
        duplicates=sum(row.duplicates for row in rows),
        seqs_sent_twice=repeated,
        copies_retimed=retimed,
        max_wall_change_s=round(wall_change, 3),
        restart_median_s=round(statistics.median(loop.restarts), 2),
        restart_max_s=round(max(loop.restarts), 2),
        backlog_median=round(statistics.median(loop.backlogs)),
        backlog_max=max(loop.backlogs),
        drain_s=round(drain_s, 1),
    )
