"""Fuzzing the collector's ingest and the agent's ack reader with hostile MQTT messages.

Every message a v1 publisher can send, damaged (fuzz_mqtt.py): wrong types, 2**64 and 10**300,
JSON nested up to 1500 levels, batch columns that lie about their length or repeat a 1.9 MB
constant 1000 times, zlib bombs and broken zlib, wrong topics. ``Ingest.handle`` documents that it
never raises: each message is stored, ignored or counted as rejected by reason, within the time
bound, and the store stays readable. The agent reads its retained ack with ``parse_ack``, which
must give a valid ack or None for the same bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.mqtt import wire
from agent.mqtt.limits import MAX_INFLATED_BYTES
from collector.ingest import Ingest
from collector.store import Store
from collector.validate import Schemas
from tests.reliability.fuzz_mqtt import VEHICLE, batch_payload, mqtt_message
from tests.reliability.fuzz_mutate import seeds
from tests.reliability.fuzzing import KIB, Campaign, fuzz_settings, quiet_logs, scaling

SCHEMAS = Schemas()
TOPICS = [f"busagent/{VEHICLE}/{leaf}" for leaf in ("events", "telemetry/gps", "status", "dropped", "ack")]


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with quiet_logs():
        yield


def inflated_size(payload: bytes) -> int:
    """What the collector may have to parse: the payload, or what it inflates to (up to the cap)."""
    if payload[:1] != b"\x78":
        return len(payload)
    try:
        return len(zlib.decompressobj().decompress(payload, MAX_INFLATED_BYTES + 1))
    except zlib.error:
        return len(payload)


def check_ack(payload: bytes) -> None:
    parsed = wire.parse_ack(payload)  # documented: a readable v1 ack or None, never an exception
    if parsed is not None:
        epoch, views = parsed
        assert isinstance(epoch, str)
        for view in views.values():
            assert 0 <= view.upto <= view.top and all(a >= 0 and b >= 0 for a, b in view.missing)


def test_ingest_stores_or_counts_every_hostile_message_and_the_store_stays_readable(tmp_path: Path) -> None:
    store = Store(tmp_path / "collector.db")
    ingest = Ingest(store, SCHEMAS)
    campaign = Campaign("fuzz_ingest")
    outcomes: list[str] = []

    def handle(topic: str, payload: bytes) -> str:
        outcome = ingest.handle(topic, payload)
        assert isinstance(outcome, str)
        outcomes.append(outcome)
        return outcome

    @fuzz_settings(800)
    @given(seeds.map(mqtt_message) | st.tuples(st.sampled_from(TOPICS), st.binary(max_size=600)))
    def run(message: tuple[str, bytes]) -> None:
        topic, payload = message
        campaign.count(campaign.run(inflated_size(payload), lambda: handle(topic, payload)))
        check_ack(payload)

    run()
    # Every message not stored (nor our own ack coming back) was counted, by reason, in the store.
    rejected = [o for o in outcomes if o not in ("stored", "ignored")]
    assert sum(store.rejects().values()) == len(rejected)
    for row in store.stream_rows():
        store.payloads(row.vehicle, row.stream)  # every stored payload reads back as JSON
    store.ack_state(VEHICLE)
    figures = scaling(
        "ingest",
        batch_payload,
        lambda payload: handle(f"busagent/{VEHICLE}/telemetry/gps", payload),
        sizes=(15 * KIB, 240 * KIB, 3840 * KIB),  # 240 KiB: just under the 256 KiB a payload may have
    )
    store.close()
    campaign.report(**figures)
