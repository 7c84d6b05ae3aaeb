"""Benchmark B3: CPU seconds per 10,000 GPS fixes read from gpsd and published, against gpspipe.

    .venv/bin/python bench/gps_cpu.py [--rate-hz 10] [--window-s 30] [--windows 3]

One simulated receiver (NMEA on a pty, driving at 50 km/h) feeds the real gpsd at ``--rate-hz``.
On that same gpsd, at the same time:

- busagent: `busagent run` with only ``[gps]`` (``poll_s`` = 1 / rate) and ``[mqtt]``: the GPS
  poller (``?POLL`` per fix), the runtime loop and stop tracker, the outbox (synchronous=FULL),
  the publisher (minute batches, zlib) and its acks, with ``busagent-collector run`` acknowledging
  in its own process. Counted: the daemon's CPU (every thread, /proc/<pid>/stat) per GPS read.
- baseline: ``gpspipe -w`` piped into ``mosquitto_pub -l -q 1`` (Debian gpsd-clients and
  mosquitto-clients): every gpsd JSON line is a QoS 1 message. Counted: the CPU of both programs
  per TPV report forwarded (the SKY and other lines they also forward are their overhead).

The window is measured ``--windows`` times back to back, medians compared.
Goal: busagent at most 1.5 x the baseline's CPU per fix.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from _common import (
    LOG_SUBSCRIPTIONS,
    CollectorProcess,
    Verdict,
    broker_running,
    cpu_seconds,
    quiet_logs,
    wait_until,
)
from paho.mqtt.enums import CallbackAPIVersion

from simulators.gps import GpsSimulator
from simulators.gpsd import GpsdProcess
from simulators.pty import PtyPort
from tests.agent.daemon_harness import Daemon

GOAL_RATIO = 1.5
PER = 10_000


class TpvCounter:
    """Subscribes to the baseline's topic and counts the TPV reports that arrive."""

    def __init__(self, port: int) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tpv-counter")
        self.client.on_connect = lambda c, *args: c.subscribe("gpspipe/#", qos=1)
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if b'"class":"TPV"' in message.payload:
            with self._lock:
                self.count += 1

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def agent_config(work: Path, gpsd_url: str, broker_port: int, poll_s: float) -> str:
    return f"""[agent]
vehicle_id = "bus-bench"
data_dir = "{work / "data"}"
runtime_dir = "{work / "run"}"

[gps]
url = "{gpsd_url}"
poll_s = {poll_s}

[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate-hz", type=float, default=10.0, help="GPS epochs per second (and daemon polls)"
    )
    parser.add_argument("--window-s", type=float, default=30.0)
    parser.add_argument("--windows", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()
    for program in ("gpspipe", "mosquitto_pub"):
        if shutil.which(program) is None:
            print(f"B3 needs {program}: apt-get install gpsd-clients mosquitto-clients", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="bench-gps-") as tmp:
        work = Path(tmp)
        with (
            PtyPort(work / "ttyGPS0") as port,
            GpsSimulator(port, rate_hz=args.rate_hz) as gps,
            broker_running(work / "broker", LOG_SUBSCRIPTIONS) as broker,
        ):
            gps.set_position(44.0395, 1.1069, alt_m=95.0)
            gps.set_motion(13.9, 53.0)
            gpsd = GpsdProcess([port.path])
            gpsd.start()
            collector = CollectorProcess(broker, work / "collector.sqlite")
            counter = TpvCounter(broker.port)
            daemon = Daemon(work, agent_config(work, gpsd.url, broker.port, round(1.0 / args.rate_hz, 3)))
            pipe = subprocess.Popen(["gpspipe", "-w", f"127.0.0.1:{gpsd.port}"], stdout=subprocess.PIPE)
            pub = subprocess.Popen(
                [
                    "mosquitto_pub",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(broker.port),
                    "-t",
                    "gpspipe/bus-bench",
                    "-q",
                    "1",
                    "-l",
                ],
                stdin=pipe.stdout,
            )
            try:
                wait_until(counter.subscribed.is_set, 10, "the TPV counter's subscription")
                wait_until(lambda: daemon.status()["mqtt"]["connected"], 30, "the daemon's broker connection")
                wait_until(lambda: counter.count > args.rate_hz * 3, 30, "gpspipe | mosquitto_pub to flow")
                time.sleep(5)  # the daemon's first batches and acks are behind it
                ours: list[float] = []
                theirs: list[float] = []
                for _ in range(args.windows):
                    reads, tpvs = daemon.status()["devices"]["gps"]["reads"], counter.count
                    cpu_ours = cpu_seconds(daemon.proc.pid)
                    cpu_theirs = cpu_seconds(pipe.pid) + cpu_seconds(pub.pid)
                    time.sleep(args.window_s)
                    cpu_ours = cpu_seconds(daemon.proc.pid) - cpu_ours
                    cpu_theirs = cpu_seconds(pipe.pid) + cpu_seconds(pub.pid) - cpu_theirs
                    reads, tpvs = daemon.status()["devices"]["gps"]["reads"] - reads, counter.count - tpvs
                    ours.append(cpu_ours / reads * PER)
                    theirs.append(cpu_theirs / tpvs * PER)
                    print(
                        f"  window: busagent {reads} fixes, {cpu_ours:.2f} CPU s;"
                        f" baseline {tpvs} fixes, {cpu_theirs:.2f} CPU s",
                        flush=True,
                    )
                status = daemon.status()
            finally:
                pub.terminate()
                pipe.terminate()
                pub.wait(5)
                pipe.wait(5)
                daemon.stop()
                counter.stop()
                collector.stop()
                gpsd.stop()
    backlog = status["outbox"]
    print(
        f"B3 CPU s per {PER} GPS fixes at {args.rate_hz:g} Hz, {args.windows} windows of {args.window_s:g} s"
    )
    print(
        f"  daemon at the end: outbox {json.dumps({k: backlog.get(k) for k in ('pending', 'sent_unacked')})}"
    )
    verdict = Verdict(
        "B3-gps-cpu",
        f"CPU s per {PER} fixes",
        theirs,
        ours,
        goal=f"busagent <= {GOAL_RATIO} x baseline",
        met=sorted(ours)[len(ours) // 2] <= GOAL_RATIO * sorted(theirs)[len(theirs) // 2],
    )
    return verdict.report()


if __name__ == "__main__":
    sys.exit(main())
