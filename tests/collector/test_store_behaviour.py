"""The store contract, run alike on SQLite and on a real PostgreSQL: records stored once by
(vehicle, epoch, stream, seq), duplicates and gaps counted, dropped ranges, the contiguous ack
with its holes, per-stream stats, rejects and payloads in arrival order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.mqtt.wire import AckView, Received
from collector.db import open_store
from collector.store import HOLE_SCAN, MAX_HOLES
from collector.store_api import CollectorStore
from tests.collector.postgres import Postgres

VEHICLE = "bus-tdc-01"
EPOCH = "e" * 32
STREAM = "telemetry/gps"


def received(seq: int, stream: str = STREAM, payload: dict[str, Any] | None = None) -> Received:
    return Received(
        stream=stream, seq=seq, msg_id=f"{VEHICLE}/b1/{stream}/{seq}", boot_id="b1", priority="low",
        payload={"seq": seq} if payload is None else payload, mono=float(seq), wall=1e9 + seq,
        wall_source="gps",
    )  # fmt: skip


def batch(*seqs: int, stream: str = STREAM) -> list[Received]:
    return [received(s, stream) for s in seqs]


def view(store: CollectorStore, stream: str = STREAM, vehicle: str = VEHICLE) -> AckView:
    state = store.ack_state(vehicle)
    assert state is not None
    return state[1][stream]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/c.db"
    server: Postgres = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def store(store_url: str) -> Iterator[CollectorStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def test_storing_the_same_records_again_stores_nothing_and_counts_duplicates(store: CollectorStore) -> None:
    assert store.store_records(VEHICLE, EPOCH, batch(1, 2, 3), now=1.0) == (3, 0)
    assert store.store_records(VEHICLE, EPOCH, batch(2, 3, 4), now=2.0) == (1, 2)
    assert store.store_records(VEHICLE, EPOCH, batch(5, 5, 5), now=3.0) == (1, 2)  # within one batch
    (row,) = store.stream_rows()
    assert (row.received, row.duplicates, row.missing, row.dropped) == (5, 4, 0, 0)
    assert [seq for seq, _ in store.payloads(VEHICLE, STREAM)] == [1, 2, 3, 4, 5]


def test_the_same_seq_in_another_epoch_or_stream_is_another_record(store: CollectorStore) -> None:
    store.store_records(VEHICLE, EPOCH, batch(1), now=1.0)
    assert store.store_records(VEHICLE, "f" * 32, batch(1), now=2.0) == (1, 0)
    assert store.store_records(VEHICLE, "f" * 32, batch(1, stream="events"), now=3.0) == (1, 0)
    assert store.store_records("bus-tdc-02", EPOCH, batch(1), now=4.0) == (1, 0)
    rows = {(r.vehicle, r.stream): r for r in store.stream_rows()}
    assert (rows[VEHICLE, STREAM].received, rows[VEHICLE, STREAM].epochs) == (2, 2)
    assert rows[VEHICLE, "events"].received == 1 and rows["bus-tdc-02", STREAM].received == 1


def test_a_gap_holds_the_ack_and_is_listed_as_a_hole_until_it_arrives(store: CollectorStore) -> None:
    store.store_records(VEHICLE, EPOCH, batch(1, 2, 5, 6, 9), now=1.0)
    assert view(store) == AckView(2, 9, ((3, 4), (7, 8)))
    assert store.stream_rows()[0].missing == 4
    store.store_records(VEHICLE, EPOCH, batch(4, 3), now=2.0)
    assert view(store) == AckView(6, 9, ((7, 8),))
    store.store_records(VEHICLE, EPOCH, batch(8, 7), now=3.0)
    assert view(store) == AckView(9)
    assert store.stream_rows()[0].missing == 0


def test_dropped_ranges_are_crossed_by_the_ack_and_counted_as_dropped_not_missing(
    store: CollectorStore,
) -> None:
    store.store_records(VEHICLE, EPOCH, batch(1, 2, 6, 7, 12), now=1.0)
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[3, 5], [8, 9]], now=2.0)
    assert view(store) == AckView(9, 12, ((10, 11),))
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[3, 5], [10, 11], [4, 3]], now=3.0)  # again, and empty
    assert view(store) == AckView(12)
    (row,) = store.stream_rows()
    assert (row.received, row.dropped, row.missing) == (5, 7, 0)


def test_a_dropped_range_above_every_record_counts_and_moves_the_ack(store: CollectorStore) -> None:
    store.store_dropped(VEHICLE, EPOCH, "events", [[1, 10]], now=1.0)
    assert view(store, "events") == AckView(10)
    (row,) = store.stream_rows()
    assert (row.received, row.dropped, row.missing, row.last_seen) == (0, 10, 0, None)


def test_the_ack_lists_at_most_max_holes_and_cuts_its_top_back_before_the_first_unlisted(
    store: CollectorStore,
) -> None:
    seqs = [1, *range(3, 3 + 2 * (MAX_HOLES + 5), 2)]  # a hole before each odd seq after 1
    store.store_records(VEHICLE, EPOCH, batch(*seqs), now=1.0)
    got = view(store)
    assert (got.upto, len(got.missing)) == (1, MAX_HOLES)
    assert got.missing[0] == (2, 2) and got.missing[-1] == (2 * MAX_HOLES, 2 * MAX_HOLES)
    assert got.top == 2 * MAX_HOLES + 1  # the seq after the last listed hole, not the highest held


def test_the_ack_examines_at_most_hole_scan_records_above_its_start(store: CollectorStore) -> None:
    store.store_records(VEHICLE, EPOCH, batch(*range(2, HOLE_SCAN + 50, 1)), now=1.0)
    assert view(store) == AckView(0, HOLE_SCAN + 1, ((1, 1),))


def test_the_ack_follows_the_epoch_the_vehicle_last_spoke_in(store: CollectorStore) -> None:
    assert store.ack_state(VEHICLE) is None
    store.store_records(VEHICLE, EPOCH, batch(1, 2), now=1.0)
    status = {"state": "online", "reason": "birth", "boot_id": "b2", "epoch": "f" * 32, "at": 5.0}
    store.store_status(VEHICLE, status, now=2.0)
    assert store.ack_state(VEHICLE) == ("f" * 32, {})  # a new outbox: nothing held for it yet
    store.store_records(VEHICLE, "f" * 32, batch(1), now=3.0)
    assert store.ack_state(VEHICLE) == ("f" * 32, {STREAM: AckView(1)})
    store.store_records(VEHICLE, EPOCH, batch(3), now=4.0)  # a late record of the old epoch
    assert store.ack_state(VEHICLE) == (EPOCH, {STREAM: AckView(3)})


def test_stats_add_epochs_up_per_vehicle_and_stream_in_name_order(store: CollectorStore) -> None:
    store.store_records("bus-b", EPOCH, batch(1, 3), now=10.0)
    store.store_records("bus-a", EPOCH, batch(1, 1, stream="events"), now=20.0)
    store.store_records("bus-a", EPOCH, batch(2), now=30.0)
    store.store_records("bus-a", "f" * 32, batch(1, 4), now=25.0)
    store.store_dropped("bus-a", "f" * 32, STREAM, [[2, 2]], now=26.0)
    rows = [(r.vehicle, r.stream, r.received, r.missing, r.duplicates, r.dropped, r.last_seen, r.epochs)
            for r in store.stream_rows()]  # fmt: skip
    assert rows == [
        ("bus-a", "events", 1, 0, 1, 0, 20.0, 1),
        ("bus-a", STREAM, 3, 1 + 1, 0, 1, 30.0, 2),  # seq 1 of EPOCH and seq 3 of the other are missing
        ("bus-b", STREAM, 2, 1, 0, 0, 10.0, 1),
    ]


def test_a_record_received_although_announced_dropped_is_not_counted_twice(store: CollectorStore) -> None:
    store.store_records(VEHICLE, EPOCH, batch(1, 2, 3), now=1.0)
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[2, 5]], now=2.0)
    (row,) = store.stream_rows()
    assert (row.received, row.dropped, row.missing) == (3, 2, 0)
    assert view(store) == AckView(5)


def test_rejects_are_counted_by_reason_even_when_the_detail_quotes_a_nul(store: CollectorStore) -> None:
    assert store.rejects() == {}
    store.reject("schema", "busagent/x/events", "bad\x00value" + "x" * 1000, now=1.0)
    store.reject("schema", "busagent/x/events" * 50, "again", now=2.0)
    store.reject("not-json", "busagent/x/events", "", now=3.0)
    assert store.rejects() == {"schema": 2, "not-json": 1}


def test_payloads_come_back_whole_in_the_order_they_first_arrived(store: CollectorStore) -> None:
    odd: dict[str, Any] = {
        "name": "Mairie, Saint-Antonin-Noble-Val ✓",
        "nul": "a\x00b",
        "nested": {"list": [1, 2.5, None, True, {"k": "v"}], "empty": {}},
        "big": 2**62,
        "order": {"z": 1, "a": 2},
    }
    store.store_records(VEHICLE, EPOCH, [received(5, payload=odd)], now=1.0)
    store.store_records(VEHICLE, EPOCH, batch(2, 9, 1), now=2.0)
    store.store_records(VEHICLE, EPOCH, [received(5, payload={"other": 1})], now=3.0)  # a duplicate
    got = store.payloads(VEHICLE, STREAM)
    assert [seq for seq, _ in got] == [5, 2, 9, 1]
    assert got[0][1] == odd
    assert list(got[0][1]["order"]) == ["z", "a"]
    assert store.payloads(VEHICLE, "events") == []


# -- what the maps read ---------------------------------------------------------------------------


def made(
    vehicle: str, seq: int, *, boot: str = "b1", mono: float = 0.0, wall: float = 0.0, **payload: Any
) -> Received:
    stream = "probes/result"
    return Received(
        stream=stream, seq=seq, msg_id=f"{vehicle}/{boot}/{stream}/{seq}", boot_id=boot, priority="normal",
        payload={"seq": seq, **payload}, mono=mono, wall=wall, wall_source="ntp",
    )  # fmt: skip


def test_stream_payloads_read_every_vehicle_and_epoch_in_order_in_chunks(store: CollectorStore) -> None:
    store.store_records("bus-b", EPOCH, [made("bus-b", s, wall=100.0 + s) for s in (3, 1, 2)], now=1.0)
    store.store_records("Bus-Z", EPOCH, [made("Bus-Z", 1, wall=50.0)], now=1.0)  # "B" sorts before "b"
    store.store_records("bus-b", "0" * 32, [made("bus-b", 9, wall=300.0)], now=1.0)
    rows = list(store.stream_payloads("probes/result", chunk=2))
    assert [(r.vehicle, r.payload["seq"]) for r in rows] == [
        ("Bus-Z", 1), ("bus-b", 9), ("bus-b", 1), ("bus-b", 2), ("bus-b", 3),
    ]  # fmt: skip
    assert [r.payload["seq"] for r in store.stream_payloads("probes/result", since=102.0)] == [9, 2, 3]
    assert list(store.stream_payloads("events")) == []


def test_stream_payloads_with_text_keep_only_a_non_empty_top_level_string(store: CollectorStore) -> None:
    kinds: list[dict[str, Any]] = [
        {"label": "Mairie, Lizac"}, {"label": " "}, {"label": 3}, {"other": {"label": "nested"}}, {},
    ]  # fmt: skip
    store.store_records(
        VEHICLE, EPOCH, [made(VEHICLE, i + 1, **kind) for i, kind in enumerate(kinds)], now=1.0
    )
    labelled = list(store.stream_payloads("probes/result", with_text="label", chunk=1))
    assert [r.payload for r in labelled] == [{"seq": 1, "label": "Mairie, Lizac"}]
    with pytest.raises(ValueError, match="plain key name"):
        list(store.stream_payloads("probes/result", with_text='x" OR 1'))


def test_payloads_near_finds_one_boots_records_nearest_first(store: CollectorStore) -> None:
    store.store_records(VEHICLE, EPOCH, [made(VEHICLE, s, mono=10.0 * s) for s in range(1, 10)], now=1.0)
    store.store_records(
        VEHICLE, EPOCH, [made(VEHICLE, s, boot="b2", mono=10.0 * s) for s in (20, 21)], now=1.0
    )
    store.store_records(f"{VEHICLE}0", EPOCH, [made(f"{VEHICLE}0", 1, mono=52.0)], now=1.0)
    near = store.payloads_near(VEHICLE, "probes/result", "b1", 52.0, within_s=15.0, limit=3)
    assert [(r.vehicle, r.boot_id, r.mono) for r in near] == [(VEHICLE, "b1", 50.0), (VEHICLE, "b1", 60.0),
                                                              (VEHICLE, "b1", 40.0)]  # fmt: skip
    assert store.payloads_near(VEHICLE, "probes/result", "b9", 52.0, within_s=15.0) == []
    assert store.payloads_near(VEHICLE, "events", "b1", 52.0, within_s=15.0) == []


# -- against a plain model -----------------------------------------------------------------------

Step = tuple[list[int], list[tuple[int, int]]]
spans = st.tuples(st.integers(1, 30), st.integers(0, 5)).map(lambda t: (t[0], t[0] + t[1]))
steps = st.lists(
    st.tuples(st.lists(st.integers(1, 30), max_size=8), st.lists(spans, max_size=3)), min_size=1, max_size=8
)
examples = iter(range(10**9))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps)
def test_ack_and_counts_agree_with_a_model(store: CollectorStore, plan: list[Step]) -> None:
    vehicle = f"bus-model-{next(examples)}"  # one fresh vehicle per example, in the one store
    have: set[int] = set()
    held: set[int] = set()
    for now, (seqs, ranges) in enumerate(plan):
        if seqs:
            stored, dupes = store.store_records(vehicle, EPOCH, batch(*seqs), now=float(now))
            assert stored == len(set(seqs) - held) and dupes == len(seqs) - stored
            held.update(seqs)
        if ranges:
            store.store_dropped(vehicle, EPOCH, STREAM, [list(r) for r in ranges], now=float(now))
        have.update(seqs)
        have.update(s for first, last in ranges for s in range(first, last + 1))
        if seqs or ranges:
            assert view(store, vehicle=vehicle).upto == model_upto(have)
    assert sum(r.received for r in store.stream_rows() if r.vehicle == vehicle) == len(held)


def model_upto(have: set[int]) -> int:
    n = 0
    while n + 1 in have:
        n += 1
    return n
