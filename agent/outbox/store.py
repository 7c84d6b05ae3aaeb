"""The durable outbox: every record the agent makes waits here until the collector says it is stored.

Life of a record: ``append`` (pending, durable on return) -> ``pending``/``mark_sent`` (PUBACK) ->
``acknowledge`` (the collector's retained ack covers its seq: deleted). ``resend_candidates`` and
``mark_pending`` put back what was sent but never acknowledged. Only the cap may delete a record
early, and only a low-priority one, counted and recorded as a dropped seq range.

Threads: one SQLite connection guarded by one lock. The runtime appends from its thread and the
publisher marks and acknowledges from its own; every write is one short transaction. SQLite
serialises writers anyway, so a connection per thread would only add SQLITE_BUSY handling.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog

from agent.outbox import queries, retiming, thinning
from agent.outbox.cap import Cap
from agent.outbox.database import file_bytes, open_database, translate
from agent.outbox.records import (
    PRIORITY_CODES,
    OutboxError,
    OutboxStats,
    Priority,
    Record,
    UnreadableRow,
    check_stream,
    check_times,
    encode_payload,
    msg_id,
    record_from_row,
    row_size,
)
from agent.outbox.schema import Synchronous

log = structlog.get_logger(__name__)


class Outbox:
    """A per-vehicle store-and-forward queue in one SQLite file (WAL). Open it with ``Outbox.open``."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        meta: dict[str, str],
        *,
        path: Path,
        vehicle_id: str,
        boot_id: str,
        cap_bytes: int,
        clock: Callable[[], float],
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()
        self.path = path
        self.vehicle_id = vehicle_id
        self.boot_id = boot_id
        self.cap_bytes = cap_bytes
        self._cap = Cap(path, cap_bytes, int(meta.get("thin_cursor", "0")))
        self.epoch = meta["epoch"]
        self._clock = clock
        self._opened_at = clock()
        self._used = int(conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM streams").fetchone()[0])
        self._boots_seen: set[str] = set()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        vehicle_id: str,
        boot_id: str,
        cap_bytes: int = 200_000_000,
        clock: Callable[[], float] = time.monotonic,
        synchronous: Synchronous = "FULL",
        max_file_bytes: int | None = None,
    ) -> Outbox:
        """Open (or create) the outbox at ``path``; a corrupt or unreadable file is moved aside, not raised.

        ``synchronous="FULL"`` makes every committed append survive a power cut (see
        docs/reliability.md). ``max_file_bytes`` is a hard ceiling on the database file (SQLite's
        max_page_count): past it appends raise OutboxFull instead of filling the data partition.
        Raises OutboxError only when no outbox can be had at all (directory not writable, disk full).
        """
        if cap_bytes <= 0:  # checked before touching any file
            raise ValueError(f"cap_bytes must be positive, got {cap_bytes}")
        where = Path(path)
        conn, meta = open_database(where, vehicle_id, synchronous, max_file_bytes)
        outbox = cls(
            conn, meta, path=where, vehicle_id=vehicle_id, boot_id=boot_id, cap_bytes=cap_bytes, clock=clock
        )
        outbox._after_restart()
        return outbox

    def _after_restart(self) -> None:
        """Bring times from an earlier run onto this run's clock."""
        now = self._clock()
        with self._write() as conn:
            # sent_at came from the clock of the run that sent it; after a reboot the monotonic clock
            # restarts near zero and such a record would never look old enough to resend.
            conn.execute("UPDATE records SET sent_at = ? WHERE state = 1 AND sent_at > ?", (now, now))
        stats = self.stats()
        log.info(
            "outbox.opened",
            path=str(self.path),
            epoch=self.epoch,
            pending=stats.pending,
            sent_unacked=stats.sent_unacked,
            bytes_used=stats.bytes_used,
            cap_bytes=self.cap_bytes,
        )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        stream: str,
        payload: dict[str, Any],
        *,
        priority: Priority = "normal",
        mono: float,
        wall: float,
        wall_source: str,
    ) -> Record:
        """Store one record; it is committed (and, with synchronous=FULL, on disk) when this returns.

        Raises ValueError for a bad stream name, priority, time or a payload that is not JSON, and
        OutboxFull / OutboxError when the disk refuses: the record is then not stored and no seq is
        consumed. A low-priority record can be thinned by the cap right away (counted as dropped).
        """
        check_stream(stream)
        check_times(mono, wall)
        if priority not in PRIORITY_CODES:
            raise ValueError(f"priority must be one of {sorted(PRIORITY_CODES)}, got {priority!r}")
        text = encode_payload(payload)
        size = row_size(stream, text, self.boot_id)
        with self._lock:
            stamp = (self.boot_id, self._clock())  # boot_id, queued_at
            with self._write() as conn:
                seq = self._allocate_seq(conn, stream, size)
                cursor = conn.execute(
                    "INSERT INTO records (stream, seq, priority, payload, size, mono, wall, wall_source,"
                    " boot_id, queued_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (stream, seq, PRIORITY_CODES[priority], text, size, mono, wall, wall_source, *stamp),
                )
                row_id = int(cursor.lastrowid or 0)
                if self.boot_id not in self._boots_seen:
                    conn.execute(
                        "INSERT OR IGNORE INTO boots (boot_id, first_id) VALUES (?, ?)",
                        (self.boot_id, row_id),
                    )
                used, thinned = self._cap.enforce(conn, self._used + size)
            self._used = used
            self._boots_seen.add(self.boot_id)
            self._cap.committed(used, thinned)
        return Record(
            stream=stream,
            seq=seq,
            msg_id=msg_id(self.vehicle_id, self.boot_id, stream, seq),
            priority=priority,
            payload=payload,
            mono=mono,
            wall=wall,
            wall_source=wall_source,
            boot_id=self.boot_id,
            state="pending",
            sent_at=None,
            id=row_id,
        )

    def _allocate_seq(self, conn: sqlite3.Connection, stream: str, size: int) -> int:
        """The stream's next seq, taken in the insert's transaction: a rollback gives it back."""
        conn.execute(
            "INSERT OR IGNORE INTO streams (stream, next_seq, acked_seq, dropped, bytes)"
            " VALUES (?, 1, 0, 0, 0)",
            (stream,),
        )
        seq = int(conn.execute("SELECT next_seq FROM streams WHERE stream = ?", (stream,)).fetchone()[0])
        conn.execute(
            "UPDATE streams SET next_seq = ?, bytes = bytes + ? WHERE stream = ?", (seq + 1, size, stream)
        )
        return seq

    def mark_sent(self, records: Iterable[Record | int]) -> int:
        """The broker acknowledged these (PUBACK): state sent, sent_at = clock(). Deletes nothing."""
        ids = [_row_id(item) for item in records]
        with self._lock:
            now = self._clock()
            with self._write() as conn:
                cursor = conn.executemany(
                    "UPDATE records SET state = 1, sent_at = ? WHERE id = ? AND state = 0",
                    [(now, row_id) for row_id in ids],
                )
                return max(cursor.rowcount, 0)

    def mark_pending(self, records: Iterable[Record | int]) -> int:
        """Queue sent-but-unacknowledged records again (a gap the collector never got)."""
        ids = [_row_id(item) for item in records]
        with self._lock, self._write() as conn:
            cursor = conn.executemany(
                "UPDATE records SET state = 0, sent_at = NULL WHERE id = ? AND state = 1", [(i,) for i in ids]
            )
            return max(cursor.rowcount, 0)

    def acknowledge(self, stream: str, upto_seq: int, *, epoch: str | None = None) -> int:
        """The collector stores every seq <= ``upto_seq`` of ``stream``: delete those rows; returns how many.

        An ack for another epoch (another outbox file) or beyond the seqs this outbox allocated is
        ignored and logged: it describes a history this file does not have, and obeying it would
        delete records the collector never saw.
        """
        if epoch is not None and epoch != self.epoch:
            log.warning(
                "outbox.ack_other_epoch", stream=stream, upto_seq=upto_seq, epoch=epoch, ours=self.epoch
            )
            return 0
        with self._lock:
            with self._write() as conn:
                row = conn.execute(
                    "SELECT next_seq, acked_seq FROM streams WHERE stream = ?", (stream,)
                ).fetchone()
                if row is None or upto_seq >= row[0]:
                    allocated = 0 if row is None else row[0] - 1
                    log.warning(
                        "outbox.ack_beyond_allocated", stream=stream, upto_seq=upto_seq, allocated=allocated
                    )
                    return 0
                if upto_seq <= row[1]:
                    return 0
                count, freed = conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records WHERE stream = ? AND seq <= ?",
                    (stream, upto_seq),
                ).fetchone()
                conn.execute("DELETE FROM records WHERE stream = ? AND seq <= ?", (stream, upto_seq))
                thinning.trim_dropped(conn, stream, upto_seq)
                conn.execute(
                    "UPDATE streams SET acked_seq = ?, bytes = bytes - ? WHERE stream = ?",
                    (upto_seq, freed, stream),
                )
            self._used -= int(freed)
            self._cap.committed(self._used, None)
            return int(count)

    def retime(
        self,
        boot_id: str,
        offset_s: float,
        source: str,
        *,
        payloads: Callable[[dict[str, Any]], bool] | None = None,
    ) -> int:
        """True time arrived: unsent records of ``boot_id`` get wall = mono + offset_s; returns how many.

        ``payloads`` re-times in place the times a payload carries (see :mod:`agent.outbox.retiming`).
        """
        if not math.isfinite(offset_s):
            raise ValueError(f"offset_s must be finite, got {offset_s!r}")
        with self._lock, self._write() as conn:
            return retiming.retime_rows(conn, boot_id, offset_s, source, payloads)

    # -- reading -------------------------------------------------------------------------------

    def pending(self, limit: int, *, streams: Collection[str] | None = None, after: int = 0) -> list[Record]:
        """Up to ``limit`` unsent records, oldest first (so in seq order within each stream).

        ``after`` is a row id (``Record.id``): pass the last id handed to the broker to page through
        the queue without seeing in-flight records again. Each call costs O(limit), not O(queue).
        """
        if limit <= 0:
            return []
        with self._lock:
            rows = queries.pending_rows(self._connection(), limit, streams, after)
            return self._records(rows)

    def resend_candidates(self, older_than_s: float, *, limit: int | None = None) -> list[Record]:
        """Records sent (PUBACKed) more than ``older_than_s`` ago that the collector has not acknowledged."""
        with self._lock:
            rows = queries.sent_rows(self._connection(), self._clock() - older_than_s, limit)
            return self._records(rows)

    def _records(self, rows: list[queries.Row]) -> list[Record]:
        """Decode rows one by one; an unreadable row is set aside so it cannot stall its stream forever."""
        records: list[Record] = []
        for row in rows:
            try:
                records.append(record_from_row(row, self.vehicle_id))
            except UnreadableRow as exc:
                self.drop_unsendable(int(row[0]), str(row[1]), int(row[2]), str(exc))
        return records

    def drop_unsendable(self, row_id: int, stream: str, seq: int, reason: str) -> None:
        """Delete a record that can never be delivered, counted and recorded as dropped (not a loss).

        The seq goes into the dropped ranges, so the collector is told not to wait for it.
        """
        with self._lock:
            with self._write() as conn:
                freed = thinning.drop_row(conn, row_id, stream, seq)
            self._used -= freed
            self._cap.committed(self._used, None)
        log.error("outbox.record_dropped_unsendable", stream=stream, seq=seq, row_id=row_id, reason=reason)

    def dropped_ranges(self, stream: str) -> list[tuple[int, int]]:
        """Inclusive seq ranges of ``stream`` dropped by the cap and not yet covered by an ack."""
        with self._lock:
            return thinning.dropped_ranges(self._connection(), stream)

    def stats(self) -> OutboxStats:
        """Counts for status displays; the pending count walks an index, so it grows with the backlog."""
        with self._lock:
            conn = self._connection()
            streams = queries.stream_stats(conn)
            oldest = queries.oldest_pending(conn)
            now, used = self._clock(), self._used
        return OutboxStats(
            pending=sum(s.pending for s in streams.values()),
            sent_unacked=sum(s.sent_unacked for s in streams.values()),
            bytes_used=used,
            cap_bytes=self.cap_bytes,
            file_bytes=file_bytes(self.path),
            over_cap=used > self.cap_bytes,
            oldest_pending_age_s=None if oldest is None else self._age(*oldest, now),
            dropped_total=sum(s.dropped for s in streams.values()),
            epoch=self.epoch,
            streams=streams,
        )

    def _age(self, boot_id: str, queued_at: float, now: float) -> float:
        """Age on this boot's clock; a record from an earlier boot is at least as old as this run."""
        if boot_id == self.boot_id and queued_at <= now:
            return now - queued_at
        return now - self._opened_at

    # -- plumbing ------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; any failure rolls it back whole and surfaces as OutboxError."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise translate(self.path, exc) from exc
        except BaseException:
            self._rollback(conn)
            raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")


def _row_id(item: Record | int) -> int:
    return item.id if isinstance(item, Record) else int(item)
