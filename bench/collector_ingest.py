"""Benchmark B7: the collector's ingest rate through mosquitto into SQLite, against a counting subscriber.

    .venv/bin/python bench/collector_ingest.py [--vehicles 10] [--minutes 60] [--runs 3]

The feed is a fleet's live traffic: ``--vehicles`` buses each sending ``--minutes`` of the
benchmark's service day (bench/_telemetry.py) the way the Publisher sends it, one batch per
telemetry stream per minute (GPS 60 records, modem 6, power 12, printer 2, system 1, plus the
day's events and probe records), in busagent's wire format (columns + zlib), interleaved minute by
minute across the fleet. The baseline feed is the same records the plain way: one JSON message
per record.

Each subscriber runs in its own process and is stopped (SIGSTOP) once subscribed; the feed is
published (QoS 1) and mosquitto queues it (``max_queued_messages 0``); the subscriber is resumed
and timed until it has everything. busagent: ``busagent-collector run`` (validation, idempotent
SQLite store with synchronous=FULL, acks), done when its database holds every record. Baseline:
a plain paho subscriber (QoS 1) that only counts messages. Both are given in records per second,
which for the baseline is its messages per second; busagent's messages per second are printed too.
Goal: busagent >= 0.5 x baseline, and >= 20,000 records/s.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from _common import LOG_SUBSCRIPTIONS, CollectorProcess, Verdict, broker_running, quiet_logs, wait_until
from _telemetry import BOOT_MONO, Reading, service_day
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt import topics, wire
from agent.outbox import Record
from simulators.broker import Mosquitto

GOAL_RATIO = 0.5
GOAL_RECORDS_S = 20_000
BROKER_LIMITS = "max_queued_messages 0\n"
EPOCH = "epoch-bench"

#: The baseline subscriber: counts messages, prints its monotonic time when it has them all.
COUNTER = """
import sys, time, threading
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
want, port = int(sys.argv[1]), int(sys.argv[2])
count = 0
done = threading.Event()
def on_message(client, userdata, message):
    global count
    count += 1
    if count == want:
        done.set()
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="counter", protocol=mqtt.MQTTv5)
client.on_message = on_message
client.on_subscribe = lambda *args: print("subscribed", flush=True)
client.on_connect = lambda c, *args: c.subscribe("plain/#", qos=1)
client.connect("127.0.0.1", port)
client.loop_start()
done.wait()
print(time.monotonic(), flush=True)
client.disconnect()
client.loop_stop()
"""


def fleet_messages(
    vehicles: int, minutes: int
) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]], int]:
    """(busagent's messages, the baseline's messages, records): the fleet's traffic, minute by minute."""
    day = service_day()
    per_minute = [list(g) for _, g in itertools.groupby(day, key=lambda r: int(r.mono - BOOT_MONO) // 60)][
        :minutes
    ]
    ours: list[tuple[str, bytes]] = []
    plain: list[tuple[str, bytes]] = []
    seqs: dict[tuple[str, str], int] = Counter()
    records = 0
    for minute in per_minute:
        for v in range(vehicles):
            vehicle = f"bus-{v:03d}"
            by_stream: dict[str, list[Record]] = {}
            for reading in minute:
                seqs[vehicle, reading.stream] += 1
                record = as_record(vehicle, reading, seqs[vehicle, reading.stream])
                by_stream.setdefault(reading.stream, []).append(record)
                plain.append((f"plain/{vehicle}/{reading.stream}", wire.dumps(reading.payload)))
                records += 1
            for stream, group in by_stream.items():
                topic = topics.data(vehicle, stream)
                if stream.startswith("telemetry/") and len(group) > 1:
                    ours.append((topic, wire.dumps(wire.batch_doc(vehicle, EPOCH, group))))
                else:
                    ours.extend((topic, wire.dumps(wire.record_doc(r, EPOCH))) for r in group)
    return ours, plain, records


def as_record(vehicle: str, reading: Reading, seq: int) -> Record:
    return Record(
        stream=reading.stream,
        seq=seq,
        msg_id=wire.record_msg_id(vehicle, "boot-bench", reading.stream, seq),
        priority=reading.priority,
        payload=reading.payload,
        mono=reading.mono,
        wall=reading.wall,
        wall_source=reading.wall_source,
        boot_id="boot-bench",
        state="pending",
        sent_at=None,
        id=seq,
    )


def feed(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    """Publish everything at QoS 1 and wait until mosquitto has acknowledged (and queued) it all."""
    acked = threading.Semaphore(0)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="feeder")
    client.max_inflight_messages_set(1000)
    client.on_publish = lambda *args: acked.release()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
        for _ in messages:
            if not acked.acquire(timeout=120):
                raise RuntimeError("mosquitto stopped acknowledging the feed")
        client.disconnect()
    finally:
        client.loop_stop()


def baseline_run(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> float:
    """Messages per second of a counting subscriber draining the queued feed."""
    child = subprocess.Popen(
        [sys.executable, "-c", COUNTER, str(len(messages)), str(broker.port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        if child.stdout.readline().strip() != "subscribed":
            raise RuntimeError("the counting subscriber did not subscribe")
        os.kill(child.pid, signal.SIGSTOP)
        feed(broker, messages)
        resumed = time.monotonic()
        os.kill(child.pid, signal.SIGCONT)
        finished = float(child.stdout.readline())
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return len(messages) / (finished - resumed)


def collector_run(broker: Mosquitto, db: Path, messages: list[tuple[str, bytes]], records: int) -> float:
    """Records per second stored by ``busagent-collector run`` draining the queued feed."""
    collector = CollectorProcess(broker, db)
    try:
        os.kill(collector.pid, signal.SIGSTOP)
        feed(broker, messages)
        resumed = time.monotonic()
        os.kill(collector.pid, signal.SIGCONT)
        with sqlite3.connect(db) as conn:
            wait_until(
                lambda: (
                    conn.execute("SELECT COALESCE(SUM(received), 0) FROM streams").fetchone()[0] >= records
                ),
                600,
                "the collector to store the feed",
                poll_s=0.02,
            )
        took = time.monotonic() - resumed
        rejects = sqlite3.connect(db).execute("SELECT SUM(count) FROM rejects").fetchone()[0]
        if rejects:
            raise RuntimeError(f"the collector rejected {rejects} messages")
    finally:
        os.kill(collector.pid, signal.SIGCONT)
        collector.stop()
    return records / took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=10)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    quiet_logs()
    ours, plain, records = fleet_messages(args.vehicles, args.minutes)
    baseline: list[float] = []
    busagent: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        with broker_running(work / "broker", LOG_SUBSCRIPTIONS + "\n" + BROKER_LIMITS) as broker:
            for run in range(args.runs):
                baseline.append(baseline_run(broker, plain))
                busagent.append(collector_run(broker, work / f"collector{run}.sqlite", ours, records))
                per_message = busagent[-1] * len(ours) / records
                print(
                    f"  run {run + 1}: baseline {baseline[-1]:.0f} msg/s,"
                    f" collector {busagent[-1]:.0f} records/s ({per_message:.0f} msg/s)",
                    flush=True,
                )
    print(f"B7 collector ingest: {args.vehicles} vehicles x {args.minutes} minutes = {records} records,")
    print(
        f"   {len(ours)} busagent messages ({records / len(ours):.1f} records each), {len(plain)} plain ones"
    )
    verdict = Verdict(
        "B7-collector-ingest",
        "records/s",
        baseline,
        busagent,
        goal=f"busagent >= {GOAL_RATIO} x baseline and >= {GOAL_RECORDS_S} records/s",
        met=False,
    )
    met = verdict.ratio >= GOAL_RATIO and sorted(busagent)[len(busagent) // 2] >= GOAL_RECORDS_S
    return Verdict(verdict.name, verdict.unit, baseline, busagent, verdict.goal, met).report()


if __name__ == "__main__":
    sys.exit(main())
