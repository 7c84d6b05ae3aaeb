"""Hostile numbers (huge seqs, 1e400, "nan" in a column) are counted rejects, never stored or raised."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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
