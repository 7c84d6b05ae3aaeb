"""The publisher against the real mosquitto and the collector: delivery, outages, crashes, the cap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt import Publisher, PublisherSettings, wire
from agent.outbox import Outbox
from collector.ingest import Collector
from collector.store import StreamRow
from collector.validate import Schemas
from tests.mqtt.conftest import (
    VEHICLE,
    FakeClock,
    Mosquitto,
    TcpProxy,
    append_events,
    append_gps,
    fast_settings,
    fully_acknowledged,
    open_outbox,
    wait_until,
)

Start = Callable[[Outbox, PublisherSettings], Publisher]
REPO = Path(__file__).resolve().parents[2]


def stats_of(collector: Collector) -> dict[str, StreamRow]:
    return {row.stream: row for row in collector.ingest.store.stream_rows()}


def assert_complete(collector: Collector, expected: dict[str, int]) -> None:
    """Every stream has exactly the expected records, none missing, as the CLI's stats would say."""
    rows = stats_of(collector)
    assert {stream: row.received for stream, row in rows.items()} == expected
    assert all(row.missing == 0 for row in rows.values()), rows


def seqs_in_arrival_order(collector: Collector, stream: str) -> list[int]:
    return [seq for seq, _ in collector.ingest.store.payloads(VEHICLE, stream)]


def test_records_arrive_stored_once_and_leave_the_outbox_after_the_collectors_ack(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    outbox = open_outbox(tmp_path / "outbox.db")
    collector = collectors(broker.url)
    append_gps(outbox, 130)
    append_events(outbox, 5)
    append_events(outbox, 2, stream="stops/visit", priority="normal")
    publisher = publishers(outbox, fast_settings(broker.url))
    wait_until(lambda: fully_acknowledged(outbox), what="the outbox to be acknowledged")
    assert_complete(collector, {"telemetry/gps": 130, "events": 5, "stops/visit": 2})
    payloads = collector.ingest.store.payloads(VEHICLE, "events")
    assert [p["i"] for _, p in payloads] == [0, 1, 2, 3, 4]
    status = publisher.status()
    assert status.connected and status.protocol == "5" and status.records_acknowledged == 137
    assert outbox.stats().streams["telemetry/gps"].acked_seq == 130


def test_broker_down_for_a_simulated_hour_then_everything_arrives_in_order_per_stream(
    tmp_path: Path,
    broker: Mosquitto,
    publishers: Start,
    collectors: Callable[..., Collector],
    make_proxy: Callable[..., TcpProxy],
) -> None:
    clock = FakeClock()
    outbox = open_outbox(tmp_path / "outbox.db", clock=clock)
    broker.stop()
    link = make_proxy(broker.port)  # the bus's 4G link: cut until the collector listens again
    link.down = True
    publisher = publishers(outbox, fast_settings(proxy_url(link)))
    for minute in range(60):  # an hour of 1 Hz GPS and an event a minute, while nobody answers
        append_gps(outbox, 60, start=minute * 60, clock=clock)
        append_events(outbox, 1)
    assert outbox.stats().pending == 3660 and not publisher.status().connected
    clock.run()
    broker.start()
    collector = collectors(broker.url)
    wait_until(collector.subscribed.is_set, 5, "the collector's subscription")
    link.down = False
    wait_until(lambda: fully_acknowledged(outbox), 30, "the backlog to be acknowledged")
    assert_complete(collector, {"telemetry/gps": 3600, "events": 60})
    for stream in ("telemetry/gps", "events"):
        arrival = seqs_in_arrival_order(collector, stream)
        assert arrival == sorted(arrival)


def test_broker_killed_mid_drain_and_restarted_without_persistence_everything_still_arrives(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    outbox = open_outbox(tmp_path / "outbox.db")
    append_gps(outbox, 6000)
    append_events(outbox, 1500)
    collector = collectors(broker.url)
    publisher = publishers(outbox, fast_settings(broker.url, window=5))
    wait_until(lambda: sum(r.received for r in stats_of(collector).values()) > 500, what="the drain to start")
    broker.kill()
    assert not fully_acknowledged(outbox)
    broker.start()
    wait_until(lambda: fully_acknowledged(outbox), 40, "the outbox to be acknowledged after the restart")
    assert_complete(collector, {"telemetry/gps": 6000, "events": 1500})
    assert publisher.status().connections >= 2


CHILD = """
import sys
from agent.logs import setup_logging
from agent.mqtt import BrokerUrl, LinkSettings, Publisher, PublisherSettings
from agent.outbox import Outbox
setup_logging("warning", sys.stderr)  # stdout carries only the claims
outbox = Outbox.open(sys.argv[1], vehicle_id="bus-tdc-01", boot_id="boot-killed")
url = BrokerUrl("127.0.0.1", int(sys.argv[2]), tls=False)
Publisher(outbox, PublisherSettings(link=LinkSettings(url=url, client_id="busagent-bus-tdc-01"))).start()
i = 0
while True:
    stream = ("events", "probes/result")[i % 2]
    record = outbox.append(stream, {"i": i}, priority="high", mono=float(i), wall=0.0, wall_source="unsynced")
    print(record.stream, record.seq, flush=True)
    i += 1
"""


def test_agent_killed_with_sigkill_during_appends_loses_no_committed_record_and_seq_continues(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    path = tmp_path / "outbox.db"
    collector = collectors(broker.url)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(broker.port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    claimed: list[tuple[str, int]] = []
    while len(claimed) < 400:
        line = child.stdout.readline().split()
        claimed.append((line[0].decode(), int(line[1])))
    child.send_signal(signal.SIGKILL)
    child.wait(5)
    # Every claim printed before the kill counts, not just the first 400 read: the child kept going.
    for raw in child.stdout.read().splitlines(keepends=True):
        if raw.endswith(b"\n") and len(raw.split()) == 2:
            claimed.append((raw.split()[0].decode(), int(raw.split()[1])))
    child.stdout.close()
    outbox = open_outbox(path, boot_id="boot-after")
    last = {stream: max(seq for s, seq in claimed if s == stream) for stream in ("events", "probes/result")}
    after = outbox.append(
        "events", {"i": "after"}, priority="high", mono=0.0, wall=0.0, wall_source="unsynced"
    )
    assert after.seq in (last["events"] + 1, last["events"] + 2)  # +2: one more committed before the kill
    publishers(outbox, fast_settings(broker.url))
    wait_until(lambda: fully_acknowledged(outbox), what="the outbox to be acknowledged")
    rows = stats_of(collector)
    assert all(row.missing == 0 for row in rows.values()), rows
    for stream, seq in claimed:
        assert seq in set(seqs_in_arrival_order(collector, stream))
    assert rows["events"].received == after.seq


def test_cap_reached_drops_only_low_priority_telemetry_and_the_collector_counts_them_as_dropped(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    outbox = open_outbox(tmp_path / "outbox.db", cap_bytes=150_000)
    for _ in range(10):
        append_gps(outbox, 200)
        append_events(outbox, 10)
    streams = outbox.stats().streams
    dropped = streams["telemetry/gps"].dropped
    assert dropped > 500 and streams["events"].dropped == 0
    collector = collectors(broker.url)
    publishers(outbox, fast_settings(broker.url))
    wait_until(lambda: fully_acknowledged(outbox), what="the outbox to be acknowledged")
    wait_until(
        lambda: stats_of(collector)["telemetry/gps"].dropped == dropped, 5, "the drops to be announced"
    )
    rows = stats_of(collector)
    assert rows["telemetry/gps"].received == 2000 - dropped and rows["telemetry/gps"].missing == 0
    assert rows["events"].received == 100 and rows["events"].dropped == 0 and rows["events"].missing == 0
    assert outbox.dropped_ranges("telemetry/gps") == []  # the ack went past them: forgotten


def test_every_payload_on_the_wire_validates_against_its_schema(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    seen: list[tuple[str, bytes]] = []
    spy = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="spy", protocol=mqtt.MQTTv5)
    spy.on_message = lambda c, u, m: seen.append((m.topic, bytes(m.payload)))
    spy.connect("127.0.0.1", broker.port)
    spy.subscribe("busagent/#", qos=1)
    spy.loop_start()
    try:
        outbox = open_outbox(tmp_path / "outbox.db", cap_bytes=40_000)
        append_gps(outbox, 400)
        append_events(outbox, 3)
        append_events(outbox, 2, stream="probes/result", priority="normal")
        collectors(broker.url)
        publisher = publishers(outbox, fast_settings(broker.url))
        wait_until(lambda: fully_acknowledged(outbox), what="the outbox to be acknowledged")
        publisher.stop(timeout_s=2)
        wait_until(
            lambda: any(wire.loads(p)["state"] == "offline" for t, p in seen if t.endswith("/status")),
            5,
            "offline",
        )
    finally:
        spy.loop_stop()
        spy.disconnect()
    schemas = Schemas()
    kinds = set()
    for topic, payload in seen:
        doc: Any = wire.loads(payload)
        assert schemas.problem(doc["kind"], doc) is None, (topic, doc)
        kinds.add(doc["kind"])
    assert kinds == {"status", "record", "batch", "dropped", "ack"}


def test_uplink_costs_at_most_28_bytes_per_fix_for_a_minute_batched_1hz_gps_track(
    tmp_path: Path,
    broker: Mosquitto,
    publishers: Start,
    collectors: Callable[..., Collector],
    make_proxy: Callable[..., TcpProxy],
) -> None:
    proxy = make_proxy(broker.port)
    outbox = open_outbox(tmp_path / "outbox.db")
    collector = collectors(broker.url)
    wait_until(collector.subscribed.is_set, 5, "the collector's subscription")  # no resend in the figure
    append_gps(outbox, 600)  # ten minutes
    settings = fast_settings(proxy_url(proxy))
    publisher = publishers(outbox, settings)
    wait_until(lambda: fully_acknowledged(outbox), what="the outbox to be acknowledged")
    publisher.stop(timeout_s=2)
    per_fix_up, per_fix_down = proxy.up / 600, proxy.down / 600
    print(f"bytes per fix: {per_fix_up:.1f} up (all packets), {per_fix_down:.1f} down (acks, PUBACKs)")
    assert per_fix_up <= 28
    assert per_fix_down <= 10


def proxy_url(proxy: TcpProxy) -> Any:
    from agent.mqtt import BrokerUrl

    return BrokerUrl("127.0.0.1", proxy.port, tls=False)


def test_publisher_falls_back_to_mqtt_311_when_the_broker_refuses_mqtt5(
    tmp_path: Path,
    broker: Mosquitto,
    publishers: Start,
    collectors: Callable[..., Collector],
    make_proxy: Callable[..., TcpProxy],
) -> None:
    proxy = make_proxy(broker.port, refuse_mqtt5=True)
    outbox = open_outbox(tmp_path / "outbox.db")
    collector = collectors(broker.url)
    append_events(outbox, 4)
    publisher = publishers(outbox, fast_settings(proxy_url(proxy)))
    wait_until(lambda: fully_acknowledged(outbox), what="the outbox to be acknowledged")
    assert proxy.levels[:2] == [5, 4]
    assert publisher.status().protocol == "3.1.1"
    assert_complete(collector, {"events": 4})


def test_status_is_retained_online_while_connected_and_offline_after_a_clean_stop(
    tmp_path: Path, broker: Mosquitto, publishers: Start
) -> None:
    outbox = open_outbox(tmp_path / "outbox.db")
    publisher = publishers(outbox, fast_settings(broker.url))
    wait_until(lambda: publisher.status().connected, what="the connection")
    assert retained_status(broker)["state"] == "online"
    publisher.stop(timeout_s=2)
    assert retained_status(broker)["state"] == "offline"
    assert retained_status(broker)["reason"] == "agent stopped"


def retained_status(broker: Mosquitto) -> Any:
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"reader-{time.monotonic_ns()}")
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.connect("127.0.0.1", broker.port)
    client.subscribe(f"busagent/{VEHICLE}/status", qos=1)
    client.loop_start()
    try:
        wait_until(lambda: bool(got), 5, "the retained status")
    finally:
        client.loop_stop()
        client.disconnect()
    return wire.loads(got[0])
