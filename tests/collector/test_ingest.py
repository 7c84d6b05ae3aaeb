"""The collector: hostile and duplicate messages through the real mosquitto, acks over holes, the CLI."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt import limits, wire
from agent.outbox import Record
from collector.cli import main
from collector.ingest import Collector, Ingest
from collector.store import Store
from collector.validate import Schemas
from tests.mqtt.conftest import VEHICLE, Mosquitto, link, wait_until

EPOCH = "e" * 32
BOOT = "boot-a"


def event(seq: int, stream: str = "events", vehicle: str = VEHICLE) -> bytes:
    record = Record(
        stream=stream,
        seq=seq,
        msg_id=wire.record_msg_id(vehicle, BOOT, stream, seq),
        priority="high",
        payload={"event": "arrived", "seq": seq},
        mono=1.0,
        wall=2.0,
        wall_source="ntp",
        boot_id=BOOT,
        state="pending",
        sent_at=None,
        id=seq,
    )
    return wire.dumps(wire.record_doc(record, EPOCH))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def collector(tmp_path: Path, broker: Mosquitto) -> Iterator[Collector]:
    running = Collector(
        link(broker.url, client_id="collector"), Store(tmp_path / "c.db"), ack_interval_s=0.05
    )
    running.start()
    wait_until(running.subscribed.is_set, 5, "the subscription")
    yield running
    running.stop()
    running.ingest.store.close()


@pytest.fixture
def sender(broker: Mosquitto) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sender", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    yield client
    client.loop_stop()
    client.disconnect()


def send(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(5)


def received(collector: Collector, stream: str = "events") -> int:
    rows = {row.stream: row for row in collector.ingest.store.stream_rows()}
    return rows[stream].received if stream in rows else 0


def test_hostile_messages_are_counted_not_stored_and_the_collector_keeps_going(
    collector: Collector, sender: mqtt.Client
) -> None:
    topic = f"busagent/{VEHICLE}/events"
    wrong_schema = wire.loads(event(1))
    wrong_schema["seq"] = "one"
    send(sender, topic, b"{not json")
    send(sender, topic, json.dumps(wrong_schema).encode())
    send(sender, topic, b"x" * (limits.MAX_PAYLOAD_BYTES + 10))
    send(sender, topic, zlib.compress(b"[" + b"0," * 3_000_000 + b"0]"))
    send(sender, topic, event(1, vehicle="bus-other"))  # msg_id names another vehicle than the topic
    send(sender, f"busagent/{VEHICLE}/probes/result", event(1))  # an events record on another stream
    send(sender, f"busagent/{VEHICLE}/status", event(1))
    send(sender, topic, event(1))  # and a good one last: still stored
    wait_until(lambda: received(collector) == 1, 5, "the good message")
    assert collector.ingest.store.rejects() == {
        "not-json": 1,
        "schema": 1,
        "too-large": 2,
        "msg-id-mismatch": 1,
        "stream-mismatch": 1,
        "wrong-kind": 1,
    }
    assert [row.stream for row in collector.ingest.store.stream_rows()] == ["events"]


def test_a_duplicate_is_stored_once_and_counted(collector: Collector, sender: mqtt.Client) -> None:
    for seq in (1, 2, 2, 1, 3):
        send(sender, f"busagent/{VEHICLE}/events", event(seq))
    wait_until(lambda: received(collector) == 3, 5, "three records")
    wait_until(lambda: collector.ingest.store.stream_rows()[0].duplicates == 2, 5, "two duplicates")
    assert [seq for seq, _ in collector.ingest.store.payloads(VEHICLE, "events")] == [1, 2, 3]


def test_retained_ack_covers_announced_drops_and_shows_holes(
    collector: Collector, sender: mqtt.Client, broker: Mosquitto
) -> None:
    for seq in (1, 2, 5, 6, 9):
        send(sender, f"busagent/{VEHICLE}/events", event(seq))
    dropped = wire.dropped_doc(VEHICLE, boot_id=BOOT, epoch=EPOCH, stream="events", ranges=[(3, 4)])
    send(sender, f"busagent/{VEHICLE}/dropped", wire.dumps(dropped))
    wait_until(lambda: retained_ack(broker)[1].get("events") == wire.AckView(6, 9, ((7, 8),)), 5, "the ack")
    row = collector.ingest.store.stream_rows()[0]
    assert (row.received, row.dropped, row.missing) == (5, 2, 2)


def retained_ack(broker: Mosquitto) -> tuple[str, dict[str, wire.AckView]]:
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ack-reader-{time.monotonic_ns()}")
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.connect("127.0.0.1", broker.port)
    client.subscribe(f"busagent/{VEHICLE}/ack", qos=1)
    client.loop_start()
    try:
        deadline = time.monotonic() + 1
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.loop_stop()
        client.disconnect()
    parsed = wire.parse_ack(got[-1]) if got else None
    return parsed or ("", {})


@settings(max_examples=150, deadline=None)
@given(
    topic=st.sampled_from([f"busagent/{VEHICLE}/events", f"busagent/{VEHICLE}/dropped", "x/y"]),
    data=st.binary(max_size=400),
)
def test_ingest_never_raises_on_arbitrary_bytes(
    tmp_path_factory: pytest.TempPathFactory, topic: str, data: bytes
) -> None:
    store = Store(tmp_path_factory.mktemp("fuzz") / "c.db")
    try:
        outcome = Ingest(store, SCHEMAS).handle(topic, data)
        assert outcome != "stored" or data.startswith((b"{", b"\x78"))
    finally:
        store.close()


SCHEMAS = Schemas()


def test_stats_cli_prints_json_and_text_and_map_needs_an_existing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "c.db")
    ingest = Ingest(store, SCHEMAS)
    for seq in (1, 3, 3):
        ingest.handle(f"busagent/{VEHICLE}/events", event(seq))
    ingest.handle(f"busagent/{VEHICLE}/events", b"garbage")
    store.close()
    capsys.readouterr()  # the ingest's log lines
    assert main(["stats", "--db", str(tmp_path / "c.db"), "--json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    (row,) = doc["streams"]
    assert (row["vehicle"], row["stream"], row["received"], row["missing"], row["duplicates"]) == (
        VEHICLE,
        "events",
        2,
        1,
        1,
    )
    assert doc["rejected"] == {"not-json": 1}
    assert main(["stats", "--db", f"sqlite://{tmp_path}/c.db"]) == 0
    assert "rejected not-json: 1" in capsys.readouterr().out
    assert main(["map", "--db", "x", "--out", "y"]) == 2
    assert "no database at x" in capsys.readouterr().err
    assert main(["stats", "--db", "mysql://127.0.0.1/db"]) == 2  # a URL naming no store we have
    assert "not a database URL" in capsys.readouterr().err


def test_collectors_in_a_shared_subscription_group_each_get_a_share_and_store_each_record_once(
    tmp_path: Path, broker: Mosquitto, sender: mqtt.Client
) -> None:
    members = [
        Collector(link(broker.url, client_id=f"member-{i}"), Store(tmp_path / "fleet.db"), group="fleet")
        for i in range(2)
    ]
    try:
        for member in members:
            member.start()
            wait_until(member.subscribed.is_set, 5, "the shared subscription")
        for seq in range(1, 41):
            send(sender, f"busagent/{VEHICLE}/events", event(seq))
        wait_until(lambda: received(members[0]) == 40, 5, "forty records")
        (row,) = members[0].ingest.store.stream_rows()
        assert (row.duplicates, row.missing) == (0, 0)  # without sharing both would store each one
    finally:
        for member in members:
            member.stop()
            member.ingest.store.close()
