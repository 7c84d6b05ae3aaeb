"""Model-based test of the outbox (after Vector's disk-buffer model tests): random runs of appends,
publishing (lossy or not), PUBACKs, disconnects, collector acks, resends, restarts, crashes, clock
steps and cap pressure, checked after every step against a plain-Python model of what must hold.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agent.outbox import Outbox, Priority, Record
from tests.outbox.helpers import FakeClock, open_outbox

STREAMS = ("telemetry/gps", "telemetry/modem", "events", "stops/visit")
CAP_BYTES = 6_000
RESEND_AFTER_S = 60.0


def contiguous_upto(have: set[int], start: int) -> int:
    """The collector's ack: the highest seq up to which it has (or knows the drop of) every seq."""
    upto = start
    while upto + 1 in have:
        upto += 1
    return upto


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="outbox-model-"))
        self.path = self.directory / "outbox.db"
        self.clock = FakeClock()
        self.outbox = self._open()
        self.crashed: list[Outbox] = []  # instances abandoned without close(), as a crash leaves them
        self.inspector = sqlite3.connect(self.path)
        # The model: everything ever appended, what the collector has, what the agent saw dropped.
        self.appended: dict[str, dict[int, tuple[Priority, dict[str, Any]]]] = {s: {} for s in STREAMS}
        self.collector: dict[str, set[int]] = {s: set() for s in STREAMS}
        self.acked: dict[str, int] = dict.fromkeys(STREAMS, 0)
        self.dropped: dict[str, set[int]] = {s: set() for s in STREAMS}
        # The publisher's volatile state, lost at every disconnect, restart or crash.
        self.in_flight: list[Record] = []
        self.cursor = 0

    def _open(self) -> Outbox:
        return open_outbox(self.path, self.clock, cap_bytes=CAP_BYTES, synchronous="NORMAL")

    def _forget_publisher(self) -> None:
        self.in_flight, self.cursor = [], 0

    def _append(self, stream: str, priority: Priority, pad: int) -> None:
        payload = {"pad": "x" * pad, "n": len(self.appended[stream])}
        record = self.outbox.append(
            stream, payload, priority=priority, mono=self.clock(), wall=0.0, wall_source="unsynced"
        )
        assert record.seq == len(self.appended[stream]) + 1, "seq must be gap-free across restarts"
        self.appended[stream][record.seq] = (priority, payload)

    @rule(
        stream=st.sampled_from(STREAMS),
        priority=st.sampled_from(["low", "normal", "high"]),
        pad=st.integers(0, 300),
    )
    def append(self, stream: str, priority: Priority, pad: int) -> None:
        self._append(stream, priority, pad)

    @rule(count=st.integers(10, 60), stream=st.sampled_from(STREAMS[:2]))
    def cap_reached(self, count: int, stream: str) -> None:
        """A burst of 1 Hz telemetry during an outage: enough to push the outbox past its cap."""
        for _ in range(count):
            self._append(stream, "low", 80)

    @rule(count=st.integers(1, 20), lossy=st.booleans())
    def publish(self, count: int, lossy: bool) -> None:
        """Hand a page to the broker; a lossy broker PUBACKs later but the collector never gets it."""
        page = self.outbox.pending(count, after=self.cursor)
        if page:
            self.cursor = page[-1].id
        for record in page:
            if not lossy:
                self.collector[record.stream].add(record.seq)
        self.in_flight += page

    @precondition(lambda self: bool(self.in_flight))
    @rule(count=st.integers(1, 20))
    def puback(self, count: int) -> None:
        self.outbox.mark_sent(self.in_flight[:count])
        del self.in_flight[:count]

    @rule()
    def disconnect(self) -> None:
        self._forget_publisher()

    @rule(stream=st.sampled_from(STREAMS))
    def collector_ack(self, stream: str) -> None:
        """The publisher announces drops; the collector acks its highest contiguous seq."""
        for first, last in self.outbox.dropped_ranges(stream):
            self.collector[stream].update(range(first, last + 1))
        upto = contiguous_upto(self.collector[stream], self.acked[stream])
        if upto > self.acked[stream]:
            self.outbox.acknowledge(stream, upto, epoch=self.outbox.epoch)
            self.acked[stream] = upto

    @rule()
    def resend_gaps(self) -> None:
        self.clock.advance(RESEND_AFTER_S + 1)
        self.outbox.mark_pending(self.outbox.resend_candidates(RESEND_AFTER_S))
        self.cursor = 0  # requeued records keep their old, lower ids

    @rule(seconds=st.floats(0, 3_600))
    def clock_step(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def restart(self) -> None:
        self.outbox.close()
        self.outbox = self._open()
        self._forget_publisher()

    @rule()
    def crash(self) -> None:
        self.crashed.append(self.outbox)  # never closed: no checkpoint, the WAL stays as it was
        self.outbox = self._open()
        self._forget_publisher()

    def _rows(self) -> dict[tuple[str, int], tuple[int, str]]:
        rows = self.inspector.execute("SELECT stream, seq, priority, payload FROM records").fetchall()
        return {(stream, seq): (priority, payload) for stream, seq, priority, payload in rows}

    @invariant()
    def nothing_is_lost_and_every_drop_is_low_counted_persisted_and_announced(self) -> None:
        # One invariant, two checks in this order: the second relies on the drops the first observed.
        self._nothing_deleted_before_its_ack_and_only_low_rows_dropped()
        self._drops_counted_persisted_and_announced()

    def _nothing_deleted_before_its_ack_and_only_low_rows_dropped(self) -> None:
        rows = self._rows()
        codes = {"low": 0, "normal": 1, "high": 2}
        for stream, records in self.appended.items():
            for seq, (priority, payload) in records.items():
                stored = rows.pop((stream, seq), None)
                if seq <= self.acked[stream]:
                    assert stored is None, f"{stream}/{seq} kept after its ack"
                elif stored is None:
                    assert priority == "low", f"{priority} {stream}/{seq} lost before its ack"
                    self.dropped[stream].add(seq)
                else:
                    assert seq not in self.dropped[stream], f"{stream}/{seq} came back"
                    assert stored[0] == codes[priority] and json.loads(stored[1]) == payload
        assert rows == {}, f"rows nobody appended: {sorted(rows)[:3]}"

    def _drops_counted_persisted_and_announced(self) -> None:
        stats = self.outbox.stats()
        for stream in STREAMS:
            counted = stats.streams[stream].dropped if stream in stats.streams else 0
            assert counted == len(self.dropped[stream])
            announced = {
                s for first, last in self.outbox.dropped_ranges(stream) for s in range(first, last + 1)
            }
            assert announced == {s for s in self.dropped[stream] if s > self.acked[stream]}
        assert stats.dropped_total == sum(len(seqs) for seqs in self.dropped.values())

    @invariant()
    def cap_is_respected_unless_only_normal_and_high_rows_are_left(self) -> None:
        stats = self.outbox.stats()
        (low_rows,) = self.inspector.execute("SELECT COUNT(*) FROM records WHERE priority = 0").fetchone()
        (on_disk,) = self.inspector.execute("SELECT COALESCE(SUM(size), 0) FROM records").fetchone()
        assert stats.bytes_used == on_disk
        assert stats.over_cap == (stats.bytes_used > CAP_BYTES)
        assert stats.bytes_used <= CAP_BYTES or low_rows == 0

    @invariant()
    def pending_is_in_seq_order_per_stream_and_oldest_first(self) -> None:
        page = self.outbox.pending(100_000)
        assert [r.id for r in page] == sorted(r.id for r in page)
        for stream in STREAMS:
            mine = [r.seq for r in page if r.stream == stream]
            assert mine == sorted(mine)
        stats = self.outbox.stats()
        (total,) = self.inspector.execute("SELECT COUNT(*) FROM records").fetchone()
        assert stats.pending == len(page) and stats.pending + stats.sent_unacked == total

    def teardown(self) -> None:
        self.inspector.close()
        for outbox in [self.outbox, *self.crashed]:
            outbox.close()
        shutil.rmtree(self.directory, ignore_errors=True)


OutboxMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_outbox_model = OutboxMachine.TestCase
