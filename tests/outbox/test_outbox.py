"""Outbox semantics on real SQLite files: durability, seq allocation, order, acks, resends, re-timing."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest
import structlog

from agent.outbox import Outbox, OutboxError, OutboxFull
from agent.outbox.queries import PENDING, PENDING_OF_STREAM, SENT_BEFORE
from agent.outbox.thinning import LOW_AFTER
from tests.outbox.helpers import BOOT, VEHICLE, FakeClock, open_outbox, put, query, seqs


def test_append_returns_a_pending_record_with_msg_id_and_first_seq_one(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        record = outbox.append(
            "stops/visit",
            {"v": 1, "site": "La Poste"},
            priority="high",
            mono=12.5,
            wall=3.0,
            wall_source="unsynced",
        )
    assert record.seq == 1
    assert record.msg_id == f"{VEHICLE}/{BOOT}/stops/visit/1"
    assert (record.state, record.sent_at, record.priority) == ("pending", None, "high")
    assert record.payload == {"v": 1, "site": "La Poste"}


def test_records_and_seq_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path) as outbox:
        for i in range(5):
            put(outbox, "events", i)
    with open_outbox(path, boot_id="boot-b") as outbox:
        after = put(outbox, "events", 5)
        stored = outbox.pending(100)
    assert after.seq == 6
    assert after.msg_id == f"{VEHICLE}/boot-b/events/6"
    assert [r.payload["i"] for r in stored] == [0, 1, 2, 3, 4, 5]
    assert [r.msg_id for r in stored][:2] == [f"{VEHICLE}/{BOOT}/events/1", f"{VEHICLE}/{BOOT}/events/2"]


def test_seq_is_counted_per_stream(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        order = ["events", "telemetry/gps", "events", "events", "telemetry/gps"]
        got = [(stream, put(outbox, stream, i).seq) for i, stream in enumerate(order)]
    assert got == [("events", 1), ("telemetry/gps", 1), ("events", 2), ("events", 3), ("telemetry/gps", 2)]


def test_concurrent_appends_and_marks_from_two_threads_give_gap_free_seqs(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = open_outbox(path)
    got: dict[str, list[int]] = {"runtime": [], "other": []}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            for i in range(300):
                got[name].append(put(outbox, "telemetry/gps", i).seq)
                if name == "other" and i % 10 == 0:
                    outbox.mark_sent(outbox.pending(5))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    outbox.close()
    assert errors == []
    assert sorted(got["runtime"] + got["other"]) == list(range(1, 601))
    assert got["runtime"] == sorted(got["runtime"])  # each thread sees its own seqs increase
    assert query(path, "SELECT COUNT(*), MIN(seq), MAX(seq) FROM records") == [(600, 1, 600)]


def test_pending_is_oldest_first_and_in_seq_order_per_stream(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        for i in range(6):
            put(outbox, "telemetry/gps" if i % 2 else "events", i)
        page = outbox.pending(100)
        only_gps = outbox.pending(100, streams=["telemetry/gps"])
        two = outbox.pending(2, streams={"events", "telemetry/gps"})
    assert [r.payload["i"] for r in page] == [0, 1, 2, 3, 4, 5]
    assert seqs(page, "events") == [1, 2, 3] and seqs(page, "telemetry/gps") == [1, 2, 3]
    assert [r.seq for r in only_gps] == [1, 2, 3]
    assert [r.payload["i"] for r in two] == [0, 1]


def test_pending_pages_with_after_never_repeat_in_flight_records(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        for i in range(25):
            put(outbox, "events", i)
        seen: list[int] = []
        cursor = 0
        while page := outbox.pending(10, after=cursor):
            seen += [r.seq for r in page]
            cursor = page[-1].id  # in flight, not marked yet
        filtered = outbox.pending(10, streams=["events"], after=cursor)
    assert seen == list(range(1, 26))
    assert filtered == []


def test_pending_queries_walk_partial_indexes_not_the_table(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    open_outbox(path).close()
    params: list[tuple[str, tuple[object, ...]]] = [
        (PENDING, (0, 10)),
        (PENDING_OF_STREAM, ("events", 0, 10)),
        (SENT_BEFORE, (1.0, 10)),
        (LOW_AFTER, (0, 10)),
    ]
    for sql, args in params:
        plan = " | ".join(row[3] for row in query(path, "EXPLAIN QUERY PLAN " + sql, args))
        assert "USING INDEX records_" in plan, (sql, plan)
        assert "SCAN" not in plan, (sql, plan)


def test_draining_a_large_backlog_costs_the_same_per_page_at_the_end(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db", synchronous="NORMAL") as outbox:
        for i in range(20_000):
            put(outbox, "telemetry/gps", i, priority="low")
        timings: list[float] = []
        drained = 0
        while True:
            started = time.perf_counter()
            page = outbox.pending(100)
            timings.append(time.perf_counter() - started)
            if not page:
                break
            drained += outbox.mark_sent(page)
    assert drained == 20_000
    first, last = sorted(timings[:20])[10], sorted(timings[-21:-1])[10]
    # An O(queue) query would make the last pages ~200x dearer than the first (19,900 sent rows to skip).
    assert last < 5 * first + 0.002, (first, last)


def test_mark_sent_deletes_nothing_and_keeps_the_record_until_acknowledged(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "outbox.db"
    with open_outbox(path, clock) as outbox:
        records = [put(outbox, "events", i) for i in range(3)]
        clock.advance(2.0)
        assert outbox.mark_sent(records[:2]) == 2
        assert outbox.mark_sent([records[0].id]) == 0  # a duplicate PUBACK changes nothing
        stats = outbox.stats()
        remaining = outbox.pending(10)
    assert query(path, "SELECT seq, state, sent_at FROM records ORDER BY seq") == [
        (1, 1, 1002.0),
        (2, 1, 1002.0),
        (3, 0, None),
    ]
    assert (stats.pending, stats.sent_unacked) == (1, 2)
    assert [r.seq for r in remaining] == [3]


def test_acknowledge_deletes_exactly_the_seqs_up_to_the_ack_sent_or_not(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path) as outbox:
        events = [put(outbox, "events", i) for i in range(6)]
        put(outbox, "telemetry/gps", 0)
        outbox.mark_sent(events[:2])  # seq 3 is still pending: the collector has it anyway
        assert outbox.acknowledge("events", 3) == 3
        assert outbox.acknowledge("events", 3) == 0
        assert outbox.acknowledge("events", 2) == 0  # a stale retained ack
        stats = outbox.stats()
    assert query(path, "SELECT stream, seq FROM records ORDER BY id") == [
        ("events", 4),
        ("events", 5),
        ("events", 6),
        ("telemetry/gps", 1),
    ]
    assert stats.streams["events"].acked_seq == 3
    assert stats.streams["events"].next_seq == 7


def test_acks_for_unallocated_seqs_or_another_epoch_delete_nothing(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        for i in range(3):
            put(outbox, "events", i)
        with structlog.testing.capture_logs() as logs:
            beyond = outbox.acknowledge("events", 50)  # e.g. the collector's ack for an older outbox file
            unknown = outbox.acknowledge("probes/result", 1)
            foreign = outbox.acknowledge("events", 2, epoch="not-" + outbox.epoch)
        own = outbox.acknowledge("events", 2, epoch=outbox.epoch)
        left = outbox.pending(10)
    assert (beyond, unknown, foreign, own) == (0, 0, 0, 2)
    assert [r.seq for r in left] == [3]
    assert [e["event"] for e in logs] == [
        "outbox.ack_beyond_allocated",
        "outbox.ack_beyond_allocated",
        "outbox.ack_other_epoch",
    ]


def test_a_late_puback_for_an_acknowledged_record_does_not_mark_a_newer_one(tmp_path: Path) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        old = put(outbox, "events", 0)
        outbox.acknowledge("events", 1)
        new = put(outbox, "events", 1)
        assert outbox.mark_sent([old]) == 0
        assert [r.seq for r in outbox.pending(10)] == [new.seq]
    assert new.id != old.id


def test_resend_candidates_are_sent_records_unacknowledged_past_the_timeout(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_outbox(tmp_path / "outbox.db", clock) as outbox:
        records = [put(outbox, "probes/result", i, priority="high") for i in range(4)]
        outbox.mark_sent(records[:2])
        clock.advance(30.0)
        outbox.mark_sent(records[2:3])
        clock.advance(31.0)
        candidates = outbox.resend_candidates(60.0)
        assert [r.seq for r in candidates] == [1, 2]
        assert outbox.mark_pending(candidates) == 2
        requeued = outbox.pending(10)
    assert [(r.seq, r.state) for r in requeued] == [(1, "pending"), (2, "pending"), (4, "pending")]
    assert requeued[0].msg_id == records[0].msg_id  # the collector deduplicates the resend


def test_records_sent_before_a_reboot_become_resend_candidates_on_the_new_clock(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path, FakeClock(50_000.0)) as outbox:
        outbox.mark_sent([put(outbox, "events", 0)])
    rebooted = FakeClock(20.0)  # the monotonic clock restarted near zero
    with open_outbox(path, rebooted, boot_id="boot-b") as outbox:
        assert outbox.resend_candidates(60.0) == []
        rebooted.advance(61.0)
        assert [r.seq for r in outbox.resend_candidates(60.0)] == [1]


def test_retime_rewrites_wall_time_of_unsent_records_of_that_boot_only(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path, boot_id="boot-old") as outbox:
        put(outbox, "events", 0)
    with open_outbox(path, boot_id="boot-new") as outbox:
        sent = put(outbox, "events", 1)
        outbox.mark_sent([sent])
        put(outbox, "events", 2)
        assert outbox.retime("boot-new", 1_772_434_800.0, "gps") == 1
        assert outbox.retime("boot-never-seen", 5.0, "ntp") == 0
        with pytest.raises(ValueError, match="finite"):
            outbox.retime("boot-new", math.nan, "gps")
    rows = query(path, "SELECT seq, boot_id, mono, wall, wall_source FROM records ORDER BY seq")
    assert rows == [
        (1, "boot-old", 100.0, 1000.0, "unsynced"),
        (2, "boot-new", 101.0, 1001.0, "unsynced"),  # already published with its old time
        (3, "boot-new", 102.0, 1_772_434_800.0 + 102.0, "gps"),
    ]


def test_stats_report_backlog_age_and_per_stream_counters(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_outbox(tmp_path / "outbox.db", clock) as outbox:
        empty = outbox.stats()
        records = [put(outbox, "events", i) for i in range(3)]
        put(outbox, "telemetry/gps", 0, priority="low")
        clock.advance(42.0)
        outbox.mark_sent(records[:1])
        outbox.acknowledge("events", 1)
        outbox.mark_sent(records[1:2])
        stats = outbox.stats()
    assert (empty.pending, empty.oldest_pending_age_s, empty.dropped_total) == (0, None, 0)
    assert (stats.pending, stats.sent_unacked, stats.oldest_pending_age_s) == (2, 1, 42.0)
    assert stats.streams["events"].next_seq == 4 and stats.streams["events"].acked_seq == 1
    assert stats.streams["telemetry/gps"].pending == 1
    assert stats.bytes_used == sum(s.bytes_used for s in stats.streams.values()) > 0
    assert stats.file_bytes > stats.bytes_used and not stats.over_cap


@pytest.mark.parametrize(
    ("stream", "payload", "priority", "message"),
    [
        ("telemetry/#", {}, "low", "bad stream"),
        ("telemetry//gps", {}, "low", "bad stream"),
        ("", {}, "low", "bad stream"),
        ("events", {"x": math.nan}, "high", "JSON"),
        ("events", {"x": object()}, "high", "JSON"),
        ("events", {}, "urgent", "priority"),
    ],
)
def test_bad_records_are_refused_before_touching_the_file(
    tmp_path: Path, stream: str, payload: dict[str, object], priority: str, message: str
) -> None:
    with open_outbox(tmp_path / "outbox.db") as outbox:
        with pytest.raises(ValueError, match=message):
            outbox.append(stream, payload, priority=priority, mono=1.0, wall=1.0, wall_source="unsynced")  # type: ignore[arg-type]
        assert put(outbox, "events", 0).seq == 1


def test_full_disk_raises_outbox_full_naming_the_path_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with open_outbox(path, max_file_bytes=160 * 1024) as outbox:
        stored = []
        with pytest.raises(OutboxFull, match=str(path)):
            for i in range(10_000):
                stored.append(put(outbox, "events", i, pad="x" * 400))
        assert len(stored) > 50
        assert outbox.acknowledge("events", len(stored) // 2) == len(stored) // 2
        after = put(outbox, "events", -1)  # room again: the seq that failed was never consumed
    assert after.seq == len(stored) + 1
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    assert query(path, "SELECT COUNT(*) FROM records") == [(len(stored) - len(stored) // 2 + 1,)]


def test_a_missing_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "busagent" / "outbox.db"
    with open_outbox(path) as outbox:
        put(outbox, "events", 0)
    assert path.is_file()


def test_a_closed_outbox_refuses_work_by_name(tmp_path: Path) -> None:
    outbox = open_outbox(tmp_path / "outbox.db")
    outbox.close()
    outbox.close()
    with pytest.raises(OutboxError, match=r"outbox\.db is closed"):
        outbox.pending(1)


def test_open_validates_the_cap_before_creating_anything(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cap_bytes"):
        Outbox.open(tmp_path / "outbox.db", vehicle_id=VEHICLE, boot_id=BOOT, cap_bytes=0)
    assert list(tmp_path.iterdir()) == []
