"""The store's contiguous ack: received seqs and announced dropped ranges (overlapping, touching,
straddling what is already acked) carry it forward; a seq that is neither stops it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.mqtt.wire import Received
from collector.store import Store, contiguous_end

VEHICLE = "bus1"
EPOCH = "e1"
STREAM = "telemetry/gps"


def received(seq: int, stream: str = STREAM) -> Received:
    return Received(
        stream=stream, seq=seq, msg_id=f"{VEHICLE}/b1/{stream}/{seq}", boot_id="b1", priority="low",
        payload={"seq": seq}, mono=float(seq), wall=1e9 + seq, wall_source="gps",
    )  # fmt: skip


def upto(store: Store, stream: str = STREAM) -> int:
    state = store.ack_state(VEHICLE)
    assert state is not None
    return state[1][stream].upto


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "c.db")
    yield opened
    opened.close()


def test_dropped_ranges_fill_the_gaps_between_received_seqs(store: Store) -> None:
    store.store_records(VEHICLE, EPOCH, [received(s) for s in (1, 2, 4, 6, 7)], now=1.0)
    assert upto(store) == 2
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[3, 3]], now=2.0)
    assert upto(store) == 4
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[5, 5]], now=3.0)
    assert upto(store) == 7


def test_a_dropped_range_beyond_a_hole_waits_for_the_hole(store: Store) -> None:
    store.store_records(VEHICLE, EPOCH, [received(1)], now=1.0)
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[3, 5], [7, 9]], now=2.0)
    assert upto(store) == 1
    store.store_records(VEHICLE, EPOCH, [received(2)], now=3.0)
    assert upto(store) == 5  # 6 is neither received nor dropped
    store.store_records(VEHICLE, EPOCH, [received(6), received(10)], now=4.0)
    assert upto(store) == 10


def test_overlapping_and_touching_ranges_are_crossed_as_one(store: Store) -> None:
    # [2, 4] re-announced as [2, 6]; [5, 8] overlaps it, [9, 9] and [10, 12] touch; received seqs
    # inside the ranges (sent before the outbox dropped them) change nothing.
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[2, 4], [10, 12]], now=1.0)
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[2, 6], [5, 8], [9, 9]], now=2.0)
    store.store_records(VEHICLE, EPOCH, [received(s) for s in (3, 7, 11)], now=3.0)
    assert upto(store) == 0
    store.store_records(VEHICLE, EPOCH, [received(1)], now=4.0)
    assert upto(store) == 12
    store.store_records(VEHICLE, EPOCH, [received(13)], now=5.0)
    assert upto(store) == 13


def test_a_short_range_inside_a_long_one_does_not_cut_it_short(store: Store) -> None:
    store.store_records(VEHICLE, EPOCH, [received(s) for s in (1, 2, 3)], now=1.0)
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[2, 10], [3, 5], [4, 4]], now=2.0)
    assert upto(store) == 10


def test_a_range_announced_after_the_ack_passed_its_start_still_counts(store: Store) -> None:
    store.store_records(VEHICLE, EPOCH, [received(s) for s in range(1, 6)], now=1.0)
    store.store_records(VEHICLE, EPOCH, [received(10)], now=2.0)
    assert upto(store) == 5
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[3, 9]], now=3.0)  # 3..5 were received meanwhile
    assert upto(store) == 10


def test_streams_and_epochs_do_not_cover_each_other(store: Store) -> None:
    store.store_records(VEHICLE, EPOCH, [received(1), received(3)], now=1.0)
    store.store_dropped(VEHICLE, EPOCH, "events", [[2, 2]], now=2.0)
    store.store_dropped(VEHICLE, "other-epoch", STREAM, [[2, 2]], now=3.0)
    store.store_records(VEHICLE, EPOCH, [received(4)], now=4.0)  # the vehicle's epoch is EPOCH again
    assert upto(store) == 1


def test_a_long_thinned_outage_is_crossed_batch_by_batch(store: Store) -> None:
    """Every other seq dropped, the rest arriving in batches: each batch moves the ack to its end."""
    store.store_dropped(VEHICLE, EPOCH, STREAM, [[s, s] for s in range(2, 4001, 2)], now=1.0)
    for first in range(1, 4001, 200):
        batch = [received(s) for s in range(first, first + 200, 2)]
        store.store_records(VEHICLE, EPOCH, batch, now=2.0)
        assert upto(store) == first + 199


def test_contiguous_end_reads_neither_input_past_the_first_missing_seq() -> None:
    seqs = iter([1, 2, 5, 9, 10])
    ranges = iter([(3, 4), (7, 8), (20, 30)])
    assert contiguous_end(0, seqs, ranges) == 5
    # Reading 9 and (7, 8) showed that 6 is missing; nothing after them was read.
    assert next(seqs) == 10
    assert next(ranges) == (20, 30)


# -- against a plain model -----------------------------------------------------------------------

# A step stores some records, then announces some dropped ranges (either may be empty).
Step = tuple[list[int], list[tuple[int, int]]]
spans = st.tuples(st.integers(1, 40), st.integers(0, 6)).map(lambda t: (t[0], t[0] + t[1]))
steps = st.lists(
    st.tuples(st.lists(st.integers(1, 40), max_size=8), st.lists(spans, max_size=4)), min_size=1, max_size=12
)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_the_ack_is_the_highest_seq_with_every_seq_below_received_or_dropped(
    tmp_path_factory: pytest.TempPathFactory, plan: list[Step]
) -> None:
    store = Store(tmp_path_factory.mktemp("model") / "c.db")
    have: set[int] = set()
    try:
        for now, (seqs, ranges) in enumerate(plan):
            if seqs:
                batch = [received(s) for s in sorted(set(seqs))]
                store.store_records(VEHICLE, EPOCH, batch, now=float(now))
            if ranges:
                store.store_dropped(VEHICLE, EPOCH, STREAM, ranges, now=float(now))
            have.update(seqs)
            have.update(s for first, last in ranges for s in range(first, last + 1))
            if seqs or ranges:
                assert upto(store) == model_upto(have), plan[: now + 1]
    finally:
        store.close()


def model_upto(have: set[int], start: int = 0) -> int:
    """The ack by its definition: every seq from start + 1 up to it is held."""
    n = start
    while n + 1 in have:
        n += 1
    return n


@given(
    st.integers(0, 10),
    st.sets(st.integers(1, 60)),
    st.lists(
        st.tuples(st.integers(-2, 60), st.integers(0, 8)).map(lambda t: (t[0], t[0] + t[1])), max_size=10
    ),
)
def test_contiguous_end_agrees_with_the_model(
    start: int, seqs: set[int], ranges: list[tuple[int, int]]
) -> None:
    have = seqs | {s for first, last in ranges for s in range(first, last + 1)}
    above = sorted(s for s in seqs if s > start)
    relevant = sorted(r for r in ranges if r[1] > start)  # what the store's query hands over
    assert contiguous_end(start, above, relevant) == model_upto(have, start)
