"""Hostile MQTT messages for the collector: real v1 documents, then wrong types, absurd numbers,
deep nesting, lying columns, constant-column and zlib bombs, damaged compression, wrong topics.

The documents are made by the agent's own encoder (agent/mqtt/wire.py), so an undamaged one is
exactly what a bus publishes; the damage is what a broken or malicious publisher could send.
"""

from __future__ import annotations

import functools
import json
import zlib
from typing import Any

from agent.mqtt import wire
from agent.outbox import Record
from tests.reliability.fuzz_mutate import EDGE_INTS, Mutator

VEHICLE = "bus-fuzz"
BOOT = "b0"
EPOCH = "e0"
STREAMS = ["events", "stops/visit", "probes/result", "telemetry/gps", "telemetry/modem"]


def records(m: Mutator, stream: str, first: int, count: int) -> list[Record]:
    keys = [m.word()[:20] or "k" for _ in range(m.rng.randint(1, 5))]
    return [
        Record(
            stream=stream,
            seq=seq,
            msg_id=wire.record_msg_id(VEHICLE, BOOT, stream, seq),
            priority=m.pick(["low", "normal", "high"]),
            payload={k: value(m, seq, count) for k in keys},
            mono=100.0 + seq * 1.5,
            wall=1_772_434_800.0 + seq,
            wall_source="gps",
            boot_id=BOOT,
            state="pending",
            sent_at=None,
            id=seq,
        )
        for seq in range(first, first + count)
    ]


def value(m: Mutator, seq: int, count: int) -> object:
    """A payload value: anything JSON in small batches; in long ones, what telemetry looks like."""
    if count <= 60:
        return m.json_value(2)
    return m.pick(
        [round(seq * 0.000123, 6), seq % 7, "gps", None, f"2026-03-02T08:{seq // 60 % 60:02d}:00.000Z"]
    )


def document(m: Mutator) -> tuple[str, dict[str, Any]]:
    """(topic, doc): one undamaged document of each kind the collector hears."""
    kind = m.pick(["record", "batch", "batch", "status", "dropped", "ack"])
    first = m.pick([1, 2, 1000, 2**53 - 5])
    if kind == "status":
        doc = wire.status_doc(
            VEHICLE, state="online", reason="start", boot_id=BOOT, epoch=EPOCH, at=1.0, serial=1
        )
        return f"busagent/{VEHICLE}/status", doc
    if kind == "dropped":
        doc = wire.dropped_doc(
            VEHICLE, boot_id=BOOT, epoch=EPOCH, stream="telemetry/gps", ranges=[(first, first + 3)]
        )
        return f"busagent/{VEHICLE}/dropped", doc
    if kind == "ack":
        views = {"events": wire.AckView(first, first + 5, ((first + 1, first + 2),))}
        return f"busagent/{VEHICLE}/ack", wire.ack_doc(VEHICLE, epoch=EPOCH, views=views, at=1.0, serial=1)
    stream = m.pick(STREAMS)
    group = records(m, stream, first, 1 if kind == "record" else m.pick([2, 3, 60, 1000]))
    try:
        doc = wire.batch_doc(VEHICLE, EPOCH, group) if len(group) > 1 else wire.record_doc(group[0], EPOCH)
    except (ValueError, RecursionError):  # a payload the column encoder itself cannot take
        doc = wire.record_doc(group[0], EPOCH)
    return f"busagent/{VEHICLE}/{stream}", doc


def damage_column(m: Mutator, doc: dict[str, Any]) -> None:
    area = m.pick(["meta", "cols"])
    columns = doc.get(area)
    if not isinstance(columns, dict) or not columns:
        return
    name = m.pick(list(columns))
    count = doc.get("count", 1) if isinstance(doc.get("count"), int) else 1
    count = max(0, min(count, 1001))  # the schema's limit is 1000: columns longer than that are moot
    roll = m.rng.randrange(6)
    if roll == 0:
        columns[name] = {"c": m.json_value()}
    elif roll == 1:
        columns[name] = {"r": [m.json_value(3) for _ in range(max(0, count + m.pick([0, 0, 1, -1])))]}
    elif roll == 2:
        deltas = [m.pick([0, 1, -1, *EDGE_INTS]) for _ in range(count + m.pick([0, 0, 1, -1]))]
        columns[name] = {"e": m.pick(["int", "dec", "ms", "x"]), "o": m.pick([1, 2, 0, 3]), "d": deltas}
        if m.chance(0.5):
            columns[name]["k"] = m.pick([0, 9, 10, -1, "3"])
        if m.chance(0.3):
            columns[name]["n"] = [m.rng.randrange(-1, count + 2) for _ in range(m.rng.randrange(4))]
    elif roll == 3:  # a constant column that expands count times
        columns[name] = {"c": "x" * m.pick([10, 1000, 3000, 100_000, 1_900_000])}
    elif roll == 4:
        columns[name] = m.json_value()
    else:
        doc["count"] = m.pick([0, 1, count + 1, 1000, 1001, 10**6])


def damage(m: Mutator, doc: dict[str, Any]) -> None:
    for _ in range(m.rng.randint(1, 2)):
        roll = m.rng.random()
        key = m.pick(list(doc)) if doc else "v"
        if roll < 0.3 and doc.get("kind") == "batch":
            damage_column(m, doc)
        elif roll < 0.45:
            doc[key] = m.pick(EDGE_INTS) if m.chance(0.5) else m.pick([1e308, -0.0, 1.5, "1", True, None])
        elif roll < 0.6:
            doc.pop(key, None)
        elif roll < 0.7 and isinstance(doc.get("payload"), dict):
            doc["payload"][m.word()] = m.deep(m.pick([10, 63, 64, 65, 500, 950]))
        else:
            doc[key] = m.json_value()


def serialise(m: Mutator, doc: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(doc, separators=(",", ":"), allow_nan=m.chance(0.5)).encode()
    except (ValueError, RecursionError):  # NaN refused, or nested past what the encoder takes
        text = b'{"v":1,"kind":"record","payload":' + b"[" * 3000 + b"]" * 3000 + b"}"
    roll = m.rng.random()
    if roll < 0.4:
        data = zlib.compress(text, m.rng.randrange(10))
    elif roll < 0.45:
        data = zlib.compress(text)[: -m.rng.randint(1, 8)]
    elif roll < 0.5:
        data = zlib.compress(text) + m.rng.randbytes(m.rng.randint(1, 8))
    elif roll < 0.53:  # a bomb: a few KB inflating past the limit
        data = bomb(m.pick([2_000_000, 3_000_000, 50_000_000]))
    elif roll < 0.55:
        data = zlib.compress(zlib.compress(text))
    else:
        data = text
    return m.mutate_bytes(data) if m.chance(0.1) else data


@functools.cache
def bomb(size: int) -> bytes:
    """zlib of a document padded with ``size`` zeros: ~1 KB per MB inflated (made once, reused)."""
    return zlib.compress(b'{"v":1,"kind":"record","pad":"' + b"0" * size + b'"}')


def mqtt_message(seed: int) -> tuple[str, bytes]:
    """(topic, payload) as the collector's subscription receives it."""
    m = Mutator(seed)
    topic, doc = document(m)
    if m.chance(0.7):
        damage(m, doc)
    if m.chance(0.1):
        topic = m.pick(
            [f"busagent/{VEHICLE}/events", f"busagent/other/{m.pick(STREAMS)}", "busagent/x/ack", m.word(),
             f"busagent/{VEHICLE}/status/x", "busagent//events", f"busagent/{VEHICLE}/$SYS"]
        )  # fmt: skip
    return topic, serialise(m, doc)


def batch_payload(size: int) -> bytes:
    """A plain (uncompressed) batch of about ``size`` bytes: the ingest's cost per byte and per value."""
    count = max(2, min(1000, size // 240))  # 240 bytes a record, as a GPS fix in a batch
    per_record = max(1, size // count)
    stream = "telemetry/gps"
    group = [
        Record(
            stream=stream,
            seq=seq,
            msg_id=wire.record_msg_id(VEHICLE, BOOT, stream, seq),
            priority="low",
            payload={"note": f"{seq:08d}" + "x" * max(0, per_record - 40)},
            mono=float(seq),
            wall=1_772_434_800.0 + seq,
            wall_source="gps",
            boot_id=BOOT,
            state="pending",
            sent_at=None,
            id=seq,
        )
        for seq in range(1, count + 1)
    ]
    return json.dumps(wire.batch_doc(VEHICLE, EPOCH, group), separators=(",", ":")).encode()
