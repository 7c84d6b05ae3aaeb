"""Hostile numbers (huge seqs, 1e400, "nan" in a column) are counted rejects, never stored or raised."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from agent.mqtt import limits
from collector.ingest import Ingest
from collector.store import Store
from collector.validate import Schemas

VEHICLE = "bus1"
EPOCH = "e1"


@pytest.fixture
def ingest(tmp_path: Path) -> Ingest:
    return Ingest(Store(tmp_path / "c.db"), Schemas())


def record_doc(seq: int, **fields: Any) -> dict[str, Any]:
    doc = {
        "v": 1, "kind": "record", "msg_id": f"{VEHICLE}/b1/events/{seq}", "epoch": EPOCH,
        "stream": "events", "seq": seq, "boot_id": "b1", "priority": "normal",
        "mono": 1.0, "wall": 2.0, "wall_source": "gps", "payload": {"a": 1},
    }  # fmt: skip
    return {**doc, **fields}


def batch_doc(seq: list[int], mono: list[Any]) -> dict[str, Any]:
    first, last = seq[0], seq[-1]
    return {
        "v": 1, "kind": "batch", "msg_id": f"{VEHICLE}/b1/telemetry/gps/{first}-{last}", "epoch": EPOCH,
        "stream": "telemetry/gps", "boot_id": "b1", "count": len(seq), "first_seq": first, "last_seq": last,
        "meta": {"seq": {"r": seq}, "mono": {"r": mono}, "wall": {"c": 1.0}, "wall_source": {"c": "gps"},
                 "priority": {"c": "low"}},
        "cols": {"x": {"c": 1}},
    }  # fmt: skip


def send(ingest: Ingest, stream: str, text: str) -> str:
    return ingest.handle(f"busagent/{VEHICLE}/{stream}", text.encode())


def test_a_seq_beyond_2_to_the_53_is_refused_by_the_schema(ingest: Ingest) -> None:
    huge = 2**64
    assert (
        send(ingest, "events", json.dumps(record_doc(huge, msg_id=f"{VEHICLE}/b1/events/{huge}"))) == "schema"
    )
    assert send(ingest, "telemetry/gps", json.dumps(batch_doc([5, 2**60], [1.0, 2.0]))) == "schema"
    assert ingest.store.rejects() == {"schema": 2} and ingest.store.stream_rows() == []


@pytest.mark.parametrize("mono", ["1e400", "-1e400", "1" + "0" * 400], ids=["inf", "-inf", "10**400"])
def test_a_record_time_that_is_infinite_or_overflows_a_double_is_rejected(ingest: Ingest, mono: str) -> None:
    text = json.dumps(record_doc(1, mono=0.5)).replace('"mono": 0.5', f'"mono": {mono}')
    assert send(ingest, "events", text) == "bad-record"
    assert ingest.store.stream_rows() == []


@pytest.mark.parametrize(
    "bad", ["nan", "1", True, 10**400], ids=["nan-text", "digit-text", "bool", "10**400"]
)
def test_a_batch_time_column_that_is_not_a_finite_number_is_rejected_not_counted_duplicate(
    ingest: Ingest, bad: Any
) -> None:
    assert send(ingest, "telemetry/gps", json.dumps(batch_doc([1, 2], [bad, 1.0]))) == "bad-batch"
    assert ingest.store.stream_rows() == [] and ingest.store.rejects() == {"bad-batch": 1}


def test_json_nested_past_the_depth_limit_is_refused_whatever_the_stack_depth(ingest: Ingest) -> None:
    # Around 990 levels json.loads still succeeds but storing the payload (json.dumps, a few frames
    # deeper) raised RecursionError out of handle(); no agent document nests even ten levels.
    depths = [limits.MAX_JSON_DEPTH + 1, 200, *range(880, 1000)]
    for seq, depth in enumerate(depths, start=1):
        nested = "[" * depth + "]" * depth
        text = json.dumps(record_doc(seq, payload={"a": 0})).replace('{"a": 0}', '{"a": ' + nested + "}")
        assert send(ingest, "events", text) in ("too-deep", "not-json"), depth
    assert ingest.store.stream_rows() == []
    assert send(ingest, "events", json.dumps(record_doc(1, payload={"a": [[{"b": [1]}]]}))) == "stored"


def test_a_constant_column_cannot_expand_a_small_batch_into_gigabytes(ingest: Ingest) -> None:
    # 1000 records sharing one 3 KB constant: a 2 KB message that would store 3 MB (1.9 MB constants
    # made 3.9 GB and a minute of CPU). A batch may expand to what one document may inflate to.
    doc = batch_doc(list(range(1, 1001)), [1.0] * 1000)
    doc["meta"]["seq"] = {"e": "int", "o": 1, "d": [1] * 1000}
    doc["meta"]["mono"] = {"c": 1.0}
    doc["cols"] = {"blob": {"c": "x" * 3000}}
    payload = zlib.compress(json.dumps(doc).encode(), 9)
    assert len(payload) < 4096
    assert ingest.handle(f"busagent/{VEHICLE}/telemetry/gps", payload) == "too-large"
    assert ingest.store.stream_rows() == []
    doc["cols"] = {"blob": {"c": "x" * 1000}}  # 1 MB once expanded: allowed
    assert (
        ingest.handle(f"busagent/{VEHICLE}/telemetry/gps", zlib.compress(json.dumps(doc).encode()))
        == "stored"
    )
