"""The ack thread: one vehicle whose ack cannot be built does not stop the others, and is retried."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt import wire
from collector.ingest import Collector
from collector.store import Store
from tests.collector.test_ingest import event
from tests.mqtt.conftest import Mosquitto, link, wait_until


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


def retained_ack(broker: Mosquitto, vehicle: str) -> dict[str, Any]:
    """The retained ack of ``vehicle`` as a fresh subscriber gets it (empty when there is none)."""
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"peek-{vehicle}", protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, message: got.append(bytes(message.payload))
    client.connect("127.0.0.1", broker.port)
    client.subscribe(f"busagent/{vehicle}/ack", qos=1)
    until = time.monotonic() + 0.5
    while not got and time.monotonic() < until:
        client.loop(0.05)
    client.disconnect()
    return dict(wire.loads(got[0])) if got else {}


def test_an_ack_that_fails_stays_due_while_other_vehicles_are_acked_and_the_thread_lives(
    tmp_path: Path, broker: Mosquitto
) -> None:
    db = tmp_path / "c.db"
    collector = Collector(link(broker.url, client_id="collector"), Store(db), ack_interval_s=0.05)
    assert collector.ingest.handle("busagent/bus-a/events", event(1, vehicle="bus-a")) == "stored"
    raw = sqlite3.connect(db)  # a row the store cannot read back: ack_state("bus-a") raises
    raw.execute("INSERT INTO streams (vehicle, epoch, stream) SELECT vehicle, epoch, CAST(x'ff' AS TEXT)"
                " FROM vehicles WHERE vehicle = 'bus-a'")  # fmt: skip
    raw.commit()
    collector.start()
    try:
        wait_until(collector.subscribed.is_set, 5, "the subscription")
        assert collector.ingest.handle("busagent/bus-b/events", event(1, vehicle="bus-b")) == "stored"
        wait_until(lambda: retained_ack(broker, "bus-b").get("vehicle") == "bus-b", 10, "bus-b's ack")
        assert collector.ingest.acks_due == {"bus-a"} and retained_ack(broker, "bus-a") == {}
        raw.execute("DELETE FROM streams WHERE vehicle = 'bus-a' AND stream = CAST(x'ff' AS TEXT)")
        raw.commit()
        wait_until(
            lambda: retained_ack(broker, "bus-a").get("vehicle") == "bus-a", 10, "bus-a's ack, retried"
        )
        assert collector.ingest.acks_due == frozenset()
    finally:
        raw.close()
        collector.stop()
        collector.ingest.store.close()
