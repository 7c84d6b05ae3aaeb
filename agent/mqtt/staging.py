"""The publisher's read-ahead: outbox records waiting to be published, per stream in seq order.

The outbox is read forward with a row-id cursor (``Outbox.pending(after=...)``), so a long backlog
is read once, not rescanned at every message. Records stay in memory from the moment they are read
until the broker acknowledges them (``held``), so a record is never handed to paho twice at once.
When the connection drops, what was in flight comes back here and is published again; when the
collector's ack shows a gap, ``rewind`` moves the cursor back to re-read what was put back.

Telemetry streams (``batch_prefixes``) wait until ``batch_max`` records are there or the oldest has
waited ``batch_wait_s``; other streams go one record per message at once.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterable

import structlog

from agent.mqtt import limits, topics, wire
from agent.outbox import Outbox, Record

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class Message:
    """One MQTT message to publish, with the outbox records it carries (none for control messages)."""

    topic: str
    payload: bytes
    records: tuple[Record, ...] = ()
    retain: bool = False


@dataclasses.dataclass(frozen=True)
class BatchPolicy:
    max_records: int = 60
    wait_s: float = 60.0
    prefixes: tuple[str, ...] = ("telemetry/",)

    def __post_init__(self) -> None:
        if not 1 <= self.max_records <= limits.MAX_BATCH_RECORDS:
            raise ValueError(f"max_records must be 1..{limits.MAX_BATCH_RECORDS}, got {self.max_records}")

    def applies(self, stream: str) -> bool:
        return self.max_records > 1 and stream.startswith(self.prefixes)


class TimeHold:
    """This boot's records wait until their time is known (GPS or NTP), at most ``hold_s`` real seconds.

    ``version`` counts how many times the daemon re-timed this boot's records: 0 while no true time
    is known. Records published before would reach the collector stamped 1970 or with a stale
    fake-hwclock time, for good. Past ``hold_s`` they go anyway, marked "unsynced": a bus with no
    GPS fix and no NTP must still deliver. ``version`` None: nothing is held (no timebase behind).
    """

    def __init__(
        self, boot_id: str, version: Callable[[], int] | None, hold_s: float, clock: Callable[[], float]
    ) -> None:
        self.boot_id = boot_id
        self._version = version
        self._seen = 0
        self._clock = clock
        self._until = clock() + hold_s
        self.expired = False

    def boot(self) -> str | None:
        """The boot whose records must wait now, or None."""
        if self._version is None or self._version() > 0:
            return None
        if self._clock() < self._until:
            return self.boot_id
        if not self.expired:
            self.expired = True
            log.warning("mqtt.publishing_unsynced", boot_id=self.boot_id, why="no GPS or NTP time yet")
        return None

    def retimed(self) -> bool:
        """True once after each re-timing: staged copies of records carry the old times."""
        version = 0 if self._version is None else self._version()
        changed, self._seen = version != self._seen, version
        return changed


class Staging:
    """Records read from the outbox and not yet acknowledged by the broker."""

    def __init__(
        self, outbox: Outbox, policy: BatchPolicy, *, read_ahead: int, clock: Callable[[], float]
    ) -> None:
        self._outbox = outbox
        self._policy = policy
        self._read_ahead = read_ahead
        self._clock = clock
        self._cursor = 0
        self._staged: dict[str, list[tuple[int, Record]]] = {}
        self._since: dict[str, float] = {}  # when a stream's oldest staged record was staged
        # Kept as a count, not summed over _staged: status() reads it from another thread while the
        # publisher thread adds streams, and iterating a dict that grows raises RuntimeError.
        self._count = 0
        self.held: set[int] = set()  # row ids staged or in flight
        self.unroutable: set[str] = set()

    @property
    def staged(self) -> int:
        return self._count

    def refill(self, *, hold_boot: str | None = None) -> int:
        """Read newly pending records, up to the read-ahead bound; returns how many were staged.

        Records of ``hold_boot`` are not read yet (their time is not known): the cursor stops at the
        first, and every later row is of that boot too (row ids grow, boots follow each other).
        """
        room = self._read_ahead - len(self.held)
        if room <= 0:
            return 0
        added = 0
        for record in self._outbox.pending(room, after=self._cursor):
            if record.boot_id == hold_boot:
                break
            self._cursor = max(self._cursor, record.id)
            if record.id not in self.held:
                self._stage(record)
                added += 1
        return added

    def rewind(self, records: Iterable[Record]) -> None:
        """These were marked pending again in the outbox: read them on the next refill."""
        ids = [r.id for r in records if r.id not in self.held]
        if ids:
            self._cursor = min(self._cursor, min(ids) - 1)

    def reread(self) -> int:
        """Forget what is staged and not yet published, to read it again (it was re-timed meanwhile)."""
        ids = [record.id for queue in self._staged.values() for _, record in queue]
        for queue in self._staged.values():
            queue.clear()
        self.held.difference_update(ids)
        self._count = 0
        if ids:
            self._cursor = min(self._cursor, min(ids) - 1)
        return len(ids)

    def restore(self, records: Iterable[Record]) -> None:
        """In flight on a connection that died: publish them again."""
        for record in records:
            self._stage(record)

    def release(self, records: Iterable[Record]) -> None:
        """The broker has them (PUBACK): they are the outbox's business now."""
        for record in records:
            self.held.discard(record.id)

    def take(self, vehicle: str, epoch: str, *, flush: bool = False) -> Message | None:
        """The next message to publish: the stream whose oldest ready record was appended first."""
        now = self._clock()
        ready = [
            (records[0][1].id, stream)
            for stream, records in self._staged.items()
            if records and (flush or self._ready(stream, len(records), now))
        ]
        for _, stream in sorted(ready):
            message = self._message(vehicle, epoch, stream, now)
            if message is not None:
                return message
        return None

    # -- internals ------------------------------------------------------------------------------

    def _stage(self, record: Record) -> None:
        queue = self._staged.setdefault(record.stream, [])
        if not queue:
            self._since[record.stream] = self._clock()
        # Sorted by seq: a gap being resent goes before newer records of its stream.
        bisect.insort(queue, (record.seq, record), key=lambda item: item[0])
        self.held.add(record.id)
        self._count += 1

    def _ready(self, stream: str, count: int, now: float) -> bool:
        if not self._policy.applies(stream):
            return True
        return count >= self._policy.max_records or now - self._since[stream] >= self._policy.wait_s

    def _message(self, vehicle: str, epoch: str, stream: str, now: float) -> Message | None:
        queue = self._staged[stream]
        try:
            topic = topics.data(vehicle, stream)
        except ValueError:
            self.unroutable.add(stream)  # reported by the publisher; never published, never acked
            return None
        while queue:
            group = self._group(queue)
            payload = self._encode(vehicle, epoch, group)
            if payload is None:
                continue  # that record was set aside as unsendable: try what follows it
            del queue[: len(group)]
            self._count -= len(group)
            if queue:
                self._since[stream] = now
            return Message(topic, payload, tuple(group))
        return None

    def _group(self, queue: list[tuple[int, Record]]) -> list[Record]:
        if not self._policy.applies(queue[0][1].stream):
            return [queue[0][1]]
        head = [r for _, r in queue[: self._policy.max_records]]
        return wire.batch_groups(head, self._policy.max_records)[0]

    def _encode(self, vehicle: str, epoch: str, group: list[Record]) -> bytes | None:
        """The group's bytes, halving a batch until it fits the collector's limits.

        None when the first record alone can never be sent: it is then dropped from the outbox (and
        so announced as dropped) and from the queue, instead of being resent forever.
        """
        problem = wire.record_problem(group[0])
        while problem is None:
            doc = (
                wire.batch_doc(vehicle, epoch, group) if len(group) > 1 else wire.record_doc(group[0], epoch)
            )
            try:
                return wire.dumps_checked(doc)
            except wire.Unsendable as exc:
                if len(group) == 1:
                    problem = str(exc)
                del group[len(group) // 2 or 1 :]
        self._set_aside(group[0], problem)
        return None

    def _set_aside(self, record: Record, reason: str) -> None:
        self._outbox.drop_unsendable(record.id, record.stream, record.seq, reason)
        queue = self._staged[record.stream]
        kept = [item for item in queue if item[1].id != record.id]
        self._count -= len(queue) - len(kept)
        queue[:] = kept
        self.held.discard(record.id)
