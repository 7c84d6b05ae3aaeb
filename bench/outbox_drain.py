"""Benchmark B1: draining a 50,000-record outbox backlog to mosquitto, against plain paho from memory.

    .venv/bin/python bench/outbox_drain.py [--records 50000] [--runs 3]

The backlog is the first records of back-to-back service days (bench/_telemetry.py: GPS, modem,
power, printer and system telemetry, events and probe records, in the order the daemon appended
them), in an outbox opened as the daemon opens it (synchronous=FULL). The real Publisher, with the
daemon's settings from an ``[mqtt]`` section left at its defaults (window 20, minute batches of up
to 60 records, zlib), drains it to a local mosquitto; ``busagent-collector run`` in its own
process stores what arrives and publishes its acks (every second, its default). Timed: from the
publisher's start until the collector's ack has made the outbox delete the last record.

Counted for busagent: outbox records per second, end to end (telemetry travels 60 records to a
message, which is the design; the MQTT message count is printed too). Baseline: one paho client
(loop thread, QoS 1, paho's default 20 in flight) publishing every record's payload as its own
message from memory, timed from the first publish to the last PUBACK, in messages per second.
Runs alternate between the two. Goal: busagent records/s >= 0.8 x baseline messages/s.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from _common import (
    LOG_SUBSCRIPTIONS,
    CollectorProcess,
    Verdict,
    broker_running,
    median,
    quiet_logs,
    wait_until,
)
from _telemetry import Reading, backlog
from paho.mqtt.enums import CallbackAPIVersion

from agent.config.schema import MqttSection
from agent.mqtt import Publisher
from agent.outbox import Outbox
from agent.runtime.mqtt_settings import publisher_settings
from simulators.broker import Mosquitto

VEHICLE = "bus-tdc-01"
GOAL_RATIO = 0.8


def fill(path: Path, readings: list[Reading]) -> None:
    """The backlog, appended as the daemon appends (NORMAL here only to build it faster)."""
    with Outbox.open(path, vehicle_id=VEHICLE, boot_id="boot-bench", synchronous="NORMAL") as outbox:
        for r in readings:
            outbox.append(
                r.stream,
                r.payload,
                priority=r.priority,
                mono=r.mono,
                wall=r.wall,
                wall_source=r.wall_source,
            )


def drain(template: Path, work: Path, broker: Mosquitto, count: int) -> tuple[float, float]:
    """One busagent run on a fresh copy of the backlog; (records/s acknowledged, records/s PUBACKed)."""
    work.mkdir()
    shutil.copy(template, work / "outbox.sqlite")
    collector = CollectorProcess(broker, work / "collector.sqlite")
    outbox = Outbox.open(work / "outbox.sqlite", vehicle_id=VEHICLE, boot_id="boot-bench")  # FULL
    settings = publisher_settings(MqttSection(url=f"mqtt://127.0.0.1:{broker.port}"), VEHICLE)
    publisher = Publisher(outbox, settings)
    try:
        started = time.monotonic()
        publisher.start()
        sent_at: list[float] = []

        def progress() -> bool:
            status = publisher.status()
            if not sent_at and status.records_sent >= count:
                sent_at.append(time.monotonic())
            return status.records_acknowledged >= count

        wait_until(progress, 600, "the backlog to be acknowledged", poll_s=0.005)
        took = time.monotonic() - started
        publisher.stop(timeout_s=2)
        collector.expect(count)
    finally:
        publisher.stop(timeout_s=1)
        outbox.close()
        collector.stop()
    return count / took, count / (sent_at[0] - started)


def plain_paho(broker: Mosquitto, readings: list[Reading]) -> float:
    """The baseline: every record's payload as one QoS 1 message from memory; messages per second."""
    messages = [
        (f"plain/{VEHICLE}/{r.stream}", json.dumps(r.payload, separators=(",", ":")).encode())
        for r in readings
    ]
    acked = threading.Event()
    done = Counter[str]()

    def on_publish(*args: object) -> None:
        done["acked"] += 1
        if done["acked"] == len(messages):
            acked.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plain-paho")
    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        started = time.monotonic()
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
        if not acked.wait(600):
            raise RuntimeError("the broker stopped acknowledging the baseline's messages")
        took = time.monotonic() - started
        client.disconnect()
    finally:
        client.loop_stop()
    return len(messages) / took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()
    readings = backlog(args.records)
    streams = Counter(r.stream for r in readings)
    messages = sum(math.ceil(n / 60) if s.startswith("telemetry/") else n for s, n in streams.items())
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        work = Path(tmp)
        template = work / "backlog.sqlite"
        fill(template, readings)
        baseline: list[float] = []
        busagent: list[float] = []
        pubacked: list[float] = []
        for run in range(args.runs):
            # A broker per run: the last run's retained ack (same vehicle, same outbox epoch, since
            # every run drains a copy of one file) would acknowledge this run's records at once.
            with broker_running(work / f"broker{run}", LOG_SUBSCRIPTIONS) as broker:
                baseline.append(plain_paho(broker, readings))
                acked, sent = drain(template, work / f"run{run}", broker, len(readings))
                busagent.append(acked)
                pubacked.append(sent)
                print(
                    f"  run {run + 1}: baseline {baseline[-1]:.0f} msg/s, busagent {acked:.0f} records/s"
                    f" acknowledged ({sent:.0f} records/s PUBACKed)",
                    flush=True,
                )
    print(f"B1 outbox drain: {len(readings)} records ({dict(streams)})")
    print(f"  busagent publishes them as about {messages} MQTT messages; the baseline as {len(readings)}")
    print(f"  busagent, PUBACKed only (before the collector's ack): median {median(pubacked):.0f} records/s")
    verdict = Verdict(
        "B1-outbox-drain",
        "records/s",
        baseline,
        busagent,
        goal=f"busagent records/s >= {GOAL_RATIO} x baseline messages/s",
        met=sorted(busagent)[len(busagent) // 2] >= GOAL_RATIO * sorted(baseline)[len(baseline) // 2],
    )
    return verdict.report()


if __name__ == "__main__":
    sys.exit(main())
