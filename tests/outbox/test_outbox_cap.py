"""The size cap: low-priority rows are thinned evenly, others never dropped, every drop counted and kept."""

from __future__ import annotations

import itertools
from pathlib import Path

import structlog

from tests.outbox.helpers import open_outbox, put, query

GPS = "telemetry/gps"
MODEM = "telemetry/modem"


def surviving(path: Path, stream: str) -> list[int]:
    return [row[0] for row in query(path, "SELECT seq FROM records WHERE stream = ? ORDER BY seq", (stream,))]


def gaps(kept: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(kept)]


def test_cap_thins_every_other_low_row_of_each_stream_not_a_whole_stream(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path, cap_bytes=30_000) as outbox:
        for i in range(400):
            put(outbox, GPS, i, priority="low")
            put(outbox, MODEM, i, priority="low")
        stats = outbox.stats()
    assert stats.bytes_used <= 30_000
    kept = {stream: surviving(path, stream) for stream in (GPS, MODEM)}
    assert abs(len(kept[GPS]) - len(kept[MODEM])) <= 2  # interleaved streams thinned alike
    for stream, rows in kept.items():
        assert len(rows) + stats.streams[stream].dropped == 400
        assert rows[0] == 1  # the start of the track is thinned, not cut off
        assert set(gaps(rows)) <= set(range(1, 9))


def test_resolution_decreases_with_age_and_the_newest_rows_are_whole(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path, cap_bytes=40_000) as outbox:
        for i in range(1_000):
            put(outbox, GPS, i, priority="low")
    steps = gaps(surviving(path, GPS))
    quarter = len(steps) // 4
    means = [sum(steps[k * quarter : (k + 1) * quarter]) / quarter for k in range(4)]
    # Each sweep halves what it passes over, oldest first: 1 row in 8 kept at the old end, every
    # row of the last minutes; never a hole (dropping a contiguous old block would leave one).
    assert means == sorted(means, reverse=True), means
    assert max(steps) <= 8 and steps[-10:] == [1] * 10


def test_normal_and_high_rows_are_never_dropped_even_over_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with structlog.testing.capture_logs() as logs, open_outbox(path, cap_bytes=5_000) as outbox:
        for i in range(60):
            put(outbox, "stops/visit", i, priority="high")
            put(outbox, "events", i, priority="normal")
            put(outbox, GPS, i, priority="low")
        stats = outbox.stats()
    assert surviving(path, "stops/visit") == list(range(1, 61))
    assert surviving(path, "events") == list(range(1, 61))
    assert surviving(path, GPS) == []
    assert stats.over_cap and stats.bytes_used > stats.cap_bytes
    assert stats.streams["stops/visit"].dropped == 0 and stats.streams["events"].dropped == 0
    assert stats.dropped_total == stats.streams[GPS].dropped == 60
    over = [e for e in logs if e["event"] == "outbox.over_cap"]
    assert len(over) == 1  # logged when it happens, not at every append
    assert over[0]["log_level"] == "error" and over[0]["path"] == str(path)


def test_acknowledging_brings_the_outbox_back_under_the_cap(tmp_path: Path) -> None:
    with (
        structlog.testing.capture_logs() as logs,
        open_outbox(tmp_path / "outbox.db", cap_bytes=5_000) as outbox,
    ):
        for i in range(60):
            put(outbox, "events", i, priority="high")
        assert outbox.stats().over_cap
        outbox.acknowledge("events", 50)
        assert not outbox.stats().over_cap
    assert [e["event"] for e in logs if "cap" in e["event"]] == ["outbox.over_cap", "outbox.under_cap"]


def test_drop_counters_and_ranges_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path, cap_bytes=8_000) as outbox:
        for i in range(200):
            put(outbox, GPS, i, priority="low")
        before = outbox.stats().streams[GPS]
        ranges = outbox.dropped_ranges(GPS)
    kept = set(surviving(path, GPS))
    with open_outbox(path, cap_bytes=8_000) as outbox:
        after = outbox.stats().streams[GPS]
        ranges_after = outbox.dropped_ranges(GPS)
        assert put(outbox, GPS, 200, priority="low").seq == 201
    assert before.dropped > 0 and after == before and ranges_after == ranges
    dropped = {seq for first, last in ranges for seq in range(first, last + 1)}
    # Every seq is accounted for: stored or announced as dropped, never both, never neither.
    assert len(dropped) == before.dropped
    assert dropped.isdisjoint(kept) and dropped | kept == set(range(1, 201))


def test_dropped_ranges_merge_neighbours_and_are_trimmed_by_the_ack(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db", cap_bytes=6_000) as outbox:
        for i in range(200):
            put(outbox, GPS, i, priority="low")
        ranges = outbox.dropped_ranges(GPS)
        assert all(a_last + 1 < b_first for (_, a_last), (b_first, _) in itertools.pairwise(ranges))
        assert any(last > first for first, last in ranges)  # a second pass merged single drops
        cut = ranges[2][0]  # the first seq of the third range
        outbox.acknowledge(GPS, cut)
        trimmed = outbox.dropped_ranges(GPS)
    rest_of_third = [(cut + 1, ranges[2][1])] if ranges[2][1] > cut else []
    assert trimmed == rest_of_third + ranges[3:]


def test_bytes_used_matches_the_rows_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path, cap_bytes=20_000) as outbox:
        for i in range(300):
            put(outbox, GPS, i, priority="low" if i % 3 else "normal")
            if i % 50 == 49:
                outbox.acknowledge(GPS, i - 20)
        used = outbox.stats().bytes_used
    assert query(path, "SELECT SUM(size) FROM records") == [(used,)]
    assert query(path, "SELECT SUM(bytes) FROM streams") == [(used,)]
