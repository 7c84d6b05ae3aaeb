"""The collector's SQLite store (WAL): records stored once by msg_id, per-stream seq accounting, rejects.

A record's identity is its msg_id within the outbox epoch that numbered it: ``(vehicle, epoch,
stream, seq)``. The epoch matters because a vehicle whose outbox was moved aside (corrupt) starts
numbering again at 1, possibly in the same boot, so msg_id alone could repeat. Storing the same
record again is a no-op counted as a duplicate.

Per (vehicle, epoch, stream) the store keeps ``contiguous``: the highest seq N with every seq
1..N received or announced dropped. That is what the collector's ack tells the agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from agent.mqtt.wire import AckView, Received

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    vehicle TEXT NOT NULL, epoch TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,
    msg_id TEXT NOT NULL, boot_id TEXT NOT NULL, priority TEXT NOT NULL,
    mono REAL NOT NULL, wall REAL NOT NULL, wall_source TEXT NOT NULL,
    payload TEXT NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (vehicle, epoch, stream, seq)
);
CREATE INDEX IF NOT EXISTS messages_msg_id ON messages (msg_id);
CREATE TABLE IF NOT EXISTS streams (
    vehicle TEXT NOT NULL, epoch TEXT NOT NULL, stream TEXT NOT NULL,
    contiguous INTEGER NOT NULL DEFAULT 0, max_seq INTEGER NOT NULL DEFAULT 0,
    received INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
    last_seen REAL,
    PRIMARY KEY (vehicle, epoch, stream)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dropped (
    vehicle TEXT NOT NULL, epoch TEXT NOT NULL, stream TEXT NOT NULL,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY (vehicle, epoch, stream, first_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vehicles (
    vehicle TEXT PRIMARY KEY, epoch TEXT, state TEXT, reason TEXT, boot_id TEXT,
    status_at REAL, last_seen REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejects (
    reason TEXT PRIMARY KEY, count INTEGER NOT NULL, last_topic TEXT, last_detail TEXT, last_at REAL
) WITHOUT ROWID;
"""

P = ParamSpec("P")
T = TypeVar("T")

#: Received seqs read per query while walking a run of contiguous seqs.
RUN_CHUNK = 2000
#: An ack lists at most this many holes per stream, found among at most HOLE_SCAN received seqs.
MAX_HOLES = 32
HOLE_SCAN = 20_000


def _locked(method: Callable[P, T]) -> Callable[P, T]:
    """Run a read method under the store's lock (the MQTT thread may be writing)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        store = args[0]
        assert isinstance(store, Store)
        with store._lock:
            return method(*args, **kwargs)

    return wrapper


@dataclasses.dataclass(frozen=True)
class StreamRow:
    """``busagent-collector stats``: one line per vehicle and stream, all epochs added up."""

    vehicle: str
    stream: str
    received: int
    missing: int
    duplicates: int
    dropped: int
    last_seen: float | None
    epochs: int


class Store:
    """One SQLite file and connection, shared by the MQTT thread and the ack thread under a lock."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.RLock()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the ack published after a commit makes the agent delete those records, so the commit
        # must be on disk first. With NORMAL a power cut may roll back the last commits in WAL mode,
        # and records already deleted on the bus would be lost for good.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- writing --------------------------------------------------------------------------------

    def store_records(
        self, vehicle: str, epoch: str, records: Sequence[Received], now: float
    ) -> tuple[int, int]:
        """Store records of one stream; returns (stored, duplicates). Idempotent."""
        stream = records[0].stream
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany(
                # Only a duplicate key is skipped: OR IGNORE would also skip a NOT NULL failure and
                # count a broken record as a duplicate, i.e. as stored.
                "INSERT INTO messages (vehicle, epoch, stream, seq, msg_id, boot_id, priority,"
                " mono, wall, wall_source, payload, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (vehicle, epoch, stream, seq) DO NOTHING",
                [(vehicle, epoch, stream, *_columns(r), now) for r in records],
            )
            stored = conn.total_changes - before
            duplicates = len(records) - stored
            self._stream_row(conn, vehicle, epoch, stream)
            conn.execute(
                "UPDATE streams SET received = received + ?, duplicates = duplicates + ?,"
                " max_seq = MAX(max_seq, ?), last_seen = ? WHERE vehicle = ? AND epoch = ? AND stream = ?",
                (stored, duplicates, max(r.seq for r in records), now, vehicle, epoch, stream),
            )
            self._advance(conn, vehicle, epoch, stream)
            self._seen(conn, vehicle, epoch, now)
        return stored, duplicates

    def store_dropped(
        self, vehicle: str, epoch: str, stream: str, ranges: Sequence[Sequence[int]], now: float
    ) -> None:
        """Seq ranges the agent's outbox dropped: counted as dropped, not missing; not waited for."""
        with self._tx() as conn:
            self._stream_row(conn, vehicle, epoch, stream)
            conn.executemany(
                "INSERT INTO dropped (vehicle, epoch, stream, first_seq, last_seq) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
                [(vehicle, epoch, stream, first, last) for first, last in ranges if first <= last],
            )
            self._advance(conn, vehicle, epoch, stream)
            self._seen(conn, vehicle, epoch, now)

    def store_status(self, vehicle: str, doc: dict[str, Any], now: float) -> None:
        with self._tx() as conn:
            self._seen(conn, vehicle, doc["epoch"], now)
            conn.execute(
                "UPDATE vehicles SET state = ?, reason = ?, boot_id = ?, status_at = ? WHERE vehicle = ?",
                (doc["state"], doc["reason"], doc["boot_id"], doc["at"], vehicle),
            )

    def reject(self, reason: str, topic: str, detail: str, now: float) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO rejects (reason, count, last_topic, last_detail, last_at) VALUES (?, 1, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET count = count + 1, last_topic = excluded.last_topic,"
                " last_detail = excluded.last_detail, last_at = excluded.last_at",
                (reason, topic[:200], detail[:300], now),
            )

    @staticmethod
    def _stream_row(conn: sqlite3.Connection, vehicle: str, epoch: str, stream: str) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO streams (vehicle, epoch, stream) VALUES (?, ?, ?)",
            (vehicle, epoch, stream),
        )

    @staticmethod
    def _seen(conn: sqlite3.Connection, vehicle: str, epoch: str, now: float) -> None:
        conn.execute(
            "INSERT INTO vehicles (vehicle, epoch, last_seen) VALUES (?, ?, ?)"
            " ON CONFLICT DO UPDATE SET epoch = excluded.epoch, last_seen = excluded.last_seen",
            (vehicle, epoch, now),
        )

    def _advance(self, conn: sqlite3.Connection, vehicle: str, epoch: str, stream: str) -> None:
        """Move ``contiguous`` over every received seq and announced dropped range that follows it."""
        key = (vehicle, epoch, stream)
        (contiguous,) = conn.execute(
            "SELECT contiguous FROM streams WHERE vehicle = ? AND epoch = ? AND stream = ?", key
        ).fetchone()
        start = contiguous
        ranges = conn.execute(
            "SELECT first_seq, last_seq FROM dropped WHERE vehicle = ? AND epoch = ? AND stream = ?"
            " AND last_seq > ? ORDER BY first_seq",
            (*key, contiguous),
        ).fetchall()
        while True:
            covering = [last for first, last in ranges if first <= contiguous + 1 <= last]
            if covering:
                contiguous = max(covering)
                continue
            seqs = conn.execute(
                "SELECT seq FROM messages WHERE vehicle = ? AND epoch = ? AND stream = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (*key, contiguous, RUN_CHUNK),
            ).fetchall()
            run_end = contiguous
            for (seq,) in seqs:
                if seq != run_end + 1:
                    break
                run_end = seq
            if run_end == contiguous:
                break
            contiguous = run_end
        if contiguous != start:
            conn.execute(
                "UPDATE streams SET contiguous = ? WHERE vehicle = ? AND epoch = ? AND stream = ?",
                (contiguous, *key),
            )

    # -- reading --------------------------------------------------------------------------------

    def ack_state(self, vehicle: str) -> tuple[str, dict[str, AckView]] | None:
        """(epoch, {stream: what we hold}) for the vehicle's latest epoch, or None if never seen."""
        with self._lock:
            row = self._conn.execute("SELECT epoch FROM vehicles WHERE vehicle = ?", (vehicle,)).fetchone()
            if row is None or row[0] is None:
                return None
            epoch = str(row[0])
            streams = self._conn.execute(
                "SELECT stream, contiguous, max_seq FROM streams WHERE vehicle = ? AND epoch = ?",
                (vehicle, epoch),
            ).fetchall()
            return epoch, {str(s): self._view((vehicle, epoch, s), upto, top) for s, upto, top in streams}

    def _view(self, key: tuple[str, str, str], upto: int, top: int) -> AckView:
        """Holes above ``upto``: at most MAX_HOLES, read from at most HOLE_SCAN rows; ``top`` is cut
        back to what was examined, so the agent resends anything beyond it."""
        if top <= upto:
            return AckView(upto)
        holes: list[tuple[int, int]] = []
        last = upto
        for (seq,) in self._conn.execute(
            "SELECT seq FROM messages WHERE vehicle = ? AND epoch = ? AND stream = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (*key, upto, HOLE_SCAN),
        ):
            if seq > last + 1:
                if len(holes) == MAX_HOLES:
                    break
                holes.append((last + 1, seq - 1))
            last = seq
        return AckView(upto, last, tuple(holes))

    @_locked
    def stream_rows(self) -> list[StreamRow]:
        """Per vehicle and stream: received, missing (gaps), duplicates, dropped, last seen."""
        totals: dict[tuple[str, str], list[Any]] = {}
        for vehicle, epoch, stream, max_seq, received, duplicates, last_seen in self._conn.execute(
            "SELECT vehicle, epoch, stream, max_seq, received, duplicates, last_seen FROM streams"
            " ORDER BY vehicle, stream, epoch"
        ):
            dropped, dropped_top = self._dropped_not_received(vehicle, epoch, stream)
            missing = max(max_seq, dropped_top) - received - dropped
            row = totals.setdefault((vehicle, stream), [0, 0, 0, 0, None, 0])
            for i, value in enumerate((received, missing, duplicates, dropped)):
                row[i] += value
            row[4] = last_seen if row[4] is None or (last_seen or 0) > row[4] else row[4]
            row[5] += 1
        return [StreamRow(vehicle, stream, *values) for (vehicle, stream), values in totals.items()]

    def _dropped_not_received(self, vehicle: str, epoch: str, stream: str) -> tuple[int, int]:
        """(seqs announced dropped that never arrived anyway, highest dropped seq)."""
        dropped, top = 0, 0
        for first, last in self._conn.execute(
            "SELECT first_seq, last_seq FROM dropped WHERE vehicle = ? AND epoch = ? AND stream = ?",
            (vehicle, epoch, stream),
        ).fetchall():
            (arrived,) = self._conn.execute(
                "SELECT COUNT(*) FROM messages WHERE vehicle = ? AND epoch = ? AND stream = ?"
                " AND seq BETWEEN ? AND ?",
                (vehicle, epoch, stream, first, last),
            ).fetchone()
            dropped += last - first + 1 - arrived
            top = max(top, last)
        return dropped, top

    @_locked
    def rejects(self) -> dict[str, int]:
        return {
            str(reason): int(count)
            for reason, count in self._conn.execute("SELECT reason, count FROM rejects")
        }

    @_locked
    def payloads(self, vehicle: str, stream: str) -> list[tuple[int, dict[str, Any]]]:
        """(seq, payload) of a stream in the order they first arrived; for maps and tests."""
        return [
            (int(seq), json.loads(text))
            for seq, text in self._conn.execute(
                "SELECT seq, payload FROM messages WHERE vehicle = ? AND stream = ? ORDER BY rowid",
                (vehicle, stream),
            )
        ]


def _columns(record: Received) -> tuple[Any, ...]:
    payload = json.dumps(record.payload, separators=(",", ":"), ensure_ascii=False)
    return (
        record.seq,
        record.msg_id,
        record.boot_id,
        record.priority,
        record.mono,
        record.wall,
        record.wall_source,
        payload,
    )
