"""Payload encoding: lossless columns, batches, bounded decoding of hostile bytes, topics, bytes per fix."""

from __future__ import annotations

import contextlib
import json
import random
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.mqtt import columns, limits, topics, wire
from agent.outbox import Record
from collector.validate import Schemas
from tests.mqtt.conftest import VEHICLE, gps_payload

EPOCH = "0123456789abcdef0123456789abcdef"
BOOT = "5f0c3c4e-1d2b-4c7a-9e8f-0a1b2c3d4e5f"
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["2026-03-02T08:00:00.000Z", "2026-03-02T08:00:01.250Z", "1970-01-01T00:00:00.000Z"]),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)


def record(seq: int, payload: dict[str, Any], stream: str = "telemetry/gps", **extra: Any) -> Record:
    options: dict[str, Any] = {
        "priority": "low",
        "mono": 12345.0 + seq + 0.000123,
        "wall": 1_772_434_800.0 + seq + 0.0004567,
        "wall_source": "gps",
        "boot_id": BOOT,
        "state": "pending",
        "sent_at": None,
        "id": seq,
    }
    options.update(extra)
    return Record(
        stream=stream,
        seq=seq,
        msg_id=wire.record_msg_id(VEHICLE, BOOT, stream, seq),
        payload=payload,
        **options,
    )


def gps_records(count: int, first_seq: int = 1) -> list[Record]:
    rng = random.Random(first_seq)
    return [record(first_seq + i, gps_payload(i, rng)) for i in range(count)]


@given(st.lists(json_values, min_size=1, max_size=40))
def test_any_column_of_json_values_decodes_to_the_same_json_text(values: list[Any]) -> None:
    column = columns.encode(values)
    back = columns.decode(json.loads(json.dumps(column)), len(values))
    assert json.dumps(back) == json.dumps(values)


@given(st.dictionaries(st.sampled_from(["c", "r", "e", "o", "d", "k", "n"]), json_values), st.integers(0, 50))
def test_decoding_a_made_up_column_returns_values_or_raises_value_error_only(
    column: dict[str, Any], count: int
) -> None:
    try:
        values = columns.decode(column, count)
    except ValueError:
        return
    assert len(values) == count


def test_steady_timestamps_and_coordinates_become_small_numbers() -> None:
    column = columns.encode([1_772_434_800.25 + 1.5 * i for i in range(60)])
    assert column["e"] == "dec" and column["k"] == 2 and column["o"] == 2 and set(column["d"][2:]) == {0}
    assert columns.encode(list(range(5, 65)))["d"] == [5] + [1] * 59
    times = columns.encode([f"2026-03-02T08:00:{s:02d}.000Z" for s in range(60)])
    assert times["e"] == "ms" and set(times["d"][2:]) == {0}
    assert columns.encode([True] * 5) == {"c": True}
    assert columns.encode([1, 1.0]) == {"r": [1, 1.0]}  # an int and a float are not the same JSON


def test_batch_round_trip_gives_back_every_record_with_its_msg_id_and_exact_payload() -> None:
    records = gps_records(60, first_seq=101)
    doc = wire.batch_doc(VEHICLE, EPOCH, records)
    assert Schemas().problem("batch", doc) is None
    back = wire.records_of_batch(wire.loads(wire.dumps(doc)), VEHICLE)
    assert [r.msg_id for r in back] == [r.msg_id for r in records]
    assert [r.payload for r in back] == [r.payload for r in records]
    assert all(
        abs(a.wall - b.wall) < 1e-6 and abs(a.mono - b.mono) < 1e-6
        for a, b in zip(back, records, strict=True)
    )


def test_batches_split_on_payload_shape_boot_and_size() -> None:
    records = gps_records(130)
    records[70] = record(71, {"other": 1})
    records[100] = record(101, records[100].payload, boot_id="another-boot")
    sizes = [len(group) for group in wire.batch_groups(records, 60)]
    assert sizes == [60, 10, 1, 29, 1, 29]


def test_a_batch_naming_another_vehicle_or_a_lying_seq_range_is_refused() -> None:
    doc = wire.batch_doc(VEHICLE, EPOCH, gps_records(10))
    with pytest.raises(wire.WireError, match="msg-id-mismatch"):
        wire.records_of_batch(doc, "bus-other")
    doc["last_seq"] = 11
    doc["msg_id"] = wire.batch_msg_id(VEHICLE, BOOT, "telemetry/gps", 1, 11)
    with pytest.raises(wire.WireError, match="bad-batch"):
        wire.records_of_batch(doc, VEHICLE)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not-json"),
        (b'{"a": NaN}', "not-json"),
        (b"\xff\xfe{}", "not-json"),
        (b"[" * 100_000, "not-json"),
        (
            b'{"a": ' + b"[" * (limits.MAX_JSON_DEPTH + 1) + b"]" * (limits.MAX_JSON_DEPTH + 1) + b"}",
            "too-deep",
        ),
        (zlib.compress(b"{" + b" " * (3 * 1024 * 1024) + b"}"), "too-large"),
        (zlib.compress(b'{"a": 1}')[:-3], "bad-zlib"),
        (b"x" * (limits.MAX_PAYLOAD_BYTES + 1), "too-large"),
    ],
)
def test_unreadable_payloads_raise_wire_error_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.loads(payload)
    assert caught.value.reason == reason


@given(st.binary(max_size=300))
def test_loads_never_raises_anything_but_wire_error(data: bytes) -> None:
    with contextlib.suppress(wire.WireError):
        wire.loads(data)


def test_the_agent_never_sends_a_document_too_deep_or_a_batch_expanding_past_the_limit() -> None:
    records = [record(seq, {"blob": "x" * 3000}) for seq in range(1, 1001)]
    with pytest.raises(wire.Unsendable, match="expands to"):
        wire.dumps_checked(wire.batch_doc(VEHICLE, EPOCH, records))  # 3 MB of records
    wire.dumps_checked(wire.batch_doc(VEHICLE, EPOCH, records[:500]))  # 1.5 MB: sendable
    deep: Any = {"a": 1}
    for _ in range(limits.MAX_JSON_DEPTH):
        deep = [deep]
    with pytest.raises(wire.Unsendable, match="nested"):
        wire.dumps_checked(wire.record_doc(record(1, {"deep": deep}, stream="events"), EPOCH))


def test_ack_round_trip_keeps_holes_and_what_the_collector_holds_above_them() -> None:
    view = wire.AckView(upto=10, top=50, missing=((12, 14), (40, 40)))
    doc = wire.ack_doc(
        VEHICLE, epoch=EPOCH, views={"events": view, "telemetry/gps": wire.AckView(7)}, at=1.0, serial=3
    )
    assert Schemas().problem("ack", doc) is None
    epoch, views = wire.parse_ack(wire.dumps(doc)) or ("", {})
    assert epoch == EPOCH and views == {"events": view, "telemetry/gps": wire.AckView(7, 7)}
    assert [s for s in range(9, 53) if not view.has(s)] == [12, 13, 14, 40, 51, 52]
    assert wire.parse_ack(b'{"v": 1, "kind": "ack", "epoch": "e", "streams": {"x": -1}}') is None


def test_topics_are_built_and_parsed_and_reserved_or_wild_names_refused() -> None:
    assert topics.data(VEHICLE, "telemetry/gps") == "busagent/bus-tdc-01/telemetry/gps"
    assert topics.parse("busagent/bus-tdc-01/stops/visit") == topics.Topic(VEHICLE, "data", "stops/visit")
    assert topics.parse("busagent/bus-tdc-01/ack") == topics.Topic(VEHICLE, "ack")
    assert topics.subscription("fleet") == "$share/fleet/busagent/+/#"
    for bad in (
        "busagent/+/events",
        "other/bus/events",
        "busagent/bus/",
        "busagent/bus/a/b/c/d/e",
        "busagent/bus",
    ):
        assert topics.parse(bad) is None
    for stream in ("status", "ack/x", "tele#", ""):
        with pytest.raises(ValueError, match="cannot be a topic"):
            topics.data(VEHICLE, stream)


def test_minute_batches_of_1hz_gps_cost_at_most_28_bytes_per_fix_in_publish_packets() -> None:
    records = gps_records(600)
    topic = topics.data(VEHICLE, "telemetry/gps")
    total = sum(
        wire.publish_packet_bytes(topic, len(wire.dumps(wire.batch_doc(VEHICLE, EPOCH, group))), mqtt5=True)
        for group in wire.batch_groups(records, 60)
    )
    one_by_one = sum(
        wire.publish_packet_bytes(topic, len(wire.dumps(wire.record_doc(r, EPOCH))), mqtt5=True)
        for r in records
    )
    print(f"GPS: {total / 600:.1f} bytes/fix batched, {one_by_one / 600:.1f} one record per message")
    assert total / 600 <= 28
    assert one_by_one / total > 10
