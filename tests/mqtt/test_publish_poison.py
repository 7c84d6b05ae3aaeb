"""Records that can never be delivered are set aside as dropped; they never stall their stream."""

from __future__ import annotations

import base64
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.mqtt import Publisher, PublisherSettings, limits
from agent.mqtt.staging import BatchPolicy
from agent.outbox import Outbox
from collector.ingest import Collector
from tests.mqtt.conftest import (
    Mosquitto,
    append_events,
    fast_settings,
    fully_acknowledged,
    open_outbox,
    wait_until,
)

Start = Callable[[Outbox, PublisherSettings], Publisher]


def damage(path: Path, seq: int, payload: bytes) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("UPDATE records SET payload = CAST(? AS TEXT) WHERE seq = ?", (payload, seq))
        conn.commit()
    finally:
        conn.close()


def test_unreadable_rows_are_announced_dropped_and_the_rest_of_the_stream_arrives(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    outbox = open_outbox(tmp_path / "outbox.db")
    collector = collectors(broker.url)
    append_events(outbox, 6)
    damage(outbox.path, 2, b"\xff\xfe not utf-8")
    damage(outbox.path, 5, b"{truncated")
    publisher = publishers(outbox, fast_settings(broker.url))
    wait_until(lambda: fully_acknowledged(outbox), what="the outbox to be acknowledged")
    (row,) = collector.ingest.store.stream_rows()
    assert (row.received, row.dropped, row.missing) == (4, 2, 0)
    wait_until(lambda: outbox.stats().streams["events"].acked_seq == 6, what="the ack to pass the drops")
    status = publisher.status()
    assert status.running and status.internal_errors == 0


def test_status_says_the_publisher_is_not_running_once_stopped(tmp_path: Path, broker: Mosquitto) -> None:
    outbox = open_outbox(tmp_path / "outbox.db")
    publisher = Publisher(outbox, fast_settings(broker.url))
    assert not publisher.status().running
    publisher.start()
    wait_until(lambda: publisher.status().connected, what="a connection")
    assert publisher.status().running
    publisher.stop(timeout_s=0.5)
    assert not publisher.status().running


def test_records_the_collector_would_refuse_are_dropped_and_announced_not_resent_forever(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    outbox = open_outbox(tmp_path / "outbox.db")
    collector = collectors(broker.url)
    noise = base64.b64encode(random.Random(3).randbytes(260_000)).decode()
    outbox.append("events", {"n": 1}, mono=1, wall=1, wall_source="gps")
    outbox.append("events", {"blob": noise}, mono=2, wall=2, wall_source="gps")  # > 256 KiB compressed
    outbox.append("events", {f"k{i}": i for i in range(600)}, mono=3, wall=3, wall_source="gps")
    outbox.append("events", {"n": 4}, mono=4, wall=4, wall_source="gps")
    publishers(outbox, fast_settings(broker.url))
    wait_until(lambda: fully_acknowledged(outbox), what="the outbox to be acknowledged")
    (row,) = collector.ingest.store.stream_rows()
    assert (row.received, row.dropped, row.missing) == (2, 2, 0)
    assert collector.ingest.store.rejects() == {}


def test_a_batch_that_would_inflate_past_the_limit_is_split_and_every_record_arrives(
    tmp_path: Path, broker: Mosquitto, publishers: Start, collectors: Callable[..., Collector]
) -> None:
    outbox = open_outbox(tmp_path / "outbox.db")
    collector = collectors(broker.url)
    for i in range(60):  # 60 x ~56 kB of repetitive text: 3.3 MB of JSON, small once compressed
        outbox.append(
            "telemetry/modem", {"log": f"AT+CSQ {i} OK\n" * 4000, "i": i}, mono=i, wall=i, wall_source="gps"
        )
    publishers(outbox, fast_settings(broker.url))
    wait_until(lambda: fully_acknowledged(outbox), what="the outbox to be acknowledged")
    (row,) = collector.ingest.store.stream_rows()
    assert (row.received, row.dropped, row.missing) == (60, 0, 0)


def test_batch_policy_refuses_more_records_than_the_collector_accepts_in_one_batch() -> None:
    with pytest.raises(ValueError, match="max_records"):
        BatchPolicy(max_records=limits.MAX_BATCH_RECORDS + 1)
