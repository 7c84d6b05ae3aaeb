"""Benchmark B6: MQTT bytes on the wire for a 10 h service day, against one OwnTracks message per fix.

    .venv/bin/python bench/wire_bytes.py [--minutes N]

The day is bench/_telemetry.py's (1 Hz GPS, modem 10 s, power 5 s, printer 30 s, system 60 s,
plus the day's events and probe-suite records; no speed-test traffic, which is not MQTT). It is
replayed minute by minute through the real outbox and Publisher (window 20, minute batches of at
most 60 records) to the real mosquitto, with the collector storing and acknowledging, as on the
bus: each simulated minute is appended, published and acknowledged before the next one starts,
so every stream goes out as one batch per minute, as with ``batch_seconds = 60`` in real time.
A counting proxy in front of mosquitto splits both directions into MQTT packets: CONNECT, status,
PUBLISH and PUBACK headers, the collector's acks, everything. TCP/IP and TLS overhead are not
counted (TLS 1.3 adds about 22 bytes per message, i.e. under 2 bytes per fix here).

The baseline publishes the same fixes as OwnTracks does: one JSON ``location`` message per fix,
QoS 1, MQTT 3.1.1. Goal: busagent's whole day, both directions, at most 28 bytes per fix.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from _common import CountingProxy, Verdict, broker_running, quiet_logs
from _telemetry import BOOT_MONO, Reading, service_day
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt import BatchPolicy, BrokerUrl, LinkSettings, Publisher, PublisherSettings
from agent.outbox import Outbox
from collector.ingest import Collector
from collector.store import Store

VEHICLE = "bus-tdc-01"
GOAL_BYTES_PER_FIX = 28.0
#: A simulated minute's batch wait: it only has to outlast appending that minute's records.
BATCH_WAIT_S = 0.15
#: The collector's ack interval, short of BATCH_WAIT_S: one ack for GPS, one for the rest.
ACK_INTERVAL_S = 0.05


def by_minute(readings: list[Reading]) -> list[list[Reading]]:
    """The day cut where the bus's batches are cut: every 60 s from the daemon's start."""
    return [
        list(group) for _, group in itertools.groupby(readings, key=lambda r: int(r.mono - BOOT_MONO) // 60)
    ]


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.002)


def busagent_day(
    work: Path, broker_port: int, minutes: list[list[Reading]]
) -> tuple[CountingProxy, Counter[str]]:
    """Replay the day through outbox, publisher, proxy, mosquitto and collector; the proxy's counts.

    On the bus every poller starts with the daemon and keeps a fixed rate, so each stream's 60 s
    batch closes at about the same moment every minute, and the collector (acks every second at
    most) answers that burst with one or two acks. Here each simulated minute is appended, then
    published (telemetry waits BATCH_WAIT_S instead of 60 s) and acknowledged (the collector acks
    every ACK_INTERVAL_S) before the next minute: the same messages and about as many acks.
    """
    url = BrokerUrl("127.0.0.1", broker_port, tls=False)
    store = Store(work / "collector.db")
    collector = Collector(LinkSettings(url=url, client_id="collector"), store, ack_interval_s=ACK_INTERVAL_S)
    collector.start()
    wait_for(collector.subscribed.is_set, 10, "the collector's subscription")
    proxy = CountingProxy(broker_port)
    outbox = Outbox.open(work / "outbox.db", vehicle_id=VEHICLE, boot_id="3f0c9a52", synchronous="NORMAL")
    settings = PublisherSettings(
        link=LinkSettings(url=BrokerUrl("127.0.0.1", proxy.port, tls=False), client_id=VEHICLE),
        batch=BatchPolicy(max_records=60, wait_s=BATCH_WAIT_S),
        tick_s=0.005,
    )
    publisher = Publisher(outbox, settings)
    appended: Counter[str] = Counter()
    try:
        publisher.start()
        for minute in minutes:
            for r in minute:
                outbox.append(
                    r.stream,
                    r.payload,
                    priority=r.priority,
                    mono=r.mono,
                    wall=r.wall,
                    wall_source=r.wall_source,
                )
                appended[r.stream] += 1
            total = sum(appended.values())
            wait_for(lambda n=total: publisher.status().records_acknowledged >= n, 30, "the minute's acks")
        publisher.stop(timeout_s=5)
        stored = {row.stream: row.received for row in store.stream_rows()}
        if stored != dict(appended):
            raise RuntimeError(f"the collector stored {stored}, expected {dict(appended)}")
    finally:
        publisher.stop(timeout_s=1)
        outbox.close()
        collector.stop()
        store.close()
        proxy.close()
    return proxy, appended


def owntracks(reading: Reading) -> bytes:
    """One fix as an OwnTracks ``location`` message (owntracks.org/booklet/tech/json)."""
    p = reading.payload
    return json.dumps(
        {
            "_type": "location",
            "acc": round(5 * (p["hdop"] or 1)),
            "alt": round(p["altitude_m"] or 0),
            "batt": 100,
            "cog": round(p["track_deg"] or 0),
            "conn": "m",
            "lat": p["lat_deg"],
            "lon": p["lon_deg"],
            "tid": "01",
            "tst": math.floor(reading.wall),
            "vac": 10,
            "vel": round((p["speed_mps"] or 0) * 3.6),
        },
        separators=(",", ":"),
    ).encode()


def owntracks_day(broker_port: int, fixes: list[Reading]) -> CountingProxy:
    """A plain paho client publishing every fix at QoS 1 through its own counting proxy."""
    proxy = CountingProxy(broker_port)
    acked = threading.Semaphore(0)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=VEHICLE, protocol=mqtt.MQTTv311)
    client.on_publish = lambda *args: acked.release()
    client.connect("127.0.0.1", proxy.port, keepalive=60)
    client.loop_start()
    try:
        for reading in fixes:
            client.publish(f"owntracks/tdc/{VEHICLE}", owntracks(reading), qos=1)
        for _ in fixes:
            if not acked.acquire(timeout=30):
                raise RuntimeError("the broker stopped acknowledging the OwnTracks messages")
        client.disconnect()
    finally:
        client.loop_stop()
        proxy.close()
    return proxy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=0, help="replay only this many minutes (0: all)")
    args = parser.parse_args()
    quiet_logs()
    day = service_day()
    minutes = by_minute(day)[: args.minutes or None]
    readings = [r for minute in minutes for r in minute]
    fixes = [r for r in readings if r.stream == "telemetry/gps"]
    with (
        tempfile.TemporaryDirectory(prefix="bench-bytes-") as tmp,
        broker_running(Path(tmp) / "broker") as broker,
    ):
        started = time.monotonic()
        ours, appended = busagent_day(Path(tmp), broker.port, minutes)
        took = time.monotonic() - started
        theirs = owntracks_day(broker.port, fixes)
    n = len(fixes)
    print(f"B6 bytes on the wire, {len(minutes)} minutes ({len(minutes) / 60:.1f} h) of the service day,")
    print(f"   {n} GPS fixes, {len(readings)} records in all ({dict(appended)}); replayed in {took:.0f} s")
    print(
        f"  baseline OwnTracks: up {theirs.up.bytes} B, down {theirs.down.bytes} B,"
        f" {(theirs.up.bytes + theirs.down.bytes) / n:.1f} B/fix"
    )
    print(
        f"  busagent: up {ours.up.bytes} B, down {ours.down.bytes} B,"
        f" {(ours.up.bytes + ours.down.bytes) / n:.2f} B/fix"
        f" ({ours.up.bytes / n:.2f} up, {ours.down.bytes / n:.2f} down);"
        f" {(ours.up.bytes + ours.down.bytes) / 1e6:.3f} MB for the day"
    )
    print(
        "  busagent uplink by MQTT packet type: "
        + ", ".join(f"{k} {v}" for k, v in ours.up.by_type.most_common())
    )
    print(
        "  busagent downlink by packet type: "
        + ", ".join(f"{k} {v}" for k, v in ours.down.by_type.most_common())
    )
    print("  busagent PUBLISH bytes per topic (messages, records, bytes/record, bytes/fix):")
    for topic, size in ours.up.by_topic.most_common():
        stream = topic.split("/", 2)[2]
        records = appended.get(stream, 0)
        per_record = f"{size / records:.1f}" if records else "-"
        print(
            f"    {topic:42} {ours.up.publishes[topic]:6} msgs {records:6} recs {per_record:>7} B/rec"
            f" {size / n:6.2f} B/fix"
        )
    per_fix = (ours.up.bytes + ours.down.bytes) / n
    verdict = Verdict(
        "B6-bytes-per-fix",
        "bytes/fix",
        [(theirs.up.bytes + theirs.down.bytes) / n],
        [per_fix],
        goal=f"busagent <= {GOAL_BYTES_PER_FIX:g} bytes per fix, both directions, whole day",
        met=per_fix <= GOAL_BYTES_PER_FIX,
    )
    return verdict.report()


if __name__ == "__main__":
    sys.exit(main())
